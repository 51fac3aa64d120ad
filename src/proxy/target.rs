//! The SSRF boundary: a caller's `path` becomes a URL under the provider's `api_base_url`,
//! or is refused before anything is sent.
//!
//! Parsing is an allowlist rather than a list of known tricks: ASCII only, a small set of
//! characters, relative segments that are neither empty nor `.`/`..` (in any encoding), no
//! encoded separators or control characters, no scheme, no fragment. `..` is refused even
//! where it would stay inside the base: simpler to reason about, and no API needs it. `;` is
//! refused in the path (Tomcat, Jetty and Spring strip `;…` path parameters *after* other
//! proxies have normalised, so `..;/` climbs out), and percent-encodings must decode to
//! UTF-8 (`%c0%ae` is an overlong '.'), also after a second round of decoding.
//!
//! Joining then checks the result again — same scheme, host and port, no credentials, and a
//! path that is exactly the base path followed by the caller's — so that a trick the parser
//! missed still cannot leave the base unnoticed.

mod encoding;

use crate::domain::InvalidField;
use url::Url;

/// Longest `path` accepted, in bytes (query included).
pub const MAX_PATH_LEN: usize = 2048;

/// A validated path relative to a provider's base URL, possibly with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPath {
    path: String,
    query: Option<String>,
}

impl ProxyPath {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidField> {
        let refuse = |problem: &str| InvalidField::new(field, problem.to_owned());
        if value.is_empty() {
            return Err(refuse("must not be empty"));
        }
        if value.len() > MAX_PATH_LEN {
            return Err(refuse(&format!("longer than {MAX_PATH_LEN} bytes")));
        }
        let before_query = value.split('?').next().unwrap_or_default();
        if value.starts_with(['/', '\\']) || before_query.contains("://") {
            return Err(refuse("must be relative to the provider's api_base_url: no scheme, host or leading '/'"));
        }
        if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(refuse(&format!("contains {c:?}: only printable ASCII is allowed (percent-encode the rest)")));
        }
        if value.contains('#') {
            return Err(refuse("must not carry a fragment ('#')"));
        }
        let (path, query) = match value.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (value, None),
        };
        check_path(path).map_err(|problem| refuse(&problem))?;
        if let Some(query) = query {
            check_query(query).map_err(|problem| refuse(&problem))?;
        }
        Ok(Self { path: path.to_owned(), query: query.map(str::to_owned) })
    }

    /// The path part, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `base` joined with this path. `None` if the result would not lie under `base`.
    ///
    /// Only the path, query and fragment of a copy of the parsed base are set: neither the
    /// scheme nor the host is parsed again (no IDNA per call), so the origin cannot change.
    pub fn join(&self, base: &Url) -> Option<Url> {
        let expected_path = [base_dir(base), &self.path].concat();
        let mut url = base.clone();
        url.set_path(&expected_path);
        url.set_query(self.query.as_deref());
        url.set_fragment(None);
        // `set_path` resolves dot segments: a path the parser let through that climbs (or
        // is rewritten in any way) is refused here.
        let inside = url.username().is_empty() && url.password().is_none() && url.path() == expected_path;
        inside.then_some(url)
    }
}

/// The base URL's path up to its last `/`: what a relative reference is resolved against.
fn base_dir(base: &Url) -> &str {
    let path = base.path();
    &path[..path.rfind('/').map_or(0, |i| i + 1)]
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must start with a path segment (a query alone is not allowed)".into());
    }
    if path.contains(';') {
        return Err(PATH_PARAMETER.into());
    }
    if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
        return Err(format!("contains {c:?}, which is not allowed in a path (percent-encode it)"));
    }
    let mut segments = path.split('/').peekable();
    if segments.peek().is_some_and(|first| first.contains(':')) {
        return Err("must not start with a scheme (':' in the first segment)".into());
    }
    while let Some(segment) = segments.next() {
        // A trailing '/' is fine (Django APIs need it); '//' anywhere is not.
        if segment.is_empty() && segments.peek().is_some() {
            return Err("must not contain empty segments ('//')".into());
        }
        check_segment(segment)?;
    }
    Ok(())
}

/// Why `;` is refused in a path, raw or encoded.
const PATH_PARAMETER: &str =
    "must not contain ';' (a path parameter: '..;/' is a traversal on Tomcat, Jetty and Spring upstreams)";

/// One segment, after percent-decoding: UTF-8, no separators, no second round of encoding,
/// no path parameter, no control characters, and not a dot segment in any spelling.
fn check_segment(segment: &str) -> Result<(), String> {
    let decoded = encoding::decode_utf8(segment)?;
    if decoded.bytes().any(|b| matches!(b, b'/' | b'\\' | b'%') || b.is_ascii_control()) {
        return Err("must not contain encoded '/', '\\', '%' or control characters".into());
    }
    if decoded.contains(';') {
        return Err(PATH_PARAMETER.into());
    }
    if is_dot_segment(&decoded) {
        return Err("must not contain '.' or '..' segments".into());
    }
    Ok(())
}

/// `.`, `..`, and look-alikes some servers normalise to them (fullwidth and ideographic
/// full stops, one-dot leader…).
fn is_dot_segment(decoded: &str) -> bool {
    const DOTS: [char; 6] = ['.', '\u{FF0E}', '\u{3002}', '\u{FF61}', '\u{2024}', '\u{FE52}'];
    !decoded.is_empty() && decoded.chars().all(|c| DOTS.contains(&c))
}

/// A query may hold '%' (a literal percent sign, encoded once), so a second round of
/// encoding is allowed there — but it too must decode to UTF-8 without control characters.
fn check_query(query: &str) -> Result<(), String> {
    if let Some(c) = query.chars().find(|c| !is_path_char(*c) && !matches!(c, '?' | '@')) {
        return Err(format!("contains {c:?}, which is not allowed in a query (percent-encode it)"));
    }
    let once = encoding::decode_utf8(query)?;
    let twice = encoding::decode_again(&once)?;
    if twice.chars().any(|c| c.is_ascii_control()) {
        return Err("must not contain encoded control characters".into());
    }
    Ok(())
}

/// RFC 3986 `pchar` (unreserved, sub-delims, ':', '%') plus '/', without '@': userinfo
/// look-alikes have no business in an API path (a query may hold '@', e.g. an e-mail).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:/%".contains(c)
}

#[cfg(test)]
mod tests;

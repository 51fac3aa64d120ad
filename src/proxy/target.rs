//! The SSRF boundary: a caller's `path` becomes a URL under the provider's `api_base_url`,
//! or is refused before anything is sent.
//!
//! Parsing is an allowlist rather than a list of known tricks: ASCII only, a small set of
//! characters, relative segments that are neither empty nor `.`/`..` (in any encoding), no
//! encoded separators or control characters, no scheme, no fragment. `..` is refused even
//! where it would stay inside the base: simpler to reason about, and no API needs it.
//!
//! Joining then checks the result again — same scheme, host and port, no credentials, and a
//! path that is exactly the base path followed by the caller's — so that a trick the parser
//! missed still cannot leave the base unnoticed.

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
    pub fn join(&self, base: &Url) -> Option<Url> {
        let mut url = base.join(&self.path).ok()?;
        url.set_query(self.query.as_deref());
        let expected_path = format!("{}{}", base_dir(base), self.path);
        let inside = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
            && url.path() == expected_path;
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
    if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
        return Err(format!("contains {c:?}, which is not allowed in a path (percent-encode it)"));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments[0].contains(':') {
        return Err("must not start with a scheme (':' in the first segment)".into());
    }
    for (i, segment) in segments.iter().enumerate() {
        // A trailing '/' is fine (Django APIs need it); '//' anywhere is not.
        if segment.is_empty() && i + 1 < segments.len() {
            return Err("must not contain empty segments ('//')".into());
        }
        check_segment(segment)?;
    }
    Ok(())
}

/// One segment, after percent-decoding: no separators, no second round of encoding, no
/// control characters, and not a dot segment in any spelling.
fn check_segment(segment: &str) -> Result<(), String> {
    let decoded = percent_decode(segment)?;
    if decoded.iter().any(|b| matches!(b, b'/' | b'\\' | b'%') || b.is_ascii_control()) {
        return Err("must not contain encoded '/', '\\', '%' or control characters".into());
    }
    if is_dot_segment(&decoded) {
        return Err("must not contain '.' or '..' segments".into());
    }
    Ok(())
}

/// `.`, `..`, and look-alikes some servers normalise to them (fullwidth and ideographic
/// full stops, one-dot leader…).
fn is_dot_segment(decoded: &[u8]) -> bool {
    const DOTS: [char; 6] = ['.', '\u{FF0E}', '\u{3002}', '\u{FF61}', '\u{2024}', '\u{FE52}'];
    let text = String::from_utf8_lossy(decoded);
    !text.is_empty() && text.chars().all(|c| DOTS.contains(&c))
}

fn check_query(query: &str) -> Result<(), String> {
    if let Some(c) = query.chars().find(|c| !is_path_char(*c) && !matches!(c, '?' | '@')) {
        return Err(format!("contains {c:?}, which is not allowed in a query (percent-encode it)"));
    }
    let decoded = percent_decode(query)?;
    if decoded.iter().any(u8::is_ascii_control) {
        return Err("must not contain encoded control characters".into());
    }
    Ok(())
}

/// RFC 3986 `pchar` (unreserved, sub-delims, ':', '%') plus '/', without '@': userinfo
/// look-alikes have no business in an API path (a query may hold '@', e.g. an e-mail).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:/%".contains(c)
}

fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or("contains a '%' that is not followed by two hex digits")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

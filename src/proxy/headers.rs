//! Header hygiene, both ways.
//!
//! Requests: the caller may not set what carries or replaces the credential
//! (`authorization`, `api-key`, `cookie`), what picks the destination (`host`), hop-by-hop
//! headers, which describe the caller's connection, not the upstream one, nor headers that
//! upstream frameworks or the proxies in front of them take as the request's real URL, host,
//! method or client (`x-original-url`, `x-forwarded-*`, `x-http-method-override`, …): with
//! those, a caller could reach an endpoint the path check refused. These are refused, naming
//! the header — silently dropping them would hide a caller's mistake.
//! Responses: hop-by-hop headers, any header the upstream's `connection` names, and
//! `set-cookie` (a session the upstream binds to the broker's credential is not the caller's)
//! are stripped. Everything else passes both ways.

use crate::domain::InvalidField;
use reqwest::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};

/// Most headers a caller may send, and their total size in bytes.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `keep-alive` and `proxy-connection`).
fn hop_by_hop(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade")
        || name.starts_with("proxy-")
}

/// Headers that would override or smuggle credentials, or re-target the request.
fn reserved(name: &str) -> bool {
    matches!(name, "authorization" | "api-key" | "host" | "cookie")
}

/// Headers an upstream may believe over the request line, and why.
fn rewrites(name: &str) -> Option<&'static str> {
    let proxy_set = matches!(
        name,
        "forwarded"
            | "x-host"
            | "x-original-host"
            | "x-http-host-override"
            | "x-real-ip"
            | "true-client-ip"
            | "x-client-ip"
            | "x-cluster-client-ip"
    ) || name.starts_with("x-forwarded-");
    match name {
        "x-original-url" | "x-original-uri" | "x-rewrite-url" | "x-override-url" | "x-envoy-original-path" => {
            Some("upstream frameworks take it as the request's URL")
        }
        "x-http-method-override" | "x-http-method" | "x-method-override" => {
            Some("upstream frameworks take it as the request's method")
        }
        _ if proxy_set => {
            Some("proxies in front of the upstream set it, and upstreams take it as the request's host, URL or client")
        }
        _ => None,
    }
}

/// Response headers that are not passed on: a session cookie the upstream sets belongs to
/// the broker's credential, not to the caller.
fn session_cookie(name: &str) -> bool {
    matches!(name, "set-cookie" | "set-cookie2")
}

/// The caller's headers, validated, as they will be sent.
pub fn request_headers<'a>(
    field: &'static str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, InvalidField> {
    let mut map = HeaderMap::new();
    let mut bytes = 0;
    for (name, value) in headers {
        let (name, value) = header(field, name, value)?;
        bytes += name.as_str().len() + value.len();
        map.append(name, value);
    }
    if map.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(InvalidField::new(field, format!("at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes")));
    }
    Ok(map)
}

fn header(field: &'static str, name: &str, value: &str) -> Result<(HeaderName, HeaderValue), InvalidField> {
    let refuse = |problem: String| InvalidField::new(field, problem);
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| refuse(format!("{:?} is not a valid header name", name.escape_debug().to_string())))?;
    let lower = parsed.as_str();
    if reserved(lower) {
        return Err(refuse(format!("{lower:?} may not be set by the caller: credbroker sets it")));
    }
    if hop_by_hop(lower) {
        return Err(refuse(format!("{lower:?} is a hop-by-hop header and may not be set by the caller")));
    }
    if let Some(why) = rewrites(lower) {
        return Err(refuse(format!("{lower:?} may not be set by the caller: {why}")));
    }
    // `from_str` refuses CR, LF, NUL and other control characters (tab aside).
    let value = HeaderValue::from_str(value)
        .map_err(|_| refuse(format!("the value of {lower:?} must be printable ASCII without CR or LF")))?;
    Ok((parsed, value))
}

/// The upstream's response headers without hop-by-hop ones and without cookies.
pub fn response_headers(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> =
        headers.keys().filter(|n| hop_by_hop(n.as_str()) || session_cookie(n.as_str())).cloned().collect();
    for name in hop {
        headers.remove(name);
    }
    headers
}

/// Name/value pairs for the proto. Values that are not UTF-8 (obsolete, but legal in
/// HTTP/1.1) are passed on lossily: proto strings must be UTF-8.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (String, String)> + '_ {
    headers.iter().map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, value: &str) -> Result<HeaderMap, InvalidField> {
        request_headers("headers", [(name, value)])
    }

    #[test]
    fn reserved_and_hop_by_hop_request_headers_are_refused_by_name() {
        for name in [
            "Authorization",
            "api-key",
            "API-Key",
            "host",
            "Cookie",
            "connection",
            "Keep-Alive",
            "proxy-authorization",
            "Proxy-Connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "X-Original-URL",
            "x-original-uri",
            "x-rewrite-url",
            "x-override-url",
            "x-envoy-original-path",
            "X-HTTP-Method-Override",
            "x-http-method",
            "x-method-override",
            "forwarded",
            "x-forwarded-host",
            "x-forwarded-prefix",
            "x-forwarded-proto",
            "x-forwarded-for",
            "x-host",
            "x-original-host",
            "x-real-ip",
            "true-client-ip",
        ] {
            let error = check(name, "x").unwrap_err();
            assert!(error.problem.contains(&name.to_ascii_lowercase()), "{error}");
        }
    }

    #[test]
    fn bad_names_and_values_are_refused_and_others_pass() {
        assert!(check("x-a\r\nb", "v").is_err());
        assert!(check("", "v").is_err());
        assert!(check("x-a", "v\r\nInjected: yes").is_err());
        assert!(check("x-a", "v\0").is_err());
        let ok = request_headers("headers", [("X-Trace", "1"), ("x-trace", "2"), ("accept", "text/xml")]).unwrap();
        assert_eq!(ok.get_all("x-trace").iter().count(), 2);
        assert_eq!(ok["accept"], "text/xml");
    }

    #[test]
    fn hop_by_hop_and_cookie_response_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (n, v) in [
            ("connection", "x-hop, close"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("content-type", "application/json"),
            ("set-cookie", "session=abc"),
            ("set-cookie", "other=def"),
            ("set-cookie2", "legacy=1"),
            ("x-forwarded-host", "kept: only requests are checked"),
        ] {
            headers.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let kept: Vec<_> = response_headers(headers).keys().map(|n| n.as_str().to_owned()).collect();
        assert_eq!(kept, ["content-type", "x-forwarded-host"]);
    }
}

//! Small helpers shared by the providers: random secrets, header parsing, body parsing,
//! dates.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::Alphanumeric;
use time::OffsetDateTime;
use time::macros::format_description;

/// A random string of ASCII letters and digits.
pub(crate) fn random_alnum(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

/// The `Authorization` header split into scheme and the rest, when present and readable.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let value = value.trim();
    Some(match value.split_once(' ') {
        Some((scheme, rest)) => Ok((scheme.to_owned(), rest.trim().to_owned())),
        None => Ok((value.to_owned(), String::new())),
    })
}

/// Decodes the credentials of a `Basic` header value: `user:password`, split at the first
/// colon (BRO usernames contain `|`, never `:`).
pub(crate) fn decode_basic(credentials: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(credentials).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Basic credentials from the headers, if the header is a readable Basic one.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    match authorization(headers)? {
        Ok((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => decode_basic(&rest),
        _ => None,
    }
}

/// Whether the request body is declared JSON.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

/// Parameters of a JSON object or form-encoded body, as the web frameworks see them:
/// numbers and booleans become strings, nulls are absent. `Err` for malformed JSON.
pub(crate) fn body_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, String> {
    if !is_json(headers) {
        return Ok(serde_urlencoded::from_bytes(body).unwrap_or_default());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashMap::new());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else {
        return Ok(HashMap::new());
    };
    let params = map.into_iter().filter_map(|(key, value)| {
        let text = match value {
            serde_json::Value::Null => return None,
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        Some((key, text))
    });
    Ok(params.collect())
}

/// ISO-8601 UTC with milliseconds, like PASS's `expiry_date`: `2019-09-25T13:40:45.904Z`.
pub(crate) fn iso_millis(at: SystemTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(at).format(&format).expect("UTC dates always format")
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

/// Whole seconds, rounded up: an `expires_in` of 0 for a 500 ms lifetime would mislead.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates_look_like_pass_ones() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_569_418_845_904);
        assert_eq!(iso_millis(at), "2019-09-25T13:40:45.904Z");
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let encoded = STANDARD.encode("0dce6fc98256|123456789|1234:c0de:more");
        let expected = ("0dce6fc98256|123456789|1234".to_owned(), "c0de:more".to_owned());
        assert_eq!(decode_basic(&encoded), Some(expected));
    }
}

//! A provider's reason for refusing, in words, from the known fields of its error body.
//!
//! Only fields that providers fill with their own messages are read — never the whole body,
//! which might echo what we sent. Even those are scrubbed, before they are cut to length.

use super::scrub::scrub;
use crate::domain::Secret;
use reqwest::StatusCode;
use serde_json::Value;

/// Longest reason kept, in characters.
const MAX_CHARS: usize = 200;

/// The reason of a refusal, or the status's canonical reason when the body names none;
/// without the secrets that were `sent` or anything token-shaped.
pub(super) fn from_body(status: StatusCode, body: &[u8], sent: &[&Secret]) -> String {
    let found = serde_json::from_slice::<Value>(body).ok().and_then(|v| from_json(&v));
    let reason = found.unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason given").to_owned());
    truncate(scrub(reason, sent), MAX_CHARS)
}

fn from_json(v: &Value) -> Option<String> {
    oauth(v)
        .or_else(|| text(v.pointer("/result/message")))
        .or_else(|| text(v.get("detail")))
        .or_else(|| text(v.get("message")))
        .or_else(|| field_errors(v))
}

/// Passport (league/oauth2-server): `{error, error_description, hint}` read as
/// `{error} ({hint}): {error_description}`. The hint comes early because it is the part
/// that says what happened ("Token has been revoked"), and the description can be long.
fn oauth(v: &Value) -> Option<String> {
    let error = text(v.get("error"))?;
    let mut reason = error;
    if let Some(hint) = text(v.get("hint")) {
        reason = format!("{reason} ({hint})");
    }
    if let Some(description) = text(v.get("error_description")) {
        reason = format!("{reason}: {description}");
    }
    Some(reason)
}

/// Django REST framework's validation errors: `{"non_field_errors": [..], "field": [..]}`.
fn field_errors(v: &Value) -> Option<String> {
    let parts: Vec<String> = v
        .as_object()?
        .iter()
        .filter_map(|(field, messages)| {
            let messages: Vec<&str> = messages.as_array()?.iter().filter_map(Value::as_str).collect();
            match (messages.is_empty(), field.as_str()) {
                (true, _) => None,
                (false, "non_field_errors") => Some(messages.join(" ")),
                (false, _) => Some(format!("{field}: {}", messages.join(" "))),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn text(v: Option<&Value>) -> Option<String> {
    v?.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn truncate(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(status: u16, body: &str) -> String {
        from_body(StatusCode::from_u16(status).unwrap(), body.as_bytes(), &[])
    }

    #[test]
    fn passport_errors_put_the_hint_first() {
        let body = r#"{"error":"invalid_grant","error_description":"The refresh token is invalid.",
                       "hint":"Token has been revoked","message":"The refresh token is invalid."}"#;
        assert_eq!(reason(400, body), "invalid_grant (Token has been revoked): The refresh token is invalid.");
        let body = r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#;
        assert_eq!(reason(401, body), "invalid_client: Client authentication failed");
    }

    #[test]
    fn pass_drf_and_laravel_messages() {
        assert_eq!(reason(401, r#"{"result":{"code":401,"message":"User not active"}}"#), "User not active");
        let drf = r#"{"non_field_errors":["Unable to log in with provided credentials."]}"#;
        assert_eq!(reason(400, drf), "Unable to log in with provided credentials.");
        assert_eq!(reason(400, r#"{"password":["This field is required."]}"#), "password: This field is required.");
        assert_eq!(reason(401, r#"{"detail":"Signature has expired."}"#), "Signature has expired.");
        assert_eq!(reason(429, r#"{"message":"Too Many Attempts."}"#), "Too Many Attempts.");
    }

    #[test]
    fn unknown_bodies_give_the_status_reason_only() {
        assert_eq!(reason(502, "<html>upstream echoed secret-value</html>"), "Bad Gateway");
        assert_eq!(reason(400, r#"{"echo":"secret-value"}"#), "Bad Request");
        assert_eq!(reason(599, ""), "no reason given");
    }

    /// Before, the reason was cut first and scrubbed after: the cut left the first characters
    /// of a long refresh token, which no longer matched it whole.
    #[test]
    fn echoed_tokens_are_scrubbed_before_the_cut() {
        let token = Secret::new(format!("def50200{}", "a1b2c3d4e5f6".repeat(60)));
        // The token starts 24 characters before the cut.
        let lead = "x".repeat(MAX_CHARS - 40);
        let body = format!(r#"{{"error":"invalid_grant","error_description":"{lead} {} is revoked"}}"#, token.expose());
        let reason = from_body(StatusCode::BAD_REQUEST, body.as_bytes(), &[&token]);
        assert!(reason.contains("[redacted] is revoked"), "{reason}");
        assert!(!reason.contains("def50200"), "{reason}");
        let unsent = from_body(StatusCode::BAD_REQUEST, body.as_bytes(), &[]);
        assert!(!unsent.contains("def50200"), "token-shaped: {unsent}");
    }

    #[test]
    fn long_reasons_are_cut_at_a_character() {
        let long = format!(r#"{{"detail":"{}"}}"#, "é".repeat(300));
        let cut = reason(400, &long);
        assert_eq!(cut.chars().count(), MAX_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}

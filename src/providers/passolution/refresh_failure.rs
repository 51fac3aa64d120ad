//! What a failed refresh means for the single-use refresh token (see `docs/refresh-safety.md`).
//!
//! Passport handles a refresh in a fixed order: throttle, check the client, check the refresh
//! token, revoke the old access and refresh token, issue new ones. A refusal from one of the
//! first two steps proves the token was not touched; a refusal from the third proves it is
//! dead; anything else may have happened after the revocation.

use std::time::Duration;

use crate::providers::http::UpstreamError;

/// How a refresh failed, as far as the refresh token is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    /// Provably not processed: the refresh token is untouched and may be presented again
    /// (after `retry_after`, when given).
    NotProcessed { retry_after: Option<Duration>, reason: String },
    /// The provider refused the refresh token itself: re-authorization is required.
    Rejected { reason: String },
    /// It may have been redeemed: never resend; resolve with a probe of the old access token.
    Unknown { reason: String },
}

/// The hints and descriptions league/oauth2-server gives a refresh token it will not redeem.
const TOKEN_REFUSALS: [&str; 4] = [
    "Token has been revoked",
    "Token has expired",
    "Cannot decrypt the refresh token",
    "The refresh token is invalid.",
];

/// Reads an error of [`refresh`](super::refresh). The reason of a refusal reads
/// `{error} ({hint}): {error_description}` (see [`UpstreamError::Refused`]).
pub fn classify_refresh_error(e: &UpstreamError) -> RefreshFailure {
    use RefreshFailure::*;
    match e {
        UpstreamError::NotSent { detail } => {
            NotProcessed { retry_after: None, reason: format!("the request never reached Passolution: {detail}") }
        }
        UpstreamError::Refused { status: 429, reason, retry_after } => {
            NotProcessed { retry_after: *retry_after, reason: format!("rate limited by Passolution: {reason}") }
        }
        UpstreamError::Refused { status: 401, reason, .. } if oauth_error(reason) == "invalid_client" => NotProcessed {
            retry_after: None,
            reason: format!(
                "configuration problem: Passolution refused this broker's client_id/client_secret \
                 (the refresh token was not touched): {reason}"
            ),
        },
        UpstreamError::Refused { status, reason, .. } if token_refused(*status, reason) => {
            Rejected { reason: format!("Passolution refused the refresh token (status {status}): {reason}") }
        }
        other => Unknown { reason: other.to_string() },
    }
}

/// league 8.x and later: 400 `invalid_grant`; older: 401 `invalid_request` with the
/// refresh-token hint (a 401 `invalid_request` may otherwise be about a missing parameter).
fn token_refused(status: u16, reason: &str) -> bool {
    match (status, oauth_error(reason)) {
        (400, "invalid_grant") => true,
        (401, "invalid_request") => TOKEN_REFUSALS.iter().any(|refusal| reason.contains(refusal)),
        _ => false,
    }
}

/// The OAuth `error` code at the start of a refusal's reason.
fn oauth_error(reason: &str) -> &str {
    reason.split([' ', ':']).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, reason: &str, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError::Refused { status, reason: reason.into(), retry_after }
    }

    fn kind(e: &UpstreamError) -> &'static str {
        match classify_refresh_error(e) {
            RefreshFailure::NotProcessed { .. } => "not processed",
            RefreshFailure::Rejected { .. } => "rejected",
            RefreshFailure::Unknown { .. } => "unknown",
        }
    }

    #[test]
    fn the_table_of_refresh_safety() {
        let revoked = "(Token has been revoked): The refresh token is invalid.";
        let cases = [
            (UpstreamError::NotSent { detail: "connection refused".into() }, "not processed"),
            (refused(429, "Too Many Attempts.", Some(Duration::from_secs(3))), "not processed"),
            (refused(401, "invalid_client: Client authentication failed", None), "not processed"),
            (refused(400, &format!("invalid_grant {revoked}"), None), "rejected"),
            (refused(400, "invalid_grant (Token has expired): The refresh token is invalid.", None), "rejected"),
            (refused(401, &format!("invalid_request {revoked}"), None), "rejected"),
            (refused(401, "invalid_request (Cannot decrypt the refresh token): …", None), "rejected"),
            (refused(400, "invalid_request (Check the `refresh_token` parameter): …", None), "unknown"),
            (refused(401, "invalid_request (Check the `client_id` parameter): …", None), "unknown"),
            (refused(400, "invalid_client: Client authentication failed", None), "unknown"),
            (refused(401, "Unauthorized", None), "unknown"),
            (refused(503, "Service Unavailable", Some(Duration::from_secs(3))), "unknown"),
            (refused(500, "Internal Server Error", None), "unknown"),
            (UpstreamError::NoAnswer { detail: "connection reset".into() }, "unknown"),
            (UpstreamError::Unparsable { status: 200, detail: "missing field".into() }, "unknown"),
        ];
        for (error, expected) in cases {
            assert_eq!(kind(&error), expected, "{error}");
        }
    }

    #[test]
    fn rate_limits_keep_retry_after_and_bad_clients_say_configuration() {
        let wait = Some(Duration::from_secs(7));
        let RefreshFailure::NotProcessed { retry_after, .. } = classify_refresh_error(&refused(429, "x", wait)) else {
            panic!("a 429 is not processed");
        };
        assert_eq!(retry_after, wait);
        let bad_client = refused(401, "invalid_client: Client authentication failed", None);
        let RefreshFailure::NotProcessed { reason, .. } = classify_refresh_error(&bad_client) else {
            panic!("a bad client is not processed");
        };
        assert!(reason.contains("configuration"), "{reason}");
    }
}

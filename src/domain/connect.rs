//! Where a connect session stands (docs/connect.md): the statuses and the fixed set of
//! reasons a session ends without a credential. Stored with the session; the gRPC edge maps
//! them one to one onto `AuthorizationSessionStatus` and `AuthorizationFailure`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A connect session's status as a caller reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Waiting for the end user (or the provider's callback).
    Pending,
    /// The credential is stored.
    Connected,
    /// The end user declined at the provider.
    Denied,
    /// Ended without a credential; the failure says why.
    Failed,
    /// Nobody finished the flow in time. Never stored: a pending session past its expiry
    /// reads as this.
    Expired,
}

/// Why a session ended without a credential. A fixed set: never the provider's free text
/// (`error_description` is not kept), so nothing a provider or an attacker writes reaches a
/// caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFailure {
    /// `error=access_denied`: the end user declined.
    AccessDenied,
    /// `server_error`, `temporarily_unavailable`.
    ProviderUnavailable,
    /// Any other `error=` code, or a callback with neither `code` nor `error`.
    ProviderRefused,
    /// `iss` missing where required, or not the instance's issuer (RFC 9207).
    IssuerMismatch,
    /// The callback came in on another provider instance's path than the session's.
    ProviderMismatch,
    /// The token endpoint refused the authorization code.
    CodeRefused,
    /// The exchange or the store failed (network, 5xx, store unavailable).
    ExchangeFailed,
    /// The subject's credential became live meanwhile and the session was no reconnect.
    AlreadyConnected,
}

impl ConnectFailure {
    /// The failure an authorization response's `error` code means (RFC 6749 §4.1.2.1).
    pub fn from_error_code(code: &str) -> Self {
        match code {
            "access_denied" => Self::AccessDenied,
            "server_error" | "temporarily_unavailable" => Self::ProviderUnavailable,
            _ => Self::ProviderRefused,
        }
    }

    /// The session status this failure ends a session with.
    pub fn status(self) -> SessionStatus {
        match self {
            Self::AccessDenied => SessionStatus::Denied,
            _ => SessionStatus::Failed,
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AccessDenied => "access_denied",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderRefused => "provider_refused",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::ProviderMismatch => "provider_mismatch",
            Self::CodeRefused => "code_refused",
            Self::ExchangeFailed => "exchange_failed",
            Self::AlreadyConnected => "already_connected",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_the_fixed_set() {
        assert_eq!(ConnectFailure::from_error_code("access_denied"), ConnectFailure::AccessDenied);
        assert_eq!(ConnectFailure::from_error_code("temporarily_unavailable"), ConnectFailure::ProviderUnavailable);
        assert_eq!(ConnectFailure::from_error_code("<script>"), ConnectFailure::ProviderRefused);
        assert_eq!(ConnectFailure::AccessDenied.status(), SessionStatus::Denied);
        assert_eq!(ConnectFailure::CodeRefused.status(), SessionStatus::Failed);
    }
}

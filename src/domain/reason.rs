//! Why a credential is not ACTIVE, as a type. Stored with the record (tagged JSON); the text
//! operators and callers read (`detail`) is rendered from it here, in one place, so no code
//! path writes free text and no reason can carry a secret: the only strings inside are the
//! provider's reason in words and upstream error descriptions, both scrubbed of everything
//! the request carried (`providers::http`).

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// REFRESHING: the refresh token is reserved in the journal and being sent.
    Sending,
    /// INDETERMINATE: the refresh was sent and no usable answer came back.
    NoAnswer { cause: String },
    /// INDETERMINATE: the replica refreshing it stopped (killed, or paused past its lease);
    /// another replica took the attempt over (fenced it).
    HolderVanished,
    /// INDETERMINATE: the journal already holds an attempt for the stored refresh token.
    AlreadySent,
    /// REAUTH_REQUIRED: the provider refused the refresh token itself.
    RefreshRefused { reason: String },
    /// REAUTH_REQUIRED: the provider refused the stored login.
    LoginRefused { provider_kind: String, reason: String },
    /// REAUTH_REQUIRED: the probe proved that the refresh happened; its answer was lost.
    AnswerLost,
    /// REAUTH_REQUIRED: outcome unknown — the old access token expired before it could be
    /// probed, so a rejection proves nothing.
    ExpiredBeforeProbe {
        #[serde(with = "time::serde::rfc3339")]
        expired_at: OffsetDateTime,
    },
    /// REAUTH_REQUIRED: outcome unknown, and there is no access token to probe with.
    NothingToProbe,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sending => f.write_str("a refresh was sent; awaiting the provider's answer"),
            Self::NoAnswer { cause } => {
                write!(f, "outcome unknown: the refresh was sent but no usable answer came back ({cause}); not resent")
            }
            Self::HolderVanished => f.write_str(
                "outcome unknown: the replica refreshing this credential stopped before recording the outcome; \
                 it will be probed",
            ),
            Self::AlreadySent => {
                f.write_str("outcome unknown: this refresh token was already sent once; it is not sent again")
            }
            Self::RefreshRefused { reason } => write!(f, "the provider refused the refresh token: {reason}"),
            Self::LoginRefused { provider_kind, reason } => write!(f, "{provider_kind} refused the login: {reason}"),
            Self::AnswerLost => f.write_str("the refresh was processed upstream but its answer was lost: re-authorize"),
            Self::ExpiredBeforeProbe { expired_at } => write!(
                f,
                "outcome unknown: the old access token expired ({expired_at}) before it could be probed; \
                 the refresh token was not resent: re-authorize"
            ),
            Self::NothingToProbe => f.write_str(
                "outcome unknown and no access token to probe with; the refresh token was not resent: re-authorize",
            ),
        }
    }
}

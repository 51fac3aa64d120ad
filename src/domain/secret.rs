//! Secret values and the secret material a credential holds.
//!
//! `Secret` is a redacted newtype: `Debug` prints `[redacted]`, the value is reachable only
//! through `expose()`, and it is zeroized on drop. `SecretMaterial` is what gets sealed
//! (serialized, then encrypted) before anything reaches a store.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string. Serializes transparently: only ever serialized into a plaintext that is
/// sealed at once (see `crypto::Keyring::seal`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself: call only where it goes on the wire or into the cipher.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// What a credential holds, by kind. Sealed as a whole; never stored in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecretMaterial {
    /// PASS pashouder login; JouwOmgeving application user.
    UsernamePassword { username: String, password: Secret },
    /// PASS AppBearer: the client number (administratienummer) of the subject.
    ClientNumber { client_number: Secret },
    /// BRO Bronhouderportaal token: username (contains `|`) and 64-hex code.
    BroToken { username: String, code: Secret },
    /// OAuth2 tokens (Passolution), imported or obtained by the broker.
    OAuthTokens {
        refresh_token: Option<Secret>,
        access_token: Option<Secret>,
        #[serde(with = "time::serde::rfc3339::option")]
        access_expires_at: Option<OffsetDateTime>,
    },
    /// An authorization code the broker must still exchange (Passolution).
    AuthorizationCode { code: Secret, redirect_uri: String, code_verifier: Option<Secret> },
}

/// A short-lived token the broker obtained (or was given) and serves until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token: Secret,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub obtained_at: OffsetDateTime,
    /// The planned renewal, fixed once when the token was obtained (jitter included) and
    /// sealed with it, so every replica agrees on it. For providers whose refresh revokes the
    /// previous token, no header from this session is promised beyond it. `None` in records
    /// written before it existed: then it is derived without jitter (`broker::plan`).
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<OffsetDateTime>,
    /// Whether `expires_at - obtained_at` is the token's real lifetime (the broker obtained it,
    /// or an imported JWT said when it was issued) rather than what was left at an import.
    #[serde(default)]
    pub lifetime_known: bool,
}

impl Session {
    /// Whether it stays valid until `until`.
    pub fn valid_until(&self, until: OffsetDateTime) -> bool {
        self.expires_at >= until
    }

    /// The token's lifetime, when known (see `lifetime_known`).
    pub fn lifetime(&self) -> Option<time::Duration> {
        self.lifetime_known.then(|| self.expires_at - self.obtained_at)
    }
}

/// Everything sealed for one credential: the long-lived secret (a password, a token code, a
/// refresh token) and the current session obtained with it, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vault {
    pub material: SecretMaterial,
    #[serde(default)]
    pub session: Option<Session>,
}

impl Vault {
    /// When the current session expires: what a record shows as `access_expires_at`.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.session.as_ref().map(|s| s.expires_at)
    }
}

impl SecretMaterial {
    /// The proto oneof field name of this kind, for messages that name the field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UsernamePassword { .. } => "username_password",
            Self::ClientNumber { .. } => "client_number",
            Self::BroToken { .. } => "bro_token",
            Self::OAuthTokens { .. } => "oauth_tokens",
            Self::AuthorizationCode { .. } => "authorization_code",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let m = SecretMaterial::BroToken { username: "u|1".into(), code: Secret::new("c0ffee") };
        let shown = format!("{m:?}");
        assert!(!shown.contains("c0ffee"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}

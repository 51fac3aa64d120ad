//! Passolution: a Laravel Passport OAuth2 server. Refresh tokens are single-use and a
//! refresh revokes the previous access token at once (see `REFRESH-SAFETY.md`).

use super::{Authorization, ProviderError};
use crate::domain::{Secret, SecretMaterial};
use time::OffsetDateTime;
use url::Url;

/// Settings of one Passolution OAuth client.
#[derive(Debug, Clone)]
pub struct PassolutionSettings {
    pub api_base_url: Url,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
}

pub(super) fn accepts(material: &SecretMaterial) -> bool {
    matches!(material, SecretMaterial::OAuthTokens { .. } | SecretMaterial::AuthorizationCode { .. })
}

pub(super) fn authorization(
    material: &SecretMaterial,
    valid_until: OffsetDateTime,
) -> Result<Authorization, ProviderError> {
    match material {
        SecretMaterial::OAuthTokens { access_token: Some(access), access_expires_at: Some(expires), .. }
            if *expires >= valid_until =>
        {
            Ok(Authorization::single("authorization", format!("Bearer {}", access.expose()), Some(*expires)))
        }
        SecretMaterial::OAuthTokens { .. } => Err(ProviderError::AccessTokenTooShort),
        _ => Err(ProviderError::NotYetSupported("authorization-code exchange arrives with the token-lifecycle work")),
    }
}

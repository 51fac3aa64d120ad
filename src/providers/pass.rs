//! PASS (Intermediad city-pass API). The API key belongs to the provider instance (one PASS
//! organisation); a subject is either a pashouder login (username + password, exchanged for
//! an AccessToken with sliding expiry) or a client number used with the AppBearer scheme.

use super::{Authorization, ProviderError};
use crate::domain::{Secret, SecretMaterial};
use url::Url;

/// Settings of one PASS deployment.
#[derive(Debug, Clone)]
pub struct PassSettings {
    /// Where the services live, e.g. `https://pas.example.nl/rest/`.
    pub api_base_url: Url,
    pub api_key: Secret,
}

pub(super) fn accepts(material: &SecretMaterial) -> bool {
    matches!(material, SecretMaterial::UsernamePassword { .. } | SecretMaterial::ClientNumber { .. })
}

/// The empty subject: only the `api-key` header (enough for the Aanbod service).
pub(super) fn own_authorization(settings: &PassSettings) -> Authorization {
    Authorization::single("api-key", settings.api_key.expose().to_owned(), None)
}

pub(super) fn authorization(
    settings: &PassSettings,
    material: &SecretMaterial,
) -> Result<Authorization, ProviderError> {
    match material {
        // No space after the comma: the scheme is specified that way.
        SecretMaterial::ClientNumber { client_number } => Ok(Authorization::single(
            "authorization",
            format!("AppBearer {},{}", settings.api_key.expose(), client_number.expose()),
            None,
        )),
        _ => Err(ProviderError::NotYetSupported("PASS pashouder login arrives with the token-lifecycle work")),
    }
}

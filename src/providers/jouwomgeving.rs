//! JouwOmgeving (Django REST framework JWT): one instance per organisation; an application
//! user's username and password obtain a 5-minute JWT sent as `Authorization: JWT <token>`.

use super::{Authorization, ProviderError};
use crate::domain::SecretMaterial;
use url::Url;

/// Settings of one JouwOmgeving organisation.
#[derive(Debug, Clone)]
pub struct JouwOmgevingSettings {
    /// `https://{organisation}.jouwomgeving.nl/api/`
    pub api_base_url: Url,
    /// Relative to `api_base_url`; keep the trailing slash (Django).
    pub token_path: String,
    pub refresh_path: Option<String>,
}

pub(super) fn accepts(material: &SecretMaterial) -> bool {
    matches!(material, SecretMaterial::UsernamePassword { .. })
}

pub(super) fn authorization(_material: &SecretMaterial) -> Result<Authorization, ProviderError> {
    Err(ProviderError::NotYetSupported("JouwOmgeving login arrives with the token-lifecycle work"))
}

//! BRO Bronhouderportaal API v2: HTTP Basic with the token username and code on every
//! request. No exchange, no expiry: the token lives until it is reset or the authorisation
//! closes, and the broker is the only place it is kept.

use super::Authorization;
use super::endpoints::TokenEndpoints;
use crate::domain::SecretMaterial;
use base64::{Engine, engine::general_purpose::STANDARD};
use url::Url;

/// Settings of one BRO instance.
#[derive(Debug, Clone)]
pub struct BroSettings {
    /// e.g. `https://www.bronhouderportaal-bro.nl/api/v2/`
    pub api_base_url: Url,
}

pub(super) fn accepts(material: &SecretMaterial) -> bool {
    matches!(material, SecretMaterial::BroToken { .. })
}

/// None: the token is made in the portal's web interface, never exchanged over the API.
pub(super) fn token_endpoints() -> TokenEndpoints {
    TokenEndpoints::new("no token endpoints")
}

/// `authorization: Basic base64(username:code)`; never expires.
pub(super) fn headers(material: &SecretMaterial) -> Option<Authorization> {
    let SecretMaterial::BroToken { username, code } = material else { return None };
    // The username contains `|`; it is sent raw, as the portal issued it.
    let basic = STANDARD.encode(format!("{username}:{}", code.expose()));
    Some(Authorization::single("authorization", format!("Basic {basic}"), None))
}

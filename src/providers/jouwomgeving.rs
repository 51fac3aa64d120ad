//! JouwOmgeving (Django REST framework JWT): one instance per organisation; an application
//! user's username and password obtain a 5-minute JWT sent as `Authorization: JWT <token>`.

use super::Authorization;
use super::endpoints::TokenEndpoints;
use super::http::{HttpClient, TokenSet, UpstreamError, endpoint};
use crate::domain::{Secret, SecretMaterial, Session};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
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

/// The configured `token_path` and `refresh_path` (and what lies below them), and
/// djangorestframework-jwt's family beside the API's root: `api-token-auth/`,
/// `api-token-refresh/`, `api-token-verify/`.
pub(super) fn token_endpoints(s: &JouwOmgevingSettings) -> TokenEndpoints {
    let base = &s.api_base_url;
    let endpoints = TokenEndpoints::new("JouwOmgeving's token endpoints (api-token-*, token_path, refresh_path)")
        .prefix_of(base, "api-token-")
        .subtree_of(base, &s.token_path);
    match &s.refresh_path {
        Some(path) => endpoints.subtree_of(base, path),
        None => endpoints,
    }
}

/// `authorization: JWT <token>` (djangorestframework-jwt's scheme, not Bearer).
pub(super) fn headers(session: &Session) -> Authorization {
    Authorization::single("authorization", format!("JWT {}", session.token.expose()), Some(session.expires_at))
}

/// Obtains a JWT: `POST {token_path}` with `{"username","password"}` → `{"token":"<JWT>"}`.
/// The expiry is the token's `exp` claim, read without verifying the signature (the broker
/// holds no key; it only needs to know when to fetch a new one).
#[tracing::instrument(name = "jouwomgeving.obtain", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn obtain(
    http: &HttpClient,
    s: &JouwOmgevingSettings,
    username: &str,
    password: &Secret,
) -> Result<TokenSet, UpstreamError> {
    #[derive(Serialize)]
    struct Credentials<'a> {
        username: &'a str,
        password: &'a str,
    }
    #[derive(Deserialize)]
    struct TokenReply {
        token: Secret,
    }
    let body = Credentials { username, password: password.expose() };
    let request = http.inner().post(endpoint(&s.api_base_url, &s.token_path)?).json(&body);
    let reply = http.send(request, &[password]).await?;
    let TokenReply { token } = reply.json()?;
    let expires_at =
        jwt_expiry(&token).ok_or_else(|| reply.unparsable("the token is not a JWT with a numeric `exp`"))?;
    let issued_at = jwt_issued_at(&token).filter(|iat| *iat <= expires_at).unwrap_or_else(OffsetDateTime::now_utc);
    Ok(TokenSet { access_token: token, expires_at, issued_at, refresh_token: None })
}

/// The `exp` claim of a JWT, read without verifying the signature; `None` when the token is
/// not a JWT or has no numeric `exp`.
pub fn jwt_expiry(token: &Secret) -> Option<OffsetDateTime> {
    jwt_date(token, |claims| claims.exp)
}

/// The `iat` claim (when the token was issued), read like [`jwt_expiry`]: an imported
/// token's real lifetime, hence when the broker plans to renew it.
pub fn jwt_issued_at(token: &Secret) -> Option<OffsetDateTime> {
    jwt_date(token, |claims| claims.iat)
}

fn jwt_date(token: &Secret, claim: impl Fn(&Claims) -> Option<f64>) -> Option<OffsetDateTime> {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(token.expose()).ok()?.claims;
    let seconds = claim(&claims)?;
    // A NumericDate: seconds, possibly fractional; round down to stay early. The cast
    // saturates, and out-of-range values are refused below.
    if !seconds.is_finite() {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(seconds.floor() as i64).ok()
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<f64>,
    iat: Option<f64>,
}

#[cfg(test)]
mod tests;

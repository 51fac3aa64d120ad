//! PASS (Intermediad city-pass API). The API key belongs to the provider instance (one PASS
//! organisation); a subject is either a pashouder login (username + password, exchanged for
//! an AccessToken with sliding expiry) or a client number used with the AppBearer scheme.

use super::Authorization;
use super::endpoints::TokenEndpoints;
use super::http::{HttpClient, Reply, TokenSet, UpstreamError, endpoint};
use crate::domain::{Secret, SecretMaterial, Session};
use reqwest::RequestBuilder;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};
use url::Url;

/// The token service, relative to `api_base_url`. PASS documents these paths; deployments
/// differ only in the base (which may or may not end in `rest/`).
pub const LOGIN_PATH: &str = "token/v1/login";
pub const REFRESH_PATH: &str = "token/v1/refresh";

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

/// The whole token service: login, refresh and logout (`token/v1/login`, `token/v1/refresh`),
/// the password-token pair, and whatever a later version adds under `token/`.
pub(super) fn token_endpoints(s: &PassSettings) -> TokenEndpoints {
    TokenEndpoints::new("PASS's token service (token/*)").subtree_of(&s.api_base_url, "token")
}

/// The empty subject: only the `api-key` header (enough for the Aanbod service).
pub(super) fn own_authorization(settings: &PassSettings) -> Authorization {
    Authorization::single("api-key", settings.api_key.expose().to_owned(), None)
}

/// Headers for a subject: AppBearer for a client number (no space after the comma: the scheme
/// is specified that way); for a pashouder login, the session's AccessToken as Bearer plus the
/// API key. `None` when a login has no session valid long enough.
pub(super) fn headers(
    settings: &PassSettings,
    material: &SecretMaterial,
    session: Option<&Session>,
) -> Option<Authorization> {
    match material {
        SecretMaterial::ClientNumber { client_number } => Some(Authorization::single(
            "authorization",
            format!("AppBearer {},{}", settings.api_key.expose(), client_number.expose()),
            None,
        )),
        SecretMaterial::UsernamePassword { .. } => {
            let session = session?;
            let mut authorization = super::bearer(&session.token, session.expires_at);
            authorization.headers.push(("api-key", settings.api_key.clone()));
            Some(authorization)
        }
        _ => None,
    }
}

/// The reply of login and refresh: `{"token_type":"AccessToken","token":…,"expiry_date":…}`.
#[derive(Deserialize)]
struct TokenReply {
    token: Secret,
    expiry_date: String,
}

/// Logs a pashouder in: `POST token/v1/login` with Basic credentials and no body.
#[tracing::instrument(name = "pass.login", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn login(
    http: &HttpClient,
    s: &PassSettings,
    username: &str,
    password: &Secret,
) -> Result<TokenSet, UpstreamError> {
    let request =
        http.inner().post(endpoint(&s.api_base_url, LOGIN_PATH)?).basic_auth(username, Some(password.expose()));
    token_set(http.send(with_api_key(request, s)?, &[password, &s.api_key]).await?)
}

/// `POST token/v1/refresh` with the token. PASS's example returns the same token with a
/// later expiry; whatever comes back is what counts.
#[tracing::instrument(name = "pass.refresh", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn refresh(http: &HttpClient, s: &PassSettings, token: &Secret) -> Result<TokenSet, UpstreamError> {
    let request = http.inner().post(endpoint(&s.api_base_url, REFRESH_PATH)?).bearer_auth(token.expose());
    token_set(http.send(with_api_key(request, s)?, &[token, &s.api_key]).await?)
}

/// A new session for a pashouder: extend the current token with `token/v1/refresh` while it
/// is valid; if that is refused (expired, logged out elsewhere) or there is none, log in.
pub async fn renew(
    http: &HttpClient,
    s: &PassSettings,
    username: &str,
    password: &Secret,
    current: Option<&Session>,
) -> Result<TokenSet, UpstreamError> {
    if let Some(session) = current.filter(|s| s.valid_until(OffsetDateTime::now_utc())) {
        match refresh(http, s, &session.token).await {
            Ok(tokens) => return Ok(tokens),
            Err(UpstreamError::Refused { status: 401 | 406, .. }) => {}
            Err(other) => return Err(other),
        }
    }
    login(http, s, username, password).await
}

/// `DELETE token/v1/login`: the token is expired from now on (204).
#[tracing::instrument(name = "pass.logout", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn logout(http: &HttpClient, s: &PassSettings, token: &Secret) -> Result<(), UpstreamError> {
    let request = http.inner().delete(endpoint(&s.api_base_url, LOGIN_PATH)?).bearer_auth(token.expose());
    http.send(with_api_key(request, s)?, &[token, &s.api_key]).await.map(drop)
}

/// The token endpoints work without the key, but a deployment may want it: send it when set.
fn with_api_key(request: RequestBuilder, s: &PassSettings) -> Result<RequestBuilder, UpstreamError> {
    if s.api_key.is_empty() {
        return Ok(request);
    }
    let mut value = HeaderValue::from_str(s.api_key.expose())
        .map_err(|_| UpstreamError::NotSent { detail: "the configured API key is not a valid header value".into() })?;
    value.set_sensitive(true);
    Ok(request.header("API-Key", value))
}

fn token_set(reply: Reply) -> Result<TokenSet, UpstreamError> {
    let TokenReply { token, expiry_date } = reply.json()?;
    let expires_at = parse_date(&expiry_date)
        .ok_or_else(|| reply.unparsable(format!("expiry_date {expiry_date:?} is not an ISO-8601 date")))?;
    Ok(TokenSet { access_token: token, expires_at, issued_at: OffsetDateTime::now_utc(), refresh_token: None })
}

/// PASS dates, leniently: RFC 3339 (`2019-09-25T13:40:45.904Z`, any offset), or .NET style
/// without a zone (`2019-12-31T00:00:00.0000000`), read as UTC.
pub(crate) fn parse_date(text: &str) -> Option<OffsetDateTime> {
    const LOCAL: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    let text = text.trim();
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| Some(PrimitiveDateTime::parse(text, LOCAL).ok()?.assume_utc()))
}

#[cfg(test)]
mod tests;

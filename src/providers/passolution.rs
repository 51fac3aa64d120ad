//! Passolution: a Laravel Passport OAuth2 server. Refresh tokens are single-use and a
//! refresh revokes the previous access token at once (docs/refresh-safety.md). This file has
//! the token endpoint and the probe; the refresh grant itself is sent only by
//! `broker::rotation`, which holds the journal's permit for it.

mod refresh_failure;

use super::endpoints::TokenEndpoints;
use super::http::{HttpClient, TokenSet, UpstreamError, endpoint};
use super::{Authorization, Probe};
use crate::domain::{Secret, SecretMaterial, Session};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

pub use refresh_failure::{RefreshFailure, classify_refresh_error};

/// The default probe: a cheap Bearer-protected call, relative to `api_base_url`, that
/// answers 2xx while the access token lives and 401 once it is revoked — which a refresh does
/// at once.
pub const PROBE_PATH: &str = "infosystem/passolution";

/// Settings of one Passolution OAuth client.
#[derive(Debug, Clone)]
pub struct PassolutionSettings {
    pub api_base_url: Url,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// Token requests per minute for the whole fleet (Passolution allows 300).
    pub token_budget_per_minute: u32,
    /// Relative to `api_base_url`: what a probe of an access token calls.
    pub probe_path: String,
    /// How long an unused refresh token lives upstream (Passport's default: a year). The
    /// journal keeps a sent token's record at least this long.
    pub refresh_token_lifetime: std::time::Duration,
}

pub(super) fn accepts(material: &SecretMaterial) -> bool {
    matches!(material, SecretMaterial::OAuthTokens { .. } | SecretMaterial::AuthorizationCode { .. })
}

/// The configured `token_url` and everything below it (Passport's `oauth/token/refresh`), and
/// Passport's other routes beside it (`oauth/authorize`, `oauth/tokens`, `oauth/clients`,
/// `oauth/personal-access-tokens`) — unless the API itself lives in that directory, which
/// would refuse every call. Compared with the whole joined URL: the token URL usually sits on
/// another host, but a deployment may put both under one.
pub(super) fn token_endpoints(s: &PassolutionSettings) -> TokenEndpoints {
    let endpoints = TokenEndpoints::new("Passolution's OAuth endpoints (its token_url and the routes beside it)")
        .subtree(&s.token_url);
    match s.token_url.join("./") {
        Ok(routes) if !s.api_base_url.as_str().starts_with(routes.as_str()) => endpoints.subtree(&routes),
        _ => endpoints,
    }
}

/// `authorization: Bearer <access token>`.
pub(super) fn headers(session: &Session) -> Authorization {
    super::bearer(&session.token, session.expires_at)
}

/// Redeems an authorization code (with its PKCE verifier, if the authorization used one).
#[tracing::instrument(name = "passolution.exchange_code", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn exchange_code(
    http: &HttpClient,
    s: &PassolutionSettings,
    code: &Secret,
    redirect_uri: &str,
    code_verifier: Option<&Secret>,
) -> Result<TokenSet, UpstreamError> {
    let mut grant = vec![("grant_type", "authorization_code"), ("code", code.expose()), ("redirect_uri", redirect_uri)];
    grant.extend(code_verifier.map(|v| ("code_verifier", v.expose())));
    let sent: Vec<&Secret> = [code].into_iter().chain(code_verifier).collect();
    token_request(http, s, &grant, &sent).await
}

/// A token for the client itself; the reply has no refresh token.
#[tracing::instrument(name = "passolution.client_credentials", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn client_credentials(http: &HttpClient, s: &PassolutionSettings) -> Result<TokenSet, UpstreamError> {
    token_request(http, s, &[("grant_type", "client_credentials")], &[]).await
}

/// Whether `access_token` still works: [`Probe::Alive`] on 2xx, [`Probe::Rejected`] on one of
/// `rejected` (default 401), an error otherwise. Resolves an unknown refresh outcome without
/// resending, while the token is within its lifetime: a refresh revokes it at once.
#[tracing::instrument(name = "passolution.probe", skip_all, fields(otel.kind = "client"), err(level = "warn"))]
pub async fn probe(
    http: &HttpClient,
    s: &PassolutionSettings,
    access_token: &Secret,
    rejected: &[u16],
) -> Result<Probe, UpstreamError> {
    let request = http.inner().get(endpoint(&s.api_base_url, &s.probe_path)?).bearer_auth(access_token.expose());
    match http.send(request, &[access_token]).await {
        Ok(_) => Ok(Probe::Alive),
        Err(UpstreamError::Refused { status, .. }) if rejected.contains(&status) => Ok(Probe::Rejected { status }),
        Err(e) => Err(e),
    }
}

/// `POST token_url` with `grant` as a form body (RFC 6749's encoding; Passport also takes
/// JSON), plus the client's id and secret. Exactly one request: a refresh grant's caller must
/// have reserved the token first and must read any error through [`classify_refresh_error`],
/// never by calling again. A reply without `refresh_token` means: keep the old one.
pub(super) async fn token_request(
    http: &HttpClient,
    s: &PassolutionSettings,
    grant: &[(&str, &str)],
    sent: &[&Secret],
) -> Result<TokenSet, UpstreamError> {
    #[derive(Deserialize)]
    struct TokenReply {
        access_token: Secret,
        expires_in: u64,
        refresh_token: Option<Secret>,
    }
    let mut form = grant.to_vec();
    form.push(("client_id", &s.client_id));
    // A public (PKCE-only) client has no secret to send.
    if !s.client_secret.is_empty() {
        form.push(("client_secret", s.client_secret.expose()));
    }
    let sent: Vec<&Secret> = sent.iter().copied().chain([&s.client_secret]).collect();
    // The lifetime counts from before sending, so the known expiry errs early.
    let sent_at = OffsetDateTime::now_utc();
    let reply = http.send(http.inner().post(s.token_url.clone()).form(&form), &sent).await?;
    let body: TokenReply = reply.json()?;
    // Clamped: an absurd lifetime must not overflow the date.
    let expires_at = sent_at + time::Duration::seconds(body.expires_in.min(100 * 365 * 86_400) as i64);
    Ok(TokenSet { access_token: body.access_token, expires_at, issued_at: sent_at, refresh_token: body.refresh_token })
}

#[cfg(test)]
mod tests;

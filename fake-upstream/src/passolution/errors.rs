//! OAuth error replies exactly as league/oauth2-server (under Laravel Passport) renders
//! them: `error`, `error_description`, `hint` when there is one, and the deprecated
//! `message` copy of the description that Passport still sends.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use crate::config::RefreshErrorStyle;

#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
    hint: Option<String>,
    /// league adds `WWW-Authenticate` to `invalid_client` when the request carried an
    /// `Authorization` header.
    challenge: Option<&'static str>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: &'static str, hint: Option<String>) -> OAuthError {
        OAuthError { status, error, description, hint, challenge: None }
    }

    pub fn invalid_client(headers: &HeaderMap) -> OAuthError {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed", None);
        e.challenge = headers.get(header::AUTHORIZATION).map(|value| {
            let bearer = value.as_bytes().starts_with(b"Bearer");
            if bearer { "Bearer realm=\"OAuth\"" } else { "Basic realm=\"OAuth\"" }
        });
        e
    }

    /// `hint` defaults to "Check the `{parameter}` parameter", as in league.
    pub fn invalid_request(parameter: &str, hint: Option<&str>) -> OAuthError {
        let hint = hint.map_or_else(|| format!("Check the `{parameter}` parameter"), str::to_owned);
        let description = "The request is missing a required parameter, includes an invalid parameter value, \
                           includes a parameter more than once, or is otherwise malformed.";
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description, Some(hint))
    }

    pub fn invalid_grant(hint: &str) -> OAuthError {
        let description = "The provided authorization grant (e.g., authorization code, resource owner credentials) \
                           or refresh token is invalid, expired, revoked, does not match the redirection URI used in \
                           the authorization request, or was issued to another client.";
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description, Some(hint.to_owned()))
    }

    pub fn unsupported_grant_type() -> OAuthError {
        let description = "The authorization grant type is not supported by the authorization server.";
        let hint = Some("Check that all required parameters have been provided".to_owned());
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", description, hint)
    }

    /// league 8.x+ answers 400 `invalid_grant`; older servers 401 `invalid_request`.
    pub fn invalid_refresh_token(hint: &str, style: RefreshErrorStyle) -> OAuthError {
        let (status, error) = match style {
            RefreshErrorStyle::Newer => (StatusCode::BAD_REQUEST, "invalid_grant"),
            RefreshErrorStyle::Older => (StatusCode::UNAUTHORIZED, "invalid_request"),
        };
        Self::new(status, error, "The refresh token is invalid.", Some(hint.to_owned()))
    }

    /// What the ledger records as the refusal's reason: the hint, else the error code.
    pub fn reason(&self) -> &str {
        self.hint.as_deref().unwrap_or(self.error)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error": self.error,
            "error_description": self.description,
            "message": self.description,
        });
        if let Some(hint) = &self.hint {
            body["hint"] = json!(hint);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge.parse().expect("static header"));
        }
        response
    }
}

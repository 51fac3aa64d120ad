//! `POST /oauth/token`: Laravel's throttle, then league's grant dispatch. Parameters come
//! from a JSON or form body; client credentials may also come from a Basic header, with
//! the body winning, as in league's `getClientCredentials`.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json};
use serde_json::json;

use super::codes::CodeError;
use super::errors::OAuthError;
use super::ratelimit::{Verdict, add_headers, too_many_attempts};
use super::store::{Lifetimes, Pair};
use crate::app::AppState;
use crate::config::{FakeConfig, Provider};
use crate::fault::{Attempt, Processed, guard};
use crate::ledger::{Operation, Outcome};
use crate::server::Connection;
use crate::util::{basic_credentials, body_params};

/// One token request, parsed once and read by every step.
struct TokenRequest {
    params: HashMap<String, String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    headers: HeaderMap,
}

impl TokenRequest {
    fn new(headers: HeaderMap, body: &[u8]) -> TokenRequest {
        // Laravel reads a malformed JSON body as no parameters at all.
        let params = body_params(&headers, body).unwrap_or_default();
        let (basic_id, basic_secret) = basic_credentials(&headers).unzip();
        let client_id = params.get("client_id").cloned().or(basic_id);
        let client_secret = params.get("client_secret").cloned().or(basic_secret);
        TokenRequest { params, client_id, client_secret, headers }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    fn operation(&self) -> Operation {
        match self.param("grant_type") {
            Some("authorization_code") => Operation::AuthorizationCodeGrant,
            Some("refresh_token") => Operation::RefreshTokenGrant,
            Some("client_credentials") => Operation::ClientCredentialsGrant,
            _ => Operation::UnsupportedGrant,
        }
    }

    /// The refresh token a refresh_token grant presents (other grants present none).
    fn refresh_token(&self) -> Option<String> {
        if self.operation() != Operation::RefreshTokenGrant {
            return None;
        }
        self.param("refresh_token").map(str::to_owned)
    }
}

pub(super) async fn token(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request = TokenRequest::new(headers, &body);
    let presented = request.refresh_token();
    let mut attempt = Attempt::new(Provider::Passolution, request.operation())
        .credential(request.client_id.clone())
        .presented(presented.clone());
    attempt.replay_on_arrival = presented.is_some_and(|t| state.passolution.was_redeemed(&t));
    guard(&state, &connection, attempt, || process(&state, &request)).await
}

fn process(state: &AppState, request: &TokenRequest) -> Processed {
    let config = state.knobs.config();
    let replay = || request.refresh_token().is_some_and(|t| state.passolution.was_redeemed(&t));
    let limit = config.passolution_rate_limit;
    let remaining = match state.passolution.limiter.hit(limit, config.passolution_rate_window) {
        Verdict::Refused { limit, retry_after } => {
            let response = too_many_attempts(limit, retry_after);
            return Processed::refused(response, "Too Many Attempts.").violation(replay());
        }
        Verdict::Allowed { remaining } => remaining,
    };
    let mut done = match grant(state, request, &config) {
        Ok(done) => done,
        Err(error) => {
            let reason = error.reason().to_owned();
            Processed::refused(error, &reason).violation(replay())
        }
    };
    add_headers(&mut done.response, limit, remaining);
    done
}

/// league's `AuthorizationServer::respondToAccessTokenRequest` for the three grants.
fn grant(state: &AppState, request: &TokenRequest, config: &FakeConfig) -> Result<Processed, OAuthError> {
    let operation = request.operation();
    if operation == Operation::UnsupportedGrant {
        return Err(OAuthError::unsupported_grant_type());
    }
    let client_id = validate_client(state, request)?;
    let lifetimes = Lifetimes::from_config(config);
    match operation {
        Operation::AuthorizationCodeGrant => authorization_code(state, request, &client_id, &lifetimes),
        Operation::RefreshTokenGrant => refresh(state, request, &client_id, &lifetimes, config),
        _ => Ok(issued(state.passolution.issue(&client_id, false, &lifetimes))),
    }
}

fn validate_client(state: &AppState, request: &TokenRequest) -> Result<String, OAuthError> {
    let client_id = request.client_id.clone().ok_or_else(|| OAuthError::invalid_request("client_id", None))?;
    if !state.passolution.client_ok(&client_id, request.client_secret.as_deref()) {
        return Err(OAuthError::invalid_client(&request.headers));
    }
    Ok(client_id)
}

fn authorization_code(
    state: &AppState,
    request: &TokenRequest,
    client_id: &str,
    l: &Lifetimes,
) -> Result<Processed, OAuthError> {
    let code = request.param("code").ok_or_else(|| OAuthError::invalid_request("code", None))?;
    let redirect_uri = request.param("redirect_uri");
    let verifier = request.param("code_verifier");
    match state.passolution.redeem_code(code, client_id, redirect_uri, verifier, l) {
        Ok(pair) => Ok(issued(pair)),
        Err(CodeError::Request { parameter, hint }) => Err(OAuthError::invalid_request(parameter, hint)),
        Err(CodeError::Grant(hint)) => Err(OAuthError::invalid_grant(hint)),
    }
}

fn refresh(
    state: &AppState,
    request: &TokenRequest,
    client_id: &str,
    l: &Lifetimes,
    config: &FakeConfig,
) -> Result<Processed, OAuthError> {
    let token = request.param("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token", None))?;
    match state.passolution.refresh(client_id, token, l) {
        (Ok(pair), replay) => Ok(issued(pair).violation(replay)),
        (Err(hint), replay) => {
            let error = OAuthError::invalid_refresh_token(hint, config.passolution_error_style);
            let reason = error.reason().to_owned();
            Ok(Processed::refused(error, &reason).violation(replay))
        }
    }
}

fn issued(pair: Pair) -> Processed {
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "access_token": pair.access_token,
    });
    if let Some(refresh_token) = &pair.refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    let issued = pair.refresh_token.unwrap_or(pair.access_token);
    Processed::new(Json(body).into_response(), Outcome::Issued).issued(issued)
}

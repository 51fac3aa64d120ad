//! Passolution, a Laravel Passport OAuth2 server: `/oauth/authorize` (auto-approving),
//! `/oauth/token` for the authorization_code, refresh_token and client_credentials grants
//! with single-use refresh tokens, and a Bearer-protected data API under `/api/v2/`.

mod codes;
mod errors;
mod ratelimit;
mod store;
mod token;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get, post};
use serde_json::json;

use crate::app::AppState;
use crate::util::authorization;
use errors::OAuthError;

pub(crate) use codes::Challenge;
pub(crate) use store::{Lifetimes, Store};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token::token))
        .route("/api/v2/{*path}", any(data))
}

/// The authorize screen with the user always consenting: redirects straight back with a
/// code, so a demo can run the whole browser flow without a login page.
async fn authorize(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| query.get(name).map(String::as_str);
    if param("response_type") != Some("code") {
        return OAuthError::invalid_request("response_type", None).into_response();
    }
    let client_id = param("client_id").unwrap_or_default();
    let Some(registered) = state.passolution.redirect_uri(client_id) else {
        return OAuthError::invalid_client(&headers).into_response();
    };
    let redirect_uri = param("redirect_uri").unwrap_or(&registered);
    if redirect_uri != registered {
        return OAuthError::invalid_client(&headers).into_response();
    }
    let challenge = param("code_challenge")
        .map(|value| Challenge { value: value.to_owned(), s256: param("code_challenge_method") == Some("S256") });
    let lifetime = state.knobs.config().passolution_code_lifetime;
    let code = state.passolution.issue_code(client_id, redirect_uri, challenge, lifetime);
    let mut back = vec![("code", code.as_str())];
    back.extend(param("state").map(|s| ("state", s)));
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let query = serde_urlencoded::to_string(back).expect("strings always encode");
    let location = format!("{redirect_uri}{separator}{query}");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Any `/api/v2/…` call, e.g. `GET /api/v2/infosystem/passolution`.
async fn data(State(state): State<AppState>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    let token = match authorization(&headers) {
        Some(Ok((scheme, token))) if scheme.eq_ignore_ascii_case("bearer") => token,
        _ => return unauthenticated(&state),
    };
    match state.passolution.access_client(&token) {
        Some(client_id) => Json(json!({"data": {"path": path, "client_id": client_id, "items": []}})).into_response(),
        None => unauthenticated(&state),
    }
}

/// Whether the request carries a live access token (for the data endpoints, `crate::data`).
pub(crate) fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    match authorization(headers) {
        Some(Ok((scheme, token))) if scheme.eq_ignore_ascii_case("bearer") => {
            state.passolution.access_client(&token).is_some()
        }
        _ => false,
    }
}

/// Laravel's answer to a JSON client without a live token (the status is a knob).
pub(crate) fn unauthenticated(state: &AppState) -> Response {
    let status = StatusCode::from_u16(state.knobs.config().passolution_unauthenticated_status);
    let body = Json(json!({"message": "Unauthenticated."}));
    (status.unwrap_or(StatusCode::UNAUTHORIZED), [(header::CACHE_CONTROL, "no-cache, private")], body).into_response()
}

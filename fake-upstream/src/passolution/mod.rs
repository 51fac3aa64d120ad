//! Passolution, a Laravel Passport OAuth2 server: `/oauth/authorize` (a login and consent
//! page, `consent.rs`),
//! `/oauth/token` for the authorization_code, refresh_token and client_credentials grants
//! with single-use refresh tokens, and a Bearer-protected data API under `/api/v2/`.

mod codes;
mod consent;
mod errors;
mod ratelimit;
mod store;
mod token;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get, post};
use serde_json::json;

use crate::app::AppState;
use crate::util::authorization;

pub(crate) use codes::Challenge;
pub(crate) use store::{Lifetimes, Store};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorize", get(consent::show).post(consent::decide))
        .route("/oauth/token", post(token::token))
        .route("/api/v2/{*path}", any(data))
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

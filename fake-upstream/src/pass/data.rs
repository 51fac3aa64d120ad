//! PASS data endpoints: enough of Sales and Aanbod to exercise the three authorizations
//! (API key alone, Bearer with sliding expiry, AppBearer).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::store::TokenKind;
use super::{Auth, Refusal, check_api_key, parse_auth, reply};
use crate::app::AppState;

/// `GET /sales/v1/pashouder`: the pashouder the token (or client number) stands for.
pub(super) async fn pashouder(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authorize(&state, &headers) {
        Ok(pashouder) => ok(json!({"pashouder": pashouder})),
        Err((status, message)) => reply(status, message),
    }
}

/// `GET /aanbod/v1/aanbiedingen`: the Aanbod service needs only the API key.
pub(super) async fn aanbiedingen(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err((status, message)) = check_api_key(&state, &headers, true) {
        return reply(status, message);
    }
    let aanbieding = json!({"id": 1, "naam": "Gratis zwemmen", "omschrijving": "Een fake aanbieding"});
    ok(json!({"aanbiedingen": [aanbieding]}))
}

/// Checks API key and authorization; a Bearer token's expiry slides forward on success.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Value, Refusal> {
    check_api_key(state, headers, true)?;
    authorize_token(state, headers)
}

/// The `Authorization` header alone.
fn authorize_token(state: &AppState, headers: &HeaderMap) -> Result<Value, Refusal> {
    match parse_auth(headers)? {
        Auth::Bearer(token) => {
            let lifetime = state.knobs.config().pass_max_lifetime;
            let (login, _) = state
                .pass
                .touch(&token, TokenKind::Access, lifetime)
                .map_err(|e| (StatusCode::UNAUTHORIZED, e.message()))?;
            Ok(json!({"login_name": login}))
        }
        Auth::AppBearer { api_key, client_number } => {
            if api_key != state.knobs.config().pass_api_key {
                return Err((StatusCode::UNAUTHORIZED, "API key not authorized"));
            }
            // Under AppBearer a 401 means "no record for this client number", not a bad key.
            if !state.pass.has_client_number(&client_number) {
                return Err((StatusCode::UNAUTHORIZED, "Token invalid or not found"));
            }
            Ok(json!({"client_number": client_number}))
        }
    }
}

/// The data endpoints' rule (`crate::data`): an `Authorization` (Bearer, sliding, or
/// AppBearer) is checked like Sales does; without one the API key alone is enough, like
/// Aanbod. An `API-Key` header, when sent, must be right.
pub(crate) fn data_plane(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let has_authorization = headers.contains_key(axum::http::header::AUTHORIZATION);
    check_api_key(state, headers, !has_authorization)?;
    if has_authorization {
        authorize_token(state, headers)?;
    }
    Ok(())
}

fn ok(mut body: Value) -> Response {
    body["result"] = json!({"code": 200, "message": "OK"});
    Json(body).into_response()
}

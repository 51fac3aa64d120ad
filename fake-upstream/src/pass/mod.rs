//! PASS (Intermediad GPASS city-pass API): Basic login to an opaque AccessToken with
//! sliding expiry, `API-Key` on data calls, and AppBearer (API key + client number).
//! Every route is served both directly and under `/rest`, as deployments differ.

mod data;
mod store;
mod token;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::AppState;
use crate::util::authorization;

pub(crate) use data::data_plane;
pub(crate) use store::Store;

pub(crate) fn router() -> Router<AppState> {
    let routes = Router::new()
        .route("/token/v1/login", post(token::login).delete(token::logout))
        .route("/token/v1/refresh", post(token::refresh).delete(token::refresh))
        // The readme table says GET, the docs say POST: accept both.
        .route("/token/v1/passwordtoken", post(token::password_token).get(token::password_token))
        .route("/token/v1/changepassword", post(token::change_password))
        .route("/sales/v1/pashouder", get(data::pashouder))
        .route("/aanbod/v1/aanbiedingen", get(data::aanbiedingen));
    routes.clone().nest("/rest", routes)
}

/// PASS's reply envelope: `{"result":{"code":…,"message":…}}`.
pub(crate) fn reply(status: StatusCode, message: &str) -> Response {
    let body = json!({"result": {"code": status.as_u16(), "message": message}});
    (status, Json(body)).into_response()
}

/// The authorizations PASS understands on token-bearing calls.
pub(crate) enum Auth {
    Bearer(String),
    AppBearer { api_key: String, client_number: String },
}

/// Reads the `Authorization` header; the refusal is PASS's status and message.
pub(crate) fn parse_auth(headers: &HeaderMap) -> Result<Auth, Refusal> {
    const INVALID: Refusal = (StatusCode::UNAUTHORIZED, "Authorization header invalid");
    let missing = (StatusCode::NOT_ACCEPTABLE, "Authorization header missing");
    let (scheme, rest) = authorization(headers).ok_or(missing)?.map_err(|()| INVALID)?;
    match scheme.as_str() {
        "Bearer" if !rest.is_empty() => Ok(Auth::Bearer(rest)),
        "AppBearer" => {
            // No space after the comma in the documented format; be strict about it.
            let (api_key, client_number) = rest.split_once(',').ok_or(INVALID)?;
            if api_key.is_empty() || client_number.is_empty() || client_number.starts_with(' ') {
                return Err(INVALID);
            }
            let (api_key, client_number) = (api_key.to_owned(), client_number.to_owned());
            Ok(Auth::AppBearer { api_key, client_number })
        }
        "Bearer" => Err(INVALID),
        _ => Err((StatusCode::NOT_ACCEPTABLE, "Auth bearer unknown")),
    }
}

/// A PASS refusal: status and message, for the reply and the ledger alike.
pub(crate) type Refusal = (StatusCode, &'static str);

/// The Bearer token of a token-endpoint call.
pub(crate) fn bearer_only(headers: &HeaderMap) -> Result<String, Refusal> {
    match parse_auth(headers)? {
        Auth::Bearer(token) => Ok(token),
        Auth::AppBearer { .. } => Err((StatusCode::UNAUTHORIZED, "Authorization header invalid")),
    }
}

/// Checks the `API-Key` header: a wrong key is always refused, a missing one only where
/// the service needs it (token endpoints work without it).
pub(crate) fn check_api_key(state: &AppState, headers: &HeaderMap, required: bool) -> Result<(), Refusal> {
    const REFUSED: Refusal = (StatusCode::UNAUTHORIZED, "API key not authorized");
    match headers.get("API-Key").map(|v| v.to_str()) {
        None if required => Err(REFUSED),
        None => Ok(()),
        Some(Ok(key)) if key == state.knobs.config().pass_api_key => Ok(()),
        Some(_) => Err(REFUSED),
    }
}

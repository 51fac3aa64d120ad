//! JouwOmgeving, a Django REST framework API with djangorestframework-jwt: obtain a JWT
//! with username and password, refresh it within `orig_iat` + 7 days while it is still
//! valid, and send it as `Authorization: JWT <token>`.

mod jwt;
mod store;

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::Provider;
use crate::fault::{Attempt, Processed, guard};
use crate::ledger::{Operation, Outcome};
use crate::server::Connection;
use crate::util::{authorization, body_params, unix_secs};
use jwt::Claims;
use store::User;

pub(crate) use store::Store;

/// A parsed body, or the JSON parser's complaint.
type Params = Result<HashMap<String, String>, String>;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/api-token-auth/", post(obtain))
        .route("/api/api-token-refresh/", post(refresh))
        .route("/api/users/", get(users))
}

/// `POST /api/api-token-auth/` with `{"username","password"}` (JSON or form).
async fn obtain(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = body_params(&headers, &body);
    let username = params.as_ref().ok().and_then(|p| p.get("username").cloned());
    let attempt = Attempt::new(Provider::JouwOmgeving, Operation::Login).credential(username);
    guard(&state, &connection, attempt, || either(obtain_now(&state, params))).await
}

fn obtain_now(state: &AppState, params: Params) -> Result<Processed, BadRequest> {
    let fields = required_fields(params, &["username", "password"])?;
    let user = state.jouwomgeving.authenticate(&fields[0], &fields[1]);
    let user = user.ok_or_else(|| invalid("Unable to log in with provided credentials."))?;
    Ok(issue(state, &user, unix_secs(SystemTime::now())))
}

/// `POST /api/api-token-refresh/` with `{"token"}`: a new token with the same `orig_iat`.
async fn refresh(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = body_params(&headers, &body);
    let token = params.as_ref().ok().and_then(|p| p.get("token").cloned());
    let username = token.as_deref().and_then(jwt::username_unverified);
    let attempt = Attempt::new(Provider::JouwOmgeving, Operation::Refresh).credential(username).presented(token);
    guard(&state, &connection, attempt, || either(refresh_now(&state, params))).await
}

/// `RefreshJSONWebTokenSerializer.validate`: the token must still be valid, its user
/// active, and `orig_iat` within the refresh window.
fn refresh_now(state: &AppState, params: Params) -> Result<Processed, BadRequest> {
    let token = required_fields(params, &["token"])?.remove(0);
    let config = state.knobs.config();
    let claims = jwt::decode(&token, &config.jouwomgeving_secret).map_err(|e| invalid(e.message()))?;
    let user = state.jouwomgeving.user(&claims.username).ok_or_else(|| invalid("User doesn't exist."))?;
    if !user.active {
        return Err(invalid("User account is disabled."));
    }
    let orig_iat = claims.orig_iat.ok_or_else(|| invalid("orig_iat field is required."))?;
    if unix_secs(SystemTime::now()) > orig_iat + config.jouwomgeving_refresh_window.as_secs() {
        return Err(invalid("Refresh has expired."));
    }
    Ok(issue(state, &user, orig_iat))
}

fn either(result: Result<Processed, BadRequest>) -> Processed {
    result
        .unwrap_or_else(|BadRequest { body, reason }| Processed::refused((StatusCode::BAD_REQUEST, Json(body)), reason))
}

/// DRF's 400 with its body; `reason` goes to the ledger.
struct BadRequest {
    body: Value,
    reason: &'static str,
}

/// Signs a token for `user`; `exp` counts from now, `orig_iat` is kept across refreshes.
fn issue(state: &AppState, user: &User, orig_iat: u64) -> Processed {
    let config = state.knobs.config();
    let exp = unix_secs(SystemTime::now() + config.jouwomgeving_jwt_lifetime);
    let claims = Claims {
        user_id: user.id,
        username: user.username.clone(),
        exp,
        email: user.email.clone(),
        orig_iat: Some(orig_iat),
    };
    let token = jwt::encode(&claims, &config.jouwomgeving_secret);
    Processed::new(Json(json!({"token": token})), Outcome::Issued).issued(token)
}

/// The requested fields in order, or DRF's 400 naming each missing or blank one.
fn required_fields(params: Params, names: &[&str]) -> Result<Vec<String>, BadRequest> {
    let params = params.map_err(|e| {
        let body = json!({"detail": format!("JSON parse error - {e}")});
        BadRequest { body, reason: "JSON parse error" }
    })?;
    let mut errors = serde_json::Map::new();
    for name in names {
        match params.get(*name).map(String::as_str) {
            None => errors.insert((*name).into(), json!(["This field is required."])),
            Some("") => errors.insert((*name).into(), json!(["This field may not be blank."])),
            Some(_) => None,
        };
    }
    if !errors.is_empty() {
        return Err(BadRequest { body: Value::Object(errors), reason: "This field is required." });
    }
    Ok(names.iter().map(|name| params[*name].clone()).collect())
}

/// DRF's validation error: 400 `{"non_field_errors":[message]}`.
fn invalid(message: &'static str) -> BadRequest {
    BadRequest { body: json!({"non_field_errors": [message]}), reason: message }
}

/// `GET /api/users/`, paginated as DRF does.
async fn users(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(message) = authenticate(&state, &headers) {
        return unauthorized(message);
    }
    let users = state.jouwomgeving.all();
    let results: Vec<Value> =
        users.iter().map(|u| json!({"id": u.id, "username": u.username, "email": u.email})).collect();
    Json(json!({"count": results.len(), "next": null, "previous": null, "results": results})).into_response()
}

/// Whether the request carries a valid JWT (for the data endpoints, `crate::data`).
pub(crate) fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    authenticate(state, headers).is_ok()
}

/// `JSONWebTokenAuthentication.authenticate`, with its messages.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<User, &'static str> {
    let not_provided = "Authentication credentials were not provided.";
    let token = match authorization(headers) {
        Some(Ok((scheme, token))) if scheme.eq_ignore_ascii_case("jwt") => token,
        _ => return Err(not_provided),
    };
    if token.is_empty() {
        return Err("Invalid Authorization header. No credentials provided.");
    }
    if token.contains(' ') {
        return Err("Invalid Authorization header. Credentials string should not contain spaces.");
    }
    let secret = state.knobs.config().jouwomgeving_secret;
    let claims = jwt::decode(&token, &secret).map_err(|e| e.message())?;
    let user = state.jouwomgeving.user(&claims.username).ok_or("Invalid signature.")?;
    if !user.active {
        return Err("User account is disabled.");
    }
    Ok(user)
}

fn unauthorized(message: &str) -> Response {
    let challenge = [(header::WWW_AUTHENTICATE, "JWT realm=\"api\"")];
    (StatusCode::UNAUTHORIZED, challenge, Json(json!({"detail": message}))).into_response()
}

//! PASS token endpoints: login, refresh, logout, PasswordToken and password change.

use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::store::TokenKind;
use super::{Refusal, bearer_only, check_api_key, reply};
use crate::app::AppState;
use crate::config::Provider;
use crate::fault::{Attempt, Processed, guard};
use crate::ledger::{Operation, Outcome};
use crate::server::Connection;
use crate::util::{authorization, decode_basic, iso_millis};

/// PASS does not document it; an hour is long enough for a password-reset mail.
const PASSWORD_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

fn refuse((status, message): Refusal) -> Processed {
    Processed::refused(reply(status, message), message)
}

fn token_reply(token_type: &str, token: &str, expires: SystemTime) -> Response {
    let body = json!({"token_type": token_type, "token": token, "expiry_date": iso_millis(expires)});
    Json(body).into_response()
}

fn basic_login(headers: &HeaderMap) -> Result<(String, String), Refusal> {
    const INVALID: Refusal = (StatusCode::BAD_REQUEST, "Authorization header invalid");
    let missing = (StatusCode::BAD_REQUEST, "Authorization header missing");
    let (scheme, rest) = authorization(headers).ok_or(missing)?.map_err(|()| INVALID)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(INVALID);
    }
    decode_basic(&rest).ok_or(INVALID)
}

pub(super) async fn login(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Response {
    let basic = basic_login(&headers);
    let login_name = basic.as_ref().ok().map(|(login, _)| login.clone());
    let attempt = Attempt::new(Provider::Pass, Operation::Login).credential(login_name);
    guard(&state, &connection, attempt, || {
        let (login, password) = match check_api_key(&state, &headers, false).and(basic) {
            Ok(credentials) => credentials,
            Err(refusal) => return refuse(refusal),
        };
        let lifetime = state.knobs.config().pass_max_lifetime;
        match state.pass.login(&login, &password, lifetime) {
            Ok((token, expires)) => {
                Processed::new(token_reply("AccessToken", &token, expires), Outcome::Issued).issued(token)
            }
            Err(e) => refuse((StatusCode::UNAUTHORIZED, e.message())),
        }
    })
    .await
}

/// `/token/v1/refresh`: the same token with a later expiry (PASS's own example does this).
pub(super) async fn refresh(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Response {
    let bearer = bearer_only(&headers);
    let attempt = bearer_attempt(&state, Operation::Refresh, &bearer);
    guard(&state, &connection, attempt, || {
        let token = match check_api_key(&state, &headers, false).and(bearer) {
            Ok(token) => token,
            Err(refusal) => return refuse(refusal),
        };
        let lifetime = state.knobs.config().pass_max_lifetime;
        match state.pass.touch(&token, TokenKind::Access, lifetime) {
            Ok((_, expires)) => {
                Processed::new(token_reply("AccessToken", &token, expires), Outcome::Issued).issued(token)
            }
            Err(e) => refuse((StatusCode::UNAUTHORIZED, e.message())),
        }
    })
    .await
}

/// `DELETE /token/v1/login`: 204, and the token is expired from now on.
pub(super) async fn logout(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Response {
    let bearer = bearer_only(&headers);
    let attempt = bearer_attempt(&state, Operation::Logout, &bearer);
    guard(&state, &connection, attempt, || {
        let token = match check_api_key(&state, &headers, false).and(bearer) {
            Ok(token) => token,
            Err(refusal) => return refuse(refusal),
        };
        match state.pass.expire(&token) {
            Ok(()) => Processed::new(StatusCode::NO_CONTENT, Outcome::Accepted),
            Err(e) => refuse((StatusCode::UNAUTHORIZED, e.message())),
        }
    })
    .await
}

fn bearer_attempt(state: &AppState, operation: Operation, bearer: &Result<String, Refusal>) -> Attempt {
    let token = bearer.as_ref().ok().cloned();
    let login = token.as_deref().and_then(|t| state.pass.login_of(t));
    Attempt::new(Provider::Pass, operation).credential(login).presented(token)
}

#[derive(Deserialize)]
pub(super) struct PasswordTokenQuery {
    login_name: Option<String>,
}

/// `POST /token/v1/passwordtoken?login_name=…`, needs only the API key.
pub(super) async fn password_token(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    Query(query): Query<PasswordTokenQuery>,
    headers: HeaderMap,
) -> Response {
    let login = query.login_name.filter(|l| !l.is_empty());
    let attempt = Attempt::new(Provider::Pass, Operation::PasswordToken).credential(login.clone());
    guard(&state, &connection, attempt, || {
        if let Err(refusal) = check_api_key(&state, &headers, true) {
            return refuse(refusal);
        }
        let Some(login) = login else {
            return refuse((StatusCode::BAD_REQUEST, "Parameter login_name missing"));
        };
        match state.pass.password_token(&login, PASSWORD_TOKEN_LIFETIME) {
            Ok((token, expires)) => {
                Processed::new(token_reply("PasswordToken", &token, expires), Outcome::Issued).issued(token)
            }
            Err(e) => refuse((StatusCode::UNAUTHORIZED, e.message())),
        }
    })
    .await
}

/// `POST /token/v1/changepassword` with `Bearer <PasswordToken>` and `{"password":…}`.
pub(super) async fn change_password(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = bearer_only(&headers);
    let attempt = bearer_attempt(&state, Operation::ChangePassword, &bearer);
    guard(&state, &connection, attempt, || {
        let token = match check_api_key(&state, &headers, false).and(bearer) {
            Ok(token) => token,
            Err(refusal) => return refuse(refusal),
        };
        let Some(password) = new_password(&body) else {
            return refuse((StatusCode::UNPROCESSABLE_ENTITY, "Password does not meet the requirements"));
        };
        match state.pass.change_password(&token, &password) {
            Ok(_) => Processed::new(reply(StatusCode::OK, "Password changed"), Outcome::Accepted),
            Err(e) => refuse((StatusCode::UNAUTHORIZED, e.message())),
        }
    })
    .await
}

/// The new password, if the body carries an acceptable one (PASS's rules are not
/// public; eight characters is the common floor).
fn new_password(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        password: String,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    (body.password.chars().count() >= 8).then_some(body.password)
}

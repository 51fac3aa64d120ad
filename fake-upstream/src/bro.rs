//! BRO Bronhouderportaal API v2: HTTP Basic with a token username (`…|…|…`) and a 64-hex
//! code on every request, no exchange and no expiry. Only the validation service is
//! faked; the portal's docs recommend it for checking that a token works.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use axum::{Extension, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::Provider;
use crate::fault::{Attempt, Processed, guard};
use crate::ledger::{Operation, Outcome};
use crate::server::Connection;
use crate::util::basic_credentials;

/// Token username → token code.
#[derive(Default)]
pub(crate) struct Store(Mutex<HashMap<String, String>>);

impl Store {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add_token(&self, username: &str, code: &str) {
        self.lock().insert(username.to_owned(), code.to_owned());
    }

    pub fn remove_token(&self, username: &str) {
        self.lock().remove(username);
    }

    fn accepts(&self, username: &str, code: &str) -> bool {
        self.lock().get(username).is_some_and(|known| known == code)
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v2/validatie", post(validate)).route("/api/v2/{project}/validatie", post(validate))
}

/// Whether the request carries a known token (for the data endpoints, `crate::data`).
pub(crate) fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    basic_credentials(headers).is_some_and(|(user, code)| state.bro.accepts(&user, &code))
}

/// `POST /api/v2/[{project}/]validatie` with an XML body.
async fn validate(
    State(state): State<AppState>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = basic_credentials(&headers);
    let username = credentials.as_ref().map(|(username, _)| username.clone());
    let attempt = Attempt::new(Provider::Bro, Operation::Validate).credential(username);
    guard(&state, &connection, attempt, || {
        let known = credentials.is_some_and(|(user, code)| state.bro.accepts(&user, &code));
        if !known {
            return Processed::refused(unauthorized(), "Unauthorized");
        }
        Processed::new(Json(report(&body)), Outcome::Accepted)
    })
    .await
}

fn unauthorized() -> Response {
    let challenge = [(header::WWW_AUTHENTICATE, "Basic realm=\"bronhouderportaal\"")];
    let body = json!({"status": 401, "message": "Unauthorized"});
    (StatusCode::UNAUTHORIZED, challenge, Json(body)).into_response()
}

/// A validation report; the fake only looks at whether the body could be XML at all.
fn report(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let errors: Vec<&str> = if text.is_empty() {
        vec!["Het aangeleverde bestand is leeg."]
    } else if !text.starts_with('<') {
        vec!["Het aangeleverde bestand is geen XML."]
    } else {
        vec![]
    };
    let status = if errors.is_empty() { "VALIDE" } else { "NIET-VALIDE" };
    json!({"status": status, "errors": errors})
}

//! An HTTP control surface for the fake when it runs as a separate process (the client
//! libraries' test suites in Python, Go and Java): the [`Knobs`] and the [`Ledger`] that
//! in-process Rust tests reach directly, as JSON on a listener of its own.
//!
//! | route             | body / answer                                                        |
//! |-------------------|----------------------------------------------------------------------|
//! | `POST /lifetimes` | `{"jouwomgeving_jwt_secs", "pass_max_lifetime_secs", "passolution_access_secs"}` (each optional) |
//! | `POST /fail`      | `{"provider": "pass", "status": 503, "times": 1}`: the next `times` token calls answer `status` |
//! | `POST /reset`     | back to normal, ledger emptied                                       |
//! | `GET /ledger`     | `[{"provider", "operation", "outcome", "delivery"}]`, oldest first  |
//!
//! It is test tooling: it changes what the fake does, so it listens only where asked.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{FailureMode, Knobs, Ledger, Provider, Times};

#[derive(Clone)]
struct Control {
    knobs: Knobs,
    ledger: Ledger,
}

/// The control routes over one fake's knobs and ledger.
pub fn router(knobs: Knobs, ledger: Ledger) -> Router {
    Router::new()
        .route("/lifetimes", post(lifetimes))
        .route("/fail", post(fail))
        .route("/reset", post(reset))
        .route("/ledger", get(ledger_entries))
        .with_state(Control { knobs, ledger })
}

#[derive(Deserialize)]
struct Lifetimes {
    jouwomgeving_jwt_secs: Option<f64>,
    pass_max_lifetime_secs: Option<f64>,
    passolution_access_secs: Option<f64>,
}

async fn lifetimes(State(control): State<Control>, Json(body): Json<Lifetimes>) -> StatusCode {
    control.knobs.update(|c| {
        let set = |target: &mut Duration, secs: Option<f64>| {
            secs.into_iter().for_each(|s| *target = Duration::from_secs_f64(s))
        };
        set(&mut c.jouwomgeving_jwt_lifetime, body.jouwomgeving_jwt_secs);
        set(&mut c.pass_max_lifetime, body.pass_max_lifetime_secs);
        set(&mut c.passolution_access_lifetime, body.passolution_access_secs);
    });
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Fail {
    provider: String,
    status: u16,
    times: u32,
}

async fn fail(State(control): State<Control>, Json(body): Json<Fail>) -> Response {
    let Some(provider) = Provider::ALL.into_iter().find(|p| p.prefix() == body.provider) else {
        return (StatusCode::BAD_REQUEST, "unknown provider").into_response();
    };
    control.knobs.fail(provider, FailureMode::Status(body.status), Times::Next(body.times));
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(control): State<Control>) -> StatusCode {
    control.knobs.reset_failures();
    control.ledger.reset();
    StatusCode::NO_CONTENT
}

async fn ledger_entries(State(control): State<Control>) -> Json<Value> {
    let entries = control.ledger.entries().into_iter().map(|e| {
        json!({
            "provider": e.provider.prefix(),
            "operation": format!("{:?}", e.operation),
            "outcome": format!("{:?}", e.outcome),
            "delivery": format!("{:?}", e.delivery),
        })
    });
    Json(Value::Array(entries.collect()))
}

//! The path every token-endpoint call takes: injected failure before processing, the
//! provider's own processing, injected failure after it, and one ledger entry whatever
//! happens. Keeping this in one place is what makes the ledger complete.

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::config::Provider;
use crate::knobs::FailureMode;
use crate::ledger::{Delivery, Entry, Operation, Outcome};
use crate::server::{Connection, hang};

/// What a call is about, read from the request before anything is processed.
pub(crate) struct Attempt {
    pub provider: Provider,
    pub operation: Operation,
    pub credential: Option<String>,
    pub presented: Option<String>,
    /// The presented refresh token had already been redeemed when the call arrived; used
    /// when the call is never processed (processing decides under the store's lock).
    pub replay_on_arrival: bool,
}

impl Attempt {
    pub fn new(provider: Provider, operation: Operation) -> Attempt {
        Attempt { provider, operation, credential: None, presented: None, replay_on_arrival: false }
    }

    pub fn credential(mut self, credential: Option<String>) -> Attempt {
        self.credential = credential;
        self
    }

    pub fn presented(mut self, token: Option<String>) -> Attempt {
        self.presented = token;
        self
    }
}

/// The provider's answer to a call, and what it did.
pub(crate) struct Processed {
    pub response: Response,
    pub outcome: Outcome,
    pub issued: Option<String>,
    pub violation: bool,
}

impl Processed {
    pub fn new(response: impl IntoResponse, outcome: Outcome) -> Processed {
        let response = response.into_response();
        Processed { response, outcome, issued: None, violation: false }
    }

    /// A refusal; the reason goes to the ledger.
    pub fn refused(response: impl IntoResponse, reason: &str) -> Processed {
        let response = response.into_response();
        let status = response.status().as_u16();
        let outcome = Outcome::Refused { status, reason: reason.to_owned() };
        Processed { response, outcome, issued: None, violation: false }
    }

    pub fn issued(mut self, token: String) -> Processed {
        self.issued = Some(token);
        self
    }

    pub fn violation(mut self, violation: bool) -> Processed {
        self.violation = violation;
        self
    }
}

/// Runs one token-endpoint call through the failure knobs and records it.
pub(crate) async fn guard(
    state: &AppState,
    connection: &Connection,
    attempt: Attempt,
    process: impl FnOnce() -> Processed,
) -> Response {
    let mode = state.knobs.take_failure(attempt.provider, attempt.operation);
    let unprocessed = |delivery| {
        let violation = attempt.replay_on_arrival;
        record(state, &attempt, Outcome::NotProcessed, delivery, None, violation);
    };
    match mode {
        FailureMode::Status(code) => {
            unprocessed(Delivery::InjectedStatus(code));
            return injected_status(code);
        }
        FailureMode::Hang => {
            unprocessed(Delivery::Hung);
            hang().await
        }
        FailureMode::DropBeforeProcessing => {
            unprocessed(Delivery::Dropped);
            connection.cut().await
        }
        FailureMode::Normal | FailureMode::CommitThenDrop | FailureMode::CommitThenHang => {}
    }
    let done = process();
    let delivery = match mode {
        FailureMode::CommitThenDrop => Delivery::Dropped,
        FailureMode::CommitThenHang => Delivery::Hung,
        _ => Delivery::Replied,
    };
    record(state, &attempt, done.outcome, delivery, done.issued, done.violation);
    match delivery {
        Delivery::Dropped => connection.cut().await,
        Delivery::Hung => hang().await,
        _ => done.response,
    }
}

fn record(
    state: &AppState,
    attempt: &Attempt,
    outcome: Outcome,
    delivery: Delivery,
    issued: Option<String>,
    violation: bool,
) {
    state.ledger.record(Entry {
        seq: 0,
        at: SystemTime::now(),
        provider: attempt.provider,
        operation: attempt.operation,
        credential: attempt.credential.clone(),
        presented_token: attempt.presented.clone(),
        issued_token: issued,
        outcome,
        delivery,
        violation,
    });
}

/// What a load balancer in front would send: a bare status with its reason phrase.
fn injected_status(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    (status, format!("{} {reason}\n", status.as_u16())).into_response()
}

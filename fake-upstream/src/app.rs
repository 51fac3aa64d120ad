//! Shared state of one fake and the router that puts the four providers under their
//! path prefixes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::config::{FakeConfig, Provider};
use crate::knobs::Knobs;
use crate::ledger::Ledger;
use crate::traffic::Traffic;
use crate::{bro, data, jouwomgeving, pass, passolution};

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub knobs: Knobs,
    pub ledger: Ledger,
    pub traffic: Traffic,
    pub pass: Arc<pass::Store>,
    pub bro: Arc<bro::Store>,
    pub passolution: Arc<passolution::Store>,
    pub jouwomgeving: Arc<jouwomgeving::Store>,
}

impl AppState {
    pub fn new(config: FakeConfig) -> AppState {
        AppState {
            knobs: Knobs::new(config),
            ledger: Ledger::default(),
            traffic: Traffic::default(),
            pass: Arc::default(),
            bro: Arc::default(),
            passolution: Arc::default(),
            jouwomgeving: Arc::default(),
        }
    }
}

pub(crate) fn router(state: AppState) -> Router {
    let data = |provider, base| data::router(provider, base, &state);
    Router::new()
        .nest("/pass", pass::router().merge(data(Provider::Pass, "")))
        .nest("/bro", bro::router().merge(data(Provider::Bro, "/api/v2")))
        .nest("/passolution", passolution::router().merge(data(Provider::Passolution, "/api/v2")))
        .nest("/jouwomgeving", jouwomgeving::router().merge(data(Provider::JouwOmgeving, "/api")))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(state.clone(), latency))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Notes every request, routed or not, in the traffic log.
async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.traffic.record(&request);
    next.run(request).await
}

/// Adds the provider's configured latency before the request is handled.
async fn latency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(provider) = Provider::from_path(request.uri().path()) {
        let delay = state.knobs.latency(provider);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    next.run(request).await
}

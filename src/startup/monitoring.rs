//! The `/metrics` listener (`[metrics] listen`) and the fleet-wide credential counts it
//! reports.
//!
//! `credbroker_credentials{provider, state}` comes from the store, not from this replica's
//! traffic: every replica counts the same records (dashboards aggregate it with `max`). The
//! count pages through each provider's index every [`COUNT_EVERY`] — off the request path.

use crate::broker::Broker;
use crate::domain::{CredentialState, Subject};
use crate::store::CredentialStore;
use crate::telemetry::metrics;
use axum::routing::get;
use opentelemetry::KeyValue;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const COUNT_EVERY: Duration = Duration::from_secs(30);
const PAGE: usize = 1000;
const STATES: [CredentialState; 5] = [
    CredentialState::Active,
    CredentialState::Refreshing,
    CredentialState::Indeterminate,
    CredentialState::ReauthRequired,
    CredentialState::Revoked,
];

/// Serves `/metrics` on `listener` (if any) and counts credentials while metrics are read
/// (Prometheus or OTLP): the task to run until the drain's very end; `None` without metrics.
pub(super) fn task(listener: Option<TcpListener>, broker: Arc<Broker>) -> Option<impl Future<Output = ()>> {
    metrics::enabled().then(|| async move {
        tokio::select! {
            () = serve(listener) => {}
            () = count_credentials(broker) => {}
        }
    })
}

async fn serve(listener: Option<TcpListener>) {
    let Some(listener) = listener else { return std::future::pending().await };
    let router = axum::Router::new().route("/metrics", get(|| async { scrape() }));
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

fn scrape() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics::render())
}

async fn count_credentials(broker: Arc<Broker>) {
    loop {
        for provider in broker.registry().iter() {
            match count(&broker, &provider.name).await {
                Ok(counts) => publish(&provider.name, &counts),
                Err(e) => tracing::warn!(provider = %provider.name, error = %e, "could not count credentials"),
            }
        }
        tokio::time::sleep(COUNT_EVERY).await;
    }
}

async fn count(
    broker: &Broker,
    provider: &crate::domain::ProviderName,
) -> crate::store::StoreResult<[u64; STATES.len()]> {
    let mut counts = [0; STATES.len()];
    let mut after: Option<Subject> = None;
    loop {
        let page = broker.store().list(provider, after.as_ref(), PAGE).await?;
        for listed in &page {
            if let Some(at) = STATES.iter().position(|state| *state == listed.credential.state) {
                counts[at] += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.subject.clone()),
            _ => return Ok(counts),
        }
    }
}

/// Every state, zeros included: an alert on INDETERMINATE must see it go back to 0.
fn publish(provider: &crate::domain::ProviderName, counts: &[u64; STATES.len()]) {
    for (state, count) in STATES.iter().zip(counts) {
        let labels = [metrics::provider(provider), KeyValue::new("state", state.to_string())];
        metrics::instruments().credentials.record(*count, &labels);
    }
}

//! The steps of a shutdown that strands nothing (docs/deployment.md, "Draining"), and the
//! readiness that comes before them.
//!
//! On SIGTERM: NOT_SERVING at once, while the server keeps serving for `server.drain_delay`
//! (balancers and Kubernetes endpoints learn of it asynchronously); then the server stops
//! accepting and drains in-flight RPCs (`startup.rs`); then no renewal starts and the running
//! ones are waited for, bounded by the upstream timeout plus the commit patience — a refresh
//! cut between send and commit would leave its credential INDETERMINATE.

use super::tasks::Tasks;
use crate::broker::renewals::Renewals;
use crate::broker::rotation::COMMIT_PATIENCE;
use crate::grpc::Readiness;
use crate::store::AnyStore;
use std::future::Future;
use std::time::Duration;

/// Ready at once on the in-memory store; on Redis once it has answered (a task of `tasks`).
pub(super) async fn watch_store(store: AnyStore, readiness: Readiness, tasks: &Tasks) {
    match store {
        AnyStore::Memory(_) => readiness.store_reached().await,
        AnyStore::Redis(_) => tasks.spawn("store readiness", ready_when_store_reached(store, readiness)),
    }
}

/// Marks the replica ready once the store has answered, retrying with a capped backoff: a
/// replica that never reached Redis must not get traffic it can only fail.
async fn ready_when_store_reached(store: AnyStore, readiness: Readiness) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.reachable().await {
            Ok(()) => return readiness.store_reached().await,
            Err(e) if !readiness.is_draining() => {
                tracing::warn!(error = %e, "store not reachable yet; reporting NOT_SERVING");
            }
            Err(_) => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// How long background tasks may take to end once stopped. They end at once (the audit
/// writer writes the lines already queued first): a small bound, outside the sum
/// `terminationGracePeriodSeconds` is sized for (docs/deployment.md, "Draining").
const TASKS_BOUND: Duration = Duration::from_secs(2);

/// Resolves when the server should stop accepting: `shutdown` came, NOT_SERVING was
/// published, and `drain_delay` has passed.
pub(super) async fn until_stop_accepting(
    shutdown: impl Future<Output = ()>,
    readiness: Readiness,
    drain_delay: Duration,
) {
    shutdown.await;
    readiness.begin_drain().await;
    tracing::info!(drain_delay_ms = drain_delay.as_millis() as u64, "draining: NOT_SERVING, still serving");
    tokio::time::sleep(drain_delay).await;
}

/// How long running renewals may take to end: one upstream call, then storing its answer.
pub(super) fn renewal_bound(request_timeout: Duration) -> Duration {
    request_timeout + COMMIT_PATIENCE
}

/// Starts no renewal from now on and waits for the running ones, at most `bound`.
pub(super) async fn finish_renewals(renewals: &Renewals, bound: Duration) {
    let running = renewals.running();
    if running > 0 {
        tracing::info!(running, "waiting for running renewals to commit or reopen");
    }
    match renewals.close_and_wait(bound).await {
        0 => {}
        left => tracing::error!(
            left,
            bound_seconds = bound.as_secs(),
            alert = "renewal_cut_by_shutdown",
            "renewals still running when the shutdown bound ran out"
        ),
    }
}

/// Stops every background task and waits for them, at most [`TASKS_BOUND`].
pub(super) async fn stop_tasks(tasks: &Tasks) {
    let bound = TASKS_BOUND;
    match tasks.stop(bound).await {
        0 => {}
        left => tracing::error!(
            left,
            bound_seconds = bound.as_secs(),
            "background tasks still running when the shutdown bound ran out"
        ),
    }
}

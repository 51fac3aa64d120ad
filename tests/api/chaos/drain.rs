//! Rolling deploys strand nothing: SIGTERM reaches the replica whose scheduler holds a
//! Passolution refresh, at each step of it (no caller waits on that refresh, so no in-flight
//! RPC keeps the process up); the replica finishes the refresh before it exits (0), the
//! credential is ACTIVE with the new tokens, the other replicas serve them, and nothing was
//! ever INDETERMINATE, fenced or probed.

use super::scenario::{Fault, run};
use super::{record, runs};
use credbroker::grpc::pb::CredentialState;

async fn sigterm_at(point: &'static str) {
    for _ in 0..runs() {
        let report = run(Fault::Term(point), true).await;
        let name = format!("sigterm {point}");
        record(&name, &report);
        assert_eq!(report.clean_exit, Some(true), "{name}: the replica exits 0 after draining: {report:?}");
        assert_eq!(report.reuses, 0, "{name}: a refresh token was redeemed twice: {report:?}");
        assert_eq!(report.refreshes, 1, "{name}: exactly one refresh, by the draining replica: {report:?}");
        assert_eq!(report.final_state, CredentialState::Active, "{name}: {report:?}");
        assert_eq!(report.lost_silently, 0, "{name}: the store holds the newest refresh token: {report:?}");
        assert!(report.served_at_end, "{name}: another replica serves the new tokens: {report:?}");
        for stranded in ["unknown_outcome", "fence", "probe_alive", "probe_reauthorize", "reopen"] {
            assert!(!report.transitions.contains(stranded), "{name}: {stranded} happened: {report:?}");
        }
        assert!(report.transitions.contains("commit"), "{name}: {report:?}");
        assert!(report.versions_grew && report.secrets_in_logs == 0, "{name}: {report:?}");
        assert_eq!(report.served, report.callers, "{name}: every later caller is served: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigterm_holder_after_reserve() {
    sigterm_at("after_reserve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigterm_holder_while_sending() {
    sigterm_at("sending").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigterm_holder_before_commit() {
    sigterm_at("before_commit").await;
}

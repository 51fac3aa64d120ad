//! Passolution, against the fake upstream: obtaining and rotating its single-use refresh
//! tokens (`rotation.rs`), the probe that settles a refresh whose answer was lost
//! (`probe.rs`), refreshes refused before the token was touched (`reopen.rs`), and herds and
//! ReportRejected (`herds.rs`) — on both stores where the store takes part.

mod herds;
mod probe;
mod reopen;
mod rotation;

use crate::harness::{TestBroker, eventually};
use credbroker::grpc::pb::{self, CredentialState};
use fake_upstream::Operation;
use std::time::Duration;

/// Refresh-token grants the fake has seen.
fn refresh_grants(fake: &fake_upstream::FakeUpstream) -> usize {
    fake.ledger().count(|e| e.operation == Operation::RefreshTokenGrant)
}

/// Polls the credential's status until it reaches `state` (generous deadline), calling for
/// it in between: a caller may be the one that probes.
async fn await_state(app: &TestBroker, provider: &str, subject: &str, state: CredentialState) -> pb::CredentialStatus {
    let reached = || async {
        let status = app.status(provider, subject).await.unwrap();
        if status.state() == state {
            return Ok(status);
        }
        let _ = app.get(provider, subject).await;
        Err(status)
    };
    eventually(&format!("the credential reaches {state:?}"), Duration::from_secs(20), reached).await
}

/// Tokens that live 20 s are renewed at ~10 % of that (`REFRESH_AHEAD`): the refresh happens
/// within about two seconds, and the old access token is still alive when it is probed.
const PROBED: (&str, &str) = ("CREDBROKER__UPSTREAM__REFRESH_AHEAD", "0.1");

//! Failure knobs: what a client sees, and what the ledger says really happened.

use std::time::{Duration, Instant};

use fake_upstream::{Delivery, FailureMode, FakeConfig, Operation, Outcome, Provider, Times};
use serde_json::json;

use crate::helpers::{TestFake, assert_transport_error, spawn_with};

const CLIENT: &str = "client-1";
const SECRET: &str = "secret-1";

async fn spawn_client() -> TestFake {
    let t = spawn_with(FakeConfig::default()).await;
    t.fake.add_passolution_client(CLIENT, SECRET, "https://app.example/callback");
    t
}

fn send_refresh(t: &TestFake, refresh_token: &str) -> reqwest::RequestBuilder {
    let body = json!({"grant_type": "refresh_token", "client_id": CLIENT, "client_secret": SECRET,
                      "refresh_token": refresh_token});
    t.http.post(t.url(Provider::Passolution, "oauth/token")).json(&body)
}

async fn api_status(t: &TestFake, access_token: &str) -> u16 {
    let url = t.url(Provider::Passolution, "api/v2/infosystem/passolution");
    t.http.get(url).bearer_auth(access_token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn commit_then_drop_rotates_but_loses_the_reply() {
    let t = spawn_client().await;
    let (old_access, old_refresh) = t.fake.issue_passolution_tokens(CLIENT);
    t.fake.knobs().fail(Provider::Passolution, FailureMode::CommitThenDrop, Times::Next(1));

    assert_transport_error(send_refresh(&t, &old_refresh).send().await);

    let entries = t.fake.ledger().entries();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        (entry.operation, &entry.outcome, entry.delivery),
        (Operation::RefreshTokenGrant, &Outcome::Issued, Delivery::Dropped)
    );
    assert!(entry.committed_but_lost() && !entry.violation);
    assert_eq!(entry.presented_token.as_deref(), Some(old_refresh.as_str()));
    // The way to resolve the unknown outcome: the old access token is dead, so it happened.
    assert_eq!(api_status(&t, &old_access).await, 401);

    // Back to normal after one call; resending the rotated token is the violation.
    let response = send_refresh(&t, &old_refresh).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(t.fake.ledger().violations().len(), 1);
}

#[tokio::test]
async fn drop_before_processing_changes_nothing() {
    let t = spawn_client().await;
    let (old_access, old_refresh) = t.fake.issue_passolution_tokens(CLIENT);
    t.fake.knobs().fail(Provider::Passolution, FailureMode::DropBeforeProcessing, Times::Next(1));

    assert_transport_error(send_refresh(&t, &old_refresh).send().await);
    assert_eq!(api_status(&t, &old_access).await, 200, "nothing was revoked");
    let ledger = t.fake.ledger();
    assert_eq!(ledger.count(|e| e.outcome == Outcome::NotProcessed && e.delivery == Delivery::Dropped), 1);

    // The token was never redeemed, so sending it again is no violation.
    assert_eq!(send_refresh(&t, &old_refresh).send().await.unwrap().status(), 200);
    assert!(ledger.violations().is_empty());
    assert_eq!(ledger.redemptions_of(&old_refresh), 1);
}

#[tokio::test]
async fn injected_status_for_the_next_calls_only() {
    let t = spawn_client().await;
    let (_, refresh_token) = t.fake.issue_passolution_tokens(CLIENT);
    t.fake.knobs().fail(Provider::Passolution, FailureMode::Status(503), Times::Next(2));
    for _ in 0..2 {
        assert_eq!(send_refresh(&t, &refresh_token).send().await.unwrap().status(), 503);
    }
    assert_eq!(send_refresh(&t, &refresh_token).send().await.unwrap().status(), 200);
    let injected = t.fake.ledger().count(|e| e.delivery == Delivery::InjectedStatus(503));
    assert_eq!(injected, 2);
}

#[tokio::test]
async fn failures_can_target_one_operation_until_reset() {
    let t = spawn_client().await;
    let (_, refresh_token) = t.fake.issue_passolution_tokens(CLIENT);
    let knobs = t.fake.knobs();
    knobs.fail_only(Provider::Passolution, Operation::RefreshTokenGrant, FailureMode::Status(500), Times::UntilReset);
    let credentials = json!({"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET});
    let url = t.url(Provider::Passolution, "oauth/token");
    assert_eq!(t.http.post(&url).json(&credentials).send().await.unwrap().status(), 200);
    for _ in 0..3 {
        assert_eq!(send_refresh(&t, &refresh_token).send().await.unwrap().status(), 500);
    }
    knobs.reset_failures();
    assert_eq!(send_refresh(&t, &refresh_token).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn commit_then_hang_holds_the_reply_until_shutdown() {
    let t = spawn_client().await;
    let (old_access, old_refresh) = t.fake.issue_passolution_tokens(CLIENT);
    t.fake.knobs().fail(Provider::Passolution, FailureMode::CommitThenHang, Times::UntilReset);

    let timed_out = send_refresh(&t, &old_refresh).timeout(Duration::from_millis(300)).send().await;
    assert!(timed_out.unwrap_err().is_timeout());
    assert_eq!(api_status(&t, &old_access).await, 401, "committed");
    let entry = &t.fake.ledger().entries()[0];
    assert_eq!((&entry.outcome, entry.delivery), (&Outcome::Issued, Delivery::Hung));

    // A hung request ends when the fake shuts down.
    let (_, other_refresh) = t.fake.issue_passolution_tokens(CLIENT);
    let pending = tokio::spawn(send_refresh(&t, &other_refresh).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.fake.shutdown().await;
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn hang_and_latency_apply_to_other_providers_too() {
    let t = spawn_with(FakeConfig::default()).await;
    t.fake.add_pass_user("jan", "geheim123", true);
    let knobs = t.fake.knobs();
    let login = || t.http.post(t.url(Provider::Pass, "token/v1/login")).basic_auth("jan", Some("geheim123"));

    knobs.fail(Provider::Pass, FailureMode::Hang, Times::Next(1));
    assert!(login().timeout(Duration::from_millis(200)).send().await.unwrap_err().is_timeout());
    knobs.fail(Provider::Pass, FailureMode::CommitThenDrop, Times::Next(1));
    assert_transport_error(login().send().await);
    let delivered = |e: &fake_upstream::Entry| (e.outcome.clone(), e.delivery);
    let entries: Vec<_> = t.fake.ledger().entries().iter().map(delivered).collect();
    assert_eq!(entries, [(Outcome::NotProcessed, Delivery::Hung), (Outcome::Issued, Delivery::Dropped)]);

    knobs.set_latency(Provider::Pass, Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(login().send().await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

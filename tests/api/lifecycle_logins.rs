//! PASS pashouder logins (sliding expiry) and JouwOmgeving JWTs, against the fake upstream.

use crate::helpers::{StoreKind, only_header};
use crate::upstream::{login, secs, spawn_with_fake};
use credbroker::grpc::pb::CredentialState;
use fake_upstream::{FailureMode, Operation, Provider, Times};
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn pass_login_serves_bearer_and_api_key_with_one_upstream_call() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.add_pass_user("jan", "pw-jan-1", true);
    s.app.put("pass", "jan", login("jan", "pw-jan-1")).await.unwrap();
    let response = s.app.get("pass", "jan").await.unwrap();
    let headers: Vec<_> = response.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert_eq!(headers[0].0, "authorization");
    assert!(headers[0].1.starts_with("Bearer "));
    assert_eq!(headers[1], ("api-key", "fake-pass-api-key"));
    let token = headers[0].1.trim_start_matches("Bearer ");
    let upstream_expiry = s.fake.pass_token_expiry(token).expect("the fake knows the token");
    let served = response.expires_at.unwrap().seconds;
    let upstream = upstream_expiry.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((served - upstream).abs() <= 1, "served expiry {served} vs upstream {upstream}");
    for _ in 0..5 {
        assert_eq!(s.app.get("pass", "jan").await.unwrap(), response);
    }
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Login), 1);
    let status = s.app.status("pass", "jan").await.unwrap();
    assert_eq!(status.access_expires_at.unwrap().seconds, served);
}

#[tokio::test]
async fn pass_refused_logins_need_reauthorization_with_the_reason() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.add_pass_user("piet", "right", true);
    s.fake.add_pass_user("klaas", "pw", false);
    s.app.put("pass", "piet", login("piet", "wrong")).await.unwrap();
    s.app.put("pass", "klaas", login("klaas", "pw")).await.unwrap();
    for (subject, reason) in [("piet", "Authentication failed"), ("klaas", "User not active")] {
        let error = s.app.get("pass", subject).await.unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
        let status = s.app.status("pass", subject).await.unwrap();
        assert_eq!(status.state(), CredentialState::ReauthRequired);
        assert!(status.detail.contains(reason), "{:?}", status.detail);
        assert!(!status.detail.contains("wrong"), "the password never appears");
        // Not retried on every call: the state says an operator must act.
        assert_eq!(s.app.get("pass", subject).await.unwrap_err().code(), Code::FailedPrecondition);
    }
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Login), 2);
    // A new put (fixed password) makes it ACTIVE again.
    s.app.put("pass", "piet", login("piet", "right")).await.unwrap();
    assert!(s.app.get("pass", "piet").await.is_ok());
}

#[tokio::test]
async fn pass_sessions_are_refreshed_ahead_and_fall_back_to_login() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.knobs().set_pass_max_lifetime(Duration::from_secs(4));
    s.fake.add_pass_user("ann", "pw", true);
    s.app.put("pass", "ann", login("ann", "pw")).await.unwrap();
    let first = s.app.get_valid_for("pass", "ann", secs(1)).await.unwrap();
    // Refresh ahead at ~75 % of 4 s: the scheduler renews with /token/v1/refresh.
    until("the scheduler refreshed the session", || s.fake.ledger().count(|e| e.operation == Operation::Refresh) == 1)
        .await;
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Login), 1, "{:?}", s.fake.ledger().entries());
    let second = s.app.get_valid_for("pass", "ann", secs(1)).await.unwrap();
    assert!(second.expires_at.unwrap().seconds > first.expires_at.unwrap().seconds, "sliding expiry moved");
    // A refused refresh (e.g. logged out elsewhere) falls back to a fresh login.
    s.fake.knobs().fail_only(Provider::Pass, Operation::Refresh, FailureMode::Status(401), Times::Next(1));
    let rejected = crate::lifecycle_oauth::report(&s.app, "pass", "ann", &second.token_fingerprint).await;
    assert!(rejected.is_ok(), "{rejected:?}");
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Login), 2);
    let third = s.app.get_valid_for("pass", "ann", secs(1)).await.unwrap();
    assert_ne!(third.token_fingerprint, second.token_fingerprint);
}

#[tokio::test]
async fn pass_delete_logs_out_upstream() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.add_pass_user("bob", "pw", true);
    s.app.put("pass", "bob", login("bob", "pw")).await.unwrap();
    let response = s.app.get("pass", "bob").await.unwrap();
    let token = only_header_value(&response, "authorization").trim_start_matches("Bearer ").to_owned();
    s.app.delete("pass", "bob").await.unwrap();
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Logout), 1);
    assert!(
        s.fake.pass_token_expiry(&token).is_none_or(|t| t <= std::time::SystemTime::now()),
        "token expired upstream"
    );
}

fn only_header_value<'a>(response: &'a credbroker::grpc::pb::GetAuthorizationResponse, name: &str) -> &'a str {
    &response.headers.iter().find(|h| h.name == name).unwrap().value
}

#[tokio::test]
async fn jouwomgeving_jwt_is_served_and_renewed_ahead_of_its_exp() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.knobs().set_jouwomgeving_jwt_lifetime(Duration::from_secs(3));
    s.fake.add_jouwomgeving_user("app-user", "app-pw");
    s.app.put("jouwomgeving-demo", "org", login("app-user", "app-pw")).await.unwrap();
    let first = s.app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.unwrap();
    let (name, value) = only_header(&first);
    assert_eq!(name, "authorization");
    assert!(value.starts_with("JWT ey"), "{value}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 1..=now + 3).contains(&first.expires_at.unwrap().seconds), "expiry from the exp claim");
    // The 30 s default cannot be met by a 3 s token: refused without asking the provider.
    let error = s.app.get("jouwomgeving-demo", "org").await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Login), 1, "no login for a request no token meets");
    until("renewed ahead of expiry", || s.fake.ledger().count(|e| e.operation == Operation::Login) >= 2).await;
    let second = s.app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.unwrap();
    assert_ne!(second.token_fingerprint, first.token_fingerprint);
}

#[tokio::test]
async fn jouwomgeving_bad_credentials_need_reauthorization() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.add_jouwomgeving_user("app-user", "app-pw");
    s.app.put("jouwomgeving-demo", "org", login("app-user", "nope")).await.unwrap();
    assert_eq!(s.app.get("jouwomgeving-demo", "org").await.unwrap_err().code(), Code::FailedPrecondition);
    let status = s.app.status("jouwomgeving-demo", "org").await.unwrap();
    assert_eq!(status.state(), CredentialState::ReauthRequired);
    assert!(status.detail.contains("Unable to log in"), "{}", status.detail);
}

#[tokio::test]
async fn upstream_outages_are_unavailable_and_change_no_state() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.add_jouwomgeving_user("app-user", "app-pw");
    s.app.put("jouwomgeving-demo", "org", login("app-user", "app-pw")).await.unwrap();
    for mode in [FailureMode::Status(503), FailureMode::DropBeforeProcessing, FailureMode::Hang] {
        s.fake.knobs().fail(Provider::JouwOmgeving, mode.clone(), Times::Next(1));
        let error = s.app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{mode:?}: {error:?}");
        assert!(!error.message().contains("app-pw"));
        assert_eq!(s.app.status("jouwomgeving-demo", "org").await.unwrap().state(), CredentialState::Active);
    }
    assert!(s.app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.is_ok(), "recovers by itself");
}

/// 500 callers at once on a credential with no session: one login upstream, 500 answers.
#[tokio::test]
async fn a_herd_of_callers_causes_one_login() {
    let s = spawn_with_fake(StoreKind::Memory).await;
    s.fake.add_pass_user("herd", "pw", true);
    s.fake.knobs().set_latency(Provider::Pass, Duration::from_millis(100));
    s.app.put("pass", "herd", login("herd", "pw")).await.unwrap();
    let answers = crate::lifecycle_oauth::herd(&s.app, "pass", "herd", 500).await;
    assert_eq!(answers.len(), 1, "every caller got the same header");
    assert_eq!(s.fake.ledger().count(|e| e.operation == Operation::Login), 1);
}

/// Redis down: a PASS login keeps being renewed in memory (idempotent), while a Passolution
/// refresh fails closed (never without the journal).
#[tokio::test]
async fn with_redis_down_logins_renew_in_memory_and_rotations_fail_closed() {
    let s = crate::upstream::spawn_with_fake_and(
        StoreKind::Redis,
        &[("CREDBROKER__STORE__RESPONSE_TIMEOUT", "300ms"), ("CREDBROKER__STORE__CONNECT_TIMEOUT", "300ms")],
    )
    .await;
    s.fake.knobs().set_pass_max_lifetime(Duration::from_secs(2));
    s.fake.add_pass_user("offline", "pw", true);
    s.app.put("pass", "offline", login("offline", "pw")).await.unwrap();
    // Promised until its planned renewal at ~3 s: served as imported below, renewed only later.
    let (_, refresh, tokens) = crate::upstream::issue_tokens(&s.fake, Duration::from_secs(4));
    s.app.put("passolution", "offline", tokens).await.unwrap();
    let first = s.app.get_valid_for("pass", "offline", secs(1)).await.unwrap();
    let rotating = s.app.get_valid_for("passolution", "offline", secs(1)).await.unwrap();
    s.app.redis.as_ref().unwrap().container.as_ref().expect("own container").stop().await.unwrap();
    // Until both headers have less than the 1 s asked below left.
    let end = |t: prost_types::Timestamp| std::time::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32);
    let latest = end(first.expires_at.unwrap()).max(end(rotating.expires_at.unwrap()));
    until("both headers have less than 1 s left", || std::time::SystemTime::now() + Duration::from_secs(1) > latest)
        .await;
    let renewed = s.app.get_valid_for("pass", "offline", secs(1)).await.unwrap();
    assert_ne!(renewed.expires_at, first.expires_at, "a new session, obtained with Redis down");
    let closed = s.app.get_valid_for("passolution", "offline", secs(1)).await.unwrap_err();
    assert_eq!(closed.code(), Code::Unavailable, "{closed:?}");
    assert_eq!(s.fake.ledger().attempts_with(&refresh), 0, "no refresh without the journal");
}

/// Waits, polling, until `done` holds (at most 20 s).
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

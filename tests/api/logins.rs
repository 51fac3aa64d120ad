//! PASS pashouder logins (sliding expiry) and JouwOmgeving JWTs, against the fake upstream.

use crate::harness::{Broker, StoreKind, eventually, issue_tokens, login, only_header, secs};
use credbroker::grpc::pb::CredentialState;
use fake_upstream::{FailureMode, Operation, Provider, Times};
use std::time::Duration;
use tonic::Code;

/// How long a renewal the broker plans may take to show, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn pass_login_serves_bearer_and_api_key_with_one_upstream_call() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_pass_user("jan", "pw-jan-1", true);
    app.put("pass", "jan", login("jan", "pw-jan-1")).await.unwrap();
    let response = app.get("pass", "jan").await.unwrap();
    let headers: Vec<_> = response.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert_eq!(headers[0].0, "authorization");
    assert!(headers[0].1.starts_with("Bearer "));
    assert_eq!(headers[1], ("api-key", "fake-pass-api-key"));
    let token = headers[0].1.trim_start_matches("Bearer ");
    let upstream_expiry = app.fake().pass_token_expiry(token).expect("the fake knows the token");
    let served = response.expires_at.unwrap().seconds;
    let upstream = upstream_expiry.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((served - upstream).abs() <= 1, "served expiry {served} vs upstream {upstream}");
    for _ in 0..5 {
        assert_eq!(app.get("pass", "jan").await.unwrap(), response);
    }
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::Login), 1);
    let status = app.status("pass", "jan").await.unwrap();
    assert_eq!(status.access_expires_at.unwrap().seconds, served);
}

#[tokio::test]
async fn pass_refused_logins_need_reauthorization_with_the_reason() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_pass_user("piet", "right", true);
    app.fake().add_pass_user("klaas", "pw", false);
    app.put("pass", "piet", login("piet", "wrong")).await.unwrap();
    app.put("pass", "klaas", login("klaas", "pw")).await.unwrap();
    for (subject, reason) in [("piet", "Authentication failed"), ("klaas", "User not active")] {
        let error = app.get("pass", subject).await.unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
        let status = app.status("pass", subject).await.unwrap();
        assert_eq!(status.state(), CredentialState::ReauthRequired);
        assert!(status.detail.contains(reason), "{:?}", status.detail);
        assert!(!status.detail.contains("wrong"), "the password never appears");
        // Not retried on every call: the state says an operator must act.
        assert_eq!(app.get("pass", subject).await.unwrap_err().code(), Code::FailedPrecondition);
    }
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::Login), 2);
    // A new put (fixed password) makes it ACTIVE again.
    app.put("pass", "piet", login("piet", "right")).await.unwrap();
    assert!(app.get("pass", "piet").await.is_ok());
}

#[tokio::test]
async fn pass_sessions_are_refreshed_ahead_and_fall_back_to_login() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().knobs().set_pass_max_lifetime(Duration::from_secs(4));
    app.fake().add_pass_user("ann", "pw", true);
    app.put("pass", "ann", login("ann", "pw")).await.unwrap();
    let first = app.get_valid_for("pass", "ann", secs(1)).await.unwrap();
    // Refresh ahead at ~75 % of 4 s: the scheduler renews with /token/v1/refresh.
    let refreshed = || async { app.fake().ledger().count(|e| e.operation == Operation::Refresh) == 1 };
    eventually("the scheduler refreshed the session", PATIENCE, refreshed).await;
    assert_eq!(
        app.fake().ledger().count(|e| e.operation == Operation::Login),
        1,
        "{:?}",
        app.fake().ledger().entries()
    );
    let second = app.get_valid_for("pass", "ann", secs(1)).await.unwrap();
    assert!(second.expires_at.unwrap().seconds > first.expires_at.unwrap().seconds, "sliding expiry moved");
    // A refused refresh (e.g. logged out elsewhere) falls back to a fresh login.
    app.fake().knobs().fail_only(Provider::Pass, Operation::Refresh, FailureMode::Status(401), Times::Next(1));
    let rejected = app.report("pass", "ann", &second.token_fingerprint).await;
    assert!(rejected.is_ok(), "{rejected:?}");
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::Login), 2);
    let third = app.get_valid_for("pass", "ann", secs(1)).await.unwrap();
    assert_ne!(third.token_fingerprint, second.token_fingerprint);
}

#[tokio::test]
async fn pass_delete_logs_out_upstream() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_pass_user("bob", "pw", true);
    app.put("pass", "bob", login("bob", "pw")).await.unwrap();
    let response = app.get("pass", "bob").await.unwrap();
    let token = only_header_value(&response, "authorization").trim_start_matches("Bearer ").to_owned();
    app.delete("pass", "bob").await.unwrap();
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::Logout), 1);
    assert!(
        app.fake().pass_token_expiry(&token).is_none_or(|t| t <= std::time::SystemTime::now()),
        "token expired upstream"
    );
}

fn only_header_value<'a>(response: &'a credbroker::grpc::pb::GetAuthorizationResponse, name: &str) -> &'a str {
    &response.headers.iter().find(|h| h.name == name).unwrap().value
}

#[tokio::test]
async fn jouwomgeving_jwt_is_served_and_renewed_ahead_of_its_exp() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().knobs().set_jouwomgeving_jwt_lifetime(Duration::from_secs(3));
    app.fake().add_jouwomgeving_user("app-user", "app-pw");
    app.put("jouwomgeving-demo", "org", login("app-user", "app-pw")).await.unwrap();
    let first = app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.unwrap();
    let (name, value) = only_header(&first);
    assert_eq!(name, "authorization");
    assert!(value.starts_with("JWT ey"), "{value}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 1..=now + 3).contains(&first.expires_at.unwrap().seconds), "expiry from the exp claim");
    // The 30 s default cannot be met by a 3 s token: refused without asking the provider.
    let error = app.get("jouwomgeving-demo", "org").await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert_eq!(
        app.fake().ledger().count(|e| e.operation == Operation::Login),
        1,
        "no login for a request no token meets"
    );
    let renewed = || async { app.fake().ledger().count(|e| e.operation == Operation::Login) >= 2 };
    eventually("renewed ahead of expiry", PATIENCE, renewed).await;
    let second = app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.unwrap();
    assert_ne!(second.token_fingerprint, first.token_fingerprint);
}

#[tokio::test]
async fn jouwomgeving_bad_credentials_need_reauthorization() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_jouwomgeving_user("app-user", "app-pw");
    app.put("jouwomgeving-demo", "org", login("app-user", "nope")).await.unwrap();
    assert_eq!(app.get("jouwomgeving-demo", "org").await.unwrap_err().code(), Code::FailedPrecondition);
    let status = app.status("jouwomgeving-demo", "org").await.unwrap();
    assert_eq!(status.state(), CredentialState::ReauthRequired);
    assert!(status.detail.contains("Unable to log in"), "{}", status.detail);
}

#[tokio::test]
async fn upstream_outages_are_unavailable_and_change_no_state() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_jouwomgeving_user("app-user", "app-pw");
    app.put("jouwomgeving-demo", "org", login("app-user", "app-pw")).await.unwrap();
    for mode in [FailureMode::Status(503), FailureMode::DropBeforeProcessing, FailureMode::Hang] {
        app.fake().knobs().fail(Provider::JouwOmgeving, mode.clone(), Times::Next(1));
        let error = app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{mode:?}: {error:?}");
        assert!(!error.message().contains("app-pw"));
        assert_eq!(app.status("jouwomgeving-demo", "org").await.unwrap().state(), CredentialState::Active);
    }
    assert!(app.get_valid_for("jouwomgeving-demo", "org", secs(1)).await.is_ok(), "recovers by itself");
}

/// 500 callers at once on a credential with no session: one login upstream, 500 answers.
#[tokio::test]
async fn a_herd_of_callers_causes_one_login() {
    let app = Broker::new().fake().quick_renewals().start().await;
    app.fake().add_pass_user("herd", "pw", true);
    app.fake().knobs().set_latency(Provider::Pass, Duration::from_millis(100));
    app.put("pass", "herd", login("herd", "pw")).await.unwrap();
    let answers = app.herd("pass", "herd", 500).await;
    assert_eq!(answers.len(), 1, "every caller got the same header");
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::Login), 1);
}

/// Redis down: a PASS login keeps being renewed in memory (idempotent), while a Passolution
/// refresh fails closed (never without the journal).
#[tokio::test]
async fn with_redis_down_logins_renew_in_memory_and_rotations_fail_closed() {
    let app = Broker::on(StoreKind::Redis)
        .fake()
        .quick_renewals()
        .env("CREDBROKER__STORE__RESPONSE_TIMEOUT", "300ms")
        .env("CREDBROKER__STORE__CONNECT_TIMEOUT", "300ms")
        .start()
        .await;
    app.fake().knobs().set_pass_max_lifetime(Duration::from_secs(2));
    app.fake().add_pass_user("offline", "pw", true);
    app.put("pass", "offline", login("offline", "pw")).await.unwrap();
    // Promised until its planned renewal at ~3 s: served as imported below, renewed only later.
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(4));
    app.put("passolution", "offline", tokens).await.unwrap();
    let first = app.get_valid_for("pass", "offline", secs(1)).await.unwrap();
    let rotating = app.get_valid_for("passolution", "offline", secs(1)).await.unwrap();
    app.redis().stop().await;
    // Until both headers have less than the 1 s asked below left.
    let end = |t: prost_types::Timestamp| std::time::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32);
    let latest = end(first.expires_at.unwrap()).max(end(rotating.expires_at.unwrap()));
    let expiring = || async { std::time::SystemTime::now() + Duration::from_secs(1) > latest };
    eventually("both headers have less than 1 s left", PATIENCE, expiring).await;
    let renewed = app.get_valid_for("pass", "offline", secs(1)).await.unwrap();
    assert_ne!(renewed.expires_at, first.expires_at, "a new session, obtained with Redis down");
    let closed = app.get_valid_for("passolution", "offline", secs(1)).await.unwrap_err();
    assert_eq!(closed.code(), Code::Unavailable, "{closed:?}");
    assert_eq!(app.fake().ledger().attempts_with(&refresh), 0, "no refresh without the journal");
}

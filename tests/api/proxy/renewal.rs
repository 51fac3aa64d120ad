//! 401 (or another of the provider's `rejected_statuses`) → renew once (conditional on the
//! header used, single flight) → retry once when the body can be replayed; PASS AppBearer 401s
//! are returned untouched; successful PASS Bearer calls slide the known expiry.

use super::support::{ProxyBroker, json, request, sha256_hex, small_limits, stream_head};
use crate::both_stores;
use crate::harness::{Broker, CLIENT_ID, StoreKind, TestBroker, eventually, login};
use credbroker::grpc::pb::put_credential_request::Secret as PutSecret;
use fake_upstream::{Operation, Provider};
use std::time::Duration;

/// Logs the broker's current PASS token out upstream, behind the broker's back.
async fn log_out_upstream(app: &TestBroker, subject: &str) -> String {
    let request = credbroker::grpc::pb::GetAuthorizationRequest {
        provider: "pass".into(),
        subject: subject.into(),
        min_validity: None,
    };
    let served = app.broker.clone().get_authorization(request).await.unwrap().into_inner();
    let authorization = served.headers.iter().find(|h| h.name == "authorization").unwrap().value.clone();
    let url = format!("{}token/v1/login", app.fake().url(Provider::Pass));
    let response = reqwest::Client::new().delete(url).header("authorization", &authorization).send().await.unwrap();
    assert_eq!(response.status(), 204);
    authorization
}

#[tokio::test]
async fn a_401_renews_the_credential_and_retries_with_the_same_body() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.fake().add_pass_user("jan", "pw-jan", true);
    app.put("pass", "jan", login("jan", "pw-jan")).await.unwrap();
    let dead = log_out_upstream(&app, "jan").await;
    let body = br#"{"aanvraag":1}"#.to_vec();
    let mut call = request("pass", "jan", "POST", "data/echo");
    call.body = body.clone().into();
    let response = app.call(call).await.unwrap();
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(json(&response.body)["body_sha256"], sha256_hex(&body), "the retry carried the same body");
    let sent = app.data_requests();
    assert_eq!(sent.len(), 2, "one refused attempt, one retry");
    assert_eq!(sent[0].header("authorization"), Some(dead.as_str()));
    assert_ne!(sent[1].header("authorization"), Some(dead.as_str()), "retried with the renewed token");
    // PASS renews by refresh first; the dead token's refresh is refused, so it logs in again.
    assert_eq!(app.fake().ledger().count(|e| e.operation == Operation::Login), 2);
}

#[tokio::test]
async fn a_credential_that_cannot_be_renewed_returns_the_401_once() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    app.fake().remove_bro_token(super::support::BRO_USER);
    let response = app.call(request("bro", "org-1", "GET", "data/echo")).await.unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(app.data_requests().len(), 1, "a static credential renews to the same header: no retry");
}

#[tokio::test]
async fn pass_app_bearer_401_means_no_record_and_is_not_renewed() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.put("pass", "client-1", PutSecret::ClientNumber("999999".into())).await.unwrap();
    let response = app.call(request("pass", "client-1", "GET", "data/echo")).await.unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(app.data_requests().len(), 1, "no retry");
    assert_eq!(app.fake().ledger().entries().len(), 0, "no token call of any kind");
    app.fake().add_pass_client_number("999999");
    let response = app.call(request("pass", "client-1", "GET", "data/echo")).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(app.data_requests()[1].header("authorization").unwrap().starts_with("AppBearer "));
}

#[tokio::test]
async fn streams_retry_a_401_only_when_the_body_could_be_replayed() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.fake().add_pass_user("jan", "pw-jan", true);
    app.put("pass", "jan", login("jan", "pw-jan")).await.unwrap();
    log_out_upstream(&app, "jan").await;
    let small = app.stream(stream_head("pass", "jan", "POST", "data/sink"), vec![5; 1000], 100).await.unwrap();
    assert_eq!((small.status, json(&small.body)["len"].as_u64()), (200, Some(1000)), "replayed from the buffer");

    log_out_upstream(&app, "jan").await;
    let large = vec![6; 200 * 1024];
    let answer = app.stream(stream_head("pass", "jan", "POST", "data/sink"), large.clone(), 16 * 1024).await.unwrap();
    assert_eq!(answer.status, 401, "past the replay buffer: the 401 is returned");
    // …but the credential was renewed, so the caller's next attempt succeeds.
    let again = app.stream(stream_head("pass", "jan", "POST", "data/sink"), large, 16 * 1024).await.unwrap();
    assert_eq!(again.status, 200);
}

async fn successful_pass_bearer_calls_slide_the_known_expiry(store: StoreKind) {
    let app = Broker::on(store).fake().proxy(small_limits()).start().await;
    app.fake().knobs().set_pass_max_lifetime(Duration::from_secs(4));
    app.fake().add_pass_user("jan", "pw-jan", true);
    app.put("pass", "jan", login("jan", "pw-jan")).await.unwrap();
    let first = app.call(request("pass", "jan", "GET", "data/echo")).await.unwrap();
    assert_eq!(first.status, 200);
    let initial = app.status("pass", "jan").await.unwrap().access_expires_at.unwrap().seconds;
    // Calls every 600 ms for 6 s: well past the first expiry, alive because each use slides it.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let response = app.call(request("pass", "jan", "GET", "data/echo")).await.unwrap();
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    }
    let followed = || async {
        let known = app.status("pass", "jan").await.unwrap().access_expires_at.unwrap().seconds;
        if known >= initial + 5 { Ok(()) } else { Err(format!("{initial} → {known}")) }
    };
    eventually("the known expiry followed the use", Duration::from_secs(10), followed).await;
    let ledger = app.fake().ledger();
    let renewals = ledger.count(|e| matches!(e.operation, Operation::Login | Operation::Refresh));
    assert_eq!(renewals, 1, "only the first login; the session was kept alive by use: {:?}", ledger.entries());
}

both_stores!(successful_pass_bearer_calls_slide_the_known_expiry);

/// A provider instance whose API rejects dead tokens with 403: with `rejected_statuses`
/// naming it, a 403 renews and retries like a 401; without, it is returned as it is.
#[tokio::test]
async fn rejected_statuses_decide_what_renews_and_retries() {
    for (configured, retried) in [("401,403", true), ("401", false)] {
        let app = Broker::new()
            .fake()
            .proxy(small_limits())
            .envs(&[("CREDBROKER__PROVIDERS__PASSOLUTION__REJECTED_STATUSES", configured)])
            .start()
            .await;
        app.fake().knobs().update(|c| c.passolution_unauthenticated_status = 403);
        let (_, refresh) = app.fake().issue_passolution_tokens(CLIENT_ID);
        let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let tokens = credbroker::grpc::pb::OAuthTokens {
            refresh_token: refresh.clone(),
            access_token: "an-access-token-the-provider-does-not-know".into(),
            access_expires_at: Some(prost_types::Timestamp { seconds: in_an_hour.unix_timestamp(), nanos: 0 }),
        };
        app.put("passolution", "u", PutSecret::OauthTokens(tokens)).await.unwrap();
        let response = app.call(request("passolution", "u", "GET", "data/echo")).await.unwrap();
        let expected = if retried { 200 } else { 403 };
        assert_eq!(response.status, expected, "rejected_statuses = {configured}");
        assert_eq!(app.data_requests().len(), if retried { 2 } else { 1 }, "{configured}");
        assert_eq!(app.fake().ledger().redemptions_of(&refresh), usize::from(retried), "{configured}");
    }
}

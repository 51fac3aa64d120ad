//! The ordinary calls: every provider and method, queries, binary bodies, upstream statuses
//! passed on faithfully, redirects not followed.

use super::support::{ProxyBroker, header, headers, json, request, sha256_hex};
use crate::harness::{Broker, TestBroker};
use credbroker::proxy::ProxySettings;
use tonic::Code;

async fn app() -> TestBroker {
    Broker::new().fake().proxy(ProxySettings::default()).start().await
}

#[tokio::test]
async fn every_provider_proxies_each_method_with_a_query_and_its_credential() {
    let app = app().await;
    for (provider, subject) in app.seed_all().await {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let body = format!("{{\"from\":\"{provider}\",\"method\":\"{method}\"}}").into_bytes();
            let mut call = request(provider, subject, method, "data/echo/items/7?q=a%20b&x=1");
            call.body = if method == "GET" { Vec::new() } else { body.clone() }.into();
            call.headers = headers(&[("content-type", "application/json")]);
            let response = app.call(call).await.unwrap_or_else(|e| panic!("{provider} {method}: {e:?}"));
            assert_eq!(response.status, 200, "{provider} {method}: {}", String::from_utf8_lossy(&response.body));
            let echo = json(&response.body);
            assert_eq!(echo["method"], method);
            assert!(echo["path"].as_str().unwrap().ends_with("/data/echo/items/7"), "{echo}");
            assert_eq!(echo["query"], "q=a%20b&x=1");
            let sent = if method == "GET" { &[][..] } else { &body[..] };
            assert_eq!(echo["body_sha256"], sha256_hex(sent));
        }
        let seen = app.data_requests().pop().unwrap();
        assert!(seen.header("authorization").is_some_and(|v| !v.is_empty()), "{provider}: credential attached");
    }
    // PASS sends its API key beside the AccessToken; the caller never saw either.
    let pass = app.data_requests().into_iter().find(|r| r.uri.starts_with("/pass/")).unwrap();
    assert_eq!(pass.header("api-key"), Some("fake-pass-api-key"));
}

#[tokio::test]
async fn binary_bodies_round_trip_byte_for_byte() {
    let app = app().await;
    app.seed_bro().await;
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut call = request("bro", "org-1", "POST", "data/mirror");
    call.body = body.clone().into();
    call.headers = headers(&[("content-type", "application/octet-stream")]);
    let response = app.call(call).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, body);
    assert_eq!(header(&response, "content-type"), Some("application/octet-stream"));
}

#[tokio::test]
async fn upstream_statuses_are_successful_rpcs_carrying_them() {
    let app = app().await;
    app.seed_bro().await;
    for status in [500u32, 503, 404, 422, 204] {
        let response = app.call(request("bro", "org-1", "GET", &format!("data/echo?status={status}"))).await.unwrap();
        assert_eq!(response.status, status);
    }
    let unknown = app.call(request("bro", "org-1", "GET", "no/such/endpoint")).await.unwrap();
    assert_eq!(unknown.status, 404);
    let head = app.call(request("bro", "org-1", "HEAD", "data/echo")).await.unwrap();
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let app = app().await;
    app.seed_bro().await;
    let response = app.call(request("bro", "org-1", "GET", "data/redirect")).await.unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(header(&response, "location"), Some("echo"));
    assert_eq!(app.data_requests().len(), 1, "the redirect target was not requested");
}

#[tokio::test]
async fn the_providers_own_credential_and_request_errors() {
    let app = app().await;
    // PASS's own credential (empty subject) is its API key.
    let response = app.call(request("pass", "", "GET", "data/echo")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(app.data_requests()[0].header("api-key"), Some("fake-pass-api-key"));
    let cases = [
        (request("nope", "x", "GET", "data/echo"), Code::NotFound),
        (request("bro", "missing", "GET", "data/echo"), Code::NotFound),
        (request("bro", "", "GET", "data/echo"), Code::InvalidArgument),
        (request("pass", "", "TRACE", "data/echo"), Code::InvalidArgument),
        (request("pass", "", "", "data/echo"), Code::InvalidArgument),
    ];
    for (call, code) in cases {
        let what = format!("{} {:?} {}", call.provider, call.subject, call.method);
        assert_eq!(app.call(call).await.unwrap_err().code(), code, "{what}");
    }
    assert_eq!(app.data_requests().len(), 1);
}

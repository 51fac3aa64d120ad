//! The SSRF boundary, tested as an attacker would: every hostile path or header is refused
//! with INVALID_ARGUMENT, every token endpoint with PERMISSION_DENIED, through both RPCs, and
//! nothing is sent — neither to the provider nor to a canary listener the paths point at.

use super::support::{ProxyBroker, headers, request, small_limits, stream_head};
use crate::harness::{Broker, TestBroker, start_fake};
use fake_upstream::Provider;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::Code;

/// A TCP listener that counts connections: where a successful SSRF would land.
async fn canary() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, hits)
}

fn hostile_paths(port: u16) -> Vec<String> {
    let evil = format!("127.0.0.1:{port}");
    let mut paths: Vec<String> = [
        // absolute URLs and scheme changes
        format!("http://{evil}/x"),
        format!("https://{evil}/x"),
        format!("http://user@{evil}/"),
        format!("HTTP://{evil}/x"),
        "file:///etc/passwd".into(),
        "javascript:alert(1)".into(),
        format!("localhost:{port}/x"),
        // scheme-relative and absolute paths
        format!("//{evil}/x"),
        format!("///{evil}/x"),
        "/bro/api/v2/data/echo".into(),
        // traversal, plain and encoded, including traversal that stays inside the base
        "../data/echo".into(),
        "data/../../../bro/api/v2/data/echo".into(),
        "data/../data/echo".into(),
        "./data/echo".into(),
        "%2e%2e/data/echo".into(),
        "%2E%2e%2Fdata/echo".into(),
        ".%2e/data/echo".into(),
        "data%2f..%2f..%2fbro".into(),
        "%252e%252e/data/echo".into(),
        // backslashes
        format!("\\\\{evil}\\x"),
        "data\\..\\..\\bro".into(),
        "..%5cdata".into(),
        // userinfo tricks
        format!("@{evil}/x"),
        format!("data@{evil}/echo"),
        // encoded NUL and CRLF, raw control characters
        "data/echo%00".into(),
        "data/echo%0d%0aHost:%20evil".into(),
        "data/echo\r\nHost: evil".into(),
        "data/echo?x=%0d%0aInjected:%20yes".into(),
        "data/echo\0".into(),
        // unicode dots, raw and encoded
        "\u{FF0E}\u{FF0E}/data/echo".into(),
        "\u{3002}\u{3002}/data/echo".into(),
        "%EF%BC%8E%EF%BC%8E/data/echo".into(),
        // query-only and fragment tricks
        format!("?next=http://{evil}/"),
        format!("data/echo#@{evil}"),
        "#data/echo".into(),
        // path parameters: Tomcat, Jetty and Spring strip ';…' after a proxy normalised
        "..;/data/echo".into(),
        "data/..;/..;/bro/api/v2/data/echo".into(),
        "data;x=1/echo".into(),
        "data/echo;jsessionid=1".into(),
        "data%3b/echo".into(),
        "..%3B/data/echo".into(),
        // percent-encodings that are not UTF-8 (overlong '.' and '/'), also double-encoded
        "%c0%ae%c0%ae/data/echo".into(),
        "data/%c0%af/echo".into(),
        "%e0%80%ae%e0%80%ae/data/echo".into(),
        "%25c0%25ae%25c0%25ae/data/echo".into(),
        "data/echo?x=%c0%ae".into(),
        "data/echo?x=%25c0%25ae".into(),
        "data/echo?x=%250d%250aInjected:%20yes".into(),
        // empty segments, spaces, bad escapes, overlong, empty
        "data//echo".into(),
        "data/ echo".into(),
        "data/echo%zz".into(),
        format!("data/{}", "a/".repeat(1100)),
        String::new(),
    ]
    .into();
    paths.push(format!("data/echo?u=http://{evil}/#x"));
    paths
}

#[tokio::test]
async fn hostile_paths_are_refused_and_send_nothing() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let (port, canary_hits) = canary().await;
    let paths = hostile_paths(port);
    assert!(paths.len() >= 20);
    for path in &paths {
        let error = app.call(request("bro", "org-1", "GET", path)).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{path:?}: {error:?}");
        assert!(error.message().starts_with("path:"), "{path:?}: {}", error.message());
        let mut streamed = super::support::stream_head("bro", "org-1", "POST", path);
        streamed.headers = Vec::new();
        let error = app.stream(streamed, b"<xml/>".to_vec(), 64).await.err().expect("refused");
        assert_eq!(error.code(), Code::InvalidArgument, "stream {path:?}");
    }
    assert_eq!(app.fake().traffic().requests(), vec![], "nothing reached the upstream");
    assert_eq!(canary_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the canary");
    // A legitimate path with a query still works afterwards.
    let ok = app.call(request("bro", "org-1", "GET", "data/echo?page=2&filter=a%2Fb")).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(super::support::json(&ok.body)["query"], "page=2&filter=a%2Fb");
}

/// Refused through both RPCs with `code`, the message starting with `prefix`.
async fn refused_both_ways(app: &TestBroker, call: credbroker::grpc::pb::ProxyCallRequest, code: Code, prefix: &str) {
    let what = format!("{} {:?} {:?}", call.provider, call.path, call.headers);
    let error = app.call(call.clone()).await.unwrap_err();
    assert_eq!(error.code(), code, "{what}: {error:?}");
    assert!(error.message().starts_with(prefix), "{what}: {}", error.message());
    let mut head = stream_head(&call.provider, &call.subject, &call.method, &call.path);
    head.headers = call.headers;
    let error = app.stream(head, b"{}".to_vec(), 64).await.err().expect("refused");
    assert_eq!(error.code(), code, "stream {what}: {error:?}");
    assert!(error.message().starts_with(prefix), "stream {what}: {}", error.message());
}

/// The providers' own token and session endpoints, in several spellings. Passolution's API
/// base is the fake's root here, so that its token URL lies under it.
fn token_endpoints() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "pass",
            "jan",
            vec![
                "token/v1/login",
                "token/v1/refresh",
                "token/v1/passwordtoken?login_name=jan",
                "TOKEN/V1/LOGIN",
                "%74oken/v1/refresh",
                "token/",
            ],
        ),
        (
            "jouwomgeving-demo",
            "ann",
            vec!["api-token-auth/", "api-token-refresh/", "api-token-verify/", "API-Token-Auth"],
        ),
        (
            "passolution",
            "user-1",
            vec![
                "oauth/token",
                "oauth/token/",
                "OAuth/Token",
                "oauth/%74oken",
                "oauth/token/refresh",
                "oauth/authorize?client_id=demo",
                "oauth/personal-access-tokens",
            ],
        ),
    ]
}

#[tokio::test]
async fn token_endpoints_are_permission_denied_and_send_nothing() {
    let fake = start_fake().await;
    let passolution_root = fake.url(Provider::Passolution);
    let app = Broker::new()
        .with_fake(fake)
        .env("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", &passolution_root)
        .proxy(small_limits())
        .start()
        .await;
    app.seed_all().await;
    let before = app.fake().traffic().requests().len();
    for (provider, subject, paths) in token_endpoints() {
        for path in paths {
            let call = request(provider, subject, "POST", path);
            refused_both_ways(&app, call, Code::PermissionDenied, "path: reaches").await;
        }
    }
    assert_eq!(app.fake().traffic().requests().len(), before, "no token endpoint was called");
    // The same bases still serve their data endpoints.
    for (provider, subject, path) in [
        ("pass", "jan", "data/echo"),
        ("jouwomgeving-demo", "ann", "data/echo"),
        ("passolution", "user-1", "api/v2/data/echo"),
    ] {
        let response = app.call(request(provider, subject, "GET", path)).await.unwrap();
        assert_eq!(response.status, 200, "{provider} {path}");
    }
}

#[tokio::test]
async fn url_rewriting_headers_are_refused_and_send_nothing() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let (port, canary_hits) = canary().await;
    let evil = format!("127.0.0.1:{port}");
    let hostile = [
        ("x-original-url", "/passolution/oauth/token".to_owned()),
        ("X-Rewrite-URL", "/oauth/token".into()),
        ("x-original-uri", "/oauth/token".into()),
        ("x-override-url", "/oauth/token".into()),
        ("x-forwarded-host", evil.clone()),
        ("X-Forwarded-Prefix", "/../oauth".into()),
        ("x-forwarded-proto", "https".into()),
        ("x-forwarded-for", "10.0.0.1".into()),
        ("forwarded", format!("host={evil};proto=http")),
        ("x-http-method-override", "DELETE".into()),
        ("x-http-method", "DELETE".into()),
        ("x-method-override", "DELETE".into()),
        ("x-host", evil.clone()),
        ("x-original-host", evil.clone()),
        ("x-real-ip", "10.0.0.1".into()),
    ];
    for (name, value) in &hostile {
        let mut call = request("bro", "org-1", "POST", "data/echo");
        call.headers = headers(&[("x-fine", "1"), (name, value)]);
        let named = format!("headers: \"{}\"", name.to_ascii_lowercase());
        refused_both_ways(&app, call, Code::InvalidArgument, &named).await;
    }
    assert_eq!(app.fake().traffic().requests(), vec![], "nothing reached the upstream");
    assert_eq!(canary_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the canary");
}

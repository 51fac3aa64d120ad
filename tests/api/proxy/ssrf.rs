//! The SSRF boundary, tested as an attacker would: every hostile path is refused with
//! INVALID_ARGUMENT and nothing is sent — neither to the provider nor to a canary listener the
//! paths point at.

use super::support::{request, small_limits, spawn};
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
    let app = spawn(small_limits()).await;
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
    assert_eq!(app.fake.traffic().requests(), vec![], "nothing reached the upstream");
    assert_eq!(canary_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the canary");
    // A legitimate path with a query still works afterwards.
    let ok = app.call(request("bro", "org-1", "GET", "data/echo?page=2&filter=a%2Fb")).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(super::support::json(&ok.body)["query"], "page=2&filter=a%2Fb");
}

//! Header rules: what a caller may not set is refused by name (and nothing is sent);
//! everything else passes both ways, except hop-by-hop headers and cookies on the response.

use super::support::{ProxyBroker, header, headers, request, small_limits, stream_head};
use crate::harness::Broker;
use tonic::Code;

#[tokio::test]
async fn credential_destination_and_hop_by_hop_headers_are_refused_by_name() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    for name in [
        "authorization",
        "Authorization",
        "api-key",
        "API-Key",
        "host",
        "cookie",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        let mut call = request("bro", "org-1", "GET", "data/echo");
        call.headers = headers(&[("x-fine", "1"), (name, "value")]);
        let error = app.call(call).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{name}");
        let lower = name.to_ascii_lowercase();
        assert!(error.message().contains(&format!("\"{lower}\"")), "{name}: {}", error.message());
    }
    for (name, value) in
        [("x-a", "v\r\nInjected: yes"), ("x-a", "v\nw"), ("x-a", "v\0"), ("x a", "v"), ("x-a\r\n", "v"), ("", "v")]
    {
        let mut call = request("bro", "org-1", "GET", "data/echo");
        call.headers = headers(&[(name, value)]);
        assert_eq!(app.call(call).await.unwrap_err().code(), Code::InvalidArgument, "{name:?}: {value:?}");
    }
    let mut lying = request("bro", "org-1", "POST", "data/echo");
    lying.body = b"12345".to_vec().into();
    lying.headers = headers(&[("content-length", "4")]);
    assert_eq!(app.call(lying).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(app.fake().traffic().requests(), vec![], "nothing was sent");
}

#[tokio::test]
async fn other_headers_pass_both_ways_and_hop_by_hop_ones_are_stripped() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let mut call = request("bro", "org-1", "POST", "data/echo");
    call.body = b"<levering/>".to_vec().into();
    call.headers = headers(&[
        ("content-type", "application/xml"),
        ("accept", "application/xml"),
        ("x-request-id", "req-42"),
        ("X-Multi", "one"),
        ("x-multi", "two"),
        ("user-agent", "caller/1.0"),
        ("content-length", "11"),
    ]);
    let response = app.call(call).await.unwrap();
    assert_eq!(response.status, 200);
    let seen = app.data_requests().pop().unwrap();
    assert_eq!(seen.header("content-type"), Some("application/xml"));
    assert_eq!(seen.header("accept"), Some("application/xml"));
    assert_eq!(seen.header("x-request-id"), Some("req-42"));
    assert_eq!(seen.header("user-agent"), Some("caller/1.0"));
    let multi: Vec<_> = seen.headers.iter().filter(|(n, _)| n == "x-multi").map(|(_, v)| v.as_str()).collect();
    assert_eq!(multi, ["one", "two"]);
    assert!(seen.header("authorization").unwrap().starts_with("Basic "), "the broker's credential");

    assert_eq!(header(&response, "x-echo"), Some("yes"));
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let stripped =
        ["connection", "keep-alive", "proxy-authenticate", "x-hop", "transfer-encoding", "set-cookie", "set-cookie2"];
    for name in stripped {
        assert_eq!(header(&response, name), None, "{name} was passed on");
    }
    assert!(response.headers.iter().all(|h| h.name == h.name.to_ascii_lowercase()));

    // The same through the streamed call.
    let streamed = app.stream(stream_head("bro", "org-1", "POST", "data/echo"), b"<a/>".to_vec(), 2).await.unwrap();
    let names: Vec<&str> = streamed.headers.iter().map(|h| h.name.as_str()).collect();
    assert!(names.contains(&"x-echo"), "{names:?}");
    for name in stripped {
        assert!(!names.contains(&name), "{name} was passed on: {names:?}");
    }
}

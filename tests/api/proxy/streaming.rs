//! ProxyCallStream: bodies larger than the in-memory (unary) limit flow both ways in chunks.
//! The same bodies sent unary are refused: the broker does not hold them whole.

use super::support::{KIB, MIB, ProxyBroker, json, request, sha256_hex, small_limits, stream_head};
use crate::harness::Broker;
use credbroker::grpc::pb::{self, proxy_call_chunk::Part};
use credbroker::proxy::ProxySettings;
use tonic::Code;

#[tokio::test]
async fn uploads_larger_than_the_unary_limit_stream_through() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let body: Vec<u8> = (0..5 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let mut head = stream_head("bro", "org-1", "POST", "data/sink");
    head.headers = super::support::headers(&[("content-type", "application/xml")]);
    let answer = app.stream(head, body.clone(), 64 * KIB).await.unwrap();
    assert_eq!(answer.status, 200);
    let report = json(&answer.body);
    assert_eq!(report["len"], 5 * MIB);
    assert_eq!(report["sha256"], sha256_hex(&body));

    let mut unary = request("bro", "org-1", "POST", "data/sink");
    unary.body = body.into();
    assert_eq!(app.call(unary).await.unwrap_err().code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn downloads_larger_than_the_unary_limit_stream_back_in_chunks() {
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let size = 5 * MIB;
    for path in [format!("data/blob?size={size}"), format!("data/blob?size={size}&chunked")] {
        let answer = app.stream(stream_head("bro", "org-1", "GET", &path), Vec::new(), 1).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body.len(), size);
        let content_type = answer.headers.iter().find(|h| h.name == "content-type").map(|h| h.value.as_str());
        assert_eq!(content_type, Some("application/octet-stream"));
        assert_eq!(sha256_hex(&answer.body), sha256_hex(&fake_upstream::blob(size)), "{path}");
        assert!(answer.chunk_sizes.iter().all(|n| *n <= 64 * KIB), "chunks within stream_chunk_size");
        assert!(answer.chunk_sizes.len() >= size / (64 * KIB));
        let unary = app.call(request("bro", "org-1", "GET", &path)).await.unwrap_err();
        assert_eq!(unary.code(), Code::ResourceExhausted);
    }
}

#[tokio::test]
async fn streams_keep_their_own_limits_and_protocol() {
    let limits =
        ProxySettings { max_stream_request_body: MIB as u64, max_stream_response_body: MIB as u64, ..small_limits() };
    let app = Broker::new().fake().proxy(limits).start().await;
    app.seed_bro().await;
    let upload = app.stream(stream_head("bro", "org-1", "PUT", "data/sink"), vec![0; 2 * MIB], 64 * KIB).await;
    assert_eq!(upload.err().unwrap().code(), Code::ResourceExhausted);
    let download =
        app.stream(stream_head("bro", "org-1", "GET", &format!("data/blob?size={}", 2 * MIB)), vec![], 1).await;
    assert_eq!(download.err().unwrap().code(), Code::ResourceExhausted);
    let chunked = format!("data/blob?size={}&chunked", 2 * MIB);
    let download = app.stream(stream_head("bro", "org-1", "GET", &chunked), vec![], 1).await;
    assert_eq!(download.err().unwrap().code(), Code::ResourceExhausted, "refused mid-body");

    // One message past what the server accepts (the unary limit plus an envelope).
    let huge = app.stream(stream_head("bro", "org-1", "PUT", "data/sink"), vec![0; 512 * KIB], 512 * KIB).await;
    assert_eq!(huge.err().unwrap().code(), Code::ResourceExhausted);

    let body_first = vec![pb::ProxyCallChunk { part: Some(Part::Body(b"x".to_vec().into())) }];
    assert_eq!(app.stream_messages(body_first).await.err().unwrap().code(), Code::InvalidArgument);
    let head = || pb::ProxyCallChunk { part: Some(Part::Head(stream_head("bro", "org-1", "POST", "data/sink"))) };
    let two_heads = vec![head(), head()];
    assert_eq!(app.stream_messages(two_heads).await.err().unwrap().code(), Code::InvalidArgument);
    // Small bodies and upstream statuses behave as in unary calls.
    let answer =
        app.stream(stream_head("bro", "org-1", "POST", "data/echo?status=500"), b"<a/>".to_vec(), 2).await.unwrap();
    assert_eq!((answer.status, json(&answer.body)["body_len"].as_u64()), (500, Some(4)));
}

//! A streamed upload and download (100 MiB by default) through `ProxyCallStream` of the real
//! binary against nginx's header-injecting proxy with request and response buffering off —
//! nginx streaming both bodies, as credbroker does, instead of spooling them to temp files.
//!
//! Both proxies call one upstream served from this process (HTTP/1.1): the upload handler
//! reads every byte before it answers, with the count, so a transfer is timed until the last
//! byte has reached the upstream (nginx's own `return` would answer before reading the body);
//! the download streams 64 KiB chunks of one static buffer. Each transfer is timed from
//! sending the request to the last byte of the answer; the rounds alternate nginx and
//! credbroker. Clients: reqwest over cleartext HTTP/2 to nginx, tonic to credbroker (both
//! hyper's HTTP/2 with its default windows).

use crate::nginx::{Nginx, free_port};
use crate::vs_nginx::{Credbroker, USER, loadavg};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, proxy_call_chunk, proxy_call_response_chunk, put_credential_request::Secret};
use futures::StreamExt;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const CHUNK: usize = 64 * 1024;
static CHUNK_BYTES: [u8; CHUNK] = [b'x'; CHUNK];

fn chunks(total: usize) -> impl Iterator<Item = Bytes> {
    (0..total / CHUNK).map(|_| Bytes::from_static(&CHUNK_BYTES))
}

/// The upstream: `POST /api/v2/upload` answers the number of bytes it read; `GET
/// /api/v2/download` streams `total` bytes.
async fn upstream(listener: tokio::net::TcpListener, total: usize) {
    use axum::body::Body;
    use axum::routing::{get, post};
    let upload = |body: Body| async move {
        let mut stream = body.into_data_stream();
        let mut read = 0;
        while let Some(chunk) = stream.next().await {
            read += chunk.expect("the proxy sends the whole body").len();
        }
        read.to_string()
    };
    let download = move || async move {
        Body::from_stream(futures::stream::iter(chunks(total).map(Ok::<_, std::convert::Infallible>)))
    };
    let app = axum::Router::new().route("/api/v2/upload", post(upload)).route("/api/v2/download", get(download));
    axum::serve(listener, app).await.unwrap();
}

async fn nginx_upload(client: &reqwest::Client, base: &str, total: usize) {
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks(total).map(Ok::<_, std::io::Error>)));
    let response = client.post(format!("{base}upload")).body(body).send().await.expect("nginx answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), total.to_string(), "the upstream read every byte");
}

async fn nginx_download(client: &reqwest::Client, base: &str, total: usize) {
    let mut response = client.get(format!("{base}download")).send().await.expect("nginx answers");
    assert_eq!(response.status(), 200);
    let mut read = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        read += chunk.len();
    }
    assert_eq!(read, total);
}

/// One `ProxyCallStream`: the head, then `body` bytes in 64 KiB messages. The answer's body
/// size and its first bytes (the upload's count).
async fn streamed(
    client: &mut CredentialBrokerClient<Channel>,
    method: &str,
    path: &str,
    body: usize,
) -> (usize, Vec<u8>) {
    let head = pb::ProxyCallHead {
        provider: "bro".into(),
        subject: "bench-org".into(),
        method: method.into(),
        path: path.into(),
        timeout: Some(prost_types::Duration { seconds: 300, nanos: 0 }),
        ..Default::default()
    };
    let first = pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Head(head)) };
    let rest = chunks(body).map(|bytes| pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Body(bytes)) });
    let messages = futures::stream::iter(std::iter::once(first).chain(rest));
    let mut answer = client.proxy_call_stream(messages).await.expect("ProxyCallStream starts").into_inner();
    let first = answer.message().await.expect("credbroker answers").expect("a head");
    let Some(proxy_call_response_chunk::Part::Head(head)) = first.part else { panic!("the first message is the head") };
    assert_eq!(head.status, 200);
    let (mut read, mut received) = (0, Vec::new());
    while let Some(message) = answer.message().await.expect("the whole body") {
        let Some(proxy_call_response_chunk::Part::Body(bytes)) = message.part else { panic!("a second head") };
        read += bytes.len();
        if received.len() < 64 {
            received.extend_from_slice(&bytes[..bytes.len().min(64)]);
        }
    }
    (read, received)
}

async fn timed(f: impl std::future::Future<Output = ()>) -> Duration {
    let start = Instant::now();
    f.await;
    start.elapsed()
}

pub fn run(mib: usize) {
    let total = mib * 1024 * 1024 / CHUNK * CHUNK;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let upstream_port = listener.local_addr().unwrap().port();
    rt.spawn(upstream(listener, total));

    let code = "ab".repeat(32);
    let authorization = format!("Basic {}", STANDARD.encode(format!("{USER}:{code}")));
    let (nginx_port, broker_port) = (free_port(), free_port());
    let streaming = "client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;";
    let _nginx = Nginx::proxy_with(nginx_port, upstream_port, &authorization, streaming);
    let _broker = Credbroker::start(broker_port, upstream_port);

    println!("streamed {mib} MiB through ProxyCallStream vs nginx (buffering off), alternating, 2 rounds:");
    rt.block_on(async {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{broker_port}")).unwrap().connect().await.unwrap();
        let secret = Secret::BroToken(pb::BroToken { username: USER.into(), code: code.clone() });
        let put =
            pb::PutCredentialRequest { provider: "bro".into(), subject: "bench-org".into(), secret: Some(secret) };
        CredentialAdminClient::new(channel.clone()).put_credential(put).await.unwrap();
        let mut broker = CredentialBrokerClient::new(channel).max_decoding_message_size(4 * 1024 * 1024);
        let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        let base = format!("http://127.0.0.1:{nginx_port}/api/v2/");

        for direction in ["upload", "download"] {
            let (mut n, mut b) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..2 {
                n += match direction {
                    "upload" => timed(nginx_upload(&client, &base, total)).await,
                    _ => timed(nginx_download(&client, &base, total)).await,
                };
                b += match direction {
                    "upload" => {
                        timed(async {
                            let (_, count) = streamed(&mut broker, "POST", "upload", total).await;
                            assert_eq!(count, total.to_string().as_bytes(), "the upstream read every byte");
                        })
                        .await
                    }
                    _ => timed(async { assert_eq!(streamed(&mut broker, "GET", "download", 0).await.0, total) }).await,
                };
            }
            let rate = |d: Duration| 2.0 * mib as f64 / d.as_secs_f64();
            let (n_ms, b_ms) = (n.as_millis() / 2, b.as_millis() / 2);
            print!("  {direction:<8} nginx {n_ms:>6} ms ({:>6.0} MiB/s)", rate(n));
            println!("  ProxyCallStream {b_ms:>6} ms ({:>6.0} MiB/s)", rate(b));
            println!(
                "  {direction:<8} time ProxyCallStream/nginx {:.3}  (goal ≤ 1.2)  load {}",
                b.as_secs_f64() / n.as_secs_f64(),
                loadavg()
            );
        }
    });
}

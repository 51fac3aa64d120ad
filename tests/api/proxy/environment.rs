//! The environment's proxy settings (`HTTP_PROXY`, `NO_PROXY`, …) apply to ProxyCall as to
//! token calls: a provider whose base URL they send through a proxy is called through it
//! (reqwest's route), any other directly (hyper's; `src/proxy/client.rs`). Run against the
//! binary, so that the environment is the child's own.

use super::support::{BRO_CODE, BRO_USER, request};
use crate::harness::{Serve, bro_token, within};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const PROXY_VARIABLES: [&str; 8] =
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];

/// An HTTP/1.1 server on loopback that answers every request with `reply` and reports each
/// request's head (request line and headers, lowercased names untouched).
async fn answering(reply: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heads, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    // GET requests only here: the head is the whole request.
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buffer.drain(..end + 4).collect();
                        let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                        let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{reply}", reply.len());
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

/// `credbroker serve` with `api_base_url` for BRO and `proxy_env` as its only proxy settings,
/// a BRO credential stored; one ProxyCall `GET data/ping`, its response body returned.
async fn proxied_get(api_base_url: &str, proxy_env: &[(&str, String)]) -> Result<Vec<u8>, tonic::Status> {
    let serve = Serve::new()
        .env("CREDBROKER__TELEMETRY__LOG_FILTER", "warn")
        .env("CREDBROKER__PROVIDERS__BRO__API_BASE_URL", api_base_url);
    let serve = PROXY_VARIABLES.iter().fold(serve, |serve, variable| serve.env_remove(variable));
    let broker = proxy_env.iter().fold(serve, |serve, (key, value)| serve.env(key, value)).start().await;
    broker.put("bro", "org", bro_token(BRO_USER, BRO_CODE)).await.unwrap();
    let call = broker.call(request("bro", "org", "GET", "data/ping"));
    let response = within("ProxyCall", Duration::from_secs(30), call).await?;
    Ok(response.body.to_vec())
}

#[tokio::test]
async fn a_provider_the_environment_sends_through_a_proxy_is_called_through_it() {
    let (proxy, mut seen) = answering("through the proxy").await;
    // Not resolvable: a direct call could not reach it.
    let base = "http://bro-upstream.invalid/api/v2/";
    let env = [("HTTP_PROXY", format!("http://127.0.0.1:{proxy}"))];
    let body = proxied_get(base, &env).await.expect("the call goes through the proxy");
    assert_eq!(body, b"through the proxy");
    let head = seen.try_recv().expect("the proxy saw the call");
    assert!(head.starts_with("GET http://bro-upstream.invalid/api/v2/data/ping HTTP/1.1\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("\r\nauthorization: basic "), "the credential rides along: {head}");
}

#[tokio::test]
async fn a_provider_the_environment_exempts_is_called_directly() {
    let (proxy, mut proxy_seen) = answering("through the proxy").await;
    let (upstream, mut upstream_seen) = answering("direct").await;
    let base = format!("http://127.0.0.1:{upstream}/api/v2/");
    let env = [("HTTP_PROXY", format!("http://127.0.0.1:{proxy}")), ("NO_PROXY", "127.0.0.1".to_owned())];
    let body = proxied_get(&base, &env).await.expect("the call goes directly");
    assert_eq!(body, b"direct");
    let head = upstream_seen.try_recv().expect("the upstream saw the call");
    assert!(head.starts_with("GET /api/v2/data/ping HTTP/1.1\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("\r\nauthorization: basic "), "{head}");
    assert!(proxy_seen.try_recv().is_err(), "the proxy saw nothing");
}

//! What the proxy tests share: small limits, requests and their parts, the streamed call,
//! and credentials seeded at the fake upstream and the broker.

use crate::harness::{TestBroker, bro_token, issue_tokens, login};
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, proxy_call_chunk, proxy_call_response_chunk};
use credbroker::proxy::ProxySettings;
use fake_upstream::SeenRequest;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

pub const BRO_USER: &str = "0dce6fc98256|123456789|1234";
pub const BRO_CODE: &str = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f";
pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// Small limits, so tests can cross them cheaply.
pub fn small_limits() -> ProxySettings {
    ProxySettings { max_request_body: 64 * KIB as u64, max_response_body: 64 * KIB as u64, ..ProxySettings::default() }
}

/// A request for `provider`/`subject` with no headers, body or timeout.
pub fn request(provider: &str, subject: &str, method: &str, path: &str) -> pb::ProxyCallRequest {
    pb::ProxyCallRequest {
        provider: provider.into(),
        subject: subject.into(),
        method: method.into(),
        path: path.into(),
        ..Default::default()
    }
}

pub fn headers(pairs: &[(&str, &str)]) -> Vec<pb::Header> {
    pairs.iter().map(|(n, v)| pb::Header { name: (*n).into(), value: (*v).into() }).collect()
}

pub fn header<'a>(response: &'a pb::ProxyCallResponse, name: &str) -> Option<&'a str> {
    response.headers.iter().find(|h| h.name == name).map(|h| h.value.as_str())
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn millis(ms: u64) -> Option<prost_types::Duration> {
    let d = Duration::from_millis(ms);
    Some(prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 })
}

/// The streamed answer: status, headers, body, and the size of each body message.
pub struct Streamed {
    pub status: u32,
    pub headers: Vec<pb::Header>,
    pub body: Vec<u8>,
    pub chunk_sizes: Vec<usize>,
}

/// The proxy tests' calls and credentials, on a broker wired to the fake upstream.
pub trait ProxyBroker {
    async fn seed_bro(&self);
    /// One working credential per provider, as `(provider, subject)`.
    async fn seed_all(&self) -> Vec<(&'static str, &'static str)>;
    /// Requests that reached the fake on a data endpoint.
    fn data_requests(&self) -> Vec<SeenRequest>;
    /// A streamed call: `head`, then `body` in messages of `chunk` bytes.
    async fn stream(&self, head: pb::ProxyCallHead, body: Vec<u8>, chunk: usize) -> Result<Streamed, tonic::Status>;
    async fn stream_messages(&self, messages: Vec<pb::ProxyCallChunk>) -> Result<Streamed, tonic::Status>;
}

impl ProxyBroker for TestBroker {
    async fn seed_bro(&self) {
        self.fake().add_bro_token(BRO_USER, BRO_CODE);
        self.put("bro", "org-1", bro_token(BRO_USER, BRO_CODE)).await.expect("credential stored");
    }

    async fn seed_all(&self) -> Vec<(&'static str, &'static str)> {
        self.seed_bro().await;
        self.fake().add_pass_user("jan", "pw-jan", true);
        self.put("pass", "jan", login("jan", "pw-jan")).await.expect("credential stored");
        let (_, _, tokens) = issue_tokens(self.fake(), Duration::from_secs(3600));
        self.put("passolution", "user-1", tokens).await.expect("credential stored");
        self.fake().add_jouwomgeving_user("ann", "pw-ann");
        self.put("jouwomgeving-demo", "ann", login("ann", "pw-ann")).await.expect("credential stored");
        vec![("pass", "jan"), ("bro", "org-1"), ("passolution", "user-1"), ("jouwomgeving-demo", "ann")]
    }

    fn data_requests(&self) -> Vec<SeenRequest> {
        self.fake().traffic().requests().into_iter().filter(|r| r.uri.contains("/data/")).collect()
    }

    async fn stream(&self, head: pb::ProxyCallHead, body: Vec<u8>, chunk: usize) -> Result<Streamed, tonic::Status> {
        let mut messages = vec![pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Head(head)) }];
        messages.extend(body.chunks(chunk).map(|c| pb::ProxyCallChunk {
            part: Some(proxy_call_chunk::Part::Body(bytes::Bytes::copy_from_slice(c))),
        }));
        self.stream_messages(messages).await
    }

    async fn stream_messages(&self, messages: Vec<pb::ProxyCallChunk>) -> Result<Streamed, tonic::Status> {
        read_streamed(self.broker.clone(), tokio_stream::iter(messages)).await
    }
}

/// A streamed call whose request side stays open after `messages` (it never ends), read
/// through `client`: a caller that goes quiet.
pub async fn stream_held_open(
    client: CredentialBrokerClient<Channel>,
    messages: Vec<pb::ProxyCallChunk>,
) -> Result<Streamed, tonic::Status> {
    let (sender, receiver) = mpsc::channel(messages.len().max(1));
    for message in messages {
        sender.send(message).await.expect("the receiver is here");
    }
    let answer = read_streamed(client, ReceiverStream::new(receiver)).await;
    drop(sender);
    answer
}

/// Sends `messages` as a streamed call and reads the whole answer.
async fn read_streamed(
    mut client: CredentialBrokerClient<Channel>,
    messages: impl tokio_stream::Stream<Item = pb::ProxyCallChunk> + Send + 'static,
) -> Result<Streamed, tonic::Status> {
    let mut answer = client.proxy_call_stream(messages).await?.into_inner();
    let Some(pb::ProxyCallResponseChunk { part: Some(proxy_call_response_chunk::Part::Head(head)) }) =
        answer.message().await?
    else {
        panic!("the first response message must carry the head");
    };
    let mut streamed =
        Streamed { status: head.status, headers: head.headers, body: Vec::new(), chunk_sizes: Vec::new() };
    while let Some(message) = answer.message().await? {
        let Some(proxy_call_response_chunk::Part::Body(bytes)) = message.part else { panic!("a second head") };
        streamed.chunk_sizes.push(bytes.len());
        streamed.body.extend_from_slice(&bytes);
    }
    Ok(streamed)
}

/// The head message of a streamed call.
pub fn head_message(head: pb::ProxyCallHead) -> pb::ProxyCallChunk {
    pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Head(head)) }
}

pub fn stream_head(provider: &str, subject: &str, method: &str, path: &str) -> pb::ProxyCallHead {
    pb::ProxyCallHead {
        provider: provider.into(),
        subject: subject.into(),
        method: method.into(),
        path: path.into(),
        ..Default::default()
    }
}

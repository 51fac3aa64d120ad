//! A broker serving the proxy with chosen limits, wired to an in-process fake upstream, and
//! the calls the proxy tests make.
//!
//! The app is built by `Application::build` like every other test's, but its gRPC routes are
//! served here with explicit `ProxySettings`, so a test can set small limits.

use crate::helpers::{StoreKind, TEST_KEY, TestRedis, bro_token, random_prefix, settings};
use crate::upstream::{issue_tokens, login};
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{
    self, proxy_call_chunk, proxy_call_response_chunk, put_credential_request::Secret as PutSecret,
};
use credbroker::proxy::ProxySettings;
use credbroker::startup::Application;
use fake_upstream::{FakeUpstream, Provider, SeenRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Server};

pub const BRO_USER: &str = "0dce6fc98256|123456789|1234";
pub const BRO_CODE: &str = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f";
pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

pub struct ProxyApp {
    pub addr: SocketAddr,
    pub fake: FakeUpstream,
    pub broker: CredentialBrokerClient<Channel>,
    pub admin: CredentialAdminClient<Channel>,
    _app: Application,
    _stop: oneshot::Sender<()>,
    _redis: Option<TestRedis>,
}

/// Small limits, so tests can cross them cheaply.
pub fn small_limits() -> ProxySettings {
    ProxySettings { max_request_body: 64 * KIB as u64, max_response_body: 64 * KIB as u64, ..ProxySettings::default() }
}

pub async fn spawn(proxy: ProxySettings) -> ProxyApp {
    spawn_with(proxy, &[]).await
}

/// With the in-memory store or a fresh Redis.
pub async fn spawn_on(store: StoreKind, proxy: ProxySettings) -> ProxyApp {
    let StoreKind::Redis = store else { return spawn(proxy).await };
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let env = [
        ("CREDBROKER__STORE__REDIS_URL", redis.url.as_str()),
        ("CREDBROKER__STORE__KEY_PREFIX", prefix.as_str()),
        ("CREDBROKER__ENCRYPTION__KEY", TEST_KEY),
    ];
    let mut app = spawn_with(proxy, &env).await;
    app._redis = Some(redis);
    app
}

/// `extra`: more `CREDBROKER__…` overrides (they win over the fake's URLs).
pub async fn spawn_with(proxy: ProxySettings, extra: &[(&str, &str)]) -> ProxyApp {
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spawn_configured(proxy, |_| extra).await
}

/// Like [`spawn_with`], with overrides that may use the fake's URLs.
pub async fn spawn_configured(
    proxy: ProxySettings,
    extra: impl FnOnce(&FakeUpstream) -> Vec<(String, String)>,
) -> ProxyApp {
    let fake = crate::upstream::fake_with_client().await;
    let urls = [
        ("CREDBROKER__PROVIDERS__PASS__API_BASE_URL", fake.url(Provider::Pass)),
        ("CREDBROKER__PROVIDERS__BRO__API_BASE_URL", format!("{}api/v2/", fake.url(Provider::Bro))),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", format!("{}api/v2/", fake.url(Provider::Passolution))),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", format!("{}oauth/token", fake.url(Provider::Passolution))),
        ("CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__API_BASE_URL", format!("{}api/", fake.url(Provider::JouwOmgeving))),
    ];
    let extra = extra(&fake);
    let mut env: Vec<(&str, &str)> = urls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The renewal tests reject a header right after it was obtained, and more than once.
    env.extend([("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s"), ("CREDBROKER__REFRESH__REJECTED_INTERVAL", "0s")]);
    env.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let app = Application::build(settings(&env)).await.expect("application builds");
    let routes = credbroker::grpc::routes_with_proxy(app.broker(), proxy).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = Server::builder().add_routes(routes).serve_with_incoming_shutdown(incoming, async {
        let _ = stopped.await;
    });
    tokio::spawn(server);
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connects");
    let broker = CredentialBrokerClient::new(channel.clone()).max_decoding_message_size(64 * MIB);
    let admin = CredentialAdminClient::new(channel);
    ProxyApp { addr, fake, broker, admin, _app: app, _stop: stop, _redis: None }
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

impl ProxyApp {
    pub async fn call(&self, request: pb::ProxyCallRequest) -> Result<pb::ProxyCallResponse, tonic::Status> {
        self.broker.clone().proxy_call(request).await.map(|r| r.into_inner())
    }

    pub async fn put(&self, provider: &str, subject: &str, secret: PutSecret) {
        let request =
            pb::PutCredentialRequest { provider: provider.into(), subject: subject.into(), secret: Some(secret) };
        self.admin.clone().put_credential(request).await.expect("credential stored");
    }

    pub async fn status(&self, provider: &str, subject: &str) -> pb::CredentialStatus {
        let reference = pb::CredentialRef { provider: provider.into(), subject: subject.into() };
        self.admin.clone().get_credential_status(reference).await.unwrap().into_inner()
    }

    pub async fn seed_bro(&self) {
        self.fake.add_bro_token(BRO_USER, BRO_CODE);
        self.put("bro", "org-1", bro_token(BRO_USER, BRO_CODE)).await;
    }

    /// One working credential per provider, as `(provider, subject)`.
    pub async fn seed_all(&self) -> Vec<(&'static str, &'static str)> {
        self.seed_bro().await;
        self.fake.add_pass_user("jan", "pw-jan", true);
        self.put("pass", "jan", login("jan", "pw-jan")).await;
        let (_, _, tokens) = issue_tokens(&self.fake, Duration::from_secs(3600));
        self.put("passolution", "user-1", tokens).await;
        self.fake.add_jouwomgeving_user("ann", "pw-ann");
        self.put("jouwomgeving-demo", "ann", login("ann", "pw-ann")).await;
        vec![("pass", "jan"), ("bro", "org-1"), ("passolution", "user-1"), ("jouwomgeving-demo", "ann")]
    }

    /// Requests that reached the fake on a data endpoint.
    pub fn data_requests(&self) -> Vec<SeenRequest> {
        self.fake.traffic().requests().into_iter().filter(|r| r.uri.contains("/data/")).collect()
    }

    /// A streamed call: `head`, then `body` in messages of `chunk` bytes.
    pub async fn stream(
        &self,
        head: pb::ProxyCallHead,
        body: Vec<u8>,
        chunk: usize,
    ) -> Result<Streamed, tonic::Status> {
        let mut messages = vec![pb::ProxyCallChunk { part: Some(proxy_call_chunk::Part::Head(head)) }];
        messages.extend(body.chunks(chunk).map(|c| pb::ProxyCallChunk {
            part: Some(proxy_call_chunk::Part::Body(bytes::Bytes::copy_from_slice(c))),
        }));
        self.stream_messages(messages).await
    }

    pub async fn stream_messages(&self, messages: Vec<pb::ProxyCallChunk>) -> Result<Streamed, tonic::Status> {
        read_streamed(self.broker.clone(), tokio_stream::iter(messages)).await
    }

    /// Another connection to the broker.
    pub async fn connect(&self) -> CredentialBrokerClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.expect("connects");
        CredentialBrokerClient::new(channel)
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

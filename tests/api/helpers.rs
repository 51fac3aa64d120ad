//! `spawn_app()` and friends: each test gets its own server on a random port and, with
//! Redis, its own key prefix.

use credbroker::config::Settings;
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use credbroker::startup::Application;
use std::net::SocketAddr;
use testcontainers_modules::redis::{REDIS_PORT, Redis};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The local image built by `scripts/redis-image.sh` (no registry is reachable).
pub const REDIS_IMAGE: (&str, &str) = ("credbroker-redis", "7");
/// A fixed test key (32 bytes of 0x07, base64).
pub const TEST_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

#[derive(Clone, Copy, Debug)]
pub enum StoreKind {
    Memory,
    Redis,
}

/// A Redis for one test: a fresh container, or the server `REDIS_URL` names.
pub struct TestRedis {
    pub url: String,
    pub container: Option<ContainerAsync<Redis>>,
}

impl TestRedis {
    pub async fn start() -> Self {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Self { url, container: None };
        }
        let container = Redis::default().with_name(REDIS_IMAGE.0).with_tag(REDIS_IMAGE.1).start().await.unwrap_or_else(|e| {
            panic!(
                "the Redis tests need a Docker engine with the local image {}:{} (built by scripts/redis-image.sh), \
                 or REDIS_URL pointing at a Redis 7 server: {e}",
                REDIS_IMAGE.0, REDIS_IMAGE.1
            )
        });
        let port = container.get_host_port_ipv4(REDIS_PORT).await.expect("redis port is published");
        Self { url: format!("redis://127.0.0.1:{port}"), container: Some(container) }
    }

    /// A plain connection for the test itself, without a response timeout (tests stall Redis
    /// on purpose).
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let client = redis::Client::open(self.url.as_str()).unwrap();
        client.get_multiplexed_async_connection_with_config(&config).await.unwrap()
    }
}

pub struct TestApp {
    #[allow(dead_code)] // handy when debugging a test
    pub addr: SocketAddr,
    pub broker: CredentialBrokerClient<Channel>,
    pub admin: CredentialAdminClient<Channel>,
    pub channel: Channel,
    pub redis: Option<TestRedis>,
    pub key_prefix: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn random_prefix() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

/// Settings from the embedded default plus `CREDBROKER__…` overrides, on a random port.
pub fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut env = vec![("CREDBROKER__SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load(None, env).expect("test settings are valid")
}

pub async fn spawn_app(store: StoreKind) -> TestApp {
    spawn_app_with(store, &[]).await
}

pub async fn spawn_app_with(store: StoreKind, extra: &[(&str, &str)]) -> TestApp {
    let redis = match store {
        StoreKind::Memory => None,
        StoreKind::Redis => Some(TestRedis::start().await),
    };
    let prefix = random_prefix();
    let mut env: Vec<(&str, &str)> = extra.to_vec();
    if let Some(redis) = &redis {
        env.extend([
            ("CREDBROKER__STORE__REDIS_URL", redis.url.as_str()),
            ("CREDBROKER__STORE__KEY_PREFIX", prefix.as_str()),
            ("CREDBROKER__ENCRYPTION__KEY", TEST_KEY),
        ]);
    }
    let mut app = spawn_with_settings(settings(&env)).await;
    app.redis = redis;
    app.key_prefix = prefix;
    app
}

pub async fn spawn_with_settings(settings: Settings) -> TestApp {
    let application = Application::build(settings).await.expect("application builds");
    let addr = application.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connects");
    TestApp {
        addr,
        broker: CredentialBrokerClient::new(channel.clone()),
        admin: CredentialAdminClient::new(channel.clone()),
        channel,
        redis: None,
        key_prefix: String::new(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// Signals shutdown; the server task then finishes in-flight RPCs and returns.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn put(
        &self,
        provider: &str,
        subject: &str,
        secret: PutSecret,
    ) -> Result<pb::CredentialStatus, tonic::Status> {
        let request =
            pb::PutCredentialRequest { provider: provider.into(), subject: subject.into(), secret: Some(secret) };
        self.admin.clone().put_credential(request).await.map(|r| r.into_inner())
    }

    pub async fn get(&self, provider: &str, subject: &str) -> Result<pb::GetAuthorizationResponse, tonic::Status> {
        self.get_valid_for(provider, subject, None).await
    }

    pub async fn get_valid_for(
        &self,
        provider: &str,
        subject: &str,
        min_validity: Option<prost_types::Duration>,
    ) -> Result<pb::GetAuthorizationResponse, tonic::Status> {
        let request = pb::GetAuthorizationRequest { provider: provider.into(), subject: subject.into(), min_validity };
        self.broker.clone().get_authorization(request).await.map(|r| r.into_inner())
    }

    pub async fn status(&self, provider: &str, subject: &str) -> Result<pb::CredentialStatus, tonic::Status> {
        let reference = pb::CredentialRef { provider: provider.into(), subject: subject.into() };
        self.admin.clone().get_credential_status(reference).await.map(|r| r.into_inner())
    }

    pub async fn delete(&self, provider: &str, subject: &str) -> Result<(), tonic::Status> {
        let reference = pb::CredentialRef { provider: provider.into(), subject: subject.into() };
        self.admin.clone().delete_credential(reference).await.map(|_| ())
    }

    pub async fn list(
        &self,
        provider: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<pb::ListCredentialsResponse, tonic::Status> {
        let request =
            pb::ListCredentialsRequest { provider: provider.into(), page_size, page_token: page_token.into() };
        self.admin.clone().list_credentials(request).await.map(|r| r.into_inner())
    }
}

pub fn bro_token(username: &str, code: &str) -> PutSecret {
    PutSecret::BroToken(pb::BroToken { username: username.into(), code: code.into() })
}

/// A valid BRO token code (64 hex characters), distinct per `label`.
pub fn bro_code(label: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(label.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The single header a response carries, as (name, value).
pub fn only_header(response: &pb::GetAuthorizationResponse) -> (&str, &str) {
    assert_eq!(response.headers.len(), 1, "{:?}", response.headers.iter().map(|h| &h.name).collect::<Vec<_>>());
    (response.headers[0].name.as_str(), response.headers[0].value.as_str())
}

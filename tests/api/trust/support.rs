//! The real binary with a TLS configuration written to a temporary directory, and tonic
//! clients with or without client certificates.

use super::pki::{Ca, Leaf};
use crate::helpers::{bro_code, bro_token};
use crate::shutdown::{free_port, wait_for_port};
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, GetAuthorizationRequest};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub const BILLING: &str = "spiffe://example.org/ns/billing/sa/api";
pub const SALES: &str = "spiffe://example.org/ns/sales/sa/api";
pub const WRITER: &str = "spiffe://example.org/ns/onboarding/sa/writer";
pub const OPERATOR: &str = "spiffe://example.org/ns/ops/sa/operator";
pub const BRO_USER: &str = "0dce6fc98256|123456789|1234";

/// Rules used by several tests: billing reads its tenant, the onboarding writer manages
/// credentials, an operator reads the status of one tenant's, batch jobs are rate-limited.
pub const POLICY: &str = r#"
[[policy]]
callers = ["spiffe://example.org/ns/billing/*"]
rpcs = ["*"]
providers = ["bro"]
subjects = ["tenant-42/*", ""]

[[policy]]
callers = ["spiffe://example.org/ns/onboarding/sa/writer"]
rpcs = ["PutCredential", "GetCredentialStatus", "ListCredentials"]
providers = ["*"]
subjects = ["*"]

[[policy]]
callers = ["spiffe://example.org/ns/ops/sa/operator"]
rpcs = ["GetCredentialStatus", "ListCredentials"]
providers = ["bro"]
subjects = ["tenant-42/*"]

[[policy]]
callers = ["spiffe://example.org/ns/batch/*"]
rpcs = ["GetAuthorization"]
providers = ["bro"]
subjects = ["*"]
rate_per_second = 1
burst = 2
"#;

/// A running `credbroker serve --config …`; killed on drop.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Broker {
    /// Writes `ca` (client CA), the server certificate and `config` (everything after the
    /// `[server]` table's `listen`) and starts the binary. `{dir}` in `config` is replaced by
    /// the temporary directory.
    pub async fn start(server: &Leaf, client_ca: Option<&Ca>, config: &str) -> Self {
        Self::start_with(server, client_ca, "", config).await
    }

    /// [`Broker::start`] with more keys in `[server]`.
    pub async fn start_with(server: &Leaf, client_ca: Option<&Ca>, server_keys: &str, config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(path("server.pem"), &server.cert).unwrap();
        std::fs::write(path("server.key"), &server.key).unwrap();
        let mut tls = format!(
            "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\nreload_interval = \"200ms\"\nhandshake_timeout = \"2s\"\n",
            path("server.pem"),
            path("server.key")
        );
        if let Some(ca) = client_ca {
            std::fs::write(path("client-ca.pem"), ca.pem()).unwrap();
            tls.push_str(&format!("client_ca_file = {:?}\n", path("client-ca.pem")));
        }
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{server_keys}\n{tls}\n{config}\n\
             [[providers]]\nname = \"bro\"\nkind = \"bro\"\napi_base_url = \"http://127.0.0.1:9/bro/api/v2/\"\n"
        );
        std::fs::write(path("credbroker.toml"), text).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
            .args(["serve", "--config", &path("credbroker.toml")])
            .env("RUST_LOG", "debug")
            .stdout(std::fs::File::create(path("stdout.log")).unwrap())
            .stderr(std::fs::File::create(path("stderr.log")).unwrap())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the credbroker binary runs");
        wait_for_port(port).await;
        Self { port, dir, _child: child }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Everything the broker logged, and its audit log if any.
    pub fn logs(&self) -> String {
        let read = |name| std::fs::read_to_string(self.path(name)).unwrap_or_default();
        [read("stdout.log"), read("stderr.log"), read("audit.jsonl")].concat()
    }

    /// The audit log's events once `complete` holds for them, or as they are after 10 s.
    /// Only a credential hand-out under `fail_closed` waits for its line; every other line
    /// (refusals, failures) reaches the file a moment after the answer.
    pub async fn audit_when(&self, complete: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let events = self.audit();
            if complete(&events) || std::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The audit log's events: its complete lines (one may be being written).
    fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.path("audit.jsonl")).unwrap_or_default();
        let lines = text.split_inclusive('\n').filter(|line| line.ends_with('\n'));
        lines.map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect()
    }

    pub async fn channel(&self, ca: &Ca, client: Option<&Leaf>) -> Result<Channel, tonic::transport::Error> {
        self.channel_to(self.port, ca, client).await
    }

    /// A TLS channel to `port` on 127.0.0.1, trusting `ca`, presenting `client` if given.
    pub async fn channel_to(
        &self,
        port: u16,
        ca: &Ca,
        client: Option<&Leaf>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem())).domain_name("localhost");
        if let Some(leaf) = client {
            tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
        }
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}")).unwrap();
        endpoint.tls_config(tls)?.connect_timeout(Duration::from_secs(5)).connect().await
    }
}

/// GetAuthorization through `channel`.
pub async fn get(
    channel: &Channel,
    provider: &str,
    subject: &str,
) -> Result<pb::GetAuthorizationResponse, tonic::Status> {
    let request = GetAuthorizationRequest { provider: provider.into(), subject: subject.into(), min_validity: None };
    CredentialBrokerClient::new(channel.clone()).get_authorization(request).await.map(|r| r.into_inner())
}

/// Stores a BRO token for `subject` through `channel`; returns its secret code.
pub async fn put_bro(channel: &Channel, subject: &str) -> Result<String, tonic::Status> {
    let code = bro_code(subject);
    let request = pb::PutCredentialRequest {
        provider: "bro".into(),
        subject: subject.into(),
        secret: Some(bro_token(BRO_USER, &code)),
    };
    CredentialAdminClient::new(channel.clone()).put_credential(request).await.map(|_| code)
}

/// Whether a connection through `channel` reaches the broker's handlers: a refused handshake
/// shows at connect, or (TLS 1.3 checks client certificates after the client's side finished)
/// as a transport error at the first call. A status the handlers give means it got through.
pub async fn can_call(channel: Result<Channel, tonic::transport::Error>) -> bool {
    let Ok(channel) = channel else { return false };
    match get(&channel, "bro", "nobody").await {
        Ok(_) => true,
        Err(status) => matches!(status.code(), tonic::Code::NotFound | tonic::Code::PermissionDenied),
    }
}

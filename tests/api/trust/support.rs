//! What the trust tests share: callers and their rules, the binary with TLS, the audit log,
//! and calls through a TLS channel.

use crate::harness::{Ca, Clients, Leaf, Process, Serve, bro_code, bro_token, eventually};
use std::time::Duration;
use tonic::transport::Channel;

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

/// The configuration the trust tests add theirs to: a BRO instance whose API is unreachable
/// (port 9), so nothing here ever calls upstream.
pub const BRO_INSTANCE: &str =
    "[[providers]]\nname = \"bro\"\nkind = \"bro\"\napi_base_url = \"http://127.0.0.1:9/bro/api/v2/\"\n";

/// The binary with TLS from `server`, client certificates from `client_ca` required if given,
/// `config` (with `{dir}` for its directory) and the BRO instance; logging at debug to files.
pub fn tls_broker(server: &Leaf, client_ca: Option<&Ca>, config: &str) -> Serve {
    Serve::new()
        .tls(server, client_ca)
        .config(&format!("{config}\n{BRO_INSTANCE}"))
        .env("RUST_LOG", "debug")
        .log_to_files()
}

/// The audit log's events once `complete` holds for them (at most 10 s). Only a credential
/// hand-out under `fail_closed` waits for its line; every other line (refusals, failures)
/// reaches the file a moment after the answer.
pub async fn audit_when(broker: &Process, complete: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let written = || async {
        let events = audit(broker);
        if complete(&events) { Ok(events) } else { Err(events) }
    };
    eventually("the audit log has the expected events", Duration::from_secs(10), written).await
}

/// The audit log's events: its complete lines (one may be being written).
fn audit(broker: &Process) -> Vec<serde_json::Value> {
    let text = broker.read("audit.jsonl");
    let lines = text.split_inclusive('\n').filter(|line| line.ends_with('\n'));
    lines.map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect()
}

/// Stores a BRO token for `subject`; returns its secret code.
pub async fn put_bro(clients: &Clients, subject: &str) -> Result<String, tonic::Status> {
    let code = bro_code(subject);
    clients.put("bro", subject, bro_token(BRO_USER, &code)).await.map(|_| code)
}

/// Clients over a TLS channel that connected.
pub fn clients(channel: Result<Channel, tonic::transport::Error>) -> Clients {
    Clients::over(channel.expect("the TLS connection is accepted"))
}

/// Whether a connection through `channel` reaches the broker's handlers: a refused handshake
/// shows at connect, or (TLS 1.3 checks client certificates after the client's side finished)
/// as a transport error at the first call. A status the handlers give means it got through.
pub async fn can_call(channel: Result<Channel, tonic::transport::Error>) -> bool {
    let Ok(channel) = channel else { return false };
    match Clients::over(channel).get("bro", "nobody").await {
        Ok(_) => true,
        Err(status) => matches!(status.code(), tonic::Code::NotFound | tonic::Code::PermissionDenied),
    }
}

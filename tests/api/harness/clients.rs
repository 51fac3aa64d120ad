//! The two gRPC clients over one channel, with the calls tests make (each returns the RPC's
//! result, so a test can assert on a refusal), and small helpers to build requests.

use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use std::collections::HashSet;
use tonic::transport::Channel;

/// Large enough for the proxy's streamed and unary answers (tonic's default is 4 MiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// `CredentialBroker` and `CredentialAdmin` over one channel.
#[derive(Clone)]
pub struct Clients {
    pub channel: Channel,
    pub broker: CredentialBrokerClient<Channel>,
    pub admin: CredentialAdminClient<Channel>,
}

impl Clients {
    /// Clients over `channel` (plaintext or TLS, connected or lazy).
    pub fn over(channel: Channel) -> Self {
        Self {
            broker: CredentialBrokerClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            admin: CredentialAdminClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            channel,
        }
    }

    /// Plaintext clients of the broker at `addr` (`host:port`), connected at the first call.
    pub fn lazy(addr: impl std::fmt::Display) -> Self {
        Self::over(Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy())
    }

    /// Plaintext clients on a connection of their own, connected now.
    pub async fn connect(addr: impl std::fmt::Display) -> Self {
        let endpoint = Channel::from_shared(format!("http://{addr}")).unwrap();
        Self::over(endpoint.connect().await.unwrap_or_else(|e| panic!("connecting to {addr}: {e}")))
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

    /// ReportRejected for the header whose fingerprint is `fingerprint`.
    pub async fn report(&self, provider: &str, subject: &str, fingerprint: &str) -> Result<(), tonic::Status> {
        let request = pb::ReportRejectedRequest {
            provider: provider.into(),
            subject: subject.into(),
            token_fingerprint: fingerprint.into(),
        };
        self.broker.clone().report_rejected(request).await.map(|_| ())
    }

    /// A unary ProxyCall.
    pub async fn call(&self, request: pb::ProxyCallRequest) -> Result<pb::ProxyCallResponse, tonic::Status> {
        self.broker.clone().proxy_call(request).await.map(|r| r.into_inner())
    }

    /// `n` concurrent GetAuthorization calls asking 5 s of validity; the distinct header
    /// values they got (every caller must be served).
    pub async fn herd(&self, provider: &str, subject: &str, n: usize) -> HashSet<String> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let mut client = self.broker.clone();
                let request = get_request(provider, subject, secs(5));
                tokio::spawn(async move { client.get_authorization(request).await })
            })
            .collect();
        let mut values = HashSet::new();
        for task in tasks {
            let response = task.await.unwrap().expect("every caller is served").into_inner();
            values.insert(response.headers[0].value.clone());
        }
        values
    }
}

fn get_request(
    provider: &str,
    subject: &str,
    min_validity: Option<prost_types::Duration>,
) -> pb::GetAuthorizationRequest {
    pb::GetAuthorizationRequest { provider: provider.into(), subject: subject.into(), min_validity }
}

pub fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: s, nanos: 0 })
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

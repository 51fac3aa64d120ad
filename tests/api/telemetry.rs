//! Traces over OTLP to an in-test collector, JSON logs, and no secret in either — checked on
//! the real binary, configured only through the standard environment variables.

use crate::shutdown::{free_port, wait_for_port};
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::wrappers::TcpListenerStream;

// A valid BRO token code (64 hex characters), distinctive enough to grep for.
const SECRET: &str = "07e15ec7e7c0de7f3a07e15ec7e7c0de7f3a07e15ec7e7c0de7f3a07e15ec7e7";

#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test]
async fn spans_reach_an_otlp_collector_and_logs_are_json_without_secrets() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder().add_service(TraceServiceServer::new(collector.clone()));
    tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));

    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__TELEMETRY__LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;

    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let mut admin = pb::credential_admin_client::CredentialAdminClient::new(channel.clone());
    let mut broker = pb::credential_broker_client::CredentialBrokerClient::new(channel);
    let secret = PutSecret::BroToken(pb::BroToken { username: "u|1".into(), code: SECRET.into() });
    admin
        .put_credential(pb::PutCredentialRequest {
            provider: "bro".into(),
            subject: "org".into(),
            secret: Some(secret),
        })
        .await
        .unwrap();
    let request = pb::GetAuthorizationRequest { provider: "bro".into(), subject: "org".into(), min_validity: None };
    broker.get_authorization(request).await.unwrap();
    let bad = pb::PutCredentialRequest {
        provider: "pass".into(),
        subject: "org".into(),
        secret: Some(PutSecret::ClientNumber(format!("{SECRET}\n"))),
    };
    assert!(admin.put_credential(bad).await.is_err());

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();
    assert!(output.status.success());

    let exported = format!("{:?}", collector.received.lock().unwrap());
    for name in [
        "credbroker.v1.CredentialBroker/GetAuthorization",
        "credbroker.v1.CredentialAdmin/PutCredential",
        "store.put",
        "store.get",
    ] {
        assert!(exported.contains(&format!("name: \"{name}\"")), "span {name} not exported");
    }
    assert!(exported.contains("credbroker"), "service name is set");
    assert!(!exported.contains(SECRET), "a secret reached the traces");

    let logs = String::from_utf8(output.stderr).unwrap();
    assert!(logs.lines().count() >= 3, "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(logs.contains("credential stored"));
    assert!(!logs.contains(SECRET), "a secret reached the logs:\n{logs}");
}

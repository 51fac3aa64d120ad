//! Traces over OTLP to an in-test collector, JSON logs, and no secret in either — checked on
//! the real binary, configured only through the standard environment variables.

use crate::shutdown::{free_port, wait_for_port};
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
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

impl Collector {
    /// An OTLP trace collector on loopback.
    async fn start() -> (Self, std::net::SocketAddr) {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder().add_service(TraceServiceServer::new(collector.clone()));
        tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
        (collector, addr)
    }
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
    let (collector, collector_addr) = Collector::start().await;

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

    let (mut admin, mut broker) = clients(port).await;
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

/// The binary on `port` exporting traces to the collector at `collector`, its Passolution
/// provider on the fake at `passolution`, forced renewals allowed at once.
fn traced_broker(port: u16, passolution: &str, collector: std::net::SocketAddr) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"));
    command
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s")
        .env("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", format!("{passolution}api/v2/"))
        .env("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", format!("{passolution}oauth/token"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// caller → broker → token endpoint as one trace: a caller's `ReportRejected` (its
/// `traceparent` in the metadata) makes the broker rotate a Passolution token. The RPC's server
/// span is the caller span's child; the rotation descends from it; the token endpoint receives
/// a `traceparent` of the same trace whose parent is one of the broker's exported spans.
#[tokio::test]
async fn the_callers_trace_is_the_parent_of_the_rpc_the_renewal_and_the_token_call() {
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let (collector, collector_addr) = Collector::start().await;
    let fake = crate::upstream::fake_with_client().await;
    let passolution = fake.url(fake_upstream::Provider::Passolution);

    let port = free_port();
    let child = traced_broker(port, &passolution, collector_addr).spawn().unwrap();
    wait_for_port(port).await;
    let (mut admin, mut broker) = clients(port).await;
    let (_, _, tokens) = crate::upstream::issue_tokens(&fake, Duration::from_secs(3600));
    let put =
        pb::PutCredentialRequest { provider: "passolution".into(), subject: "traced".into(), secret: Some(tokens) };
    admin.put_credential(put).await.unwrap();
    let get =
        pb::GetAuthorizationRequest { provider: "passolution".into(), subject: "traced".into(), min_validity: None };
    let fingerprint = broker.get_authorization(get).await.unwrap().into_inner().token_fingerprint;
    fake.traffic().clear();
    let report = pb::ReportRejectedRequest {
        provider: "passolution".into(),
        subject: "traced".into(),
        token_fingerprint: fingerprint,
    };
    let mut report = tonic::Request::new(report);
    report.metadata_mut().insert("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap());
    broker.report_rejected(report).await.unwrap();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();

    let spans = exported_spans(&collector);
    let traced: Vec<&Exported> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let server = traced
        .iter()
        .find(|s| s.parent == CALLER_SPAN)
        .unwrap_or_else(|| panic!("no span is the caller span's child: {traced:#?}"));
    assert_eq!(server.name, "credbroker.v1.CredentialBroker/ReportRejected", "{traced:#?}");
    let rotation = traced.iter().find(|s| s.name == "rotation").unwrap_or_else(|| panic!("no rotation in {traced:#?}"));
    assert!(descends(rotation, &server.span_id, &traced), "the rotation descends from the RPC: {traced:#?}");

    let token_calls: Vec<_> = fake.traffic().requests().into_iter().filter(|r| r.uri.contains("oauth/token")).collect();
    assert_eq!(token_calls.len(), 1, "{token_calls:?}");
    let traceparent = token_calls[0].header("traceparent").expect("traceparent sent to the token endpoint");
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields[1], TRACE_ID, "{traceparent}");
    let parent = traced.iter().find(|s| s.span_id == fields[2]).expect("the token call's parent is an exported span");
    assert!(descends(parent, &server.span_id, &traced), "{parent:?} descends from the RPC");
}

/// Replica A renews a credential for its caller (trace A) while holding the fleet-wide lease,
/// the token endpoint slow; replica B's caller (trace B) waits for that renewal and is served
/// by it. B's spans are in trace B, and one of them links to a span of A's renewal: in trace A,
/// below A's RPC — by ids, as exported by both real binaries sharing one Redis.
#[tokio::test]
async fn a_caller_served_by_another_replicas_renewal_links_to_it() {
    const TRACE_A: &str = "0af7651916cd43dd8448eb211c80319c";
    const TRACE_B: &str = "5b8efff798038103d269b633813fc60c";
    const CALLER_A: &str = "b7ad6b7169203331";
    const CALLER_B: &str = "c1d2e3f405060708";
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let (collector, collector_addr) = Collector::start().await;
    let redis = crate::helpers::TestRedis::start().await;
    let prefix = crate::helpers::random_prefix();
    let fake = crate::upstream::fake_with_client().await;
    let passolution = fake.url(fake_upstream::Provider::Passolution);
    let replica = |port: u16| {
        traced_broker(port, &passolution, collector_addr)
            .env("CREDBROKER__STORE__REDIS_URL", &redis.url)
            .env("CREDBROKER__STORE__KEY_PREFIX", &prefix)
            .env("CREDBROKER__ENCRYPTION__KEY", crate::helpers::TEST_KEY)
            .spawn()
            .unwrap()
    };
    let (port_a, port_b) = (free_port(), free_port());
    let (child_a, child_b) = (replica(port_a), replica(port_b));
    wait_for_port(port_a).await;
    wait_for_port(port_b).await;
    let (mut admin, broker_a) = clients(port_a).await;
    let (_, broker_b) = clients(port_b).await;

    let (_, _, tokens) = crate::upstream::issue_tokens(&fake, Duration::from_secs(3600));
    let put =
        pb::PutCredentialRequest { provider: "passolution".into(), subject: "linked".into(), secret: Some(tokens) };
    admin.put_credential(put).await.unwrap();
    let get =
        pb::GetAuthorizationRequest { provider: "passolution".into(), subject: "linked".into(), min_validity: None };
    let old = broker_a.clone().get_authorization(get.clone()).await.unwrap().into_inner().token_fingerprint;
    // A's caller reports the header rejected: A rotates it under the lease, the token endpoint
    // slow.
    fake.knobs().set_latency(fake_upstream::Provider::Passolution, Duration::from_secs(2));
    let report = pb::ReportRejectedRequest {
        provider: "passolution".into(),
        subject: "linked".into(),
        token_fingerprint: old.clone(),
    };
    let mut report = tonic::Request::new(report);
    report.metadata_mut().insert("traceparent", format!("00-{TRACE_A}-{CALLER_A}-01").parse().unwrap());
    let mut reporter = broker_a.clone();
    let caller_a = tokio::spawn(async move { reporter.report_rejected(report).await });
    // B's caller comes once A's refresh is in flight (reserved, REFRESHING): it cannot be
    // served the old header, and the lease is A's, so it waits for A's announcement.
    let credential = pb::CredentialRef { provider: "passolution".into(), subject: "linked".into() };
    let waited = std::time::Instant::now();
    loop {
        let status = admin.get_credential_status(credential.clone()).await.unwrap().into_inner();
        if status.state() == pb::CredentialState::Refreshing {
            break;
        }
        assert!(!caller_a.is_finished() && waited.elapsed() < Duration::from_secs(10), "A's refresh never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut request = tonic::Request::new(get);
    request.metadata_mut().insert("traceparent", format!("00-{TRACE_B}-{CALLER_B}-01").parse().unwrap());
    let mut broker = broker_b.clone();
    let served_b = broker.get_authorization(request).await.unwrap().into_inner();
    caller_a.await.unwrap().unwrap();
    assert_ne!(served_b.token_fingerprint, old, "B is served A's renewal");
    let refreshes = fake.ledger().count(|e| e.operation == fake_upstream::Operation::RefreshTokenGrant);
    assert_eq!(refreshes, 1, "only A renewed");

    for child in [&child_a, &child_b] {
        let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    for child in [child_a, child_b] {
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();
    }

    let spans = exported_spans(&collector);
    let in_trace = |trace: &str| spans.iter().filter(|s| s.trace_id == trace).collect::<Vec<&Exported>>();
    let (traced_a, traced_b) = (in_trace(TRACE_A), in_trace(TRACE_B));
    let server_a = traced_a
        .iter()
        .find(|s| s.parent == CALLER_A)
        .unwrap_or_else(|| panic!("no span is caller A's child: {traced_a:#?}"));
    let links: Vec<&(String, String)> = traced_b.iter().flat_map(|s| &s.links).collect();
    assert!(!links.is_empty(), "no span of B's caller has a link: {traced_b:#?}");
    for (trace, span) in &links {
        assert_eq!(trace, TRACE_A, "{links:?}");
        let linked = traced_a
            .iter()
            .find(|s| &s.span_id == span)
            .unwrap_or_else(|| panic!("link {span} is no exported span of A: {traced_a:#?}"));
        assert!(descends(linked, &server_a.span_id, &traced_a), "{linked:?} is A's renewal: {traced_a:#?}");
    }
}

#[derive(Debug)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
}

fn exported_spans(collector: &Collector) -> Vec<Exported> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let received = collector.received.lock().unwrap();
    let spans = received.iter().flat_map(|r| &r.resource_spans).flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
    spans
        .map(|s| Exported {
            name: s.name.clone(),
            trace_id: hex(&s.trace_id),
            span_id: hex(&s.span_id),
            parent: hex(&s.parent_span_id),
            links: s.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
        })
        .collect()
}

/// Whether `span` is `ancestor` or below it, following parent ids within `spans`.
fn descends(span: &Exported, ancestor: &str, spans: &[&Exported]) -> bool {
    let mut current = span;
    for _ in 0..spans.len() + 1 {
        if current.span_id == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == current.parent) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

type Clients = (
    pb::credential_admin_client::CredentialAdminClient<tonic::transport::Channel>,
    pb::credential_broker_client::CredentialBrokerClient<tonic::transport::Channel>,
);

async fn clients(port: u16) -> Clients {
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    (
        pb::credential_admin_client::CredentialAdminClient::new(channel.clone()),
        pb::credential_broker_client::CredentialBrokerClient::new(channel),
    )
}

/// Receives OTLP metrics: the instrument names of every export.
#[derive(Clone, Default)]
struct MetricsCollector {
    names: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

#[tonic::async_trait]
impl MetricsService for MetricsCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let metrics = request.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics);
        self.names.lock().unwrap().extend(metrics.map(|m| m.name.clone()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// The metrics `/metrics` shows also go over OTLP when the standard endpoint variable is set
/// (flushed at shutdown at the latest), without a `[metrics]` listener.
#[tokio::test]
async fn metrics_reach_an_otlp_collector() {
    let collector = MetricsCollector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder().add_service(MetricsServiceServer::new(collector.clone()));
    tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("http://{addr}"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let (_, mut broker) = clients(port).await;
    let request = pb::GetAuthorizationRequest { provider: "pass".into(), ..Default::default() };
    broker.get_authorization(request).await.unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();
    assert!(exit.status.success());
    let names = collector.names.lock().unwrap().clone();
    let expected =
        ["rpc.server.call.duration", "credbroker.cache.requests", "credbroker.ready", "credbroker.credentials"];
    for name in expected {
        assert!(names.contains(name), "{name} not exported over OTLP: {names:?}");
    }
}

/// `OTEL_TRACES_SAMPLER=parentbased_traceidratio` at ratio 0: only the call whose caller
/// sampled it is exported, whole; calls without a `traceparent`, or with an unsampled one, and
/// background work are not (the decision is made as the root span starts:
/// `telemetry::sampling`).
#[tokio::test]
async fn only_the_traces_the_sampler_draws_are_exported() {
    const UNSAMPLED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let (collector, collector_addr) = Collector::start().await;
    let port = free_port();
    let mut command = traced_broker(port, "http://127.0.0.1:9/", collector_addr);
    command.env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio").env("OTEL_TRACES_SAMPLER_ARG", "0");
    let child = command.spawn().unwrap();
    wait_for_port(port).await;
    let (mut admin, mut broker) = clients(port).await;
    let secret = PutSecret::BroToken(pb::BroToken { username: "u|1".into(), code: SECRET.into() });
    let put = pb::PutCredentialRequest { provider: "bro".into(), subject: "org".into(), secret: Some(secret) };
    admin.put_credential(put).await.unwrap();
    let get = || pb::GetAuthorizationRequest { provider: "bro".into(), subject: "org".into(), min_validity: None };
    broker.get_authorization(get()).await.unwrap();
    for traceparent in [format!("00-{UNSAMPLED_TRACE}-{CALLER_SPAN}-00"), format!("00-{TRACE_ID}-{CALLER_SPAN}-01")] {
        let mut request = tonic::Request::new(get());
        request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
        broker.get_authorization(request).await.unwrap();
    }

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exits").unwrap();

    let spans = exported_spans(&collector);
    let server = spans
        .iter()
        .find(|s| s.parent == CALLER_SPAN)
        .unwrap_or_else(|| panic!("the sampled call was not exported: {spans:#?}"));
    assert_eq!(
        (server.name.as_str(), server.trace_id.as_str()),
        ("credbroker.v1.CredentialBroker/GetAuthorization", TRACE_ID)
    );
    let others: Vec<_> = spans.iter().filter(|s| s.trace_id != TRACE_ID).collect();
    assert!(others.is_empty(), "spans of calls the sampler did not draw were exported: {others:#?}");
}

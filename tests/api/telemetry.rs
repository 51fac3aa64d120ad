//! Traces over OTLP to an in-test collector, JSON logs, and no secret in either — checked on
//! the real binary, configured only through the standard environment variables.

use crate::harness::{Serve, TEST_KEY, TestRedis, eventually, issue_tokens, random_prefix, start_fake};
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

    let broker = Serve::new()
        .env("CREDBROKER__TELEMETRY__LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
        .capture_logs()
        .start()
        .await;
    let secret = PutSecret::BroToken(pb::BroToken { username: "u|1".into(), code: SECRET.into() });
    broker.put("bro", "org", secret).await.unwrap();
    broker.get("bro", "org").await.unwrap();
    assert!(broker.put("pass", "org", PutSecret::ClientNumber(format!("{SECRET}\n"))).await.is_err());
    let (status, logs) = broker.finish().await;
    assert!(status.success());

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

    assert!(logs.lines().count() >= 3, "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(logs.contains("credential stored"));
    assert!(!logs.contains(SECRET), "a secret reached the logs:\n{logs}");
}

/// The binary exporting traces to the collector at `collector`, its Passolution provider on
/// the fake at `passolution`, forced renewals allowed at once.
fn traced_broker(passolution: &str, collector: std::net::SocketAddr) -> Serve {
    Serve::new()
        .env("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s")
        .passolution_at(passolution)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
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
    let fake = start_fake().await;
    let passolution = fake.url(fake_upstream::Provider::Passolution);

    let traced = traced_broker(&passolution, collector_addr).start().await;
    let (_, _, tokens) = issue_tokens(&fake, Duration::from_secs(3600));
    traced.put("passolution", "traced", tokens).await.unwrap();
    let fingerprint = traced.get("passolution", "traced").await.unwrap().token_fingerprint;
    fake.traffic().clear();
    let report = pb::ReportRejectedRequest {
        provider: "passolution".into(),
        subject: "traced".into(),
        token_fingerprint: fingerprint,
    };
    let mut report = tonic::Request::new(report);
    report.metadata_mut().insert("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap());
    traced.broker.clone().report_rejected(report).await.unwrap();
    traced.finish().await;

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
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let fake = start_fake().await;
    let passolution = fake.url(fake_upstream::Provider::Passolution);
    let replica = || {
        traced_broker(&passolution, collector_addr)
            .env("CREDBROKER__STORE__REDIS_URL", &redis.url)
            .env("CREDBROKER__STORE__KEY_PREFIX", &prefix)
            .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
            .start()
    };
    let (a, b) = (replica().await, replica().await);

    let (_, _, tokens) = issue_tokens(&fake, Duration::from_secs(3600));
    a.put("passolution", "linked", tokens).await.unwrap();
    let get =
        pb::GetAuthorizationRequest { provider: "passolution".into(), subject: "linked".into(), min_validity: None };
    let old = a.get("passolution", "linked").await.unwrap().token_fingerprint;
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
    let mut reporter = a.broker.clone();
    let caller_a = tokio::spawn(async move { reporter.report_rejected(report).await });
    // B's caller comes once A's refresh is in flight (reserved, REFRESHING): it cannot be
    // served the old header, and the lease is A's, so it waits for A's announcement.
    let refreshing = || async {
        let status = a.status("passolution", "linked").await.unwrap();
        assert!(!caller_a.is_finished(), "A's report ended before its refresh was seen: {status:?}");
        status.state() == pb::CredentialState::Refreshing
    };
    eventually("A's refresh starts", Duration::from_secs(10), refreshing).await;
    let mut request = tonic::Request::new(get);
    request.metadata_mut().insert("traceparent", format!("00-{TRACE_B}-{CALLER_B}-01").parse().unwrap());
    let served_b = b.broker.clone().get_authorization(request).await.unwrap().into_inner();
    caller_a.await.unwrap().unwrap();
    assert_ne!(served_b.token_fingerprint, old, "B is served A's renewal");
    let refreshes = fake.ledger().count(|e| e.operation == fake_upstream::Operation::RefreshTokenGrant);
    assert_eq!(refreshes, 1, "only A renewed");

    for replica in [&a, &b] {
        replica.signal(nix::sys::signal::Signal::SIGTERM); // both stop together
    }
    for replica in [a, b] {
        replica.finish().await;
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
    let broker = Serve::new().env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("http://{addr}")).start().await;
    broker.get("pass", "").await.unwrap();
    let (status, _) = broker.finish().await;
    assert!(status.success());
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
    let traced = traced_broker("http://127.0.0.1:9/", collector_addr)
        .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", "0")
        .start()
        .await;
    let secret = PutSecret::BroToken(pb::BroToken { username: "u|1".into(), code: SECRET.into() });
    traced.put("bro", "org", secret).await.unwrap();
    let get = || pb::GetAuthorizationRequest { provider: "bro".into(), subject: "org".into(), min_validity: None };
    traced.get("bro", "org").await.unwrap();
    for traceparent in [format!("00-{UNSAMPLED_TRACE}-{CALLER_SPAN}-00"), format!("00-{TRACE_ID}-{CALLER_SPAN}-01")] {
        let mut request = tonic::Request::new(get());
        request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
        traced.broker.clone().get_authorization(request).await.unwrap();
    }
    traced.finish().await;

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

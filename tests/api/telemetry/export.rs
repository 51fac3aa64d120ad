//! What leaves the binary: spans and metrics over OTLP, JSON logs, only the traces the sampler
//! draws — and no secret in any of them.

use super::collector::{Collector, exported_spans};
use super::{CALLER_SPAN, SECRET, TRACE_ID, traced_broker};
use crate::harness::Serve;
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};

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

/// The metrics `/metrics` shows also go over OTLP when the standard endpoint variable is set
/// (flushed at shutdown at the latest), without a `[metrics]` listener.
#[tokio::test]
async fn metrics_reach_an_otlp_collector() {
    let (collector, addr) = Collector::start().await;
    let broker = Serve::new().env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("http://{addr}")).start().await;
    broker.get("pass", "").await.unwrap();
    let (status, _) = broker.finish().await;
    assert!(status.success());
    let names = collector.metric_names.lock().unwrap().clone();
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

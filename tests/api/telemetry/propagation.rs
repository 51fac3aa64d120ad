//! One trace from the caller through the broker to the token endpoint, and a span link from a
//! caller served by another replica's renewal to that renewal.

use super::collector::{Collector, Exported, descends, exported_spans};
use super::{CALLER_SPAN, TRACE_ID, traced_broker};
use crate::harness::{TEST_KEY, TestRedis, eventually, issue_tokens, random_prefix, start_fake};
use credbroker::grpc::pb;
use std::time::Duration;

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

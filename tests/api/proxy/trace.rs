//! W3C trace context: the caller's `traceparent` metadata reaches the provider, so one trace
//! shows caller → broker → provider.

use super::support::{ProxyBroker, request, small_limits, stream_head};
use crate::harness::Broker;
use opentelemetry_sdk::propagation::TraceContextPropagator;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_callers_trace_id_reaches_the_upstream_request() {
    // What `telemetry::init` installs in the binary.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let app = Broker::new().fake().proxy(small_limits()).start().await;
    app.seed_bro().await;
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let mut call = tonic::Request::new(request("bro", "org-1", "GET", "data/echo"));
    call.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    call.metadata_mut().insert("tracestate", "vendor=x".parse().unwrap());
    assert_eq!(app.broker.clone().proxy_call(call).await.unwrap().into_inner().status, 200);

    let messages = vec![credbroker::grpc::pb::ProxyCallChunk {
        part: Some(credbroker::grpc::pb::proxy_call_chunk::Part::Head(stream_head("bro", "org-1", "GET", "data/echo"))),
    }];
    let mut streamed = tonic::Request::new(tokio_stream::iter(messages));
    streamed.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    app.broker.clone().proxy_call_stream(streamed).await.unwrap();

    let sent = app.data_requests();
    assert_eq!(sent.len(), 2);
    for request in sent {
        let upstream = request.header("traceparent").expect("traceparent sent upstream");
        let trace_id = upstream.split('-').nth(1).unwrap();
        assert_eq!(trace_id, TRACE_ID, "{upstream}");
    }
}

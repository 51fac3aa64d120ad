//! The server span of every gRPC call, its parent the caller's W3C trace context
//! (`traceparent`/`tracestate` metadata): the handlers' spans, the renewals they start and the
//! token-endpoint calls those make (`traceparent` injected by `providers::http`) are its
//! descendants, so one trace shows caller → broker → provider.
//!
//! ProxyCall and ProxyCallStream make their own server spans with the same parent
//! (`grpc::proxy_rpc`): they get none here.

use opentelemetry::propagation::Extractor;
use tonic::codegen::http;
use tracing::Span;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// For `Server::builder().trace_fn(..)`: tonic enters it around the whole call.
pub fn server_span(request: &http::Request<()>) -> Span {
    let path = request.uri().path();
    if path.starts_with("/credbroker.v1.CredentialBroker/ProxyCall") {
        return Span::none();
    }
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("unknown", "unknown"));
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    super::sampling::root_span(&parent, || {
        tracing::info_span!(
            "grpc.server",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
        )
    })
}

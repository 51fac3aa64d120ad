//! W3C trace context on an upstream request (token calls and proxied calls), so one trace
//! shows caller → broker → provider.

use opentelemetry::Context;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::TraceContextExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

/// Writes `traceparent`/`tracestate` for the current span. When traces are not exported the
/// span has no OpenTelemetry context; the caller's (`parent`) is then passed on unchanged, so
/// the provider still joins the caller's trace.
pub fn inject(parent: &Context, headers: &mut HeaderMap) {
    let current = tracing::Span::current().context();
    let context = if current.span().span_context().is_valid() { current } else { parent.clone() };
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

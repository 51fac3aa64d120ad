//! Trace sampling decided when a span starts, before the OpenTelemetry layer sees it.
//!
//! tracing-opentelemetry builds every span's attributes as the span starts and asks the SDK's
//! sampler only when it ends: with a 1 % ratio, the 99 % of calls that are never exported still
//! paid for all of it (≈ 11 % of ProxyCall's throughput; docs/performance.md, step 11). So the
//! decision is made here, as a per-layer filter on that layer only (logs are not affected):
//!
//! - a root span (a gRPC call's server span, a background task's span) is let through if the
//!   caller's `traceparent` says sampled (for the `parentbased_*` samplers) or, without one,
//!   the configured ratio draws it;
//! - every other span and event follows the span it starts in: a call that was not sampled
//!   never reaches the layer, its renewals and token calls included.
//!
//! The rule is read from the standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`
//! with the SDK's names and defaults ([`Rule::from_env`]); the SDK itself is then told to keep
//! every span it is given. What differs from the SDK's own `traceidratio`: the draw for a root
//! is random rather than derived from the trace id (the root is where the trace starts, so no
//! other service has decided for it yet). An unsampled call still passes the caller's trace
//! context on unchanged to the provider (`propagation`).

use opentelemetry::trace::TraceContextExt;
use std::cell::Cell;
use tracing::subscriber::Interest;
use tracing::{Metadata, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// While a root span is being made by [`root_span`]: whether its remote parent (the
    /// caller's `traceparent`) was sampled; `None` without a valid one.
    static REMOTE_SAMPLED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Which traces are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// A remote parent's decision is followed (`parentbased_*`, and the default).
    pub parent_based: bool,
    /// The share of new traces recorded, 0.0 to 1.0.
    pub ratio: f64,
}

impl Rule {
    /// From `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, as the SDK reads them: unset
    /// or unknown is `parentbased_always_on`; a ratio that is missing or unreadable is 1.0.
    pub fn from_env(sampler: Option<&str>, arg: Option<&str>) -> Self {
        let ratio = || arg.and_then(|a| a.trim().parse::<f64>().ok()).filter(|r| !r.is_nan()).unwrap_or(1.0);
        let (parent_based, ratio) = match sampler.map(str::trim) {
            Some("always_on") => (false, 1.0),
            Some("always_off") => (false, 0.0),
            Some("traceidratio") => (false, ratio()),
            Some("parentbased_always_off") => (true, 0.0),
            Some("parentbased_traceidratio") => (true, ratio()),
            _ => (true, 1.0),
        };
        Self { parent_based, ratio: ratio.clamp(0.0, 1.0) }
    }

    fn draws_root(&self, remote_sampled: Option<bool>) -> bool {
        match remote_sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => self.ratio >= 1.0 || (self.ratio > 0.0 && rand::random::<f64>() < self.ratio),
        }
    }
}

/// The per-layer filter of the OpenTelemetry layer.
#[derive(Debug, Clone, Copy)]
pub struct Sampling(pub Rule);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for Sampling {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        // Inside a span: recorded if that span is (`cx.span` sees only spans this filter let
        // through).
        if let Some(current) = cx.current_span().id() {
            return cx.span(current).is_some();
        }
        // An event outside any span has nothing to belong to in a trace.
        meta.is_span() && self.0.draws_root(REMOTE_SAMPLED.with(Cell::get))
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> Interest {
        // Decided per span, never cached per call site.
        Interest::sometimes()
    }
}

/// Makes a request's root span with `make` and sets `parent` (the caller's trace context) as
/// its parent — the sampling decision sees whether that parent was sampled.
pub fn root_span(parent: &opentelemetry::Context, make: impl FnOnce() -> Span) -> Span {
    let remote = parent.span().span_context().clone();
    REMOTE_SAMPLED.with(|r| r.set(remote.is_valid().then(|| remote.is_sampled())));
    let span = make();
    REMOTE_SAMPLED.with(|r| r.set(None));
    // Before the span is first entered, or the parent would not take. A span the filter
    // left out has no OpenTelemetry data to set it on: nothing to do then.
    let _ = span.set_parent(parent.clone());
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_rule_is_read_with_the_sdks_names_and_defaults() {
        let rule = |s: Option<&str>, a: Option<&str>| {
            let r = Rule::from_env(s, a);
            (r.parent_based, r.ratio)
        };
        assert_eq!(rule(None, None), (true, 1.0));
        assert_eq!(rule(Some("always_on"), None), (false, 1.0));
        assert_eq!(rule(Some("always_off"), Some("0.5")), (false, 0.0));
        assert_eq!(rule(Some("traceidratio"), Some("0.25")), (false, 0.25));
        assert_eq!(rule(Some("traceidratio"), Some("lots")), (false, 1.0));
        assert_eq!(rule(Some("parentbased_always_on"), None), (true, 1.0));
        assert_eq!(rule(Some("parentbased_always_off"), None), (true, 0.0));
        assert_eq!(rule(Some("parentbased_traceidratio"), Some("0.01")), (true, 0.01));
        assert_eq!(rule(Some("parentbased_traceidratio"), Some("7")), (true, 1.0));
        assert_eq!(rule(Some("xray"), None), (true, 1.0));
    }

    /// Names of the spans, and messages of the events, that reach a layer behind [`Sampling`].
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
        fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &tracing::Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push(attrs.metadata().name().to_owned());
        }
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let _ = event;
            self.0.lock().unwrap().push("event".to_owned());
        }
    }

    fn remote(flags: TraceFlags) -> opentelemetry::Context {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let context = SpanContext::new(trace, span, flags, true, TraceState::default());
        opentelemetry::Context::new().with_remote_span_context(context)
    }

    /// A call: its root span (with `parent`), a child, an event in the child.
    fn call(parent: &opentelemetry::Context, name: &'static str) {
        let root = root_span(parent, || tracing::info_span!("root", call = name));
        let _entered = root.enter();
        let child = tracing::info_span!("child");
        let _in_child = child.enter();
        tracing::info!("inside");
    }

    fn seen_with(rule: Rule, calls: impl FnOnce()) -> Vec<String> {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(Sampling(rule)));
        tracing::subscriber::with_default(subscriber, calls);
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn a_call_is_recorded_whole_or_not_at_all_as_its_root_is_drawn() {
        let whole = ["root", "child", "event"].map(str::to_owned);
        let none = opentelemetry::Context::new();
        let (sampled, unsampled) = (remote(TraceFlags::SAMPLED), remote(TraceFlags::default()));

        // Ratio 0, parent-based: only the call whose caller sampled it.
        let seen = seen_with(Rule { parent_based: true, ratio: 0.0 }, || {
            call(&none, "no traceparent");
            call(&unsampled, "caller did not sample");
            call(&sampled, "caller sampled");
        });
        assert_eq!(seen, whole.to_vec());

        // Ratio 1, parent-based: all but the one the caller did not sample.
        let seen = seen_with(Rule { parent_based: true, ratio: 1.0 }, || {
            call(&none, "no traceparent");
            call(&unsampled, "caller did not sample");
        });
        assert_eq!(seen, whole.to_vec());

        // Not parent-based: the ratio alone.
        let seen = seen_with(Rule { parent_based: false, ratio: 1.0 }, || call(&unsampled, "ignored flag"));
        assert_eq!(seen, whole.to_vec());
        let seen = seen_with(Rule { parent_based: false, ratio: 0.0 }, || call(&sampled, "ignored flag"));
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn events_outside_spans_are_left_out() {
        let seen = seen_with(Rule { parent_based: true, ratio: 1.0 }, || tracing::info!("alone"));
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn a_ratio_draws_about_its_share_of_roots() {
        let rule = Rule { parent_based: true, ratio: 0.5 };
        let drawn = (0..10_000).filter(|_| rule.draws_root(None)).count();
        // 10 000 draws at p = 0.5: outside 4 500..5 500 has a probability below 1e-20.
        assert!((4_500..5_500).contains(&drawn), "{drawn} of 10 000");
    }
}

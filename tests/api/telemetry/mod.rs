//! Traces over OTLP to an in-test collector, JSON logs, metrics over OTLP, and no secret in
//! any — checked on the real binary, configured only through the standard environment
//! variables: what leaves the binary (`export.rs`), and one trace across callers, replicas and
//! the token endpoint (`propagation.rs`), as the in-test collectors receive them
//! (`collector.rs`).

mod collector;
mod export;
mod propagation;

use crate::harness::Serve;

/// A valid BRO token code (64 hex characters), distinctive enough to grep for.
const SECRET: &str = "07e15ec7e7c0de7f3a07e15ec7e7c0de7f3a07e15ec7e7c0de7f3a07e15ec7e7";

/// The binary exporting traces to the collector at `collector`, its Passolution provider on
/// the fake at `passolution`, forced renewals allowed at once.
fn traced_broker(passolution: &str, collector: std::net::SocketAddr) -> Serve {
    Serve::new()
        .env("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s")
        .passolution_at(passolution)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
}

/// A sampled caller's trace and span, as its `traceparent` names them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

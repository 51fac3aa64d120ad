//! Logs and traces. Logs go to stderr as text or JSON; traces are exported over OTLP/gRPC
//! when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set.
//! W3C trace context is the propagation format. Metrics: [`metrics`] (Prometheus text and
//! OTLP), [`rpc_metrics`] (the per-call layer).

pub mod metrics;
pub mod propagation;
pub mod rpc_metrics;
pub mod rpc_trace;
pub mod sampling;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Crates whose debug output would drown ours, and whose spans — the OTLP exporter speaks
/// gRPC itself — would be exported in a loop.
const QUIET: &str =
    "h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn,opentelemetry=warn,opentelemetry_sdk=warn";

/// What telemetry is set up from (`[telemetry]` and `[metrics]`, read by `config`).
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive; `RUST_LOG` wins when set.
    pub log_filter: String,
    pub service_name: String,
    /// `[metrics] listen`: serve Prometheus text at `/metrics` here (`None`: off).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the trace exporter alive; `shutdown` flushes what is buffered.
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the exporter. The SDK's shutdown blocks, so it runs off the runtime.
    pub async fn shutdown(self) {
        if let Some(provider) = self.tracer_provider {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
        if let Some(provider) = self.meter_provider {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

fn otlp_configured(signal_variable: &str) -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", signal_variable].iter().any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Installs the global subscriber. Call once, inside the runtime (the exporter spawns tasks).
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(format!("{QUIET},{directives}"))?,
        _ => EnvFilter::try_new(format!("{QUIET},{}", settings.log_filter))?,
    };
    let fmt = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let tracer_provider = otlp_configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .then(|| tracer_provider(&settings.service_name))
        .transpose()?;
    let otlp_metrics = otlp_configured("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
    let meter_provider = metrics::init(&settings.service_name, settings.metrics_listen.is_some(), otlp_metrics)?;
    // Sampled as spans start, before the layer builds them (`sampling`).
    let rule = sampling::Rule::from_env(
        std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
    );
    let otel = tracer_provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer("credbroker")).with_filter(sampling::Sampling(rule))
    });
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init()?;
    Ok(TelemetryGuard { tracer_provider, meter_provider })
}

fn tracer_provider(service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    // Every span that reaches the SDK was already sampled (`sampling`): it must keep them all.
    Ok(SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

//! Metrics: OpenTelemetry instruments, read as Prometheus text at `/metrics` (`[metrics]
//! listen`) and pushed over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_METRICS_ENDPOINT`)
//! is set — one set of instruments, two readers.
//!
//! The instrument names follow OpenTelemetry (`rpc.server.call.duration`, unit `s`); the
//! Prometheus exporter turns them into the names of the metrics contract
//! (`rpc_server_call_duration_seconds`, counters with `_total`; docs/deployment.md,
//! "Monitoring"). Labels are bounded: provider instance names and small enums — never a
//! subject, an identity or a secret.
//!
//! The instruments live in a process-wide [`Instruments`] built on first use from the global
//! meter provider: [`init`] installs it before anything records. Without `init` (a broker
//! built in a test) every instrument is a no-op.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

/// Latency buckets (seconds): a warm GetAuthorization is sub-millisecond, a renewal or a
/// proxied call takes up to the upstream timeout.
const LATENCY: [f64; 15] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Remaining validity of a handed-out header (seconds): from "about to expire" to a day.
const VALIDITY: [f64; 12] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 86400.0];

/// The Prometheus registry `/metrics` renders (set by [`init`] when `[metrics] listen` is).
static REGISTRY: OnceLock<prometheus::Registry> = OnceLock::new();
/// Whether [`init`] installed a meter provider (a reader of either kind).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether anything reads the instruments: worth counting credentials for.
pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global meter provider: a Prometheus reader when `prometheus` (the
/// `/metrics` listener is configured), an OTLP exporter when `otlp`. `None` when neither.
pub fn init(service_name: &str, prometheus: bool, otlp: bool) -> anyhow::Result<Option<SdkMeterProvider>> {
    if !prometheus && !otlp {
        return Ok(None);
    }
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    if prometheus {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()?;
        builder = builder.with_reader(exporter);
        let _ = REGISTRY.set(registry);
    }
    if otlp {
        builder = builder.with_periodic_exporter(opentelemetry_otlp::MetricExporter::builder().with_tonic().build()?);
    }
    let provider = builder.build();
    opentelemetry::global::set_meter_provider(provider.clone());
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Some(provider))
}

/// The Prometheus text exposition of every instrument (empty before [`init`]).
pub fn render() -> String {
    let Some(registry) = REGISTRY.get() else { return String::new() };
    let mut text = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut text) {
        tracing::warn!(error = %e, "could not encode metrics");
    }
    text
}

/// Every instrument credbroker records.
pub struct Instruments {
    pub rpc_duration: Histogram<f64>,
    pub cache_requests: Counter<u64>,
    pub renewals: Counter<u64>,
    pub renewal_duration: Histogram<f64>,
    pub transitions: Counter<u64>,
    pub credentials: Gauge<u64>,
    pub handout_validity: Histogram<f64>,
    pub lease_waits: Counter<u64>,
    pub lease_wait_duration: Histogram<f64>,
    pub budget_waits: Counter<u64>,
    pub budget_wait_duration: Histogram<f64>,
    pub rate_limited: Counter<u64>,
    pub proxy_requests: Counter<u64>,
    pub proxy_duration: Histogram<f64>,
    pub ready: Gauge<u64>,
    pub draining: Gauge<u64>,
    pub renewals_in_flight: Gauge<u64>,
    pub auth_denials: Counter<u64>,
    pub audit_write_failures: Counter<u64>,
    pub journal_not_replicated: Counter<u64>,
}

/// The instruments (no-ops until [`init`] ran).
pub fn instruments() -> &'static Instruments {
    static INSTRUMENTS: LazyLock<Instruments> =
        LazyLock::new(|| Instruments::new(&opentelemetry::global::meter("credbroker")));
    &INSTRUMENTS
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str, buckets: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(buckets.to_vec())
                .build()
        };
        let counter = |name: &'static str, description: &'static str| {
            meter.u64_counter(name).with_description(description).build()
        };
        let gauge =
            |name: &'static str, description: &'static str| meter.u64_gauge(name).with_description(description).build();
        Self {
            rpc_duration: seconds("rpc.server.call.duration", "gRPC calls served, by method and status code", &LATENCY),
            cache_requests: counter(
                "credbroker.cache.requests",
                "GetAuthorization answered from the cache (hit) or not (miss)",
            ),
            renewals: counter("credbroker.renewals", "Upstream token calls by kind and outcome"),
            renewal_duration: seconds("credbroker.renewal.duration", "Upstream token calls' duration", &LATENCY),
            transitions: counter("credbroker.credential.transitions", "Credentials entering a state"),
            credentials: gauge("credbroker.credentials", "Stored credentials by state (fleet-wide, from the store)"),
            handout_validity: seconds(
                "credbroker.handout.remaining_validity",
                "How long a handed-out header stays valid",
                &VALIDITY,
            ),
            lease_waits: counter("credbroker.lease.waits", "Callers that waited for another replica's renewal"),
            lease_wait_duration: seconds(
                "credbroker.lease.wait.duration",
                "How long callers waited for another replica's renewal",
                &LATENCY,
            ),
            budget_waits: counter(
                "credbroker.token_budget.waits",
                "Token requests that queued for the fleet's rate budget",
            ),
            budget_wait_duration: seconds(
                "credbroker.token_budget.wait.duration",
                "How long token requests queued for the budget",
                &LATENCY,
            ),
            rate_limited: counter("credbroker.upstream.rate_limited", "Token endpoints answering 429"),
            proxy_requests: counter("credbroker.proxy.requests", "Proxied upstream calls by upstream status"),
            proxy_duration: seconds(
                "credbroker.proxy.upstream.duration",
                "Proxied upstream calls' duration (to the response head)",
                &LATENCY,
            ),
            ready: gauge("credbroker.ready", "1 when health reports SERVING (store reached, not draining)"),
            draining: gauge("credbroker.draining", "1 from SIGTERM until exit"),
            renewals_in_flight: gauge("credbroker.renewals_in_flight", "Leased renewals running in this replica"),
            auth_denials: counter(
                "credbroker.auth.denials",
                "Calls refused at the trust boundary, by reason (unauthenticated, denied, rate_limited)",
            ),
            audit_write_failures: counter("credbroker.audit.write_failures", "Audit events the sink could not take"),
            journal_not_replicated: counter(
                "credbroker.journal.not_replicated",
                "Journal writes too few Redis replicas acknowledged (store.journal_replicas)",
            ),
        }
    }
}

/// A `provider` label.
pub fn provider(name: &impl ToString) -> KeyValue {
    KeyValue::new("provider", name.to_string())
}

/// Records a renewal (an upstream token call) of `kind` and its outcome.
pub fn renewal(provider_name: &impl ToString, kind: &'static str, ok: bool, took: Duration) {
    let metrics = instruments();
    let outcome = if ok { "success" } else { "failure" };
    let provider = provider(provider_name);
    metrics.renewals.add(1, &[provider.clone(), KeyValue::new("kind", kind), KeyValue::new("outcome", outcome)]);
    metrics.renewal_duration.record(took.as_secs_f64(), &[provider, KeyValue::new("kind", kind)]);
}

/// Records a GetAuthorization cache lookup: a ready header found (hit) or not (miss).
pub fn cache_lookup(hit: bool) {
    instruments().cache_requests.add(1, &[KeyValue::new("result", if hit { "hit" } else { "miss" })]);
}

/// Records a header handed out: how long it stays valid (`None`: it does not expire).
pub fn handed_out(provider_name: &impl ToString, expires_at: Option<time::OffsetDateTime>) {
    if let Some(expires_at) = expires_at {
        let left = (expires_at - time::OffsetDateTime::now_utc()).as_seconds_f64().max(0.0);
        instruments().handout_validity.record(left, &[provider(provider_name)]);
    }
}

/// A caller's wait for another replica's renewal (lease), recorded when dropped if it began.
pub struct LeaseWait {
    provider: KeyValue,
    since: Option<std::time::Instant>,
}

impl LeaseWait {
    pub fn new(provider_name: &impl ToString) -> Self {
        Self { provider: provider(provider_name), since: None }
    }

    /// The caller waits (again): the wait counts from the first time.
    pub fn started(&mut self) {
        self.since.get_or_insert_with(std::time::Instant::now);
    }
}

impl Drop for LeaseWait {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            let metrics = instruments();
            metrics.lease_waits.add(1, std::slice::from_ref(&self.provider));
            metrics.lease_wait_duration.record(since.elapsed().as_secs_f64(), std::slice::from_ref(&self.provider));
        }
    }
}

/// Records a proxied upstream call that got a response head: its status and latency.
pub fn proxied(provider_name: &impl ToString, status: u16, took: Duration) {
    let metrics = instruments();
    let provider = provider(provider_name);
    metrics.proxy_requests.add(1, &[provider.clone(), KeyValue::new("http.response.status_code", i64::from(status))]);
    metrics.proxy_duration.record(took.as_secs_f64(), &[provider]);
}

//! The metric names of credbroker's metrics contract (listed in docs/deployment.md,
//! "Monitoring"). The alerting rules and the dashboard may use these and nothing else.

const HISTOGRAMS: [&str; 6] = [
    "rpc_server_call_duration_seconds",
    "credbroker_renewal_duration_seconds",
    "credbroker_handout_remaining_validity_seconds",
    "credbroker_lease_wait_duration_seconds",
    "credbroker_token_budget_wait_duration_seconds",
    "credbroker_proxy_upstream_duration_seconds",
];

/// Every metric of the contract (histograms by their base name).
pub const METRICS: [&str; 20] = [
    "rpc_server_call_duration_seconds",
    "credbroker_cache_requests_total",
    "credbroker_renewals_total",
    "credbroker_renewal_duration_seconds",
    "credbroker_credential_transitions_total",
    "credbroker_credentials",
    "credbroker_handout_remaining_validity_seconds",
    "credbroker_lease_waits_total",
    "credbroker_lease_wait_duration_seconds",
    "credbroker_token_budget_waits_total",
    "credbroker_token_budget_wait_duration_seconds",
    "credbroker_upstream_rate_limited_total",
    "credbroker_proxy_requests_total",
    "credbroker_proxy_upstream_duration_seconds",
    "credbroker_auth_denials_total",
    "credbroker_audit_write_failures_total",
    "credbroker_ready",
    "credbroker_draining",
    "credbroker_renewals_in_flight",
    "credbroker_journal_not_replicated_total",
];

/// The contract metric a series name in a query belongs to (`…_bucket`, `…_count` and
/// `…_sum` of a histogram belong to the histogram), or None.
pub fn metric_of(series: &str) -> Option<&'static str> {
    if let Some(metric) = METRICS.iter().find(|m| **m == series) {
        return Some(metric);
    }
    let base = ["_bucket", "_count", "_sum"].iter().find_map(|suffix| series.strip_suffix(suffix))?;
    HISTOGRAMS.iter().find(|h| **h == base).copied()
}

/// The series names a PromQL expression selects: identifiers of credbroker's namespaces
/// (`credbroker_…`, `rpc_server_…`); label names and functions do not start that way.
pub fn series_in(expr: &str) -> Vec<&str> {
    let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
    words.filter(|w| w.starts_with("credbroker_") || w.starts_with("rpc_server_")).collect()
}

//! `[proxy]`: limits and timeouts of proxied calls, checked before start-up.

use crate::proxy::ProxySettings;
use serde::Deserialize;
use std::time::Duration;

/// Unary bodies are held whole in memory, and go through gRPC as one message: keep them modest.
const MAX_UNARY_BODY: u64 = 64 * 1024 * 1024;
const MAX_IN_FLIGHT_CALLS: u64 = 1_000_000;
const MAX_IN_FLIGHT_BYTES: u64 = 1 << 40;
/// What a unary request message carries beside its body (see `ProxySettings::max_message_size`).
const ENVELOPE: u64 = crate::proxy::settings::ENVELOPE as u64;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawProxy {
    max_request_body: u64,
    max_response_body: u64,
    max_stream_request_body: u64,
    max_stream_response_body: u64,
    #[serde(with = "humantime_serde")]
    default_timeout: Duration,
    #[serde(with = "humantime_serde")]
    max_timeout: Duration,
    stream_chunk_size: u64,
    max_in_flight_calls: u64,
    max_in_flight_bytes: u64,
}

impl Default for RawProxy {
    fn default() -> Self {
        let d = ProxySettings::default();
        Self {
            max_request_body: d.max_request_body,
            max_response_body: d.max_response_body,
            max_stream_request_body: d.max_stream_request_body,
            max_stream_response_body: d.max_stream_response_body,
            default_timeout: d.default_timeout,
            max_timeout: d.max_timeout,
            stream_chunk_size: d.stream_chunk_size as u64,
            max_in_flight_calls: d.max_in_flight_calls as u64,
            max_in_flight_bytes: d.max_in_flight_bytes,
        }
    }
}

/// Every problem is reported, each naming its key.
pub(super) fn validate(raw: RawProxy, errors: &mut Vec<String>) -> Option<ProxySettings> {
    let before = errors.len();
    for (key, value) in [("max_request_body", raw.max_request_body), ("max_response_body", raw.max_response_body)] {
        if !(1..=MAX_UNARY_BODY).contains(&value) {
            errors.push(format!("proxy.{key}: must be between 1 and {MAX_UNARY_BODY} bytes"));
        }
    }
    for (key, value, unary) in [
        ("max_stream_request_body", raw.max_stream_request_body, raw.max_request_body),
        ("max_stream_response_body", raw.max_stream_response_body, raw.max_response_body),
    ] {
        if value < unary {
            errors.push(format!("proxy.{key}: must be at least the unary limit ({unary} bytes)"));
        }
    }
    if raw.default_timeout.is_zero() || raw.default_timeout > raw.max_timeout {
        errors.push("proxy.default_timeout: must be more than 0 and at most proxy.max_timeout".into());
    }
    // Callers' gRPC libraries accept 4 MiB messages by default.
    if !(1024..=1024 * 1024).contains(&raw.stream_chunk_size) {
        errors.push("proxy.stream_chunk_size: must be between 1024 and 1048576 bytes".into());
    }
    check_in_flight(&raw, errors);
    (errors.len() == before).then_some(ProxySettings {
        max_request_body: raw.max_request_body,
        max_response_body: raw.max_response_body,
        max_stream_request_body: raw.max_stream_request_body,
        max_stream_response_body: raw.max_stream_response_body,
        default_timeout: raw.default_timeout,
        max_timeout: raw.max_timeout,
        stream_chunk_size: raw.stream_chunk_size as usize,
        max_in_flight_calls: raw.max_in_flight_calls as usize,
        max_in_flight_bytes: raw.max_in_flight_bytes,
    })
}

/// The global caps: at least one call, and room for one unary call at its limits (request
/// message and response body) — otherwise a valid call could never run.
fn check_in_flight(raw: &RawProxy, errors: &mut Vec<String>) {
    if !(1..=MAX_IN_FLIGHT_CALLS).contains(&raw.max_in_flight_calls) {
        errors.push(format!("proxy.max_in_flight_calls: must be between 1 and {MAX_IN_FLIGHT_CALLS}"));
    }
    let one_call = raw.max_request_body.saturating_add(ENVELOPE).saturating_add(raw.max_response_body);
    if !(one_call..=MAX_IN_FLIGHT_BYTES).contains(&raw.max_in_flight_bytes) {
        errors.push(format!(
            "proxy.max_in_flight_bytes: must be between {one_call} (one unary call at max_request_body and \
             max_response_body) and {MAX_IN_FLIGHT_BYTES} bytes"
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use std::time::Duration;

    fn load(env: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigErrors> {
        Settings::load(None, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_and_environment_overrides() {
        assert_eq!(load(&[]).unwrap().proxy, crate::proxy::ProxySettings::default());
        let settings = load(&[
            ("CREDBROKER__PROXY__MAX_REQUEST_BODY", "65536"),
            ("CREDBROKER__PROXY__MAX_TIMEOUT", "2m"),
            ("CREDBROKER__PROXY__DEFAULT_TIMEOUT", "10s"),
            ("CREDBROKER__PROXY__MAX_IN_FLIGHT_CALLS", "16"),
            ("CREDBROKER__PROXY__MAX_IN_FLIGHT_BYTES", "67108864"),
        ])
        .unwrap();
        assert_eq!((settings.proxy.max_in_flight_calls, settings.proxy.max_in_flight_bytes), (16, 64 << 20));
        assert_eq!(settings.proxy.max_request_body, 65536);
        assert_eq!(settings.proxy.max_timeout, Duration::from_secs(120));
        assert_eq!(settings.proxy.timeout(None), Duration::from_secs(10));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let errors = load(&[
            ("CREDBROKER__PROXY__MAX_REQUEST_BODY", "0"),
            ("CREDBROKER__PROXY__MAX_STREAM_RESPONSE_BODY", "10"),
            ("CREDBROKER__PROXY__DEFAULT_TIMEOUT", "10m"),
            ("CREDBROKER__PROXY__STREAM_CHUNK_SIZE", "9999999"),
            ("CREDBROKER__PROXY__MAX_IN_FLIGHT_CALLS", "0"),
            ("CREDBROKER__PROXY__MAX_IN_FLIGHT_BYTES", "1000"),
        ])
        .unwrap_err()
        .to_string();
        for key in [
            "proxy.max_request_body",
            "proxy.max_stream_response_body",
            "proxy.default_timeout",
            "proxy.stream_chunk_size",
            "proxy.max_in_flight_calls",
            "proxy.max_in_flight_bytes",
        ] {
            assert!(errors.contains(key), "{key} not reported:\n{errors}");
        }
        let unknown = load(&[("CREDBROKER__PROXY__BOGUS", "1")]).unwrap_err().to_string();
        assert!(unknown.contains("bogus"), "{unknown}");
    }
}

//! The configuration as written (file + environment), and its validation into `Settings`.
//! Each section is read on its own, so a problem in one does not hide problems in another.

use super::env;
use super::keys::Shape;
use super::section::Sections;
use super::{
    CacheSettings, ConfigErrors, EncryptionSettings, LogFormat, ServerSettings, Settings, StoreSettings,
    TelemetrySettings, UpstreamSettings,
};
use crate::crypto::{KeyMaterial, Keyring};
use base64::{Engine, engine::general_purpose::STANDARD};
use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    listen: String,
    #[serde(with = "humantime_serde")]
    shutdown_grace: Duration,
    #[serde(with = "humantime_serde")]
    drain_delay: Duration,
    // The trust boundary and connection limits: config/security.rs, docs/security.md.
    tls: Option<super::security::RawTls>,
    allow_insecure: bool,
    reflection: bool,
    max_concurrent_streams: u32,
    #[serde(with = "humantime_serde")]
    keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    keepalive_timeout: Duration,
    #[serde(with = "humantime_serde")]
    first_byte_timeout: Duration,
    /// `None`: one per core the process may use.
    cores: Option<usize>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            shutdown_grace: Duration::from_secs(30),
            // No drain delay by default: nothing routes around a lone replica; deploy/ sets one.
            drain_delay: Duration::ZERO,
            tls: None,
            allow_insecure: false,
            reflection: true,
            max_concurrent_streams: 256,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(10),
            cores: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawEncryption {
    key: Option<String>,
    key_file: Option<PathBuf>,
    keys: Vec<RawKey>,
    active_key: Option<String>,
    /// Keys fingerprints instead of a key derived from the encryption key; required with
    /// several keys (`docs/key-rotation.md`).
    fingerprint_key: Option<String>,
    fingerprint_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    key: Option<String>,
    key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawCache {
    max_entries: u64,
    #[serde(with = "humantime_serde")]
    ttl: Duration,
}

impl Default for RawCache {
    fn default() -> Self {
        Self { max_entries: 1_000_000, ttl: Duration::from_secs(60) }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTelemetry {
    log_format: String,
    log_filter: String,
    service_name: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        Self { log_format: "text".into(), log_filter: "info".into(), service_name: "credbroker".into() }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawUpstream {
    #[serde(with = "humantime_serde")]
    connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    request_timeout: Duration,
    refresh_ahead: f64,
    refresh_jitter: f64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            refresh_ahead: 0.75,
            refresh_jitter: 0.05,
        }
    }
}

fn validate_upstream(raw: RawUpstream, errors: &mut Vec<String>) -> Option<UpstreamSettings> {
    if !(0.1..=0.95).contains(&raw.refresh_ahead) {
        errors.push("upstream.refresh_ahead: must be between 0.1 and 0.95 (a share of a token's lifetime)".into());
        return None;
    }
    if !(0.0..=0.2).contains(&raw.refresh_jitter) {
        errors.push("upstream.refresh_jitter: must be between 0 and 0.2".into());
        return None;
    }
    Some(UpstreamSettings {
        connect_timeout: raw.connect_timeout,
        request_timeout: raw.request_timeout,
        refresh_ahead: raw.refresh_ahead,
        refresh_jitter: raw.refresh_jitter,
    })
}

pub(super) fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigErrors> {
    let mut errors = Vec::new();
    let base = match path {
        // figment treats a missing file as empty; a typo in --config must not start a broker
        // on nothing.
        Some(path) if !path.is_file() => {
            return Err(ConfigErrors(vec![format!("--config: {} is not a readable file", path.display())]));
        }
        Some(path) => Figment::from(Toml::file_exact(path)),
        None => Figment::from(Toml::string(super::DEFAULT_TOML)),
    };
    let (environment, provider_overrides) = env::split(env, &mut errors);
    let figment = base.merge(environment);
    let (settings, _) = read(&figment, provider_overrides, &mut errors);
    match settings {
        Some(settings) if errors.is_empty() => Ok(settings),
        _ => Err(ConfigErrors(errors)),
    }
}

#[cfg(test)]
/// Every key the configuration accepts, at every depth, as the sections read them.
pub(super) fn accepted() -> Shape {
    read(&Figment::new(), Vec::new(), &mut Vec::new()).1
}

/// Reads every section of `figment` on its own, so a problem in one does not hide problems in
/// another; then refuses whatever no section read.
fn read(
    figment: &Figment,
    provider_overrides: Vec<env::ProviderOverride>,
    errors: &mut Vec<String>,
) -> (Option<Settings>, Shape) {
    let mut sections = Sections::new(figment);
    let server = sections.read::<RawServer>("server", errors);
    let store = sections.read::<super::store::RawStore>("store", errors);
    let encryption = sections.read::<RawEncryption>("encryption", errors);
    let cache = sections.read::<RawCache>("cache", errors);
    let telemetry = sections.read::<RawTelemetry>("telemetry", errors);
    let upstream = sections.read::<RawUpstream>("upstream", errors);
    let providers = super::providers::parse(&mut sections, provider_overrides, errors);
    let security = super::security::parse(&mut sections, errors);
    let metrics = sections.read::<super::metrics::RawMetrics>("metrics", errors);
    let proxy = sections.read::<super::proxy::RawProxy>("proxy", errors);
    let refresh = sections.read::<super::refresh::RawRefresh>("refresh", errors);
    let shape = sections.finish(errors);

    let server = server.and_then(|s| validate_server(s, errors));
    if let (Some(server), Some(security)) = (&server, &security) {
        super::security::check_exposure(server, security, errors);
    }
    let store = store.and_then(|s| super::store::validate(s, errors));
    let redis = store.as_ref().is_some_and(StoreSettings::uses_redis);
    let encryption = encryption.and_then(|e| validate_encryption(e, redis, errors));
    let cache = cache.map(|c| CacheSettings { max_entries: c.max_entries, ttl: c.ttl });
    let metrics = metrics.and_then(|m| super::metrics::validate(m, errors));
    let telemetry = telemetry
        .and_then(|t| validate_telemetry(t, errors))
        .zip(metrics)
        .map(|(t, metrics_listen)| TelemetrySettings { metrics_listen, ..t });
    let upstream = upstream.and_then(|u| validate_upstream(u, errors));
    let proxy = proxy.and_then(|p| super::proxy::validate(p, errors));
    let refresh =
        refresh.and_then(|r| super::refresh::validate(r, store.as_ref(), upstream.as_ref(), &providers, errors));
    let settings = match (server, store, encryption, cache, telemetry, (upstream, proxy, refresh, security)) {
        (
            Some(server),
            Some(store),
            Some(encryption),
            Some(cache),
            Some(telemetry),
            (Some(upstream), Some(proxy), Some(refresh), Some(security)),
        ) => Some(Settings {
            server,
            store,
            encryption,
            cache,
            telemetry,
            upstream,
            proxy,
            refresh,
            providers,
            security,
        }),
        _ => None,
    };
    (settings, shape)
}

/// A sanity bound on `server.cores`: each is a thread with its own runtime and HTTP pools.
const MAX_CORES: usize = 1024;

fn validate_server(raw: RawServer, errors: &mut Vec<String>) -> Option<ServerSettings> {
    let tls = super::security::validate_tls(raw.tls, errors);
    if raw.max_concurrent_streams == 0 {
        errors.push("server.max_concurrent_streams: above 0".into());
    }
    if raw.first_byte_timeout.is_zero() {
        errors.push("server.first_byte_timeout: above 0".into());
    }
    if raw.cores.is_some_and(|n| n > MAX_CORES) {
        errors.push(format!("server.cores: at most {MAX_CORES} (0: the shared runtime)"));
    }
    let listen = match raw.listen.parse() {
        Ok(listen) => listen,
        Err(_) => {
            errors.push(format!("server.listen: {:?} is not an address like 127.0.0.1:50051", raw.listen));
            return None;
        }
    };
    Some(ServerSettings {
        listen,
        shutdown_grace: raw.shutdown_grace,
        drain_delay: raw.drain_delay,
        tls: tls?,
        allow_insecure: raw.allow_insecure,
        reflection: raw.reflection,
        max_concurrent_streams: raw.max_concurrent_streams.max(1),
        keepalive_interval: raw.keepalive_interval,
        keepalive_timeout: raw.keepalive_timeout,
        first_byte_timeout: raw.first_byte_timeout,
        cores: raw.cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
    })
}

fn validate_encryption(raw: RawEncryption, redis: bool, errors: &mut Vec<String>) -> Option<EncryptionSettings> {
    let mut keys = raw.keys;
    if raw.key.is_some() || raw.key_file.is_some() {
        if !keys.is_empty() {
            errors.push("encryption.key: give either key/key_file or [[encryption.keys]], not both".into());
            return None;
        }
        keys.push(RawKey { id: "primary".into(), key: raw.key, key_file: raw.key_file });
    }
    if keys.is_empty() {
        if raw.fingerprint_key.is_some() || raw.fingerprint_key_file.is_some() {
            errors.push(
                "encryption.fingerprint_key: only with an encryption key (an ephemeral key has nothing to pin)".into(),
            );
            return None;
        }
        if redis {
            errors.push("encryption.key: required with a Redis store (every replica must share it)".into());
            return None;
        }
        return Some(EncryptionSettings::Ephemeral);
    }
    let before = errors.len();
    let materials: Vec<KeyMaterial> = keys.iter().enumerate().filter_map(|(i, k)| key_material(i, k, errors)).collect();
    let active = raw.active_key.unwrap_or_else(|| keys[0].id.clone());
    if !keys.iter().any(|k| k.id == active) {
        errors.push(format!("encryption.active_key: {active:?} is not the id of a configured key"));
    }
    let fingerprint_key = fingerprint_key(raw.fingerprint_key, raw.fingerprint_key_file, keys.len(), errors);
    if errors.len() > before {
        return None;
    }
    Keyring::with_fingerprint_key(materials, &active, fingerprint_key)
        .map(EncryptionSettings::Keys)
        .map_err(|e| errors.push(format!("encryption: {e}")))
        .ok()
}

/// The fingerprint key, if given. Several encryption keys need one: fingerprints derived from
/// a key would change when that key is retired, and replicas mid-rotation would disagree.
fn fingerprint_key(
    key: Option<String>,
    file: Option<PathBuf>,
    keys: usize,
    errors: &mut Vec<String>,
) -> Option<Zeroizing<Vec<u8>>> {
    const AT: &str = "encryption.fingerprint_key";
    if key.is_none() && file.is_none() {
        if keys > 1 {
            errors.push(format!(
                "{AT}: required with several encryption keys, so fingerprints do not change with the active key; \
                 to keep today's fingerprints, derive it from the key in use so far (docs/key-rotation.md)"
            ));
        }
        return None;
    }
    decode_key(AT, key.as_deref(), file.as_deref(), errors)
}

fn key_material(index: usize, raw: &RawKey, errors: &mut Vec<String>) -> Option<KeyMaterial> {
    let at = if raw.id == "primary" { "encryption.key".to_owned() } else { format!("encryption.keys[{index}]") };
    if raw.id.is_empty() || raw.id.contains(':') {
        errors.push(format!("{at}.id: must be non-empty and without ':'"));
        return None;
    }
    let bytes = decode_key(&at, raw.key.as_deref(), raw.key_file.as_deref(), errors)?;
    Some(KeyMaterial { id: raw.id.clone(), bytes })
}

/// 32 bytes, base64, from exactly one of an inline value or a file.
fn decode_key(
    at: &str,
    key: Option<&str>,
    file: Option<&Path>,
    errors: &mut Vec<String>,
) -> Option<Zeroizing<Vec<u8>>> {
    let encoded = match (key, file) {
        (Some(key), None) => Zeroizing::new(key.trim().to_owned()),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => Zeroizing::new(text.trim().to_owned()),
            Err(e) => {
                errors.push(format!("{at}: cannot read {}: {e}", file.display()));
                return None;
            }
        },
        _ => {
            errors.push(format!("{at}: give exactly one of key or key_file"));
            return None;
        }
    };
    match STANDARD.decode(encoded.as_bytes()) {
        Ok(bytes) if bytes.len() == 32 => Some(Zeroizing::new(bytes)),
        // Never echo the value: it is the key.
        _ => {
            errors.push(format!("{at}: must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"));
            None
        }
    }
}

fn validate_telemetry(raw: RawTelemetry, errors: &mut Vec<String>) -> Option<TelemetrySettings> {
    let log_format = match raw.log_format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            errors.push(format!("telemetry.log_format: {other:?} is neither \"text\" nor \"json\""));
            return None;
        }
    };
    Some(TelemetrySettings {
        log_format,
        log_filter: raw.log_filter,
        service_name: raw.service_name,
        metrics_listen: None,
    })
}

//! `[store]`: where Redis is (one server, a Cluster, or Sentinel), how to reach it securely
//! (TLS, Redis mTLS, the ACL user and password), and how durable journal writes must be.
//!
//! Every file is read here, at start-up: a CA that does not parse or a missing key file stops
//! the broker with the key named, rather than failing its first connection. Nothing here ever
//! echoes a password or a URL's userinfo.

use super::StoreSettings;
use crate::domain::Secret;
use crate::store::target::{self, ClientCert, RedisAccess, RedisTls, SentinelSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    redis_url: Option<String>,
    cluster: bool,
    sentinel: Option<RawSentinel>,
    key_prefix: String,
    #[serde(with = "humantime_serde")]
    connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    response_timeout: Duration,
    #[serde(with = "humantime_serde")]
    lease_ttl: Duration,
    #[serde(with = "humantime_serde")]
    reconcile_after: Duration,
    /// PEM CA bundle that signed the Redis server's certificate (`rediss://`).
    tls_ca_file: Option<PathBuf>,
    /// Client certificate and key for Redis mTLS (`tls-auth-clients yes`).
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    /// The Redis ACL user; with only a password, Redis's `default` user.
    username: Option<String>,
    /// Best from the environment (`CREDBROKER__STORE__PASSWORD`) or a file, never in the URL.
    password: Option<Secret>,
    password_file: Option<PathBuf>,
    journal_replicas: u32,
    #[serde(with = "humantime_serde")]
    journal_wait_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSentinel {
    master_name: String,
    addresses: Vec<String>,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            redis_url: None,
            cluster: false,
            sentinel: None,
            key_prefix: "credbroker".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            reconcile_after: Duration::from_secs(60),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            username: None,
            password: None,
            password_file: None,
            journal_replicas: 0,
            journal_wait_timeout: Duration::from_secs(1),
        }
    }
}

pub(super) fn validate(raw: RawStore, errors: &mut Vec<String>) -> Option<StoreSettings> {
    let before = errors.len();
    let (sentinel, url_user, url_password) = topology(&raw, errors);
    let tls = tls(&raw, sentinel.is_some(), errors);
    let password = password(raw.password, raw.password_file, errors).or(url_password);
    let uses_redis = raw.redis_url.is_some() || sentinel.is_some();
    if raw.lease_ttl < Duration::from_millis(300) {
        errors.push("store.lease_ttl: at least 300ms (it is renewed every third of itself)".into());
    }
    if raw.key_prefix.is_empty() || raw.key_prefix.contains(['{', '}']) || raw.key_prefix.chars().any(char::is_control)
    {
        errors.push("store.key_prefix: must be non-empty, without braces or control characters".into());
    }
    journal(raw.journal_replicas, raw.journal_wait_timeout, uses_redis, errors);
    (errors.len() == before).then(|| StoreSettings {
        redis_url: raw.redis_url.filter(|_| sentinel.is_none()),
        cluster: raw.cluster,
        sentinel,
        access: RedisAccess { tls, username: raw.username.or(url_user), password },
        key_prefix: raw.key_prefix,
        connect_timeout: raw.connect_timeout,
        response_timeout: raw.response_timeout,
        lease_ttl: raw.lease_ttl,
        reconcile_after: raw.reconcile_after,
        journal_replicas: raw.journal_replicas,
        journal_wait_timeout: raw.journal_wait_timeout,
    })
}

type Topology = (Option<SentinelSettings>, Option<String>, Option<Secret>);

/// One server or a cluster node (`redis_url`), or Sentinel (`redis+sentinel://…` or
/// `[store.sentinel]`); the user and password a sentinel URL carries.
fn topology(raw: &RawStore, errors: &mut Vec<String>) -> Topology {
    let section = raw
        .sentinel
        .as_ref()
        .map(|s| SentinelSettings { master_name: s.master_name.clone(), addresses: s.addresses.clone() });
    let from_url = match raw.redis_url.as_deref() {
        Some(url) if url.starts_with("redis+sentinel://") => match target::parse_sentinel_url(url) {
            Ok(parsed) => Some(parsed),
            Err(problem) => {
                errors.push(format!("store.redis_url: {problem} ({})", target::redact(url)));
                return (None, None, None);
            }
        },
        Some(url) => {
            if redis::Client::open(url).is_err() {
                errors.push(format!(
                    "store.redis_url: {} is not a Redis URL (redis://, rediss://, redis+unix:// or redis+sentinel://)",
                    target::redact(url)
                ));
            }
            None
        }
        None => None,
    };
    let (sentinel, user, password) = match (from_url, section) {
        (Some(_), Some(_)) => {
            errors.push("store.sentinel: give either a redis+sentinel:// URL or [store.sentinel], not both".into());
            return (None, None, None);
        }
        (Some((sentinel, user, password)), None) => (Some(sentinel), user, password),
        (None, section) => (section, None, None),
    };
    if let Some(sentinel) = &sentinel {
        check_sentinel(sentinel, raw.cluster, errors);
    }
    (sentinel, user, password)
}

fn check_sentinel(sentinel: &SentinelSettings, cluster: bool, errors: &mut Vec<String>) {
    if sentinel.master_name.is_empty() {
        errors.push("store.sentinel.master_name: must not be empty".into());
    }
    if sentinel.addresses.is_empty() || !sentinel.addresses.iter().all(|a| target::valid_address(a)) {
        errors.push("store.sentinel.addresses: one or more host:port".into());
    }
    if cluster {
        errors.push("store.cluster: a Redis Cluster is not found through Sentinel; set one or the other".into());
    }
}

/// The CA and client certificate, read and parsed now. TLS is on with a `rediss://` URL
/// (a CA file optional: the system's roots otherwise) or, with Sentinel, with a CA file.
fn tls(raw: &RawStore, sentinel: bool, errors: &mut Vec<String>) -> Option<RedisTls> {
    let url_tls = raw.redis_url.as_deref().is_some_and(target::is_tls);
    let client_files = raw.tls_cert_file.is_some() || raw.tls_key_file.is_some();
    if !url_tls && !sentinel && (raw.tls_ca_file.is_some() || client_files) {
        errors.push("store.tls_ca_file: TLS settings need a rediss:// URL (a redis:// one is plaintext)".into());
        return None;
    }
    let ca_pem = match &raw.tls_ca_file {
        Some(path) => read_pem("store.tls_ca_file", path, errors, |pem| CertificateDer::pem_slice_iter(pem).count())?,
        // rediss:// with no CA file: the redis crate checks against the system's roots.
        None if client_files => {
            errors.push("store.tls_ca_file: required with a client certificate".into());
            return None;
        }
        None => return None,
    };
    let client = match (&raw.tls_cert_file, &raw.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_pem =
                read_pem("store.tls_cert_file", cert, errors, |p| CertificateDer::pem_slice_iter(p).count())?;
            let key_pem =
                read_pem("store.tls_key_file", key, errors, |p| usize::from(PrivateKeyDer::from_pem_slice(p).is_ok()))?;
            Some(ClientCert { cert_pem, key_pem: Zeroizing::new(key_pem) })
        }
        _ => {
            errors.push("store.tls_cert_file: give both tls_cert_file and tls_key_file, or neither".into());
            return None;
        }
    };
    Some(RedisTls { ca_pem, client })
}

/// A PEM file's bytes, if `count` finds at least one item of the expected kind in it.
fn read_pem(
    key: &str,
    path: &std::path::Path,
    errors: &mut Vec<String>,
    count: impl Fn(&[u8]) -> usize,
) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(pem) if count(&pem) > 0 => Some(pem),
        Ok(_) => {
            errors.push(format!("{key}: {} holds no usable PEM item", path.display()));
            None
        }
        Err(e) => {
            errors.push(format!("{key}: cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// From `password` (the environment, typically) or `password_file`, not both.
fn password(inline: Option<Secret>, file: Option<PathBuf>, errors: &mut Vec<String>) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            errors.push("store.password: give either password or password_file, not both".into());
            None
        }
        (Some(password), None) => Some(password),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            // A trailing newline is the file's, not the password's.
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\n', '\r']))),
            Err(e) => {
                errors.push(format!("store.password_file: cannot read {}: {e}", path.display()));
                None
            }
        },
        (None, None) => None,
    }
}

fn journal(replicas: u32, wait: Duration, redis: bool, errors: &mut Vec<String>) {
    if replicas == 0 {
        return;
    }
    if !redis {
        errors.push("store.journal_replicas: only with a Redis store (the in-memory one has no replicas)".into());
    }
    if wait.is_zero() || wait > Duration::from_secs(30) {
        errors.push("store.journal_wait_timeout: between 1ms and 30s (WAIT 0 would wait forever)".into());
    }
}

impl StoreSettings {
    /// A Redis store (one server, a cluster or Sentinel), rather than the in-memory one.
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some() || self.sentinel.is_some()
    }

    /// What the Redis store is built from (the store takes plain values, not `[store]`).
    pub fn redis(&self) -> crate::store::RedisStoreConfig {
        crate::store::RedisStoreConfig {
            url: self.redis_url.clone().unwrap_or_default(),
            cluster: self.cluster,
            sentinel: self.sentinel.clone(),
            access: self.access.clone(),
            key_prefix: self.key_prefix.clone(),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            journal_replicas: self.journal_replicas,
            journal_wait_timeout: self.journal_wait_timeout,
        }
    }
}

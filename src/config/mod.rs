//! Configuration: typed, layered, validated completely before start-up.
//!
//! Layers, later wins: the embedded default (`default.toml`) *or* the `--config` file, then
//! environment variables `CREDBROKER__SECTION__KEY` (`env.rs`; deeper tables as
//! `CREDBROKER__SERVER__TLS__CERT_FILE`). Provider instances are overridden by name:
//! `CREDBROKER__PROVIDERS__<NAME>__<KEY>` (name upper-cased, `-` as `_`), so secrets like
//! `client_secret` can come from the environment. Strict at every level: an unknown table, key
//! or variable is refused, naming the nearest known key (`strict.rs`, from the keys the raw
//! types themselves take, `keys.rs`). Every problem is reported at once, each naming its key.

mod env;
mod keys;
mod metrics;
mod providers;
mod proxy;
mod raw;
mod refresh;
mod section;
mod security;
mod store;
mod strict;

pub use crate::telemetry::{LogFormat, TelemetrySettings};

use crate::crypto::Keyring;
use crate::providers::Provider;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Everything the application needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub encryption: EncryptionSettings,
    pub cache: CacheSettings,
    pub telemetry: TelemetrySettings,
    pub upstream: UpstreamSettings,
    pub proxy: crate::proxy::ProxySettings,
    pub refresh: RefreshSettings,
    pub providers: Vec<Provider>,
    /// `[auth]`, `[[policy]]`, `[audit]`, `[admin]` (docs/security.md).
    pub security: crate::security::SecuritySettings,
}

/// `[refresh]`: when headers end, how long callers wait for a renewal, how long the journal
/// remembers, and the limits on forced renewals.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// Headers of providers whose refresh revokes the previous token end this long before the
    /// planned renewal (replicas' clocks may differ by up to this).
    pub clock_skew: Duration,
    /// A request whose `min_validity` reaches past the planned renewal waits at most this long
    /// for it (and at most its own deadline).
    pub max_wait: Duration,
    /// Journal records of superseded refresh tokens expire after this; at least every
    /// provider's `refresh_token_lifetime`.
    pub journal_horizon: Duration,
    /// At most one forced renewal (ReportRejected, a proxied 401) per credential per interval.
    pub rejected_interval: Duration,
    /// A reported header must be at least this old to force a renewal.
    pub rejected_min_age: Duration,
}

/// The shared HTTP client towards providers, and when to renew sessions.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Renew sessions at this share of their lifetime (± `refresh_jitter`).
    pub refresh_ahead: f64,
    pub refresh_jitter: f64,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// How long in-flight RPCs may run on after SIGTERM before the server stops anyway.
    pub shutdown_grace: Duration,
    /// How long the replica keeps serving after SIGTERM while it reports NOT_SERVING, so
    /// balancers and Kubernetes endpoints stop routing to it before it stops accepting.
    pub drain_delay: Duration,
    /// `[server.tls]`; `None`: plaintext.
    pub tls: Option<crate::security::tls::TlsSettings>,
    /// Serve a non-loopback address without TLS or policy, on purpose (warned at every start).
    pub allow_insecure: bool,
    /// Serve gRPC reflection.
    pub reflection: bool,
    /// HTTP/2 streams per connection at most.
    pub max_concurrent_streams: u32,
    /// HTTP/2 pings this often on a connection; one not answered within the timeout closes it.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// A plaintext connection that has sent nothing by then is closed (TLS connections:
    /// `tls.handshake_timeout`).
    pub first_byte_timeout: Duration,
    /// Single-threaded runtimes serving the main listener's connections, each given the next
    /// new connection in turn (`startup/cores.rs`); default one per core the process may use
    /// (its CPU quota included). 0: serve them on the shared work-stealing runtime.
    pub cores: usize,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `None` (and no `sentinel`): the in-memory store (one replica only).
    pub redis_url: Option<String>,
    /// `redis_url` names one node of a Redis Cluster.
    pub cluster: bool,
    /// Find the master through Redis Sentinel (`redis+sentinel://…` or `[store.sentinel]`).
    pub sentinel: Option<crate::store::SentinelSettings>,
    /// TLS (`rediss://`) and the ACL user and password.
    pub access: crate::store::RedisAccess,
    /// Journal writes wait for this many replicas to acknowledge them (Redis `WAIT`).
    pub journal_replicas: u32,
    pub journal_wait_timeout: Duration,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// The renewal lease: one replica renews a credential, the others wait this long at most.
    pub lease_ttl: Duration,
    /// How long an INDETERMINATE credential stays quiet before it is probed.
    pub reconcile_after: Duration,
}

#[derive(Debug, Clone)]
pub enum EncryptionSettings {
    Keys(Keyring),
    /// No key configured and an in-memory store: a random key, gone with the process.
    Ephemeral,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub max_entries: u64,
    pub ttl: Duration,
}

/// All configuration problems found, each naming its key.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Settings {
    /// Loads the file at `path` (or the embedded default), then the `CREDBROKER__` variables
    /// among `env`.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigErrors> {
        raw::load(path, env)
    }

    /// The embedded default, with no environment: what a newcomer runs.
    pub fn embedded_default() -> Self {
        Self::load(None, []).expect("the embedded default configuration is valid")
    }
}

#[cfg(test)]
mod tests;

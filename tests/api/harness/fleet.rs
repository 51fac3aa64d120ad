//! A fleet of real processes: a Redis server (AOF, fsync always) and three credbroker
//! replicas, configured through the environment like production, sharing an in-process fake
//! upstream whose ledger records every redemption.

use super::eventually::poll;
use super::fake::start_fake;
use super::process::Process;
use super::redis::RedisNode;
use super::serve::Serve;
use super::{TEST_KEY, random_prefix};
use fake_upstream::{FakeUpstream, Provider};
use nix::sys::signal::Signal;
use std::time::Duration;

pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// At least 2 × the lease TTL + the request timeout (2 s), as config validation demands.
pub const RECONCILE_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct FleetOptions {
    /// `CREDBROKER_CHAOS_PAUSE`: where replicas pause (`point=ms`), for a fault to hit there.
    pub chaos_pause: &'static str,
    /// `false`: the refresh journal switched off (the chaos suite's negative control).
    pub journal: bool,
    /// More `CREDBROKER__…` settings for every replica.
    pub env: Vec<(&'static str, &'static str)>,
}

impl FleetOptions {
    pub fn new(chaos_pause: &'static str, journal: bool) -> Self {
        Self { chaos_pause, journal, env: Vec::new() }
    }
}

pub struct Fleet {
    pub fake: FakeUpstream,
    pub redis: RedisNode,
    /// The replicas, each logging JSON to its captured standard error.
    pub replicas: Vec<Process>,
    prefix: String,
    options: FleetOptions,
}

impl Fleet {
    pub async fn start(options: FleetOptions) -> Self {
        let fake = start_fake().await;
        let redis = RedisNode::data(None).await;
        let mut fleet = Self { fake, redis, replicas: Vec::new(), prefix: random_prefix(), options };
        for _ in 0..3 {
            let replica = fleet.replica(|serve| serve).await;
            fleet.replicas.push(replica);
        }
        fleet
    }

    /// A rolling-restart step: stops replica `index` gracefully (SIGTERM, waits for it to exit)
    /// and starts it again on a new port, adjusted by `configure` (a configuration file, other
    /// environment).
    pub async fn restart_replica(&mut self, index: usize, configure: impl FnOnce(Serve) -> Serve) {
        self.stop(index).await;
        self.replicas[index] = self.replica(configure).await;
    }

    /// [`Fleet::restart_replica`] on the port it had: a balancer in front needs no change.
    pub async fn restart_replica_in_place(&mut self, index: usize) {
        let port = self.replicas[index].port;
        self.stop(index).await;
        self.replicas[index] = self.replica(|serve| serve.on_port(port)).await;
    }

    async fn stop(&mut self, index: usize) {
        let replica = &mut self.replicas[index];
        replica.signal(Signal::SIGTERM);
        replica.exited(Duration::from_secs(30)).await.expect("a replica stops within 30 s of SIGTERM");
    }

    /// Every log line of every replica so far.
    pub fn logs(&self) -> String {
        self.replicas.iter().map(|r| r.logs()).collect::<Vec<_>>().join("\n")
    }

    /// The replica whose log shows `needle` first, scanning every line logged so far, or
    /// `None` after `patience`.
    pub async fn first_to_log(&self, needle: &str, patience: Duration) -> Option<usize> {
        let found = || async { self.replicas.iter().position(|r| r.lines().iter().any(|l| l.contains(needle))) };
        poll(patience, found).await.ok()
    }

    async fn replica(&self, configure: impl FnOnce(Serve) -> Serve) -> Process {
        let binary = std::env::var("CHAOS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_credbroker").to_owned());
        let serve = Serve::of(&binary)
            .env("CREDBROKER__STORE__REDIS_URL", self.redis.url())
            .env("CREDBROKER__STORE__KEY_PREFIX", &self.prefix)
            .env("CREDBROKER__STORE__LEASE_TTL", format!("{}ms", LEASE_TTL.as_millis()))
            .env("CREDBROKER__STORE__RECONCILE_AFTER", format!("{}ms", RECONCILE_AFTER.as_millis()))
            .env("CREDBROKER__STORE__RESPONSE_TIMEOUT", "1s")
            .env("CREDBROKER__STORE__CONNECT_TIMEOUT", "300ms")
            .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
            .env("CREDBROKER__UPSTREAM__REQUEST_TIMEOUT", "2s")
            .env("CREDBROKER__UPSTREAM__CONNECT_TIMEOUT", "500ms")
            // Planned renewals exactly at 75 % of a token's life, so scenarios can time them.
            .env("CREDBROKER__UPSTREAM__REFRESH_JITTER", "0")
            .env("CREDBROKER__REFRESH__CLOCK_SKEW", "500ms")
            .env("CREDBROKER__TELEMETRY__LOG_FORMAT", "json")
            .env("CREDBROKER_CHAOS_PAUSE", self.options.chaos_pause)
            .env("RUST_LOG", "info")
            .capture_logs();
        let mut serve = serve.passolution_at(&self.fake.url(Provider::Passolution));
        if !self.options.journal {
            serve = serve.env("CREDBROKER_UNSAFE_DISABLE_REFRESH_JOURNAL", "1");
        }
        configure(serve).envs(&self.options.env).start().await
    }
}

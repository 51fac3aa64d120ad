//! A fleet of real processes: a Redis server (AOF, fsync always) and three credbroker
//! replicas, configured through the environment like production, sharing an in-process fake
//! upstream whose ledger records every redemption.

use crate::helpers::TEST_KEY;
use crate::shutdown::{free_port, wait_for_port};
use credbroker::grpc::pb::credential_admin_client::CredentialAdminClient;
use credbroker::grpc::pb::credential_broker_client::CredentialBrokerClient;
use fake_upstream::{FakeUpstream, Provider};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::broadcast;
use tonic::transport::Channel;

pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// At least 2 × the lease TTL + the request timeout (2 s), as config validation demands.
pub const RECONCILE_AFTER: Duration = Duration::from_secs(5);

/// A real redis-server process on loopback, restartable on the same port and data directory.
pub struct LocalRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl LocalRedis {
    pub async fn start() -> Self {
        let mut redis = Self { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        redis.launch().await;
        redis
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--save", "", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the chaos suite needs redis-server on PATH (Debian: apt-get install redis-server)");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no shutdown save) and starts it again from its append-only file.
    pub async fn restart(&mut self, down_for: Duration) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        tokio::time::sleep(down_for).await;
        self.launch().await;
    }
}

/// One credbroker process.
pub struct Replica {
    pub pid: u32,
    pub port: u16,
    pub broker: CredentialBrokerClient<Channel>,
    pub admin: CredentialAdminClient<Channel>,
    pub log: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl Replica {
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), signal);
    }

    /// Its exit status, if it exits within `within`.
    pub async fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait()).await.ok()?.ok()
    }
}

pub struct Fleet {
    pub fake: FakeUpstream,
    pub redis: LocalRedis,
    pub replicas: Vec<Replica>,
    /// Every log line of every replica, as `(replica index, line)`.
    pub lines: broadcast::Sender<(usize, String)>,
    prefix: String,
    options: FleetOptions,
}

#[derive(Clone)]
pub struct FleetOptions {
    pub chaos_pause: &'static str,
    pub journal: bool,
    /// More `CREDBROKER__…` settings for every replica.
    pub env: Vec<(&'static str, &'static str)>,
}

impl FleetOptions {
    pub fn new(chaos_pause: &'static str, journal: bool) -> Self {
        Self { chaos_pause, journal, env: Vec::new() }
    }
}

impl Fleet {
    pub async fn start(options: FleetOptions) -> Self {
        let fake = crate::upstream::fake_with_client().await;
        let redis = LocalRedis::start().await;
        let (lines, _) = broadcast::channel(4096);
        let prefix = crate::helpers::random_prefix();
        let mut replicas = Vec::new();
        for index in 0..3 {
            let port = free_port();
            replicas.push(spawn_replica(index, port, &fake, &redis, &prefix, &options, lines.clone(), |_| {}).await);
        }
        Self { fake, redis, replicas, lines, prefix, options }
    }

    /// A rolling-restart step: stops replica `index` gracefully (SIGTERM, waits for it to exit)
    /// and starts it again on a new port, its command adjusted by `configure` (a new
    /// configuration file, other environment).
    pub async fn restart_replica(&mut self, index: usize, configure: impl FnOnce(&mut Command)) {
        self.restart_replica_on(index, free_port(), configure).await;
    }

    /// [`Fleet::restart_replica`] on the port it had: a balancer in front needs no change.
    pub async fn restart_replica_in_place(&mut self, index: usize) {
        self.restart_replica_on(index, self.replicas[index].port, |_| {}).await;
    }

    async fn restart_replica_on(&mut self, index: usize, port: u16, configure: impl FnOnce(&mut Command)) {
        let replica = &mut self.replicas[index];
        replica.signal(Signal::SIGTERM);
        tokio::time::timeout(Duration::from_secs(30), replica.child.wait())
            .await
            .expect("a replica stops within 30 s of SIGTERM")
            .unwrap();
        let (fake, redis, prefix, options, lines) =
            (&self.fake, &self.redis, &self.prefix, &self.options, self.lines.clone());
        self.replicas[index] = spawn_replica(index, port, fake, redis, prefix, options, lines, configure).await;
    }

    /// Every log line of every replica so far.
    pub fn logs(&self) -> String {
        self.replicas.iter().flat_map(|r| r.log.lock().unwrap().clone()).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            replica.signal(Signal::SIGCONT);
            let _ = replica.child.start_kill();
        }
    }
}

#[allow(clippy::too_many_arguments, reason = "test wiring, one call site per start mode")]
async fn spawn_replica(
    index: usize,
    port: u16,
    fake: &FakeUpstream,
    redis: &LocalRedis,
    prefix: &str,
    options: &FleetOptions,
    lines: broadcast::Sender<(usize, String)>,
    configure: impl FnOnce(&mut Command),
) -> Replica {
    let binary = std::env::var("CHAOS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_credbroker").to_owned());
    let passolution = fake.url(Provider::Passolution);
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__STORE__REDIS_URL", redis.url())
        .env("CREDBROKER__STORE__KEY_PREFIX", prefix)
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
        .env("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", format!("{passolution}api/v2/"))
        .env("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", format!("{passolution}oauth/token"))
        .env("CREDBROKER__TELEMETRY__LOG_FORMAT", "json")
        .env("CREDBROKER_CHAOS_PAUSE", options.chaos_pause)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !options.journal {
        command.env("CREDBROKER_UNSAFE_DISABLE_REFRESH_JOURNAL", "1");
    }
    configure(&mut command);
    command.envs(options.env.iter().copied());
    let mut child = command.spawn().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line.clone());
            let _ = lines.send((index, line));
        }
    });
    wait_for_port(port).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    Replica {
        pid: child.id().unwrap(),
        port,
        broker: CredentialBrokerClient::new(channel.clone()),
        admin: CredentialAdminClient::new(channel),
        log,
        child,
    }
}

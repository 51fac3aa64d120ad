//! Real Redis processes on loopback (Debian's `redis-server`): a primary, its replicas, and
//! sentinels (the same binary in sentinel mode — `redis-sentinel` is it under another name).
//! Each is killed when dropped; SIGSTOP/SIGCONT stand in for a replica that falls behind.

use super::super::eventually::eventually;
use super::super::{free_port, wait_for_port};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The master name the sentinels monitor.
pub const MASTER: &str = "credbroker-test";

pub struct RedisNode {
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl RedisNode {
    /// A data node (AOF, fsync always), replicating `primary` if given.
    pub async fn data(primary: Option<u16>) -> Self {
        Self::data_with(primary, &[]).await
    }

    /// A data node with more `redis-server` arguments.
    pub async fn data_with(primary: Option<u16>, args: &[&str]) -> Self {
        let (port, dir) = (free_port(), tempfile::tempdir().unwrap());
        let mut all = arguments(port, &["--appendonly", "yes", "--appendfsync", "always", "--dir"]);
        all.push(dir.path().to_str().unwrap().to_owned());
        if let Some(primary) = primary {
            all.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), primary.to_string()]);
        }
        all.extend(args.iter().map(|a| a.to_string()));
        Self::spawn(all, port, dir).await
    }

    /// A throw-away node on `port` (no persistence), started without waiting for it: a broker
    /// may be pointed at the port before anything listens there.
    pub fn ephemeral_on(port: u16) -> Self {
        let args = arguments(port, &["--appendonly", "no"]);
        let mut node = Self { port, child: None, args, _dir: tempfile::tempdir().unwrap() };
        node.child = Some(node.command());
        node
    }

    /// A sentinel watching `primary` with a quorum of 2 and quick failure detection.
    pub async fn sentinel(primary: u16) -> Self {
        let (port, dir) = (free_port(), tempfile::tempdir().unwrap());
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} 400\n\
                 sentinel failover-timeout {MASTER} 2000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir = dir.path().display()
            ),
        )
        .unwrap();
        Self::spawn(vec![conf.to_str().unwrap().to_owned(), "--sentinel".into()], port, dir).await
    }

    async fn spawn(args: Vec<String>, port: u16, dir: tempfile::TempDir) -> Self {
        let mut node = Self { port, child: None, args, _dir: dir };
        node.launch().await;
        node
    }

    async fn launch(&mut self) {
        self.child = Some(self.command());
        wait_for_port(self.port).await;
    }

    fn command(&self) -> Child {
        Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (Debian: apt-get install redis-server)")
    }

    /// Starts a killed node again, same port and data directory (as a supervisor would).
    /// A former primary comes back as it was; Sentinel then turns it into a replica.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.launch().await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGKILL: no shutdown, no save, nothing more replicated.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// A connection, or `None` when the node does not answer within `patience` (killed or
    /// stopped).
    pub async fn connection_within(&self, patience: Duration) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).unwrap();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(patience))
            .set_response_timeout(Some(patience));
        client.get_multiplexed_async_connection_with_config(&config).await.ok()
    }

    /// Until this node says it is a master (after a promotion), at most `patience`.
    pub async fn wait_until_master(&self, patience: Duration) {
        let role = || async {
            // Sentinel drops clients of a node it reconfigures: errors here mean "not yet".
            let client = redis::Client::open(self.url()).unwrap();
            let role: Option<Vec<redis::Value>> = match client.get_multiplexed_async_connection().await {
                Ok(mut conn) => redis::cmd("ROLE").query_async(&mut conn).await.ok(),
                Err(_) => None,
            };
            matches!(role.as_deref(), Some([redis::Value::BulkString(r), ..]) if r == b"master")
        };
        eventually(&format!("port {} is promoted", self.port), patience, role).await;
    }

    /// Until this primary has no replica connected (it dropped a stopped one).
    pub async fn wait_until_alone(&self) {
        let what = format!("primary on {} drops its replica", self.port);
        self.wait_for_replication_info(&what, "connected_slaves:0").await;
    }

    /// Until this replica has caught up with its primary's link (`master_link_status:up`).
    pub async fn wait_until_in_sync(&self) {
        let what = format!("replica on {} syncs", self.port);
        self.wait_for_replication_info(&what, "master_link_status:up").await;
    }

    async fn wait_for_replication_info(&self, what: &str, line: &str) {
        let info = || async {
            let info: String =
                redis::cmd("INFO").arg("replication").query_async(&mut self.connection().await).await.unwrap();
            if info.contains(line) { Ok(()) } else { Err(info) }
        };
        eventually(what, Duration::from_secs(10), info).await;
    }
}

/// `redis-server` arguments for loopback `port`, no snapshots, then `more`.
fn arguments(port: u16, more: &[&str]) -> Vec<String> {
    let base = ["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""].map(str::to_owned);
    base.into_iter().chain(more.iter().map(|a| a.to_string())).collect()
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        // A stopped process must be woken up to die promptly.
        self.signal(Signal::SIGCONT);
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

//! Real Redis processes on loopback for the replication and failover tests: a primary, its
//! replicas, and sentinels (Debian's `redis-server`, in sentinel mode for the sentinels — the
//! `redis-sentinel` command is the same binary under another name). Each is killed when
//! dropped; SIGSTOP/SIGCONT stand in for a replica that falls behind.

use crate::shutdown::{free_port, wait_for_port};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The master name the sentinels monitor.
pub const MASTER: &str = "credbroker-test";

pub struct Node {
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A data node (AOF, fsync always), replicating `primary` if given.
    pub async fn data(primary: Option<u16>) -> Self {
        Self::data_with(primary, &[]).await
    }

    /// A data node with more `redis-server` arguments.
    pub async fn data_with(primary: Option<u16>, args: &[&str]) -> Self {
        let (port, dir) = (free_port(), tempfile::tempdir().unwrap());
        let mut all: Vec<String> = ["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""]
            .into_iter()
            .chain(["--appendonly", "yes", "--appendfsync", "always", "--dir", dir.path().to_str().unwrap()])
            .map(str::to_owned)
            .collect();
        if let Some(primary) = primary {
            all.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), primary.to_string()]);
        }
        all.extend(args.iter().map(|a| a.to_string()));
        Self::spawn(all, port, dir).await
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
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (Debian: apt-get install redis-server)");
        self.child = Some(child);
        wait_for_port(self.port).await;
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

    /// SIGKILL: no shutdown, nothing more replicated.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// Waits until this node says it is a master (after a promotion), at most `within`.
    pub async fn wait_until_master(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            // Sentinel drops clients of a node it reconfigures: errors here mean "not yet".
            let client = redis::Client::open(self.url()).unwrap();
            let role: Option<Vec<redis::Value>> = match client.get_multiplexed_async_connection().await {
                Ok(mut conn) => redis::cmd("ROLE").query_async(&mut conn).await.ok(),
                Err(_) => None,
            };
            if matches!(role.as_deref(), Some([redis::Value::BulkString(r), ..]) if r == b"master") {
                return;
            }
            assert!(Instant::now() < deadline, "port {} was not promoted within {within:?}", self.port);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this primary has no replica connected (it dropped a stopped one).
    pub async fn wait_until_alone(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String =
                redis::cmd("INFO").arg("replication").query_async(&mut self.connection().await).await.unwrap();
            if info.contains("connected_slaves:0") {
                return;
            }
            assert!(Instant::now() < deadline, "primary on {} kept its replica: {info}", self.port);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this replica has caught up with its primary's link (`master_link_status:up`).
    pub async fn wait_until_in_sync(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String =
                redis::cmd("INFO").arg("replication").query_async(&mut self.connection().await).await.unwrap();
            if info.contains("master_link_status:up") {
                return;
            }
            assert!(Instant::now() < deadline, "replica on {} never synced: {info}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A stopped process must be woken up to die promptly.
        self.signal(Signal::SIGCONT);
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

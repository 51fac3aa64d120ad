//! A real Redis Cluster: three `redis-server` processes in cluster mode on loopback, joined
//! with `redis-cli --cluster create` (no replicas).

use super::super::eventually::eventually;
use super::super::{free_port, random_prefix, wait_for_port};
use credbroker::store::{RedisStore, RedisStoreConfig};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct LocalCluster {
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
    _nodes: Vec<Child>,
}

impl LocalCluster {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mut ports, mut nodes) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let port = free_port();
            let node = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf"), "--appendonly", "yes", "--save", ""])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("the cluster test needs redis-server on PATH (Debian: apt-get install redis-server)");
            wait_for_port(port).await;
            ports.push(port);
            nodes.push(node);
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli (Debian: redis-tools) creates the cluster");
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        let cluster = Self { ports, _dir: dir, _nodes: nodes };
        cluster.wait_until_ok().await;
        cluster
    }

    async fn wait_until_ok(&self) {
        let info = || async {
            let port = self.ports[0].to_string();
            let info = Command::new("redis-cli").args(["-p", &port, "cluster", "info"]).output().await.unwrap();
            String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
        };
        eventually("the cluster reaches cluster_state:ok", Duration::from_secs(10), info).await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// A store on the cluster under a prefix of its own, used directly (no broker).
    pub fn store(&self) -> RedisStore {
        RedisStore::new(RedisStoreConfig {
            url: self.url(),
            cluster: true,
            key_prefix: random_prefix(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .unwrap()
    }
}

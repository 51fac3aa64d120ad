//! A real Redis Cluster: `redis-server` processes in cluster mode on loopback ([`RedisNode`]s,
//! AOF with fsync always), joined with `redis-cli --cluster create`: three masters, with or
//! without a replica each. With replicas, the cluster fails over by itself
//! (`cluster-node-timeout` 1 s), and the test finds, kills or stops the master owning a key.

use super::super::eventually::eventually;
use super::super::random_prefix;
use super::nodes::RedisNode;
use credbroker::store::{RedisStore, RedisStoreConfig};
use nix::sys::signal::Signal;
use std::time::Duration;
use tokio::process::Command;

/// A `CLUSTER SLOTS` entry: first slot, last slot, then its nodes (`[host, port, id, …]`,
/// master first).
type Slots = Vec<redis::Value>;

fn range(slots: &Slots) -> std::ops::RangeInclusive<u16> {
    let bound = |i: usize| redis::from_redis_value_ref::<u16>(&slots[i]).unwrap();
    bound(0)..=bound(1)
}

fn shard(slots: &Slots) -> Shard {
    let port = |node: &redis::Value| match node {
        redis::Value::Array(fields) => redis::from_redis_value_ref::<u16>(&fields[1]).unwrap(),
        other => panic!("a CLUSTER SLOTS node: {other:?}"),
    };
    let ports: Vec<u16> = slots[2..].iter().map(port).collect();
    Shard { master: ports[0], replicas: ports[1..].to_vec() }
}

/// How long a node may stay silent before the others fail it over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct LocalCluster {
    pub nodes: Vec<RedisNode>,
}

/// One shard as the cluster sees it now: the master's port and its replicas' ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub master: u16,
    pub replicas: Vec<u16>,
}

impl LocalCluster {
    /// Three masters, no replicas.
    pub async fn start() -> Self {
        Self::create(0).await
    }

    /// Three masters with one replica each; any replica may take over whatever its data's age
    /// (`cluster-replica-validity-factor 0`), so a lagging replica is promoted too.
    pub async fn with_replicas() -> Self {
        Self::create(1).await
    }

    async fn create(replicas_per_master: usize) -> Self {
        let timeout = NODE_TIMEOUT_MS.to_string();
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
            "--cluster-replica-validity-factor",
            "0",
        ];
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas_per_master) {
            nodes.push(RedisNode::data_with(None, &args).await);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_per_master.to_string(), "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli (Debian: redis-tools) creates the cluster");
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            cluster.wait_until_ok(node.port).await;
        }
        if replicas_per_master > 0 {
            let linked = || async {
                let shards = cluster.shards().await;
                if shards.len() == 3 && shards.iter().all(|s| s.replicas.len() == replicas_per_master) {
                    Ok(())
                } else {
                    Err(shards)
                }
            };
            eventually("every master has its replicas", Duration::from_secs(20), linked).await;
            for node in &cluster.nodes {
                if !cluster.shards().await.iter().any(|s| s.master == node.port) {
                    node.wait_until_in_sync().await;
                }
            }
        }
        cluster
    }

    /// Until the node on `port` says `cluster_state:ok`.
    pub async fn wait_until_ok(&self, port: u16) {
        let info = || async {
            let info = Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output().await;
            let text = info.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            if text.contains("cluster_state:ok") { Ok(()) } else { Err(text) }
        };
        eventually(&format!("node {port} reaches cluster_state:ok"), Duration::from_secs(20), info).await;
    }

    /// The first node: what the stores and brokers are pointed at.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    pub fn node(&self, port: u16) -> &RedisNode {
        self.nodes.iter().find(|n| n.port == port).expect("a node of this cluster")
    }

    fn node_mut(&mut self, port: u16) -> &mut RedisNode {
        self.nodes.iter_mut().find(|n| n.port == port).expect("a node of this cluster")
    }

    /// `CLUSTER SLOTS` (and `CLUSTER KEYSLOT key`) from the first node that answers: failed
    /// nodes are left out of its reply.
    async fn ask(&self, key: &str) -> (Vec<Slots>, u16) {
        for node in &self.nodes {
            let asked = async {
                let mut conn = node.connection_within(Duration::from_millis(500)).await?;
                let slots: Vec<Slots> = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await.ok()?;
                let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut conn).await.ok()?;
                Some((slots, slot))
            };
            if let Ok(Some(answer)) = tokio::time::timeout(Duration::from_secs(1), asked).await {
                return answer;
            }
        }
        panic!("no node of the cluster answers CLUSTER SLOTS")
    }

    /// The shards as a live node sees them now.
    pub async fn shards(&self) -> Vec<Shard> {
        let mut shards: Vec<Shard> = Vec::new();
        for slots in self.ask("").await.0 {
            let shard = shard(&slots);
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        shards
    }

    /// The shard owning `key`'s slot now.
    pub async fn shard_of(&self, key: &str) -> Shard {
        let (slots, slot) = self.ask(key).await;
        shard(slots.iter().find(|s| range(s).contains(&slot)).expect("every slot is served"))
    }

    /// SIGKILL the node on `port`.
    pub async fn kill(&mut self, port: u16) {
        self.node_mut(port).kill().await;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) the node on `port`: a node that hangs, its
    /// sockets open, answering nothing.
    pub fn stop(&self, port: u16, stopped: bool) {
        self.node(port).signal(if stopped { Signal::SIGSTOP } else { Signal::SIGCONT });
    }

    /// Until the replica on `port` is a master and the cluster serves every slot again.
    pub async fn wait_until_promoted(&self, port: u16) {
        self.node(port).wait_until_master(Duration::from_secs(30)).await;
        self.wait_until_ok(port).await;
    }

    /// A store on the cluster under a prefix of its own, used directly (no broker).
    pub fn store(&self) -> RedisStore {
        self.store_with(random_prefix(), 0)
    }

    /// A store under `prefix`; with `journal_replicas`, journal writes WAIT on their shard.
    pub fn store_with(&self, key_prefix: String, journal_replicas: u32) -> RedisStore {
        RedisStore::new(RedisStoreConfig {
            url: self.url(),
            cluster: true,
            key_prefix,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            journal_replicas,
            journal_wait_timeout: Duration::from_secs(1),
            ..Default::default()
        })
        .unwrap()
    }
}

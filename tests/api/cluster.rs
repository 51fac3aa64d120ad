//! Against a real Redis Cluster: three redis-server processes in cluster mode, joined with
//! `redis-cli --cluster create`. Every key of a credential shares its hash tag, so the journal's
//! multi-key scripts must work unchanged; this proves it, and a Passolution rotation end to end.

use crate::helpers::{TEST_KEY, random_prefix, settings, spawn_with_settings};
use crate::shutdown::{free_port, wait_for_port};
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
        for _ in 0..100 {
            let info = Command::new("redis-cli")
                .args(["-p", &self.ports[0].to_string(), "cluster", "info"])
                .output()
                .await
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the cluster did not reach cluster_state:ok");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    fn store(&self) -> RedisStore {
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

#[tokio::test]
async fn the_store_contract_holds_on_a_redis_cluster() {
    let cluster = LocalCluster::start().await;
    crate::store_conformance::contract(cluster.store()).await;
    crate::store_conformance::journal(cluster.store()).await;
    crate::store_conformance::bounded_journal(cluster.store()).await;
    crate::store_conformance::journal_race(cluster.store()).await;
    crate::store_conformance::leases(cluster.store()).await;
}

#[tokio::test]
async fn a_rotation_works_end_to_end_on_a_redis_cluster() {
    let cluster = LocalCluster::start().await;
    let fake = crate::upstream::fake_with_client().await;
    let base = fake.url(fake_upstream::Provider::Passolution);
    let (api, token, url, prefix) =
        (format!("{base}api/v2/"), format!("{base}oauth/token"), cluster.url(), random_prefix());
    let app = spawn_with_settings(settings(&[
        ("CREDBROKER__STORE__REDIS_URL", &url),
        ("CREDBROKER__STORE__CLUSTER", "true"),
        ("CREDBROKER__STORE__KEY_PREFIX", &prefix),
        ("CREDBROKER__ENCRYPTION__KEY", TEST_KEY),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", &api),
        ("CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", &token),
    ]))
    .await;
    let (_, refresh, tokens) = crate::upstream::issue_tokens(&fake, Duration::from_secs(1));
    app.put("passolution", "on-a-cluster", tokens).await.unwrap();
    let served = app.get("passolution", "on-a-cluster").await.unwrap();
    assert!(served.headers[0].value.starts_with("Bearer "));
    assert_eq!(fake.ledger().redemptions_of(&refresh), 1);
    let listed = app.list("passolution", 10, "").await.unwrap();
    assert_eq!(listed.credentials.len(), 1);
    assert_eq!(listed.credentials[0].version, 3, "put, reserve, commit");
}

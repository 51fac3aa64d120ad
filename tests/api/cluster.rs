//! Against a real Redis Cluster: redis-server processes in cluster mode, joined with
//! `redis-cli --cluster create`. Every key of a credential shares its hash tag, so the journal's
//! multi-key scripts must work unchanged; this proves it, and a Passolution rotation end to end.
//! With a replica per master: a commit reaches the master promoted after its shard's master is
//! killed or hangs, and `journal_replicas` waits for the replica of the write's own shard.

use crate::harness::{Broker, LocalCluster, eventually, issue_tokens, random_prefix};
use credbroker::domain::{CredentialId, ProviderName, Subject};
use credbroker::store::{Attempt, CredentialStore, Reservation, StoredCredential};
use std::time::Duration;

#[tokio::test]
async fn the_store_contract_holds_on_a_redis_cluster() {
    let cluster = LocalCluster::start().await;
    crate::store_conformance::keeps_the_contract(|| cluster.store()).await;
    let sessions = || credbroker::store::sessions::RedisSessions::new(cluster.store());
    crate::connect::store::sessions_contract(sessions()).await;
    crate::connect::store::one_state_one_redeemer(sessions()).await;
}

#[tokio::test]
async fn a_rotation_works_end_to_end_on_a_redis_cluster() {
    let cluster = LocalCluster::start().await;
    let app = Broker::new()
        .fake()
        .sharing(&cluster.url(), &random_prefix())
        .env("CREDBROKER__STORE__CLUSTER", "true")
        .start()
        .await;
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
    app.put("passolution", "on-a-cluster", tokens).await.unwrap();
    let served = app.get("passolution", "on-a-cluster").await.unwrap();
    assert!(served.headers[0].value.starts_with("Bearer "));
    assert_eq!(app.fake().ledger().redemptions_of(&refresh), 1);
    let listed = app.list("passolution", 10, "").await.unwrap();
    assert_eq!(listed.credentials.len(), 1);
    assert_eq!(listed.credentials[0].version, 3, "put, reserve, commit");
}

/// How the master owning the credential fails.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL: its sockets close.
    Killed,
    /// SIGSTOP: its sockets stay open and nothing answers — a hung or partitioned node.
    Stopped,
}

/// The refresh is reserved, the master of its shard fails, the replica is promoted: the
/// commit, retried as the broker retries it, must reach the promoted master within a bound.
async fn a_commit_reaches_the_promoted_master(fault: Fault) {
    let mut cluster = LocalCluster::with_replicas().await;
    let prefix = random_prefix();
    let store = cluster.store_with(prefix.clone(), 0);
    // The worst case: the shard of the one node the configuration names is the one that fails.
    let subject = subject_on(&cluster, &prefix, cluster.nodes[0].port).await;
    let id =
        CredentialId::new(ProviderName::parse("p", "passolution").unwrap(), Subject::parse("s", &subject).unwrap());
    let record = |sealed: &str| StoredCredential::active(sealed.into());
    let v1 = store.put(&id, 0, &record("rt1")).await.unwrap().unwrap();
    let attempt = Attempt { id: "h1", owner: "me", horizon: Duration::from_secs(3600) };
    let reserved = store.reserve_refresh(&id, v1, attempt, &record("refreshing")).await.unwrap();
    assert_eq!(reserved, Reservation::Reserved { version: v1 + 1 });

    let shard = cluster.shard_of(&format!("{prefix}:{{passolution:{subject}}}:cred")).await;
    // A replica that joined after the scripts were loaded (scripts are not replicated): the
    // promoted master answers NOSCRIPT, and the script must be loaded where it runs.
    let mut replica = cluster.node(shard.replicas[0]).connection().await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut replica).await.unwrap();
    match fault {
        Fault::Killed => cluster.kill(shard.master).await,
        Fault::Stopped => cluster.stop(shard.master, true),
    }
    cluster.wait_until_promoted(shard.replicas[0]).await;
    // One commit attempt after another, as the rotation's commit patience makes them.
    let commit = || async { store.compare_and_swap(&id, v1 + 1, &record("rt2")).await };
    let committed = eventually("the commit reaches the promoted master", Duration::from_secs(15), commit).await;
    assert_eq!(committed, Some(v1 + 2), "{fault:?}: the reservation survived, so the commit applies");
    let mut promoted = cluster.node(shard.replicas[0]).connection().await;
    let version: Option<u64> =
        redis::AsyncCommands::hget(&mut promoted, format!("{prefix}:{{passolution:{subject}}}:cred"), "version")
            .await
            .unwrap();
    assert_eq!(version, Some(v1 + 2), "the promoted master has the commit");
    assert_eq!(store.get(&id).await.unwrap().unwrap().version, v1 + 2, "and the store reads it back");
}

#[tokio::test]
async fn a_commit_reaches_the_promoted_master_after_its_master_is_killed() {
    a_commit_reaches_the_promoted_master(Fault::Killed).await;
}

#[tokio::test]
async fn a_commit_reaches_the_promoted_master_after_its_master_hangs() {
    a_commit_reaches_the_promoted_master(Fault::Stopped).await;
}

/// A subject whose keys live on the shard whose master is `master`.
async fn subject_on(cluster: &LocalCluster, prefix: &str, master: u16) -> String {
    for n in 0.. {
        let subject = format!("u{n}");
        if cluster.shard_of(&format!("{prefix}:{{passolution:{subject}}}:cred")).await.master == master {
            return subject;
        }
    }
    unreachable!()
}

/// `store.journal_replicas` with a cluster: WAIT runs on the connection of the shard that
/// took the write, so it counts that shard's replica — the one that could be promoted in its
/// place. One shard's replica falls behind: that shard's reservations are not acknowledged,
/// another shard's still are.
#[tokio::test]
async fn journal_writes_wait_for_the_replica_of_their_own_shard() {
    let cluster = LocalCluster::with_replicas().await;
    let prefix = random_prefix();
    let store = cluster.store_with(prefix.clone(), 1);
    let shards = cluster.shards().await;
    let (lagging, healthy) = (&shards[0], &shards[1]);
    let id = |subject: &str| {
        CredentialId::new(ProviderName::parse("p", "passolution").unwrap(), Subject::parse("s", subject).unwrap())
    };
    let on_lagging = id(&subject_on(&cluster, &prefix, lagging.master).await);
    let on_healthy = id(&subject_on(&cluster, &prefix, healthy.master).await);
    let record = |sealed: &str| StoredCredential::active(sealed.into());
    let attempt = |id| Attempt { id, owner: "me", horizon: Duration::from_secs(3600) };
    let v_lagging = store.put(&on_lagging, 0, &record("rt1")).await.unwrap().unwrap();
    let v_healthy = store.put(&on_healthy, 0, &record("rt1")).await.unwrap().unwrap();
    let reserved = store.reserve_refresh(&on_lagging, v_lagging, attempt("h1"), &record("r")).await.unwrap();
    assert_eq!(reserved, Reservation::Reserved { version: v_lagging + 1 }, "its replica acknowledged it");

    cluster.stop(lagging.replicas[0], true);
    let unacknowledged = store.reserve_refresh(&on_lagging, v_lagging + 1, attempt("h2"), &record("r")).await;
    let acknowledged = store.reserve_refresh(&on_healthy, v_healthy, attempt("h1"), &record("r")).await;
    cluster.stop(lagging.replicas[0], false);
    assert_eq!(unacknowledged.unwrap(), Reservation::NotReplicated { version: v_lagging + 2 });
    assert_eq!(acknowledged.unwrap(), Reservation::Reserved { version: v_healthy + 1 }, "WAIT is per shard");
}

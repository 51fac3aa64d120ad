//! Against a real Redis Cluster: three redis-server processes in cluster mode, joined with
//! `redis-cli --cluster create`. Every key of a credential shares its hash tag, so the journal's
//! multi-key scripts must work unchanged; this proves it, and a Passolution rotation end to end.

use crate::harness::{Broker, LocalCluster, issue_tokens, random_prefix};
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

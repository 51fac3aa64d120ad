//! `store.journal_replicas`: journal writes wait for replicas (`WAIT`), and a reservation
//! that no replica acknowledged is never acted on — against a real primary and replica.
//! The failover itself (Sentinel, a killed primary) is in the chaos suite
//! (`chaos/failover.rs`).

use crate::harness::{Broker, RedisNode, eventually, issue_aged_tokens, random_prefix, secs};
use credbroker::domain::{CredentialId, ProviderName, Subject};
use credbroker::grpc::pb;
use credbroker::store::{
    Attempt, CredentialStore, RedisStore, RedisStoreConfig, Reservation, StoreError, StoredCredential,
};
use fake_upstream::Operation;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use tonic::Code;

/// Generous: a loaded CI machine must not miss an acknowledgement the replica would give.
const WAIT: Duration = Duration::from_secs(1);

fn store(primary: &RedisNode, prefix: &str) -> RedisStore {
    RedisStore::new(RedisStoreConfig {
        url: primary.url(),
        key_prefix: prefix.to_owned(),
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        journal_replicas: 1,
        journal_wait_timeout: WAIT,
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn journal_writes_return_only_once_a_replica_has_them() {
    let primary = RedisNode::data(None).await;
    let replica = RedisNode::data(Some(primary.port)).await;
    replica.wait_until_in_sync().await;
    let prefix = random_prefix();
    let store = store(&primary, &prefix);
    let id = CredentialId::new(ProviderName::parse("p", "passolution").unwrap(), Subject::parse("s", "u").unwrap());
    let record = |sealed: &str| StoredCredential::active(sealed.into());
    let attempt = |id| Attempt { id, owner: "me", horizon: Duration::from_secs(3600) };

    let v1 = store.put(&id, 0, &record("rt1")).await.unwrap().unwrap();
    let reserved = store.reserve_refresh(&id, v1, attempt("h1"), &record("refreshing")).await.unwrap();
    assert_eq!(reserved, Reservation::Reserved { version: v1 + 1 });
    let on_replica: Option<u64> = redis::AsyncCommands::hget(
        &mut replica.connection().await,
        format!("{prefix}:{{passolution:u}}:cred"),
        "version",
    )
    .await
    .unwrap();
    assert_eq!(on_replica, Some(v1 + 1), "acknowledged means the replica has it");

    // The replica falls behind: writes still land on the primary, but are not acknowledged.
    replica.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let unreplicated = store.reserve_refresh(&id, v1 + 1, attempt("h2"), &record("r2")).await.unwrap();
    assert_eq!(unreplicated, Reservation::NotReplicated { version: v1 + 2 });
    assert!(started.elapsed() >= WAIT, "WAIT waited its timeout");
    let swapped = store.compare_and_swap(&id, v1 + 2, &record("rt2")).await;
    assert!(matches!(swapped, Err(StoreError::NotReplicated)), "{swapped:?}");
    // Nothing written, nothing to wait for: a lost race is answered at once.
    assert_eq!(store.compare_and_swap(&id, v1, &record("stale")).await.unwrap(), None);
    replica.signal(Signal::SIGCONT);
}

/// Through the broker: while no replica acknowledges, the refresh token is never sent; the
/// attempt is reopened and the credential stays ACTIVE; once the replica is back, the
/// renewal goes through, once.
#[tokio::test]
async fn an_unacknowledged_reservation_never_sends_the_refresh_token() {
    let primary = RedisNode::data(None).await;
    let replica = RedisNode::data(Some(primary.port)).await;
    replica.wait_until_in_sync().await;
    let app = Broker::new()
        .fake()
        .quick_renewals()
        .sharing(&primary.url(), &random_prefix())
        .env("CREDBROKER__STORE__JOURNAL_REPLICAS", "1")
        .env("CREDBROKER__STORE__JOURNAL_WAIT_TIMEOUT", "1s")
        .start()
        .await;
    let (_, _, tokens) = issue_aged_tokens(app.fake(), Duration::from_secs(60), Duration::from_secs(50));
    app.put("passolution", "w", tokens).await.unwrap();
    let refreshes = || app.fake().ledger().count(|e| e.operation == Operation::RefreshTokenGrant);

    replica.signal(Signal::SIGSTOP);
    for _ in 0..3 {
        let refused = app.get_valid_for("passolution", "w", secs(30)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("could not replicate"), "{refused:?}");
    }
    assert_eq!(refreshes(), 0, "no refresh token left the broker");
    // Renew-ahead keeps trying while the replica is stopped: each attempt reserves, waits in
    // vain for the replica and reopens, so one status read may land inside an attempt
    // (REFRESHING). What must hold is that the credential comes back to ACTIVE between them.
    let active = || async {
        let status = app.status("passolution", "w").await.unwrap();
        if status.state() == pb::CredentialState::Active { Ok(()) } else { Err(status) }
    };
    eventually("reopened, not stuck", Duration::from_secs(10), active).await;
    assert_eq!(refreshes(), 0, "still no refresh token left the broker");

    replica.signal(Signal::SIGCONT);
    replica.wait_until_in_sync().await;
    let renewed = || async { app.get_valid_for("passolution", "w", secs(30)).await };
    eventually("renewed once the replica is back", Duration::from_secs(10), renewed).await;
    assert_eq!((refreshes(), app.fake().ledger().violations().len()), (1, 0));
}

//! The store contract, run against both implementations directly (no gRPC): versions,
//! compare-and-swap, tombstones, listings.

use crate::helpers::{TestRedis, random_prefix};
use credbroker::domain::{CredentialId, CredentialState, ProviderName, Subject};
use credbroker::store::{CredentialStore, MemoryStore, RedisStore, RedisStoreConfig, Reservation, StoredCredential};
use std::sync::Arc;
use std::time::Duration;

fn id(provider: &str, subject: &str) -> CredentialId {
    CredentialId::new(ProviderName::parse("p", provider).unwrap(), Subject::parse("s", subject).unwrap())
}

fn record(sealed: &str) -> StoredCredential {
    StoredCredential {
        version: 0,
        state: CredentialState::Active,
        detail: String::new(),
        access_expires_at: None,
        updated_at: time::OffsetDateTime::now_utc(),
        sealed: sealed.into(),
    }
}

pub async fn contract(store: impl CredentialStore) {
    let a = id("bro", "alice");
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.compare_and_swap(&a, 0, &record("x")).await.unwrap(), None, "no CAS on a missing record");
    assert_eq!(store.put(&a, &record("v1")).await.unwrap(), 1);
    assert_eq!(store.put(&a, &record("v2")).await.unwrap(), 2);
    let got = store.get(&a).await.unwrap().unwrap();
    assert_eq!((got.version, got.sealed.as_str()), (2, "v2"));

    assert_eq!(store.compare_and_swap(&a, 1, &record("stale")).await.unwrap(), None, "stale version loses");
    assert_eq!(store.compare_and_swap(&a, 2, &record("v3")).await.unwrap(), Some(3));
    assert_eq!(store.get(&a).await.unwrap().unwrap().sealed, "v3");

    assert!(store.delete(&a).await.unwrap());
    assert!(!store.delete(&a).await.unwrap());
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.compare_and_swap(&a, 4, &record("ghost")).await.unwrap(), None, "a tombstone is not live");
    assert!(store.put(&a, &record("v5")).await.unwrap() > 3, "versions only grow across deletes");

    // Subjects that look like key syntax stay distinct credentials.
    let tricky = ["b}:cred", "b%7D:cred", "b", "{x}", "%"];
    for (i, subject) in tricky.iter().enumerate() {
        store.put(&id("bro", subject), &record(&format!("t{i}"))).await.unwrap();
    }
    for (i, subject) in tricky.iter().enumerate() {
        assert_eq!(store.get(&id("bro", subject)).await.unwrap().unwrap().sealed, format!("t{i}"), "{subject}");
    }
    store.put(&id("pass", "alice"), &record("other provider")).await.unwrap();
    let listed = store.list(&ProviderName::parse("p", "bro").unwrap(), None, 100).await.unwrap();
    let subjects: Vec<&str> = listed.iter().map(|l| l.subject.as_str()).collect();
    assert_eq!(subjects, ["%", "alice", "b", "b%7D:cred", "b}:cred", "{x}"]);
    let after_b = store
        .list(&ProviderName::parse("p", "bro").unwrap(), Some(&Subject::parse("s", "b").unwrap()), 2)
        .await
        .unwrap();
    assert_eq!(after_b.iter().map(|l| l.subject.as_str()).collect::<Vec<_>>(), ["b%7D:cred", "b}:cred"]);
}

/// The write-once refresh journal: a refresh token is reserved at most once, ever — except
/// after an explicit reopen (the refresh provably never left).
pub async fn journal(store: impl CredentialStore) {
    use Reservation::*;
    let j = id("passolution", "u");
    assert_eq!(
        store.reserve_refresh(&j, 0, "h1", "owner", &record("x")).await.unwrap(),
        VersionChanged,
        "no record yet"
    );
    let v1 = store.put(&j, &record("rt1")).await.unwrap();
    assert_eq!(
        store.reserve_refresh(&j, v1, "h1", "owner", &record("refreshing")).await.unwrap(),
        Reserved { version: v1 + 1 }
    );
    assert_eq!(store.get(&j).await.unwrap().unwrap().sealed, "refreshing");
    assert_eq!(store.reserve_refresh(&j, v1 + 1, "h1", "owner", &record("again")).await.unwrap(), AlreadyAttempted);
    assert_eq!(store.reserve_refresh(&j, v1, "h2", "owner", &record("stale")).await.unwrap(), VersionChanged);
    assert_eq!(store.reopen_refresh(&j, v1, "h1", &record("stale")).await.unwrap(), None, "reopen checks the version");
    assert_eq!(store.reopen_refresh(&j, v1 + 1, "h1", &record("rt1")).await.unwrap(), Some(v1 + 2));
    assert_eq!(
        store.reserve_refresh(&j, v1 + 2, "h1", "owner", &record("retry")).await.unwrap(),
        Reserved { version: v1 + 3 }
    );
    assert_eq!(store.compare_and_swap(&j, v1 + 3, &record("rt2")).await.unwrap(), Some(v1 + 4));
    assert_eq!(store.reserve_refresh(&j, v1 + 4, "h1", "owner", &record("replay")).await.unwrap(), AlreadyAttempted);
    // The journal outlives the credential: re-importing a used refresh token cannot resend it.
    store.delete(&j).await.unwrap();
    let v = store.put(&j, &record("rt1 again")).await.unwrap();
    assert_eq!(store.reserve_refresh(&j, v, "h1", "owner", &record("replay")).await.unwrap(), AlreadyAttempted);
    // The attempt remembers its owner; fencing hands it to another owner atomically with a write.
    assert_eq!(store.attempt_owner(&j, "h1").await.unwrap().as_deref(), Some("owner"));
    assert_eq!(store.attempt_owner(&j, "never").await.unwrap(), None);
    let live = store.get(&j).await.unwrap().unwrap().version;
    assert_eq!(store.fence_refresh(&j, live - 1, "h1", "rescuer", &record("stale")).await.unwrap(), None);
    assert_eq!(store.fence_refresh(&j, live, "h1", "rescuer", &record("fenced")).await.unwrap(), Some(live + 1));
    assert_eq!(store.attempt_owner(&j, "h1").await.unwrap().as_deref(), Some("rescuer"));
    // Attempts are per credential.
    let other = id("passolution", "other");
    let w = store.put(&other, &record("rt")).await.unwrap();
    assert!(matches!(store.reserve_refresh(&other, w, "h1", "owner", &record("r")).await.unwrap(), Reserved { .. }));
}

/// Leases: one holder at a time; renew and release only by the holder; expiry frees it.
pub async fn leases(store: impl CredentialStore) {
    let l = id("passolution", "leased");
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_lease(&l, "a", ttl).await.unwrap());
    assert!(!store.acquire_lease(&l, "b", ttl).await.unwrap(), "held by a");
    assert!(!store.renew_lease(&l, "b", ttl).await.unwrap(), "only the holder renews");
    assert!(store.renew_lease(&l, "a", ttl).await.unwrap());
    store.release_lease(&l, "b").await.unwrap(); // not b's: a plain DEL would free it
    assert!(!store.acquire_lease(&l, "b", ttl).await.unwrap(), "still held by a");
    store.release_lease(&l, "a").await.unwrap();
    assert!(store.acquire_lease(&l, "b", ttl).await.unwrap(), "released");
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(!store.renew_lease(&l, "b", ttl).await.unwrap(), "an expired lease cannot be renewed");
    assert!(store.acquire_lease(&l, "c", ttl).await.unwrap(), "expired");
}

/// Many concurrent reservations of one token at one version: exactly one wins.
pub async fn journal_race(store: impl CredentialStore + Clone) {
    let j = id("passolution", "race");
    let v = store.put(&j, &record("rt")).await.unwrap();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, j) = (store.clone(), j.clone());
            tokio::spawn(
                async move { store.reserve_refresh(&j, v, "hash", "owner", &record("refreshing")).await.unwrap() },
            )
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Reservation::Reserved { .. }) {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(MemoryStore::new()).await;
    journal(MemoryStore::new()).await;
    journal_race(MemoryStore::new()).await;
    leases(MemoryStore::new()).await;
}

fn redis_store(redis: &TestRedis, prefix: &str) -> RedisStore {
    RedisStore::new(RedisStoreConfig {
        url: redis.url.clone(),
        cluster: false,
        key_prefix: prefix.to_owned(),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
    })
    .unwrap()
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let redis = TestRedis::start().await;
    contract(redis_store(&redis, &random_prefix())).await;
    journal(redis_store(&redis, &random_prefix())).await;
    journal_race(redis_store(&redis, &random_prefix())).await;
    leases(redis_store(&redis, &random_prefix())).await;
}

/// A crash between the index write and the record write leaves a dangling index entry;
/// listings skip it and still fill the page.
#[tokio::test]
async fn redis_listing_skips_dangling_index_entries() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let store = redis_store(&redis, &prefix);
    for s in ["a", "c", "e"] {
        store.put(&id("bro", s), &record(s)).await.unwrap();
    }
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("ZADD")
        .arg(format!("{prefix}:{{bro}}:index"))
        .arg(0)
        .arg("b")
        .arg(0)
        .arg("d")
        .query_async(&mut conn)
        .await
        .unwrap();
    let page = store.list(&ProviderName::parse("p", "bro").unwrap(), None, 2).await.unwrap();
    assert_eq!(page.iter().map(|l| l.subject.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    let rest = store
        .list(&ProviderName::parse("p", "bro").unwrap(), Some(&Subject::parse("s", "c").unwrap()), 2)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|l| l.subject.as_str()).collect::<Vec<_>>(), ["e"]);
}

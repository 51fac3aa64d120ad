//! The store contract, run against both implementations directly (no gRPC): versions,
//! compare-and-swap, tombstones, listings.

use crate::helpers::{TestRedis, random_prefix};
use credbroker::domain::{CredentialId, CredentialState, ProviderName, Subject};
use credbroker::store::{CredentialStore, MemoryStore, RedisStore, RedisStoreConfig, StoredCredential};
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

async fn contract(store: impl CredentialStore) {
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

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(MemoryStore::new()).await;
}

fn redis_store(redis: &TestRedis, prefix: &str) -> RedisStore {
    RedisStore::new(RedisStoreConfig {
        url: redis.url.clone(),
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

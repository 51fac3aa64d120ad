//! Records: versions that only grow (across deletes too), compare-and-swap, puts that name the
//! version they replace, tombstones, subjects that look like key syntax, listings in order.

use super::{id, put, record};
use crate::harness::{TestRedis, random_prefix};
use credbroker::domain::{ProviderName, Subject};
use credbroker::store::CredentialStore;

pub(super) async fn records(store: impl CredentialStore) {
    let a = id("bro", "alice");
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.version(&a).await.unwrap(), 0);
    assert_eq!(store.compare_and_swap(&a, 0, &record("x")).await.unwrap(), None, "no CAS on a missing record");
    assert_eq!(store.put(&a, 1, &record("x")).await.unwrap(), None, "a put names the version it replaces");
    assert_eq!(store.put(&a, 0, &record("v1")).await.unwrap(), Some(1));
    assert_eq!(store.put(&a, 1, &record("v2")).await.unwrap(), Some(2));
    assert_eq!(store.put(&a, 1, &record("late")).await.unwrap(), None, "a put that lost the race writes nothing");
    let got = store.get(&a).await.unwrap().unwrap();
    assert_eq!((got.version, got.sealed.as_str()), (2, "v2"));

    assert_eq!(store.compare_and_swap(&a, 1, &record("stale")).await.unwrap(), None, "stale version loses");
    assert_eq!(store.compare_and_swap(&a, 2, &record("v3")).await.unwrap(), Some(3));
    assert_eq!(store.get(&a).await.unwrap().unwrap().sealed, "v3");

    assert!(store.delete(&a).await.unwrap());
    assert!(!store.delete(&a).await.unwrap());
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.version(&a).await.unwrap(), 4, "the tombstone keeps the version");
    assert_eq!(store.compare_and_swap(&a, 4, &record("ghost")).await.unwrap(), None, "a tombstone is not live");
    assert_eq!(store.put(&a, 4, &record("v5")).await.unwrap(), Some(5), "versions only grow across deletes");

    // Subjects that look like key syntax stay distinct credentials.
    let tricky = ["b}:cred", "b%7D:cred", "b", "{x}", "%"];
    for (i, subject) in tricky.iter().enumerate() {
        put(&store, &id("bro", subject), &record(&format!("t{i}"))).await;
    }
    for (i, subject) in tricky.iter().enumerate() {
        assert_eq!(store.get(&id("bro", subject)).await.unwrap().unwrap().sealed, format!("t{i}"), "{subject}");
    }
    put(&store, &id("pass", "alice"), &record("other provider")).await;
    let listed = store.list(&ProviderName::parse("p", "bro").unwrap(), None, 100).await.unwrap();
    let subjects: Vec<&str> = listed.iter().map(|l| l.subject.as_str()).collect();
    assert_eq!(subjects, ["%", "alice", "b", "b%7D:cred", "b}:cred", "{x}"]);
    let after_b = store
        .list(&ProviderName::parse("p", "bro").unwrap(), Some(&Subject::parse("s", "b").unwrap()), 2)
        .await
        .unwrap();
    assert_eq!(after_b.iter().map(|l| l.subject.as_str()).collect::<Vec<_>>(), ["b%7D:cred", "b}:cred"]);
}

/// A crash between the index write and the record write leaves a dangling index entry;
/// listings skip it and still fill the page.
#[tokio::test]
async fn redis_listing_skips_dangling_index_entries() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let store = redis.store(&prefix);
    for s in ["a", "c", "e"] {
        put(&store, &id("bro", s), &record(s)).await;
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

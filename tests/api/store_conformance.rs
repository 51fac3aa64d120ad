//! The store contract, run against both implementations directly (no gRPC): versions,
//! compare-and-swap, tombstones, listings.

use crate::both_stores;
use crate::harness::{StoreKind, TestRedis, eventually, random_prefix};
use credbroker::domain::{CredentialId, CredentialState, ProviderName, Subject};
use credbroker::store::{Attempt, CredentialStore, JournalEntry, MemoryStore, Reservation, StoredCredential};
use std::sync::Arc;
use std::time::Duration;

fn id(provider: &str, subject: &str) -> CredentialId {
    CredentialId::new(ProviderName::parse("p", provider).unwrap(), Subject::parse("s", subject).unwrap())
}

fn record(sealed: &str) -> StoredCredential {
    StoredCredential { state: CredentialState::Active, ..StoredCredential::active(sealed.into()) }
}

const HORIZON: Duration = Duration::from_secs(3600);

fn attempt(id: &str) -> Attempt<'_> {
    Attempt { id, owner: "owner", horizon: HORIZON }
}

/// Creates or replaces, whatever the version (as an admin's put does).
async fn put(store: &impl CredentialStore, id: &CredentialId, record: &StoredCredential) -> u64 {
    let expected = store.version(id).await.unwrap();
    store.put(id, expected, record).await.unwrap().expect("no concurrent writer")
}

pub async fn contract(store: impl CredentialStore) {
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

/// The write-once refresh journal: a refresh token is reserved at most once — except after
/// an explicit reopen (the refresh provably never left).
pub async fn journal(store: impl CredentialStore) {
    use Reservation::*;
    let j = id("passolution", "u");
    assert_eq!(
        store.reserve_refresh(&j, 0, attempt("h1"), &record("x")).await.unwrap(),
        VersionChanged,
        "no record yet"
    );
    let v1 = put(&store, &j, &record("rt1")).await;
    assert_eq!(
        store.reserve_refresh(&j, v1, attempt("h1"), &record("refreshing")).await.unwrap(),
        Reserved { version: v1 + 1 }
    );
    assert_eq!(store.get(&j).await.unwrap().unwrap().sealed, "refreshing");
    assert_eq!(store.reserve_refresh(&j, v1 + 1, attempt("h1"), &record("again")).await.unwrap(), AlreadyAttempted);
    assert_eq!(store.reserve_refresh(&j, v1, attempt("h2"), &record("stale")).await.unwrap(), VersionChanged);
    assert_eq!(store.reopen_refresh(&j, v1, "h1", &record("stale")).await.unwrap(), None, "reopen checks the version");
    assert_eq!(store.reopen_refresh(&j, v1 + 1, "h1", &record("rt1")).await.unwrap(), Some(v1 + 2));
    assert_eq!(
        store.reserve_refresh(&j, v1 + 2, attempt("h1"), &record("retry")).await.unwrap(),
        Reserved { version: v1 + 3 }
    );
    assert_eq!(store.compare_and_swap(&j, v1 + 3, &record("rt2")).await.unwrap(), Some(v1 + 4));
    assert_eq!(store.reserve_refresh(&j, v1 + 4, attempt("h1"), &record("replay")).await.unwrap(), AlreadyAttempted);
    // The journal outlives the credential: re-importing a used refresh token cannot resend it.
    store.delete(&j).await.unwrap();
    let v = put(&store, &j, &record("rt1 again")).await;
    assert_eq!(store.reserve_refresh(&j, v, attempt("h1"), &record("replay")).await.unwrap(), AlreadyAttempted);
    // The current attempt remembers its owner; fencing hands it to another owner atomically
    // with a write.
    assert_eq!(store.attempt_owner(&j, "h1").await.unwrap().as_deref(), Some("owner"));
    assert_eq!(store.attempt_owner(&j, "never").await.unwrap(), None);
    let live = store.get(&j).await.unwrap().unwrap().version;
    let rescuer = Attempt { owner: "rescuer", ..attempt("h1") };
    assert_eq!(store.fence_refresh(&j, live - 1, rescuer, &record("stale")).await.unwrap(), None);
    assert_eq!(store.fence_refresh(&j, live, rescuer, &record("fenced")).await.unwrap(), Some(live + 1));
    assert_eq!(store.attempt_owner(&j, "h1").await.unwrap().as_deref(), Some("rescuer"));
    // Attempts are per credential.
    let other = id("passolution", "other");
    let w = put(&store, &other, &record("rt")).await;
    assert!(matches!(store.reserve_refresh(&other, w, attempt("h1"), &record("r")).await.unwrap(), Reserved { .. }));
}

/// The journal is bounded: the current and previous attempts are kept for good; each older
/// one expires `horizon` after it stopped being the previous one — and is then gone.
pub async fn bounded_journal(store: impl CredentialStore) {
    let j = id("passolution", "rotating");
    let mut version = put(&store, &j, &record("rt0")).await;
    let short = Duration::from_millis(400);
    for (i, hash) in ["a0", "a1", "a2", "a3", "a4"].into_iter().enumerate() {
        let horizon = if i < 4 { HORIZON } else { short };
        let reserving = record("r");
        let reserved = store.reserve_refresh(&j, version, Attempt { id: hash, owner: "o", horizon }, &reserving);
        let Reservation::Reserved { version: v } = reserved.await.unwrap() else { panic!("{hash}") };
        version = store.compare_and_swap(&j, v, &record(&format!("rt{}", i + 1))).await.unwrap().unwrap();
    }
    let entries = sorted(store.journal(&j).await.unwrap());
    let kept: Vec<_> = entries.iter().filter(|e| e.expires_in.is_none()).map(|e| e.attempt.as_str()).collect();
    assert_eq!(kept, ["a3", "a4"], "current and previous are kept: {entries:?}");
    let expiring: Vec<_> = entries.iter().filter(|e| e.expires_in.is_some()).map(|e| e.attempt.as_str()).collect();
    assert_eq!(expiring, ["a0", "a1", "a2"], "{entries:?}");
    assert!(entries.iter().filter_map(|e| e.expires_in).all(|left| left <= HORIZON));
    // a2 stopped being the previous attempt under the short horizon: it expires and goes.
    let gone = || async {
        let entries = sorted(store.journal(&j).await.unwrap());
        if entries.iter().any(|e| e.attempt == "a2") { Err(entries) } else { Ok(entries) }
    };
    let left = eventually("a2 expires and goes", Duration::from_secs(10), gone).await;
    assert_eq!(left.iter().map(|e| e.attempt.as_str()).collect::<Vec<_>>(), ["a0", "a1", "a3", "a4"]);
    // Within its horizon a superseded attempt still refuses a replay.
    let replay = store.reserve_refresh(&j, version, attempt("a1"), &record("replay")).await.unwrap();
    assert_eq!(replay, Reservation::AlreadyAttempted);
}

fn sorted(mut entries: Vec<JournalEntry>) -> Vec<JournalEntry> {
    entries.sort_by(|a, b| a.attempt.cmp(&b.attempt));
    entries
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
    let v = put(&store, &j, &record("rt")).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, j) = (store.clone(), j.clone());
            tokio::spawn(
                async move { store.reserve_refresh(&j, v, attempt("hash"), &record("refreshing")).await.unwrap() },
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

/// The whole contract, each part on a fresh store made by `fresh` (a Redis Cluster's too, in
/// `cluster.rs`).
pub async fn keeps_the_contract<S: CredentialStore + Clone>(fresh: impl Fn() -> S) {
    contract(fresh()).await;
    journal(fresh()).await;
    bounded_journal(fresh()).await;
    journal_race(fresh()).await;
    leases(fresh()).await;
}

async fn the_store_keeps_the_contract(store: StoreKind) {
    match store {
        StoreKind::Memory => keeps_the_contract(MemoryStore::new).await,
        StoreKind::Redis => {
            let redis = TestRedis::start().await;
            keeps_the_contract(|| redis.store(&random_prefix())).await;
        }
    }
}

both_stores!(the_store_keeps_the_contract);

/// Journals written before the journal was bounded (one `…:attempt:<hash>` key per token) are
/// still honoured: such a token is never reserved again.
#[tokio::test]
async fn redis_legacy_attempt_keys_still_refuse_a_resend() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let store = redis.store(&prefix);
    let j = id("passolution", "legacy");
    let v = put(&store, &j, &record("rt")).await;
    let mut conn = redis.connection().await;
    let legacy = format!("{prefix}:{{passolution:legacy}}:attempt:old-hash");
    let _: () = redis::cmd("SET").arg(&legacy).arg("old-owner").query_async(&mut conn).await.unwrap();
    let replay = store.reserve_refresh(&j, v, attempt("old-hash"), &record("r")).await.unwrap();
    assert_eq!(replay, Reservation::AlreadyAttempted);
    assert_eq!(store.attempt_owner(&j, "old-hash").await.unwrap().as_deref(), Some("old-owner"));
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

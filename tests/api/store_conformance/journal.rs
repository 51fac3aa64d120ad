//! The write-once refresh journal: a refresh token is reserved at most once (except after an
//! explicit reopen), the journal outlives the credential, is bounded, and one of many racing
//! reservations wins.

use super::{HORIZON, attempt, id, put, record};
use crate::harness::{TestRedis, eventually, random_prefix};
use credbroker::store::{Attempt, CredentialStore, JournalEntry, Reservation};
use std::sync::Arc;
use std::time::Duration;

/// The write-once refresh journal: a refresh token is reserved at most once — except after
/// an explicit reopen (the refresh provably never left).
pub(super) async fn journal(store: impl CredentialStore) {
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
pub(super) async fn bounded_journal(store: impl CredentialStore) {
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

/// Many concurrent reservations of one token at one version: exactly one wins.
pub(super) async fn journal_race(store: impl CredentialStore + Clone) {
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

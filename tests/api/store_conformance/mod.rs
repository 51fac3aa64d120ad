//! The store contract, run against both implementations directly (no gRPC), each part on a
//! fresh store: records (`records.rs`: versions, compare-and-swap, tombstones, listings), the
//! refresh journal (`journal.rs`: write-once, bounded, raced) and leases (`leases.rs`); and
//! what only the Redis store has to keep (legacy journal keys, dangling index entries).

mod journal;
mod leases;
mod records;

use crate::both_stores;
use crate::harness::{StoreKind, TestRedis, random_prefix};
use credbroker::domain::{CredentialId, CredentialState, ProviderName, Subject};
use credbroker::store::{Attempt, CredentialStore, MemoryStore, StoredCredential};
use std::time::Duration;

pub(super) fn id(provider: &str, subject: &str) -> CredentialId {
    CredentialId::new(ProviderName::parse("p", provider).unwrap(), Subject::parse("s", subject).unwrap())
}

pub(super) fn record(sealed: &str) -> StoredCredential {
    StoredCredential { state: CredentialState::Active, ..StoredCredential::active(sealed.into()) }
}

pub(super) const HORIZON: Duration = Duration::from_secs(3600);

pub(super) fn attempt(id: &str) -> Attempt<'_> {
    Attempt { id, owner: "owner", horizon: HORIZON }
}

/// Creates or replaces, whatever the version (as an admin's put does).
pub(super) async fn put(store: &impl CredentialStore, id: &CredentialId, record: &StoredCredential) -> u64 {
    let expected = store.version(id).await.unwrap();
    store.put(id, expected, record).await.unwrap().expect("no concurrent writer")
}

/// The whole contract, each part on a fresh store made by `fresh` (a Redis Cluster's too, in
/// `cluster.rs`).
pub async fn keeps_the_contract<S: CredentialStore + Clone>(fresh: impl Fn() -> S) {
    records::records(fresh()).await;
    journal::journal(fresh()).await;
    journal::bounded_journal(fresh()).await;
    journal::journal_race(fresh()).await;
    leases::leases(fresh()).await;
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

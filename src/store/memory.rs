//! The in-memory store: the embedded default, for a single replica.
//!
//! A std `Mutex` around a `BTreeMap`, not tokio's: every critical section is a few map
//! operations with no `.await` inside, so a blocking mutex is cheaper and cannot be held
//! across a suspension point. The map is ordered so listings page by subject. A deleted
//! credential leaves a tombstone with its version, so versions only grow, as in Redis.

use super::{CredentialStore, Listed, Reservation, StoreResult, StoredCredential};
use crate::domain::{CredentialId, ProviderName, Subject};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Key = (ProviderName, Subject);

struct Entry {
    version: u64,
    record: Option<StoredCredential>,
    /// The refresh journal: hash of each refresh token ever sent → who sent it. Kept across
    /// deletes.
    attempts: HashMap<String, String>,
    /// The lease: owner and until when.
    lease: Option<(String, Instant)>,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    entries: Arc<Mutex<BTreeMap<Key, Entry>>>,
}

impl Entry {
    fn live_version(&self) -> Option<u64> {
        self.record.as_ref().map(|_| self.version)
    }

    fn write(&mut self, record: &StoredCredential) -> u64 {
        self.version += 1;
        self.record = Some(StoredCredential { version: self.version, ..record.clone() });
        self.version
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Entry>> {
        self.entries.lock().expect("memory store mutex poisoned")
    }

    /// Writes `record` as the next version, if the live version is `expected` (when given).
    fn write(&self, id: &CredentialId, expected: Option<u64>, record: &StoredCredential) -> Option<u64> {
        let mut entries = self.lock();
        let entry = entries.entry(key(id)).or_insert_with(|| Entry {
            version: 0,
            record: None,
            attempts: HashMap::new(),
            lease: None,
        });
        if expected.is_some() && entry.live_version() != expected {
            return None;
        }
        Some(entry.write(record))
    }
}

fn key(id: &CredentialId) -> Key {
    (id.provider.clone(), id.subject.clone())
}

impl CredentialStore for MemoryStore {
    #[tracing::instrument(name = "store.get", skip_all, fields(store = "memory", credential = %id))]
    async fn get(&self, id: &CredentialId) -> StoreResult<Option<StoredCredential>> {
        Ok(self.lock().get(&key(id)).and_then(|e| e.record.clone()))
    }

    #[tracing::instrument(name = "store.put", skip_all, fields(store = "memory", credential = %id))]
    async fn put(&self, id: &CredentialId, record: &StoredCredential) -> StoreResult<u64> {
        Ok(self.write(id, None, record).expect("an unconditional write always succeeds"))
    }

    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        Ok(self.write(id, Some(expected), record))
    }

    // One critical section checks the version, records the attempt and writes: the same
    // atomicity the Redis script has.
    #[tracing::instrument(name = "store.reserve_refresh", skip_all, fields(store = "memory", credential = %id))]
    async fn reserve_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        record: &StoredCredential,
    ) -> StoreResult<Reservation> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&key(id)).filter(|e| e.live_version() == Some(expected)) else {
            return Ok(Reservation::VersionChanged);
        };
        if entry.attempts.contains_key(attempt) {
            return Ok(Reservation::AlreadyAttempted);
        }
        entry.attempts.insert(attempt.to_owned(), owner.to_owned());
        Ok(Reservation::Reserved { version: entry.write(record) })
    }

    async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> StoreResult<Option<String>> {
        Ok(self.lock().get(&key(id)).and_then(|e| e.attempts.get(attempt).cloned()))
    }

    async fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&key(id)).filter(|e| e.live_version() == Some(expected)) else {
            return Ok(None);
        };
        entry.attempts.insert(attempt.to_owned(), owner.to_owned());
        Ok(Some(entry.write(record)))
    }

    async fn acquire_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut entries = self.lock();
        let entry = entries.entry(key(id)).or_insert_with(|| Entry {
            version: 0,
            record: None,
            attempts: HashMap::new(),
            lease: None,
        });
        let now = Instant::now();
        if entry.lease.as_ref().is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        entry.lease = Some((owner.to_owned(), now + ttl));
        Ok(true)
    }

    async fn renew_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut entries = self.lock();
        let now = Instant::now();
        match entries.get_mut(&key(id)).and_then(|e| e.lease.as_mut()) {
            Some((holder, until)) if holder == owner && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, id: &CredentialId, owner: &str) -> StoreResult<()> {
        if let Some(entry) = self.lock().get_mut(&key(id)) {
            if entry.lease.as_ref().is_some_and(|(holder, _)| holder == owner) {
                entry.lease = None;
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.reopen_refresh", skip_all, fields(store = "memory", credential = %id))]
    async fn reopen_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&key(id)).filter(|e| e.live_version() == Some(expected)) else {
            return Ok(None);
        };
        entry.attempts.remove(attempt);
        Ok(Some(entry.write(record)))
    }

    #[tracing::instrument(name = "store.delete", skip_all, fields(store = "memory", credential = %id))]
    async fn delete(&self, id: &CredentialId) -> StoreResult<bool> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&key(id)).filter(|e| e.record.is_some()) else {
            return Ok(false);
        };
        entry.version += 1;
        entry.record = None;
        Ok(true)
    }

    #[tracing::instrument(name = "store.list", skip_all, fields(store = "memory", provider = %provider))]
    async fn list(&self, provider: &ProviderName, after: Option<&Subject>, limit: usize) -> StoreResult<Vec<Listed>> {
        let entries = self.lock();
        let start = match after {
            Some(subject) => Bound::Excluded((provider.clone(), subject.clone())),
            None => Bound::Included((provider.clone(), Subject::min())),
        };
        Ok(entries
            .range((start, Bound::Unbounded))
            .take_while(|((p, _), _)| p == provider)
            .filter_map(|((_, subject), e)| {
                e.record.as_ref().map(|r| Listed { subject: subject.clone(), credential: r.clone() })
            })
            .take(limit)
            .collect())
    }
}

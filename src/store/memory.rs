//! The in-memory store: the embedded default, for a single replica.
//!
//! A std `Mutex` around a `BTreeMap`, not tokio's: every critical section is a few map
//! operations with no `.await` inside, so a blocking mutex is cheaper and cannot be held
//! across a suspension point. The map is ordered so listings page by subject. A deleted
//! credential leaves a tombstone with its version (and its journal), so versions only grow,
//! as in Redis.

use super::{Attempt, CredentialStore, JournalEntry, Listed, Reservation, StoreResult, StoredCredential};
use crate::domain::{CredentialId, ProviderName, Subject};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Key = (ProviderName, Subject);

#[derive(Default)]
struct Entry {
    version: u64,
    record: Option<StoredCredential>,
    journal: Journal,
    /// The lease: owner and until when.
    lease: Option<(String, Instant)>,
}

/// The refresh journal of one credential, as in Redis: every attempt ever sent, until its
/// expiry (`None`: kept, being the current or previous attempt). Kept across deletes.
#[derive(Default)]
struct Journal {
    entries: HashMap<String, Option<Instant>>,
    current: Option<(String, String)>,
    previous: Option<String>,
}

impl Journal {
    fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, until| until.is_none_or(|until| until > now));
    }

    /// The same steps as the Redis script's `record_attempt`.
    fn record(&mut self, attempt: Attempt<'_>) {
        if self.current.as_ref().is_some_and(|(id, _)| id == attempt.id) {
            self.current = Some((attempt.id.to_owned(), attempt.owner.to_owned()));
            return;
        }
        if let Some(previous) = self.previous.take() {
            self.entries.insert(previous, Some(Instant::now() + attempt.horizon));
        }
        self.previous = self.current.take().map(|(id, _)| id);
        self.entries.insert(attempt.id.to_owned(), None);
        self.current = Some((attempt.id.to_owned(), attempt.owner.to_owned()));
    }

    fn reopen(&mut self, attempt: &str) {
        self.entries.remove(attempt);
        if self.current.as_ref().is_some_and(|(id, _)| id == attempt) {
            self.current = self.previous.take().map(|id| (id, String::new()));
        }
    }
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

    /// Runs `f` on the live entry at version `expected`, if there is one.
    fn live<T>(&self, id: &CredentialId, expected: u64, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut entries = self.lock();
        entries.get_mut(&key(id)).filter(|e| e.live_version() == Some(expected)).map(f)
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

    async fn version(&self, id: &CredentialId) -> StoreResult<u64> {
        Ok(self.lock().get(&key(id)).map_or(0, |e| e.version))
    }

    #[tracing::instrument(name = "store.put", skip_all, fields(store = "memory", credential = %id))]
    async fn put(&self, id: &CredentialId, expected: u64, record: &StoredCredential) -> StoreResult<Option<u64>> {
        let mut entries = self.lock();
        let entry = entries.entry(key(id)).or_default();
        Ok((entry.version == expected).then(|| entry.write(record)))
    }

    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        Ok(self.live(id, expected, |entry| entry.write(record)))
    }

    // One critical section checks the version, records the attempt and writes: the same
    // atomicity the Redis script has.
    #[tracing::instrument(name = "store.reserve_refresh", skip_all, fields(store = "memory", credential = %id))]
    async fn reserve_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        record: &StoredCredential,
    ) -> StoreResult<Reservation> {
        let reserved = self.live(id, expected, |entry| {
            entry.journal.prune(Instant::now());
            if entry.journal.entries.contains_key(attempt.id) {
                return Reservation::AlreadyAttempted;
            }
            entry.journal.record(attempt);
            Reservation::Reserved { version: entry.write(record) }
        });
        Ok(reserved.unwrap_or(Reservation::VersionChanged))
    }

    async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> StoreResult<Option<String>> {
        let entries = self.lock();
        let current = entries.get(&key(id)).and_then(|e| e.journal.current.clone());
        // After a reopen the previous attempt is current again with no owner (as in Redis).
        Ok(current.filter(|(current, owner)| current == attempt && !owner.is_empty()).map(|(_, owner)| owner))
    }

    async fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        Ok(self.live(id, expected, |entry| {
            entry.journal.record(attempt);
            entry.write(record)
        }))
    }

    async fn acquire_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut entries = self.lock();
        let entry = entries.entry(key(id)).or_default();
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
        Ok(self.live(id, expected, |entry| {
            entry.journal.reopen(attempt);
            entry.write(record)
        }))
    }

    async fn journal(&self, id: &CredentialId) -> StoreResult<Vec<JournalEntry>> {
        let now = Instant::now();
        let entries = self.lock();
        let Some(entry) = entries.get(&key(id)) else { return Ok(Vec::new()) };
        Ok(entry
            .journal
            .entries
            .iter()
            .filter(|(_, until)| until.is_none_or(|until| until > now))
            .map(|(attempt, until)| JournalEntry {
                attempt: attempt.clone(),
                expires_in: until.map(|until| until - now),
            })
            .collect())
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

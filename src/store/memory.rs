//! The in-memory store: the embedded default, for a single replica.
//!
//! A std `Mutex` around the maps, not tokio's: every critical section is a few map
//! operations with no `.await` inside, so a blocking mutex is cheaper and cannot be held
//! across a suspension point. Subjects are ordered per provider so listings page by subject.
//! A deleted credential leaves a tombstone with its version (and its journal), so versions
//! only grow, as in Redis.
//!
//! Laid out for memory (100 000 credentials in ≤ 100 MB): a map per provider (the provider's
//! name is not repeated in every key), and an entry is three words in the B-tree's nodes —
//! the record and the refresh guards (journal, lease) live behind boxes, so the nodes' empty slots
//! (a B-tree filled in order is about half full) cost little, and the journal and lease
//! take no memory at all for the many credentials that are never refreshed. The record is
//! kept compact ([`kept`]: rare fields boxed, the sealed blob decoded).

mod kept;

use super::{Attempt, CredentialStore, JournalEntry, Listed, Reservation, StoreResult, StoredCredential};
use crate::domain::{CredentialId, ProviderName, Subject};
use kept::Kept;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Credentials = HashMap<ProviderName, BTreeMap<Subject, Entry>>;

#[derive(Default)]
struct Entry {
    version: u64,
    record: Option<Box<Kept>>,
    /// Created by the first refresh attempt or lease; kept across deletes, like the journal
    /// in Redis.
    guards: Option<Box<Guards>>,
}

/// What guards one credential's refreshes: its journal and its lease.
#[derive(Default)]
struct Guards {
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
    credentials: Arc<Mutex<Credentials>>,
}

impl Entry {
    fn live_version(&self) -> Option<u64> {
        self.record.as_ref().map(|_| self.version)
    }

    /// `kept` is made before the lock is taken: compacting (base64) is no work for a
    /// critical section.
    fn write(&mut self, kept: Kept) -> u64 {
        self.version += 1;
        self.record = Some(Box::new(kept));
        self.version
    }

    /// The live record, at its version.
    fn current(&self) -> Option<StoredCredential> {
        self.record.as_ref().map(|kept| kept.record(self.version))
    }

    fn journal(&mut self) -> &mut Journal {
        &mut self.guards.get_or_insert_default().journal
    }

    fn lease(&self) -> Option<&(String, Instant)> {
        self.guards.as_ref().and_then(|c| c.lease.as_ref())
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Credentials> {
        self.credentials.lock().expect("memory store mutex poisoned")
    }

    /// Runs `f` on the live entry at version `expected`, if there is one.
    fn live<T>(&self, id: &CredentialId, expected: u64, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut credentials = self.lock();
        entry_mut(&mut credentials, id).filter(|e| e.live_version() == Some(expected)).map(f)
    }
}

fn entry<'a>(credentials: &'a Credentials, id: &CredentialId) -> Option<&'a Entry> {
    credentials.get(&id.provider)?.get(&id.subject)
}

fn entry_mut<'a>(credentials: &'a mut Credentials, id: &CredentialId) -> Option<&'a mut Entry> {
    credentials.get_mut(&id.provider)?.get_mut(&id.subject)
}

/// The entry of `id`, created (version 0, no record) if there is none.
fn entry_or_default<'a>(credentials: &'a mut Credentials, id: &CredentialId) -> &'a mut Entry {
    if !credentials.contains_key(&id.provider) {
        credentials.insert(id.provider.clone(), BTreeMap::new());
    }
    let subjects = credentials.get_mut(&id.provider).expect("inserted above");
    subjects.entry(id.subject.clone()).or_default()
}

impl CredentialStore for MemoryStore {
    #[tracing::instrument(name = "store.get", skip_all, fields(store = "memory", credential = %id))]
    async fn get(&self, id: &CredentialId) -> StoreResult<Option<StoredCredential>> {
        Ok(entry(&self.lock(), id).and_then(Entry::current))
    }

    async fn version(&self, id: &CredentialId) -> StoreResult<u64> {
        Ok(entry(&self.lock(), id).map_or(0, |e| e.version))
    }

    #[tracing::instrument(name = "store.put", skip_all, fields(store = "memory", credential = %id))]
    async fn put(&self, id: &CredentialId, expected: u64, record: &StoredCredential) -> StoreResult<Option<u64>> {
        let kept = Kept::new(record);
        let mut credentials = self.lock();
        let entry = entry_or_default(&mut credentials, id);
        Ok((entry.version == expected).then(|| entry.write(kept)))
    }

    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        let kept = Kept::new(record);
        Ok(self.live(id, expected, |entry| entry.write(kept)))
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
        let kept = Kept::new(record);
        let reserved = self.live(id, expected, |entry| {
            let journal = entry.journal();
            journal.prune(Instant::now());
            if journal.entries.contains_key(attempt.id) {
                return Reservation::AlreadyAttempted;
            }
            journal.record(attempt);
            Reservation::Reserved { version: entry.write(kept) }
        });
        Ok(reserved.unwrap_or(Reservation::VersionChanged))
    }

    async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> StoreResult<Option<String>> {
        let credentials = self.lock();
        let guards = entry(&credentials, id).and_then(|e| e.guards.as_ref());
        let current = guards.and_then(|c| c.journal.current.clone());
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
        let kept = Kept::new(record);
        Ok(self.live(id, expected, |entry| {
            entry.journal().record(attempt);
            entry.write(kept)
        }))
    }

    async fn acquire_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut credentials = self.lock();
        let entry = entry_or_default(&mut credentials, id);
        let now = Instant::now();
        if entry.lease().is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        entry.guards.get_or_insert_default().lease = Some((owner.to_owned(), now + ttl));
        Ok(true)
    }

    async fn renew_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut credentials = self.lock();
        let now = Instant::now();
        let guards = entry_mut(&mut credentials, id).and_then(|e| e.guards.as_mut());
        match guards.and_then(|c| c.lease.as_mut()) {
            Some((holder, until)) if holder == owner && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, id: &CredentialId, owner: &str) -> StoreResult<()> {
        let mut credentials = self.lock();
        if let Some(guards) = entry_mut(&mut credentials, id).and_then(|e| e.guards.as_mut()) {
            if guards.lease.as_ref().is_some_and(|(holder, _)| holder == owner) {
                guards.lease = None;
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
        let kept = Kept::new(record);
        Ok(self.live(id, expected, |entry| {
            entry.journal().reopen(attempt);
            entry.write(kept)
        }))
    }

    async fn journal(&self, id: &CredentialId) -> StoreResult<Vec<JournalEntry>> {
        let now = Instant::now();
        let credentials = self.lock();
        let Some(guards) = entry(&credentials, id).and_then(|e| e.guards.as_ref()) else {
            return Ok(Vec::new());
        };
        Ok(guards
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
        let mut credentials = self.lock();
        let Some(entry) = entry_mut(&mut credentials, id).filter(|e| e.record.is_some()) else {
            return Ok(false);
        };
        entry.version += 1;
        entry.record = None;
        Ok(true)
    }

    #[tracing::instrument(name = "store.list", skip_all, fields(store = "memory", provider = %provider))]
    async fn list(&self, provider: &ProviderName, after: Option<&Subject>, limit: usize) -> StoreResult<Vec<Listed>> {
        let credentials = self.lock();
        let Some(subjects) = credentials.get(provider) else { return Ok(Vec::new()) };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(subjects
            .range((start, Bound::Unbounded))
            .filter_map(|(subject, e)| e.current().map(|credential| Listed { subject: subject.clone(), credential }))
            .take(limit)
            .collect())
    }
}

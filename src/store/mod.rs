//! Where credentials live: one interface, two implementations.
//!
//! - [`RedisStore`]: production, shared by several replicas. Keys of one credential share a
//!   Redis Cluster hash tag so later multi-key scripts (the refresh journal) stay on one slot.
//! - [`MemoryStore`]: the embedded default, for one replica.
//!
//! Stores hold only sealed secrets (see `crypto`); they never see a plaintext.

pub mod budget;
mod changes;
mod connection;
mod memory;
mod redis;

pub use self::changes::{Change, ChangeFeed};
pub use self::memory::MemoryStore;
pub use self::redis::{RedisStore, RedisStoreConfig};

use crate::domain::{CredentialId, CredentialState, ProviderName, Subject};
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// A credential as stored: metadata in the clear, secrets sealed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCredential {
    /// Grows by one on every write; compare-and-swap writes check it.
    #[serde(skip)]
    pub version: u64,
    pub state: CredentialState,
    /// Why the credential is not ACTIVE, in words; never a secret.
    #[serde(default)]
    pub detail: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub access_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// `crypto::Keyring::seal` output.
    pub sealed: String,
}

/// A stored credential together with its id, as listings return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub subject: Subject,
    pub credential: StoredCredential,
}

/// What `reserve_refresh` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is recorded and the record written: the caller may send the refresh, once.
    Reserved { version: u64 },
    /// The record changed since it was read (or is gone): re-read, send nothing.
    VersionChanged,
    /// This refresh token was already sent once: it must never be sent again.
    AlreadyAttempted,
}

/// Store failures. Only `Unavailable` is expected in normal operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored record is unreadable")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The operations the broker needs from a store. Every implementation must pass the same
/// conformance suite (`tests/api/store_conformance.rs`).
pub trait CredentialStore: Send + Sync + 'static {
    /// Reads one credential.
    fn get(&self, id: &CredentialId) -> impl Future<Output = StoreResult<Option<StoredCredential>>> + Send;
    /// Creates or replaces a credential; returns the new version (previous + 1, or 1).
    fn put(&self, id: &CredentialId, record: &StoredCredential) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Replaces a credential only if its version is still `expected`; returns the new
    /// version, or `None` when someone else wrote first (or it was deleted).
    fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// The write-once refresh journal (see `REFRESH-SAFETY.md`): atomically, if the record is
    /// still at version `expected` AND no attempt `attempt` (a hash of the refresh token) was
    /// ever recorded, record the attempt as `owner`'s — forever, no expiry — and write `record`.
    fn reserve_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        record: &StoredCredential,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send;
    /// Who holds attempt `attempt`. The reserving task checks it is still itself right before
    /// sending, so a reservation that another replica reopened (and perhaps took again) while
    /// this one was paused is never acted on.
    fn attempt_owner(
        &self,
        id: &CredentialId,
        attempt: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// Takes over attempt `attempt` for `owner` and writes `record`, if the record is still at
    /// version `expected`: used when a holder vanished (its lease expired while the record says
    /// REFRESHING). From then on the old holder's pre-send check fails, so it can never send
    /// after the new owner has started its quiet period.
    fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        record: &StoredCredential,
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// Undoes a reservation whose refresh provably never reached the provider: removes the
    /// attempt and writes `record`, if the record is still at version `expected`.
    fn reopen_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        record: &StoredCredential,
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// Leases make one replica do the work while the others wait. An efficiency device only
    /// (a paused holder can outlive its lease): correctness comes from the journal.
    fn acquire_lease(
        &self,
        id: &CredentialId,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Extends the lease if `owner` still holds it.
    fn renew_lease(
        &self,
        id: &CredentialId,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Releases the lease if `owner` still holds it (compare-and-delete: never another's).
    fn release_lease(&self, id: &CredentialId, owner: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes a credential; returns whether it existed.
    fn delete(&self, id: &CredentialId) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Up to `limit` credentials of a provider, ordered by subject, strictly after `after`.
    fn list(
        &self,
        provider: &ProviderName,
        after: Option<&Subject>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Listed>>> + Send;
}

/// The store chosen by configuration. An enum rather than `dyn`: two known implementations,
/// no boxing on the request path.
#[derive(Clone)]
pub enum AnyStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call.await,
            AnyStore::Redis($store) => $call.await,
        }
    };
}

impl CredentialStore for AnyStore {
    async fn get(&self, id: &CredentialId) -> StoreResult<Option<StoredCredential>> {
        dispatch!(self, s => s.get(id))
    }
    async fn put(&self, id: &CredentialId, record: &StoredCredential) -> StoreResult<u64> {
        dispatch!(self, s => s.put(id, record))
    }
    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        dispatch!(self, s => s.compare_and_swap(id, expected, record))
    }
    async fn reserve_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        record: &StoredCredential,
    ) -> StoreResult<Reservation> {
        dispatch!(self, s => s.reserve_refresh(id, expected, attempt, owner, record))
    }
    async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.attempt_owner(id, attempt))
    }
    async fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        owner: &str,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        dispatch!(self, s => s.fence_refresh(id, expected, attempt, owner, record))
    }
    async fn reopen_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        dispatch!(self, s => s.reopen_refresh(id, expected, attempt, record))
    }
    async fn acquire_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        dispatch!(self, s => s.acquire_lease(id, owner, ttl))
    }
    async fn renew_lease(&self, id: &CredentialId, owner: &str, ttl: Duration) -> StoreResult<bool> {
        dispatch!(self, s => s.renew_lease(id, owner, ttl))
    }
    async fn release_lease(&self, id: &CredentialId, owner: &str) -> StoreResult<()> {
        dispatch!(self, s => s.release_lease(id, owner))
    }
    async fn delete(&self, id: &CredentialId) -> StoreResult<bool> {
        dispatch!(self, s => s.delete(id))
    }
    async fn list(&self, provider: &ProviderName, after: Option<&Subject>, limit: usize) -> StoreResult<Vec<Listed>> {
        dispatch!(self, s => s.list(provider, after, limit))
    }
}

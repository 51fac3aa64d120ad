//! Where credentials live: one interface, two implementations.
//!
//! - [`RedisStore`]: production, shared by several replicas. Keys of one credential share a
//!   Redis Cluster hash tag so the multi-key scripts of the refresh journal stay on one slot.
//! - [`MemoryStore`]: the embedded default, for one replica.
//!
//! Stores hold only sealed secrets (see `crypto`); they never see a plaintext. Every write
//! names the version it expects, so the writer can seal for the version it creates
//! (`crypto` binds the ciphertext to it).
//!
//! The refresh journal (`reserve_refresh` and friends) is the write-once record that makes a
//! single-use refresh token be sent at most once; `broker::rotation` states the invariant and
//! the argument. It is bounded: the attempt of the credential's current and previous refresh
//! token stay; older attempts expire `horizon` after they stopped being the previous one — a
//! horizon that config validation keeps above the provider's refresh-token lifetime, after
//! which the token is dead upstream whatever happens.

pub mod budget;
mod changes;
mod cluster;
mod connection;
mod memory;
mod redis;
mod sentinel;
pub mod sessions;
pub mod target;

pub use self::changes::{Change, ChangeFeed};
pub use self::memory::MemoryStore;
pub use self::redis::{AccessRefused, RedisStore, RedisStoreConfig};
pub use self::target::{ClientCert, RedisAccess, RedisTls, SentinelSettings};

use crate::domain::{CredentialId, CredentialState, ProviderName, Reason, Subject};
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// A credential as stored: metadata in the clear, secrets sealed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCredential {
    /// Grows by one on every write; compare-and-swap writes check it, and `sealed` is bound
    /// to it.
    #[serde(skip)]
    pub version: u64,
    pub state: CredentialState,
    /// Why the credential is not ACTIVE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Records written before reasons were typed kept free text here: read, never written.
    #[serde(default, rename = "detail", skip_serializing_if = "String::is_empty")]
    pub legacy_detail: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub access_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// INDETERMINATE: from when the old access token may be probed (every sender that could
    /// still be in flight is provably done by then; `broker::rotation`).
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub probe_at: Option<OffsetDateTime>,
    /// When a caller's report (ReportRejected, a proxied 401) last forced a renewal: at most
    /// one per interval, fleet-wide.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub forced_at: Option<OffsetDateTime>,
    /// `crypto::Keyring::seal` output, for this record's version.
    pub sealed: String,
}

impl StoredCredential {
    /// An ACTIVE record holding `sealed`, with no other metadata.
    pub fn active(sealed: String) -> Self {
        Self {
            version: 0,
            state: CredentialState::Active,
            reason: None,
            legacy_detail: String::new(),
            access_expires_at: None,
            updated_at: OffsetDateTime::now_utc(),
            probe_at: None,
            forced_at: None,
            sealed,
        }
    }

    /// Why it is not ACTIVE, in words (rendered from the typed reason).
    pub fn detail(&self) -> String {
        self.reason.as_ref().map_or_else(|| self.legacy_detail.clone(), ToString::to_string)
    }
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
    /// Reserved and written on the primary, but fewer than `store.journal_replicas` replicas
    /// acknowledged it in time: a failover could forget it, so the token must not be sent.
    /// The caller reopens the attempt (at `version`) and tries again later.
    NotReplicated { version: u64 },
}

/// One refresh attempt to journal: which token (a hash), who sends it, and how long its
/// record must outlive its token's turn as the previous one.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub horizon: Duration,
}

/// One entry of a credential's journal, as `journal` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub attempt: String,
    /// `None`: kept for good (the current or previous attempt); else time left.
    pub expires_in: Option<Duration>,
}

/// Store failures. Only `Unavailable` is expected in normal operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored record is unreadable")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Written on the primary, not acknowledged by `store.journal_replicas` replicas in time
    /// (`WAIT`): a failover could still undo it.
    #[error("write not acknowledged by enough replicas in time")]
    NotReplicated,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The operations the broker needs from a store. Every implementation must pass the same
/// conformance suite (`tests/api/store_conformance/`).
pub trait CredentialStore: Send + Sync + 'static {
    /// Reads one credential.
    fn get(&self, id: &CredentialId) -> impl Future<Output = StoreResult<Option<StoredCredential>>> + Send;
    /// The credential's version: of its live record, of its tombstone after a delete, or 0
    /// when it never existed.
    fn version(&self, id: &CredentialId) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Creates or replaces a credential (live or deleted) if its version is still `expected`
    /// (see `version`); returns the new version, `expected + 1`, or `None` when someone wrote
    /// first.
    fn put(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// Replaces a live credential only if its version is still `expected`; returns the new
    /// version, or `None` when someone else wrote first (or it was deleted).
    fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: u64,
        record: &StoredCredential,
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// The write-once refresh journal (`broker::rotation`): atomically, if the record is
    /// still at version `expected` AND no attempt `attempt.id` (a hash of the refresh token)
    /// is in the journal, record it as `attempt.owner`'s — kept while it is the current or
    /// previous attempt, then for `attempt.horizon` — and write `record`.
    fn reserve_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
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
    /// REFRESHING). From then on the old holder's pre-send check fails. A holder that passed
    /// that check *before* the fence can still send: nothing in Redis can stop a process paused
    /// between its check and its send. That is why the probe waits `store.reconcile_after`
    /// after a fence, and config validation keeps it ≥ 2 × `lease_ttl` +
    /// `upstream.request_timeout`: the argument assumes no such pause outlasts
    /// `reconcile_after − request_timeout` (`broker::rotation` states it in full).
    fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
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
    /// The journal of a credential, for inspection (tests, measurements).
    fn journal(&self, id: &CredentialId) -> impl Future<Output = StoreResult<Vec<JournalEntry>>> + Send;
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

impl AnyStore {
    /// Whether the store answers now (memory always does).
    pub async fn reachable(&self) -> StoreResult<()> {
        match self {
            AnyStore::Memory(_) => Ok(()),
            AnyStore::Redis(redis) => redis.ping().await,
        }
    }
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
    async fn version(&self, id: &CredentialId) -> StoreResult<u64> {
        dispatch!(self, s => s.version(id))
    }
    async fn put(&self, id: &CredentialId, expected: u64, record: &StoredCredential) -> StoreResult<Option<u64>> {
        dispatch!(self, s => s.put(id, expected, record))
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
        attempt: Attempt<'_>,
        record: &StoredCredential,
    ) -> StoreResult<Reservation> {
        dispatch!(self, s => s.reserve_refresh(id, expected, attempt, record))
    }
    async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.attempt_owner(id, attempt))
    }
    async fn fence_refresh(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        record: &StoredCredential,
    ) -> StoreResult<Option<u64>> {
        dispatch!(self, s => s.fence_refresh(id, expected, attempt, record))
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
    async fn journal(&self, id: &CredentialId) -> StoreResult<Vec<JournalEntry>> {
        dispatch!(self, s => s.journal(id))
    }
    async fn delete(&self, id: &CredentialId) -> StoreResult<bool> {
        dispatch!(self, s => s.delete(id))
    }
    async fn list(&self, provider: &ProviderName, after: Option<&Subject>, limit: usize) -> StoreResult<Vec<Listed>> {
        dispatch!(self, s => s.list(provider, after, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_store_typed_reasons_and_still_read_free_text_ones() {
        let written = StoredCredential {
            state: CredentialState::Indeterminate,
            reason: Some(Reason::NoAnswer { cause: "connection reset".into() }),
            ..StoredCredential::active("v2:k:blob".into())
        };
        let json = serde_json::to_string(&written).unwrap();
        assert!(json.contains(r#""reason":{"kind":"no_answer","cause":"connection reset"}"#), "{json}");
        assert!(!json.contains("detail"), "free text is never written: {json}");
        assert_eq!(serde_json::from_str::<StoredCredential>(&json).unwrap(), written);
        assert!(written.detail().starts_with("outcome unknown"), "rendered from the reason");
        // A record as written before reasons were typed.
        let old = r#"{"state":"REAUTH_REQUIRED","detail":"the provider refused the refresh token: x",
                      "access_expires_at":null,"updated_at":"2026-11-01T00:00:00Z","sealed":"v1:k:blob"}"#;
        let old: StoredCredential = serde_json::from_str(old).unwrap();
        assert_eq!((old.state, old.reason.clone(), old.probe_at), (CredentialState::ReauthRequired, None, None));
        assert_eq!(old.detail(), "the provider refused the refresh token: x");
    }
}

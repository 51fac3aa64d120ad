//! Reading and writing credential records: the one place that seals, opens and announces.
//! [`Records`] owns the store, the keyring and the change feed; every other part reaches them
//! through it.
//!
//! Every write names the version it expects and seals the secret for the version it creates
//! (`expected + 1`): the ciphertext is bound to that version (`crypto`), so an older record
//! copied back over a newer one no longer opens. Every successful write is announced on the
//! change feed, so other replicas drop headers cached from older versions.

use super::{BrokerError, BrokerResult};
use crate::crypto::Keyring;
use crate::domain::{CredentialId, CredentialState, Reason, Vault};
use crate::providers::Authorization;
use crate::store::{AnyStore, Attempt, ChangeFeed, CredentialStore, Reservation, StoredCredential};
use time::OffsetDateTime;

/// Everything a write records besides the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub state: CredentialState,
    pub reason: Option<Reason>,
    pub probe_at: Option<OffsetDateTime>,
    pub forced_at: Option<OffsetDateTime>,
}

impl Meta {
    /// ACTIVE, keeping when a renewal was last forced.
    pub fn active(forced_at: Option<OffsetDateTime>) -> Self {
        Self { state: CredentialState::Active, reason: None, probe_at: None, forced_at }
    }
}

#[derive(Clone)]
pub struct Records {
    store: AnyStore,
    keyring: Keyring,
    feed: ChangeFeed,
}

impl Records {
    pub fn new(store: AnyStore, keyring: Keyring, feed: ChangeFeed) -> Self {
        Self { store, keyring, feed }
    }

    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// The fingerprint callers quote for `authorization`'s headers (keyed: it reveals nothing).
    pub fn fingerprint(&self, authorization: &Authorization) -> String {
        self.keyring.fingerprint(authorization.headers.iter().map(|(_, v)| v.expose()))
    }

    /// The record and its opened vault; `CredentialNotFound` when there is none.
    pub async fn read(&self, id: &CredentialId) -> BrokerResult<(StoredCredential, Vault)> {
        let record = self.store.get(id).await?.ok_or_else(|| BrokerError::CredentialNotFound(id.clone()))?;
        let vault = self.open(id, &record)?;
        Ok((record, vault))
    }

    pub fn open(&self, id: &CredentialId, record: &StoredCredential) -> BrokerResult<Vault> {
        let opened = self.keyring.open(id, record.version, &record.sealed);
        opened.map_err(|source| BrokerError::Sealed { id: id.clone(), source })
    }

    /// The record `meta` + `vault` as version `version` (sealed for it).
    pub fn record(&self, id: &CredentialId, version: u64, meta: &Meta, vault: &Vault) -> StoredCredential {
        StoredCredential {
            version,
            state: meta.state,
            reason: meta.reason.clone(),
            legacy_detail: String::new(),
            access_expires_at: vault.expires_at(),
            updated_at: OffsetDateTime::now_utc(),
            probe_at: meta.probe_at,
            forced_at: meta.forced_at,
            sealed: self.keyring.seal(id, version, vault),
        }
    }

    /// Creates or replaces the credential, whatever its version (an admin's put): reads the
    /// version, seals for the next, writes if nobody wrote meanwhile, else tries again.
    pub async fn replace(&self, id: &CredentialId, meta: &Meta, vault: &Vault) -> BrokerResult<StoredCredential> {
        loop {
            let expected = self.store.version(id).await?;
            let record = self.record(id, expected + 1, meta, vault);
            if let Some(version) = self.store.put(id, expected, &record).await? {
                self.feed.publish(id, version).await;
                return Ok(record);
            }
        }
    }

    /// Compare-and-swap: writes if the live record is still at `expected`.
    pub async fn write(
        &self,
        id: &CredentialId,
        expected: u64,
        meta: &Meta,
        vault: &Vault,
    ) -> BrokerResult<Option<StoredCredential>> {
        let record = self.record(id, expected + 1, meta, vault);
        let written = self.store.compare_and_swap(id, expected, &record).await?;
        self.announced(id, written, record).await
    }

    /// RESERVE (the journal): see `CredentialStore::reserve_refresh`.
    pub async fn reserve(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        meta: &Meta,
        vault: &Vault,
    ) -> BrokerResult<Reservation> {
        let record = self.record(id, expected + 1, meta, vault);
        let reservation = self.store.reserve_refresh(id, expected, attempt, &record).await?;
        if let Reservation::Reserved { version } = reservation {
            self.feed.publish(id, version).await;
        }
        Ok(reservation)
    }

    /// FENCE: see `CredentialStore::fence_refresh`.
    pub async fn fence(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: Attempt<'_>,
        meta: &Meta,
        vault: &Vault,
    ) -> BrokerResult<Option<StoredCredential>> {
        let record = self.record(id, expected + 1, meta, vault);
        let written = self.store.fence_refresh(id, expected, attempt, &record).await?;
        self.announced(id, written, record).await
    }

    /// REOPEN: see `CredentialStore::reopen_refresh`.
    pub async fn reopen(
        &self,
        id: &CredentialId,
        expected: u64,
        attempt: &str,
        meta: &Meta,
        vault: &Vault,
    ) -> BrokerResult<Option<StoredCredential>> {
        let record = self.record(id, expected + 1, meta, vault);
        let written = self.store.reopen_refresh(id, expected, attempt, &record).await?;
        self.announced(id, written, record).await
    }

    pub async fn attempt_owner(&self, id: &CredentialId, attempt: &str) -> BrokerResult<Option<String>> {
        Ok(self.store.attempt_owner(id, attempt).await?)
    }

    async fn announced(
        &self,
        id: &CredentialId,
        written: Option<u64>,
        record: StoredCredential,
    ) -> BrokerResult<Option<StoredCredential>> {
        let Some(version) = written else { return Ok(None) };
        self.feed.publish(id, version).await;
        Ok(Some(StoredCredential { version, ..record }))
    }
}

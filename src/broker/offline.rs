//! When the store is unreachable. Cached headers keep being served (`serve.rs`); logins are
//! idempotent, so they are renewed from the last record read (still sealed, in memory), with
//! in-process single flight only, and served without storing. Rotating refresh tokens fail
//! closed: never a refresh without the journal.

use super::plan::{Ask, Decision, Timing, decide};
use super::records::Records;
use super::{BrokerError, BrokerResult};
use crate::domain::{CredentialId, CredentialState, Vault};
use crate::providers::http::HttpClient;
use crate::providers::{Authorization, Provider, Renewal};
use crate::store::{AnyStore, StoreError, StoredCredential};
use time::OffsetDateTime;

/// The last record read per login credential (sealed): what logins renew from while the
/// store is unreachable.
pub struct LastKnown {
    records: quick_cache::sync::Cache<CredentialId, StoredCredential>,
}

impl Default for LastKnown {
    fn default() -> Self {
        Self { records: quick_cache::sync::Cache::new(1_000_000) }
    }
}

impl LastKnown {
    /// After a read: keeps a copy of a login's record, forgets a deleted credential's.
    pub fn note(
        &self,
        provider: &Provider,
        store: &AnyStore,
        id: &CredentialId,
        read: &BrokerResult<(StoredCredential, Vault)>,
    ) {
        match read {
            Ok((record, vault)) if keeps_copy(provider, store, vault) => {
                self.records.insert(id.clone(), record.clone())
            }
            Err(BrokerError::CredentialNotFound(_)) => {
                self.records.remove(id);
            }
            _ => {}
        }
    }

    /// The store is unreachable: the headers of a login from its last-known record (renewed
    /// in memory if due), with the version and vault they came from; else the store's error.
    pub async fn renew(
        &self,
        (records, timing, http): (&Records, &Timing, &HttpClient),
        provider: &Provider,
        id: &CredentialId,
        ask: Ask,
        error: StoreError,
    ) -> BrokerResult<(Authorization, u64, Vault)> {
        let Some(record) = self.records.get(id).filter(|r| r.state == CredentialState::Active) else {
            return Err(error.into());
        };
        let vault = records.open(id, &record)?;
        match decide(provider, &record, &vault, ask, timing, OffsetDateTime::now_utc()) {
            Decision::Serve(authorization) => return Ok((authorization, record.version, vault)),
            Decision::Renew if provider.renewal(&vault) == Renewal::Login => {}
            Decision::Refuse(refused) => return Err(refused),
            _ => return Err(error.into()),
        }
        let tokens = provider
            .login(http, &vault)
            .await
            .map_err(|source| BrokerError::Upstream { provider: id.provider.clone(), source })?;
        let session = timing.session(tokens.access_token, tokens.expires_at, tokens.issued_at, true);
        let vault = Vault { session: Some(session), ..vault };
        tracing::warn!(credential = %id, "store unavailable: renewed a login in memory only; it is stored again once the store is back");
        // Sealed for the version it was read at: this copy is never written to the store.
        let offline = StoredCredential {
            sealed: records.keyring().seal(id, record.version, &vault),
            access_expires_at: vault.expires_at(),
            ..record.clone()
        };
        self.records.insert(id.clone(), offline);
        let authorization = provider.headers(&vault).ok_or(BrokerError::NoSession)?;
        Ok((timing.promise(provider, &vault, authorization), record.version, vault))
    }
}

/// Only logins can be renewed without the store, and only a Redis store can be away.
fn keeps_copy(provider: &Provider, store: &AnyStore, vault: &Vault) -> bool {
    matches!(store, AnyStore::Redis(_)) && provider.renewal(vault) == Renewal::Login
}

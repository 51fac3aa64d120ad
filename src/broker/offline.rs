//! When the store is unreachable. Cached headers keep being served (`mod.rs`); logins are
//! idempotent, so they are renewed from the last record read (still sealed, in memory), with
//! in-process single flight only, and served without storing. Rotating refresh tokens fail
//! closed: never a refresh without the journal.

use super::plan::{Ask, Decision, decide};
use super::{Broker, BrokerError, BrokerResult, Served};
use crate::domain::{CredentialId, CredentialState, Vault};
use crate::providers::{Provider, Renewal};
use crate::store::{AnyStore, StoreError, StoredCredential};
use time::OffsetDateTime;

impl Broker {
    /// Reads a record (keeping a copy of logins for `offline`) and opens it.
    pub(super) async fn read(&self, id: &CredentialId) -> BrokerResult<(StoredCredential, Vault)> {
        let read = self.records.read(id).await;
        match &read {
            Ok((record, vault)) if self.keeps_offline_copy(id, vault) => {
                self.offline.insert(id.clone(), record.clone());
            }
            Err(BrokerError::CredentialNotFound(_)) => {
                self.offline.remove(id);
            }
            _ => {}
        }
        read
    }

    /// Only logins can be renewed without the store, and only a Redis store can be away.
    fn keeps_offline_copy(&self, id: &CredentialId, vault: &Vault) -> bool {
        let login = self.registry.get(&id.provider).is_some_and(|p| p.renewal(vault) == Renewal::Login);
        matches!(self.store(), AnyStore::Redis(_)) && login
    }

    /// The store is unreachable: serve or renew a login from its offline copy, else fail.
    pub(super) async fn offline(
        &self,
        provider: &Provider,
        id: &CredentialId,
        ask: Ask,
        error: StoreError,
    ) -> BrokerResult<Served> {
        let Some(record) = self.offline.get(id).filter(|r| r.state == CredentialState::Active) else {
            return Err(error.into());
        };
        let vault = self.records.open(id, &record)?;
        let now = OffsetDateTime::now_utc();
        match decide(provider, &record, &vault, ask, &self.timing, now) {
            Decision::Serve(authorization) => return Ok(self.serve(provider, authorization, record.version, &vault)),
            Decision::Renew if provider.renewal(&vault) == Renewal::Login => {}
            Decision::Refuse(refused) => return Err(refused),
            _ => return Err(error.into()),
        }
        let tokens = provider
            .login(&self.http, &vault)
            .await
            .map_err(|source| BrokerError::Upstream { provider: id.provider.clone(), source })?;
        let session = self.timing.session(tokens.access_token, tokens.expires_at, tokens.issued_at, true);
        let vault = Vault { session: Some(session), ..vault };
        tracing::warn!(credential = %id, "store unavailable: renewed a login in memory only; it is stored again once the store is back");
        // Sealed for the version it was read at: this copy is never written to the store.
        let offline = StoredCredential {
            sealed: self.keyring.seal(id, record.version, &vault),
            access_expires_at: vault.expires_at(),
            ..record.clone()
        };
        self.offline.insert(id.clone(), offline);
        let authorization = provider.headers(&vault).ok_or(BrokerError::NoSession)?;
        let authorization = self.timing.promise(provider, &vault, authorization);
        Ok(self.serve(provider, authorization, record.version, &vault))
    }
}

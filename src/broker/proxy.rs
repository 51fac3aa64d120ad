//! What `ProxyCall` needs from the broker beyond serving headers: where a provider lives, the
//! shared HTTP client, which statuses mean "token rejected", and PASS's sliding expiry.

use super::records::Meta;
use super::{Broker, BrokerError, BrokerResult};
use crate::domain::{CredentialId, CredentialState, ProviderName, Subject};
use crate::providers::http::HttpClient;
use crate::store::StoredCredential;
use std::sync::Arc;
use time::OffsetDateTime;
use url::Url;

impl Broker {
    /// The shared upstream client: no redirects, no automatic retries.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The provider instance's `api_base_url`, which proxied paths are joined to.
    pub fn api_base_url(&self, provider: &ProviderName) -> BrokerResult<&Url> {
        Ok(self.provider(provider)?.api_base_url())
    }

    /// Whether an upstream `status` means the header was rejected (the instance's
    /// `rejected_statuses`, default 401): then the proxy renews and retries once.
    pub fn rejects(&self, provider: &ProviderName, status: u16) -> bool {
        self.registry.get(provider).is_some_and(|p| p.rejects(status))
    }

    /// PASS sliding expiry: a call sent at `used_at` with the headers fingerprinted
    /// `fingerprint` succeeded, so upstream the session now lives until `used_at` + its
    /// lifetime. `used_at` is when the request was *sent*, before the provider stamped it, so
    /// the known expiry can only err on the early side.
    ///
    /// Stored only when it moves the expiry by a tenth of the lifetime or more (PASS lifetimes
    /// are days: a write per call would buy nothing), and never against a renewal: inside the
    /// credential's single flight, only if the fleet-wide lease is free (a renewal in progress
    /// makes a new session anyway), and by compare-and-swap. Returns when another successful
    /// call would next be worth storing, or `None` when the session used is no longer current.
    pub async fn extend_session(
        &self,
        provider: &ProviderName,
        subject: &Subject,
        fingerprint: &str,
        used_at: OffsetDateTime,
    ) -> BrokerResult<Option<OffsetDateTime>> {
        let key = (provider.clone(), Some(subject.clone()));
        let _flight = self.flights.enter(&key).await;
        let id = CredentialId::new(provider.clone(), subject.clone());
        let Some(lease) = self.try_lease(&id).await? else { return Ok(None) };
        let result = self.extend_leased(&id, fingerprint, used_at).await;
        lease.release().await;
        result
    }

    async fn extend_leased(
        &self,
        id: &CredentialId,
        fingerprint: &str,
        used_at: OffsetDateTime,
    ) -> BrokerResult<Option<OffsetDateTime>> {
        let provider = self.provider(&id.provider)?.clone();
        let (record, mut vault) = match self.records.read(id).await {
            Err(BrokerError::CredentialNotFound(_)) => return Ok(None),
            other => other?,
        };
        let current = provider.headers(&vault).is_some_and(|a| self.fingerprint(&a) == fingerprint);
        let (Some(session), true, CredentialState::Active) = (vault.session.clone(), current, record.state) else {
            return Ok(None);
        };
        let lifetime = session.expires_at - session.obtained_at;
        let expires_at = used_at + lifetime;
        if expires_at - session.expires_at < lifetime / 10 {
            return Ok(Some(session.obtained_at + lifetime / 10));
        }
        vault.session = Some(self.timing.session(session.token, expires_at, used_at, session.lifetime_known));
        let Some(extended) = self.records.write(id, record.version, &Meta::active(record.forced_at), &vault).await?
        else {
            return Ok(None);
        };
        self.remember(&provider, id, &extended, &vault).await?;
        Ok(Some(used_at + lifetime / 10))
    }

    /// Caches and plans a record this replica just wrote.
    async fn remember(
        &self,
        provider: &crate::providers::Provider,
        id: &CredentialId,
        record: &StoredCredential,
        vault: &crate::domain::Vault,
    ) -> BrokerResult<()> {
        let authorization = provider.headers(vault).ok_or(BrokerError::NoSession)?;
        let authorization = self.timing.promise(provider, vault, authorization);
        let key = (id.provider.clone(), Some(id.subject.clone()));
        self.cache.insert(key, Arc::new(self.serve(provider, authorization, record.version, vault)));
        self.plan(id, record, vault);
        Ok(())
    }
}

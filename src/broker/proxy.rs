//! What `ProxyCall` needs from the broker beyond serving headers: where a provider lives, the
//! shared HTTP client, and PASS's sliding expiry.

use super::{Broker, BrokerError, BrokerResult, Served};
use crate::domain::{CredentialId, CredentialState, ProviderName, Session, Subject};
use crate::providers::ProviderSettings;
use crate::providers::http::HttpClient;
use crate::store::{CredentialStore, StoredCredential};
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

    /// Whether a successful call with `served` slides its session's expiry: a PASS
    /// AccessToken (Bearer). AppBearer and API keys do not expire.
    pub fn slides(&self, provider: &ProviderName, served: &Served) -> bool {
        let pass = self.registry.get(provider).is_some_and(|p| matches!(p.settings, ProviderSettings::Pass(_)));
        let bearer = served.headers.iter().any(|(n, v)| *n == "authorization" && v.expose().starts_with("Bearer "));
        pass && bearer
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
        let Some(record) = self.store.get(id).await? else { return Ok(None) };
        let mut vault = self.open(id, &record)?;
        let now = OffsetDateTime::now_utc();
        let current = provider.headers(&vault, now).is_some_and(|a| self.fingerprint(&a) == fingerprint);
        let (Some(session), true, CredentialState::Active) = (vault.session.clone(), current, record.state) else {
            return Ok(None);
        };
        let lifetime = session.expires_at - session.obtained_at;
        let expires_at = used_at + lifetime;
        if expires_at - session.expires_at < lifetime / 10 {
            return Ok(Some(session.obtained_at + lifetime / 10));
        }
        vault.session = Some(Session { token: session.token, expires_at, obtained_at: used_at });
        let extended = StoredCredential {
            access_expires_at: Some(expires_at),
            updated_at: now,
            sealed: self.seal(id, &vault),
            ..record
        };
        let Some(version) = self.store.compare_and_swap(id, extended.version, &extended).await? else {
            return Ok(None);
        };
        self.feed.publish(id, version).await;
        let authorization = provider.headers(&vault, now).ok_or(BrokerError::NoSession)?;
        let key = (id.provider.clone(), Some(id.subject.clone()));
        self.cache.insert(key, Arc::new(self.serve(authorization, version))).await;
        self.plan(id, &vault);
        Ok(Some(used_at + lifetime / 10))
    }
}

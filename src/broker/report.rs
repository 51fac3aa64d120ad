//! ReportRejected (and a proxied call's rejection): a caller says the header it got was
//! refused upstream. That may force a renewal — the only thing that renews a credential whose
//! refresh revokes the previous token before its planned renewal — so it is limited, or any
//! caller could burn single-use refresh tokens and the provider's budget:
//!
//! - only while the reported header is the credential's current one (an older header's
//!   rejection says nothing about the current one);
//! - only when that header is at least `refresh.rejected_min_age` old (a fresh header that is
//!   refused will not be helped by another);
//! - at most once per `refresh.rejected_interval` per credential, fleet-wide: the record
//!   keeps when a renewal was last forced (`forced_at`).

use super::plan::Ask;
use super::renew::Step;
use super::{Broker, BrokerResult};
use crate::domain::{CredentialId, CredentialState, ProviderName, Subject, Vault};
use crate::providers::{Provider, Renewal};
use crate::store::StoredCredential;
use std::sync::Arc;
use time::OffsetDateTime;

impl Broker {
    /// Renews once if the report is about the current header and the limits allow; returns
    /// whether the header changed. Reports that change nothing are not errors.
    pub async fn report_rejected(
        self: &Arc<Self>,
        provider: &ProviderName,
        subject: Option<&Subject>,
        fingerprint: &str,
    ) -> BrokerResult<bool> {
        let provider = self.provider(provider)?.clone();
        let Some(subject) = subject else { return self.report_own(&provider, fingerprint).await };
        let key = (provider.name.clone(), Some(subject.clone()));
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        let _flight = self.flights.enter(&key).await;
        let (record, vault) = self.read(&id).await?;
        if !self.forcible(&provider, &record, &vault, fingerprint) {
            return Ok(false);
        }
        match self.leased(&provider, &id, Ask::Forced, Some(record.version)).await? {
            Step::Served(served) => {
                let renewed = served.fingerprint != fingerprint;
                self.cache.insert(key, Arc::new(served));
                Ok(renewed)
            }
            Step::AwaitPlanned(_) | Step::LeaseHeld => Ok(false),
        }
    }

    /// Whether a report of `fingerprint` may force a renewal of this record now.
    fn forcible(&self, provider: &Provider, record: &StoredCredential, vault: &Vault, fingerprint: &str) -> bool {
        let now = OffsetDateTime::now_utc();
        let current = provider.headers(vault).is_some_and(|h| self.fingerprint(&h) == fingerprint);
        let renewable = provider.renewal(vault) != Renewal::Static && provider.rejection_renews(vault);
        let old_enough = vault.session.as_ref().is_none_or(|s| now - s.obtained_at >= self.timing.rejected_min_age);
        let interval = self.timing.rejected_interval;
        let not_recently = record.forced_at.is_none_or(|at| now - at >= interval);
        let allowed = record.state == CredentialState::Active && current && renewable;
        if allowed && !(old_enough && not_recently) {
            tracing::info!(provider = %provider.name, old_enough, not_recently, "rejection reported; renewal not forced (limits)");
        }
        allowed && old_enough && not_recently
    }

    /// The instance's own token (not stored): renewed when the report is about the cached
    /// one, at most once per interval on this replica.
    async fn report_own(&self, provider: &Provider, fingerprint: &str) -> BrokerResult<bool> {
        let key = (provider.name.clone(), None);
        let _flight = self.flights.enter(&key).await;
        let current = self.cache.get(&key);
        if current.as_ref().is_none_or(|s| s.fingerprint != fingerprint || !s.renewable)
            || !self.own_may_renew(provider)
        {
            return Ok(false);
        }
        self.cache.invalidate(&key);
        let served = self.own(provider, OffsetDateTime::now_utc()).await?;
        let renewed = served.fingerprint != fingerprint;
        self.cache.insert(key, Arc::new(served));
        Ok(renewed)
    }

    fn own_may_renew(&self, provider: &Provider) -> bool {
        let mut last = self.own_forced.lock().expect("own-renewal map poisoned");
        let now = std::time::Instant::now();
        if last.get(&provider.name).is_some_and(|at| now.duration_since(*at) < self.timing.rejected_interval) {
            return false;
        }
        last.insert(provider.name.clone(), now);
        true
    }
}

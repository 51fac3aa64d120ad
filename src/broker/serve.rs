//! The serving part: the read path. A cached header valid for `min_validity` → serve (the warm
//! path: one cache lookup and a comparison). Otherwise, inside the credential's single flight,
//! the renewer reads the record and carries out what `plan::decide` says: serve, renew under
//! the fleet-wide lease, or wait (for the planned renewal, another replica's renewal, …).
//!
//! [`Serving`] owns the header cache and the single flights: everything that answers a caller
//! or the scheduler goes through them, and only this part (and the own tokens it hands them to)
//! puts headers in the cache.

use super::cache::{AuthCache, CacheKey, Served};
use super::flight::Flights;
use super::lease::wait_for_change;
use super::own::OwnTokens;
use super::plan::Ask;
use super::renew::{Renewer, Slide, Step};
use super::report::forcible;
use super::{BrokerError, BrokerResult};
use crate::domain::{CredentialId, Subject};
use crate::providers::Provider;
use crate::store::{CredentialStore, StoreError};
use crate::telemetry::metrics;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

pub struct Serving {
    cache: AuthCache,
    flights: Flights,
}

impl Serving {
    pub fn new(cache: AuthCache) -> Self {
        Self { cache, flights: Flights::default() }
    }

    pub fn cache(&self) -> &AuthCache {
        &self.cache
    }

    /// Headers valid for at least `min_validity`, from the cache when it has them.
    pub async fn get_authorization(
        &self,
        (renewer, own): (&Arc<Renewer>, &OwnTokens),
        provider: &Arc<Provider>,
        subject: Option<&Subject>,
        min_validity: Duration,
    ) -> BrokerResult<Arc<Served>> {
        let until = OffsetDateTime::now_utc() + min_validity;
        let key = (provider.name.clone(), subject.cloned());
        let cached = self.cache.get(&key).filter(|s| s.valid_until(until));
        if let Some(served) = cached.as_ref().filter(|s| self.cache.fresh(s)) {
            metrics::cache_lookup(true);
            metrics::handed_out(&provider.name, served.expires_at);
            return Ok(served.clone());
        }
        metrics::cache_lookup(false);
        let result = match subject {
            None => own.get((&self.cache, &self.flights), renewer, provider, &key, until).await,
            Some(subject) => self.credential(renewer, provider, subject, &key, until).await,
        };
        let result = match (result, cached) {
            // The store is away: headers still valid for the caller are better than nothing.
            (Err(BrokerError::Store(StoreError::Unavailable(_) | StoreError::NotReplicated)), Some(stale)) => Ok(stale),
            (result, _) => result,
        };
        if let Ok(served) = &result {
            metrics::handed_out(&provider.name, served.expires_at);
        }
        result
    }

    /// A subject's credential. Each round runs inside the credential's single flight; waits
    /// (for the planned renewal, for another replica's work) happen outside it, so callers
    /// whose `min_validity` the current header satisfies are never held up behind them.
    async fn credential(
        &self,
        renewer: &Arc<Renewer>,
        provider: &Arc<Provider>,
        subject: &Subject,
        key: &CacheKey,
        until: OffsetDateTime,
    ) -> BrokerResult<Arc<Served>> {
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        // Subscribed before the first read, so no announcement can slip between read and wait.
        let mut changes = renewer.records().feed().subscribe();
        let timing = renewer.timing();
        let deadline = tokio::time::Instant::now() + timing.max_wait;
        // Started when another replica's lease first makes this caller wait; recorded however
        // the wait ends.
        let mut lease_wait = metrics::LeaseWait::new(&provider.name);
        loop {
            let step = {
                let _flight = self.flights.enter(key).await;
                if let Some(served) = self.cache.get(key).filter(|s| s.valid_until(until) && self.cache.fresh(s)) {
                    return Ok(served);
                }
                renewer.step(provider, &id, Ask::Serve { until }).await
            };
            let wake = match step {
                Ok(Step::Served(served)) => {
                    let served = Arc::new(served);
                    self.cache.insert(key.clone(), served.clone());
                    return Ok(served);
                }
                Ok(Step::AwaitPlanned(at)) if wall_clock(at) > deadline => {
                    return Err(BrokerError::RenewalPlanned { renew_at: at });
                }
                Ok(Step::AwaitPlanned(at)) => wall_clock(at),
                Ok(Step::LeaseHeld) => {
                    lease_wait.started();
                    tokio::time::Instant::now() + timing.lease_ttl
                }
                // Someone wrote between our read and our write: read again.
                Err(BrokerError::Conflict(_)) => tokio::time::Instant::now(),
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::RenewingElsewhere(id));
            }
            wait_for_change(&id, &mut changes, wake.min(deadline)).await;
        }
    }

    /// Called by the scheduler: renew or probe if that is due and the record is still the
    /// one planned for. Another replica holding the lease is doing it: nothing to do.
    pub async fn wake(&self, renewer: &Arc<Renewer>, provider: &Arc<Provider>, key: CacheKey, version: u64) {
        let (_, Some(subject)) = &key else { return };
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        let _flight = self.flights.enter(&key).await;
        let current = renewer.store().get(&id).await.ok().flatten().map(|record| record.version);
        if current != Some(version) {
            return; // renewed, replaced or deleted since the plan was made
        }
        match renewer.step(provider, &id, Ask::Due).await {
            Ok(Step::Served(served)) if served.version > version => self.cache.insert(key, Arc::new(served)),
            Ok(Step::LeaseHeld) => renewer.look_again(key, version),
            Ok(_) => {}
            // Shutting down: another replica's scheduler renews it.
            Err(BrokerError::Draining) => {}
            Err(e) => tracing::warn!(credential = %id, error = %e, "scheduled renewal failed"),
        }
    }

    /// A header was reported rejected (`report.rs`): renews once if the report is about the
    /// current header and the limits allow; returns whether the header changed. Reports that
    /// change nothing are not errors.
    pub async fn report_rejected(
        &self,
        (renewer, own): (&Arc<Renewer>, &OwnTokens),
        provider: &Arc<Provider>,
        subject: Option<&Subject>,
        fingerprint: &str,
    ) -> BrokerResult<bool> {
        let Some(subject) = subject else {
            return own.report((&self.cache, &self.flights), renewer, provider, fingerprint).await;
        };
        let key = (provider.name.clone(), Some(subject.clone()));
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        let _flight = self.flights.enter(&key).await;
        let (record, vault) = renewer.read(provider, &id).await?;
        let current = provider.headers(&vault).is_some_and(|h| renewer.records().fingerprint(&h) == fingerprint);
        if !forcible(provider, &record, &vault, current, renewer.timing()) {
            return Ok(false);
        }
        match renewer.leased(provider, &id, Ask::Forced, Some(record.version)).await? {
            Step::Served(served) => {
                let renewed = served.fingerprint != fingerprint;
                self.cache.insert(key, Arc::new(served));
                Ok(renewed)
            }
            Step::AwaitPlanned(_) | Step::LeaseHeld => Ok(false),
        }
    }

    /// PASS sliding expiry after a successful proxied call (`Renewer::slide`), never against
    /// a renewal: inside the credential's single flight, and only if the fleet-wide lease is
    /// free (a renewal in progress makes a new session anyway). Returns when another successful
    /// call would next be worth storing, or `None` when the session used is no longer current.
    pub async fn extend_session(
        &self,
        renewer: &Arc<Renewer>,
        provider: &Provider,
        subject: &Subject,
        fingerprint: &str,
        used_at: OffsetDateTime,
    ) -> BrokerResult<Option<OffsetDateTime>> {
        let key = (provider.name.clone(), Some(subject.clone()));
        let _flight = self.flights.enter(&key).await;
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        let Some(lease) = renewer.try_lease(&id).await? else { return Ok(None) };
        let slid = renewer.slide(provider, &id, fingerprint, used_at).await;
        lease.release().await;
        match slid? {
            Slide::NotCurrent => Ok(None),
            Slide::NotYet(next) => Ok(Some(next)),
            Slide::Stored(served, next) => {
                self.cache.insert(key, Arc::new(served));
                Ok(Some(next))
            }
        }
    }
}

/// The monotonic instant of a wall-clock time (now, if it has passed).
fn wall_clock(at: OffsetDateTime) -> tokio::time::Instant {
    let ahead = (at - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + ahead
}

//! Carrying out `plan::decide` for a stored credential: serve, or renew under the fleet-wide
//! lease — a login (idempotent: repeating it costs a call, nothing more) here, a single-use
//! refresh token through `rotation` — or tell the caller what to wait for.
//!
//! Under the lease the record is read again and decided again: the previous holder may just
//! have finished. A leased renewal runs detached from the caller, so a caller whose deadline
//! passes cannot cancel a refresh between send and commit.

use super::plan::{Ask, Decision, decide};
use super::records::Meta;
use super::rotation::{self, Rotation, Transition};
use super::{Broker, BrokerError, BrokerResult, Served};
use crate::domain::{CredentialId, CredentialState, Reason, Vault};
use crate::providers::http::UpstreamError;
use crate::providers::{Provider, Renewal};
use crate::store::{CredentialStore, StoreError, StoredCredential};
use crate::telemetry::metrics;
use std::sync::Arc;
use time::OffsetDateTime;

/// One round of the read path.
pub enum Step {
    Served(Served),
    /// Nothing to serve before the planned renewal at this time: wait for it.
    AwaitPlanned(OffsetDateTime),
    /// Another replica holds the lease: wait for its announcement.
    LeaseHeld,
}

impl Broker {
    /// Reads the credential and carries out the decision (inside its single flight).
    pub(super) async fn step(
        self: &Arc<Self>,
        provider: &Arc<Provider>,
        id: &CredentialId,
        ask: Ask,
    ) -> BrokerResult<Step> {
        let (record, vault) = match self.read(id).await {
            Err(BrokerError::Store(error @ StoreError::Unavailable(_))) => {
                return self.offline(provider, id, ask, error).await.map(Step::Served);
            }
            other => other?,
        };
        self.plan(id, &record, &vault);
        match decide(provider, &record, &vault, ask, &self.timing, OffsetDateTime::now_utc()) {
            Decision::Serve(authorization) => {
                Ok(Step::Served(self.serve(provider, authorization, record.version, &vault)))
            }
            Decision::WaitUntil(at) => Ok(Step::AwaitPlanned(at)),
            Decision::Refuse(error) => Err(error),
            Decision::Renew | Decision::Probe => self.leased(provider, id, ask, None).await,
        }
    }

    /// Takes the lease and renews in a detached task; `LeaseHeld` when another replica holds it.
    /// `forced`: the version whose header a caller reported (`report.rs`).
    pub(super) async fn leased(
        self: &Arc<Self>,
        provider: &Arc<Provider>,
        id: &CredentialId,
        ask: Ask,
        forced: Option<u64>,
    ) -> BrokerResult<Step> {
        // Counted before the lease is taken, so a shutdown that closed the gate after this
        // point waits for the renewal (and one that closed it before refuses it).
        let Some(running) = self.renewals.start() else { return Err(BrokerError::Draining) };
        let Some(lease) = self.try_lease(id).await? else { return Ok(Step::LeaseHeld) };
        let (broker, provider, id) = (Arc::clone(self), Arc::clone(provider), id.clone());
        // In the caller's span (its trace), though detached from the caller.
        let renewal = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let _running = running;
            let result = broker.renew_leased(&provider, &id, ask, forced, lease.owner()).await;
            lease.release().await;
            if result.is_err() {
                // Flagged, fenced or postponed: plan the next look (a probe) even if no caller comes.
                broker.replan(&id).await;
            }
            result
        }));
        renewal.await.map_err(|e| BrokerError::RenewalTaskFailed(e.to_string()))?
    }

    /// Under the lease: decide again on a fresh read, then renew, fence or probe.
    async fn renew_leased(
        &self,
        provider: &Provider,
        id: &CredentialId,
        ask: Ask,
        forced: Option<u64>,
        owner: &str,
    ) -> BrokerResult<Step> {
        let (record, vault) = self.read(id).await?;
        let now = OffsetDateTime::now_utc();
        // A forced renewal is for the header the caller saw; once the record changed, it is new.
        let ask = if forced.is_some_and(|v| v != record.version) { Ask::Serve { until: now } } else { ask };
        let forced_at = if forced.is_some() && ask == Ask::Forced { Some(now) } else { record.forced_at };
        let (record, vault) = match decide(provider, &record, &vault, ask, &self.timing, now) {
            Decision::Serve(authorization) => {
                return Ok(Step::Served(self.serve(provider, authorization, record.version, &vault)));
            }
            Decision::WaitUntil(at) => return Ok(Step::AwaitPlanned(at)),
            Decision::Refuse(error) => return Err(error),
            Decision::Probe => {
                let (record, vault) = self.rotation(provider, id, owner, forced_at).probe(&record, vault).await?;
                self.renew(provider, id, &record, vault, owner, forced_at).await?
            }
            Decision::Renew => self.renew(provider, id, &record, vault, owner, forced_at).await?,
        };
        self.plan(id, &record, &vault);
        self.renewed(provider, &record, &vault, ask)
    }

    /// The header of a record just written, checked against what the caller asked.
    fn renewed(&self, provider: &Provider, record: &StoredCredential, vault: &Vault, ask: Ask) -> BrokerResult<Step> {
        let header = provider.headers(vault).ok_or(BrokerError::NoSession)?;
        let header = self.timing.promise(provider, vault, header);
        if let (Ask::Serve { until }, Some(promised_until)) = (ask, header.expires_at) {
            if promised_until < until {
                return Err(BrokerError::LifetimeTooShort { promised_until });
            }
        }
        Ok(Step::Served(self.serve(provider, header, record.version, vault)))
    }

    /// Obtains a new session and stores it: logs in again, or rotates a single-use refresh
    /// token (`rotation`, which also recovers from a holder that vanished mid-refresh).
    async fn renew(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: &StoredCredential,
        vault: Vault,
        owner: &str,
        forced_at: Option<OffsetDateTime>,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        match provider.renewal(&vault) {
            Renewal::Login => {
                let started = std::time::Instant::now();
                let result = self.login(provider, id, record, vault, forced_at).await;
                metrics::renewal(&id.provider, "login", result.is_ok(), started.elapsed());
                result
            }
            Renewal::Rotation(_) => self.rotation(provider, id, owner, forced_at).renew(record, vault).await,
            Renewal::Static => Err(BrokerError::NoSession),
        }
    }

    fn rotation<'a>(
        &'a self,
        provider: &'a Provider,
        id: &'a CredentialId,
        owner: &'a str,
        forced_at: Option<OffsetDateTime>,
    ) -> Rotation<'a> {
        Rotation {
            records: &self.records,
            http: &self.http,
            provider,
            id,
            owner,
            timing: &self.timing,
            chaos: &self.chaos,
            budget: self.budget(&id.provider),
            forced_at,
        }
    }

    #[tracing::instrument(name = "renew.login", skip_all, fields(credential = %id, provider.kind = provider.kind()))]
    async fn login(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: &StoredCredential,
        vault: Vault,
        forced_at: Option<OffsetDateTime>,
    ) -> BrokerResult<(StoredCredential, Vault)> {
        match provider.login(&self.http, &vault).await {
            Ok(tokens) => {
                let session = self.timing.session(tokens.access_token, tokens.expires_at, tokens.issued_at, true);
                let vault = Vault { session: Some(session), ..vault };
                let written = self.records.write(id, record.version, &Meta::active(forced_at), &vault).await?;
                written.map(|record| (record, vault)).ok_or_else(|| BrokerError::Conflict(id.clone()))
            }
            // The provider refused the login itself: the stored username/password are wrong or
            // the account is disabled. Retrying will not help; an operator must act.
            Err(UpstreamError::Refused { status: 400 | 401 | 403, reason, .. }) => {
                let reason = Reason::LoginRefused { provider_kind: provider.kind().into(), reason };
                Err(self.settle(id, record, &vault, Transition::Reauthorize(reason)).await)
            }
            Err(source) => Err(BrokerError::Upstream { provider: id.provider.clone(), source }),
        }
    }

    /// Records a transition outside a rotation (a refused login) and returns the caller's error.
    async fn settle(&self, id: &CredentialId, record: &StoredCredential, vault: &Vault, t: Transition) -> BrokerError {
        let meta = Meta { state: t.to(), reason: t.reason(), probe_at: None, forced_at: record.forced_at };
        rotation::settle(&self.records, id, record.version, &t, meta, vault).await
    }

    /// Tells the scheduler when this record next needs attention: its planned renewal, the
    /// probe of an unknown outcome, or — while REFRESHING — a look at whether its holder is
    /// still there (a lapsed lease means fence, then probe: recovery needs no caller).
    pub(super) fn plan(&self, id: &CredentialId, record: &StoredCredential, vault: &Vault) {
        let at = match record.state {
            CredentialState::Active => vault.session.as_ref().map(|s| self.timing.renew_at(s)),
            CredentialState::Indeterminate => Some(self.timing.probe_at(record)),
            CredentialState::Refreshing => Some(record.updated_at + self.timing.lease_ttl),
            CredentialState::ReauthRequired | CredentialState::Revoked => None,
        };
        if let Some(at) = at {
            self.scheduler.plan((id.provider.clone(), Some(id.subject.clone())), at, record.version);
        }
    }

    /// Called by the scheduler: renew or probe if that is due and the record is still the
    /// one planned for. Another replica holding the lease is doing it: nothing to do.
    pub async fn wake(self: &Arc<Self>, key: super::CacheKey, version: u64) {
        let (provider_name, Some(subject)) = &key else { return };
        let Some(provider) = self.registry.get(provider_name).cloned() else { return };
        let id = CredentialId::new(provider_name.clone(), subject.clone());
        let _flight = self.flights.enter(&key).await;
        let current = self.store().get(&id).await.ok().flatten().map(|record| record.version);
        if current != Some(version) {
            return; // renewed, replaced or deleted since the plan was made
        }
        match self.step(&provider, &id, Ask::Due).await {
            Ok(Step::Served(served)) if served.version > version => self.cache.insert(key, Arc::new(served)),
            // Another replica holds the lease: look again once it could have lapsed.
            Ok(Step::LeaseHeld) => {
                let again = OffsetDateTime::now_utc() + self.timing.lease_ttl;
                self.scheduler.plan(key, again, version);
            }
            Ok(_) => {}
            // Shutting down: another replica's scheduler renews it.
            Err(BrokerError::Draining) => {}
            Err(e) => tracing::warn!(credential = %id, error = %e, "scheduled renewal failed"),
        }
    }

    /// Plans the record's next wake-up from a fresh read.
    async fn replan(&self, id: &CredentialId) {
        if let Ok((record, vault)) = self.records.read(id).await {
            self.plan(id, &record, &vault);
        }
    }
}

//! The renewal part: carrying out `plan::decide` for a stored credential — serve, or renew
//! under the fleet-wide lease (a login, idempotent: repeating it costs a call, nothing more;
//! or a single-use refresh token through `rotation`) — or tell the caller what to wait for.
//!
//! [`Renewer`] owns everything a renewal touches: the records (store, keyring, change feed),
//! the upstream client, the timing, the scheduler's handle, this replica's lease owner name,
//! the running renewals, the token budgets and the last-known records of logins. It never
//! touches the header cache or the single flights (`serve.rs` does): it answers with a
//! [`Step`] and the caller caches.
//!
//! Under the lease the record is read again and decided again: the previous holder may just
//! have finished. A leased renewal runs detached from the caller (it holds an `Arc` of the
//! renewer), so a caller whose deadline passes cannot cancel a refresh between send and commit.

use super::budget::Budgets;
use super::cache::{CacheKey, Served};
use super::chaos::Chaos;
use super::lease::Lease;
use super::offline::LastKnown;
use super::plan::{Ask, Decision, Timing, decide};
use super::records::{Meta, Records};
use super::renewals::Renewals;
use super::rotation::{self, Rotation, Transition};
use super::scheduler::Scheduler;
use super::{BrokerError, BrokerResult};
use crate::domain::{CredentialId, CredentialState, Reason, Vault};
use crate::providers::http::{HttpClient, UpstreamError};
use crate::providers::{Authorization, Provider, Registry, Renewal};
use crate::store::{AnyStore, CredentialStore, StoreError, StoredCredential};
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

/// What a successful call with a sliding session (PASS) did to the stored session.
pub enum Slide {
    /// The headers used are no longer the credential's current ones: nothing to extend.
    NotCurrent,
    /// Moved too little to be worth a write; worth it for a call that succeeds after this time.
    NotYet(OffsetDateTime),
    /// Stored: the headers as now handed out, and when another call would next be worth storing.
    Stored(Served, OffsetDateTime),
}

/// What a renewal needs, each owned once. Shared as an `Arc` with the detached renewal tasks.
pub struct Renewer {
    records: Records,
    http: HttpClient,
    timing: Timing,
    chaos: Chaos,
    scheduler: Scheduler,
    /// Names this replica in lease and attempt owners (with a nonce per acquisition).
    replica: String,
    /// Leased renewals running in detached tasks; a shutdown closes it and waits for them.
    running: Arc<Renewals>,
    budgets: Budgets,
    last_known: LastKnown,
}

impl Renewer {
    pub fn new(
        registry: &Registry,
        records: Records,
        http: HttpClient,
        timing: Timing,
        chaos: Chaos,
        scheduler: Scheduler,
    ) -> Self {
        if chaos.journal_off() {
            tracing::error!(
                "the refresh journal is DISABLED (test-only negative control): refresh tokens may be sent twice"
            );
        }
        Self {
            budgets: Budgets::new(registry, records.store()),
            records,
            http,
            timing,
            chaos,
            scheduler,
            replica: format!("{:08x}", rand::random::<u32>()),
            running: Default::default(),
            last_known: LastKnown::default(),
        }
    }

    pub fn records(&self) -> &Records {
        &self.records
    }

    pub fn store(&self) -> &AnyStore {
        self.records.store()
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn running(&self) -> &Renewals {
        &self.running
    }

    /// Headers from a record's vault, as handed out.
    pub fn serve(&self, provider: &Provider, authorization: Authorization, version: u64, vault: &Vault) -> Served {
        let renewable = provider.renewal(vault) != Renewal::Static && provider.rejection_renews(vault);
        self.served(authorization, version, renewable, provider.usage_slides(vault))
    }

    pub fn served(&self, authorization: Authorization, version: u64, renewable: bool, slides: bool) -> Served {
        Served::new(self.records.fingerprint(&authorization), authorization, version, renewable, slides)
    }

    /// Reads a record (keeping a login's last-known copy for when the store is away) and opens it.
    pub async fn read(&self, provider: &Provider, id: &CredentialId) -> BrokerResult<(StoredCredential, Vault)> {
        let read = self.records.read(id).await;
        self.last_known.note(provider, self.store(), id, &read);
        read
    }

    /// Reads the credential and carries out the decision (inside its single flight).
    pub async fn step(self: &Arc<Self>, provider: &Arc<Provider>, id: &CredentialId, ask: Ask) -> BrokerResult<Step> {
        let (record, vault) = match self.read(provider, id).await {
            Err(BrokerError::Store(error @ StoreError::Unavailable(_))) => {
                let renewed =
                    self.last_known.renew((&self.records, &self.timing, &self.http), provider, id, ask, error);
                let (header, version, vault) = renewed.await?;
                return Ok(Step::Served(self.serve(provider, header, version, &vault)));
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

    /// Takes the lease and renews in a detached task; `LeaseHeld` when another replica holds
    /// it. `forced`: the version whose header a caller reported (`report.rs`).
    pub async fn leased(
        self: &Arc<Self>,
        provider: &Arc<Provider>,
        id: &CredentialId,
        ask: Ask,
        forced: Option<u64>,
    ) -> BrokerResult<Step> {
        // Counted before the lease is taken, so a shutdown that closed the gate after this
        // point waits for the renewal (and one that closed it before refuses it).
        let Some(running) = self.running.start() else { return Err(BrokerError::Draining) };
        let Some(lease) = self.try_lease(id).await? else { return Ok(Step::LeaseHeld) };
        let (renewer, provider, id) = (Arc::clone(self), Arc::clone(provider), id.clone());
        // In the caller's span (its trace), though detached from the caller.
        let renewal = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let _running = running;
            let result = renewer.renew_leased(&provider, &id, ask, forced, lease.owner()).await;
            lease.release().await;
            if result.is_err() {
                // Flagged, fenced or postponed: plan the next look (a probe) even if no caller comes.
                renewer.replan(&id).await;
            }
            result
        }));
        renewal.await.map_err(|e| BrokerError::RenewalTaskFailed(e.to_string()))?
    }

    /// Tries to take the credential's lease; `None` when another replica holds it.
    pub async fn try_lease(&self, id: &CredentialId) -> BrokerResult<Option<Lease>> {
        let owner = format!("{}-{:016x}", self.replica, rand::random::<u64>());
        let ttl = self.timing.lease_ttl;
        if !self.store().acquire_lease(id, &owner, ttl).await? {
            return Ok(None);
        }
        self.chaos.point("after_lease", id).await;
        Ok(Some(Lease::held(self.store().clone(), id.clone(), owner, ttl)))
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
        let (record, vault) = self.read(provider, id).await?;
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
            budget: self.budgets.get(&id.provider),
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
    pub fn plan(&self, id: &CredentialId, record: &StoredCredential, vault: &Vault) {
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

    /// Another replica holds the lease: look again once it could have lapsed.
    pub fn look_again(&self, key: CacheKey, version: u64) {
        self.scheduler.plan(key, OffsetDateTime::now_utc() + self.timing.lease_ttl, version);
    }

    /// PASS sliding expiry, under the lease: a call sent at `used_at` with the headers
    /// fingerprinted `fingerprint` succeeded, so upstream the session now lives until `used_at`
    /// + its lifetime (`used_at` is when the request was *sent*, so the known expiry can only
    /// err on the early side). Stored only when it moves the expiry by a tenth of the lifetime
    /// or more (PASS lifetimes are days: a write per call would buy nothing), by
    /// compare-and-swap.
    pub async fn slide(
        &self,
        provider: &Provider,
        id: &CredentialId,
        fingerprint: &str,
        used_at: OffsetDateTime,
    ) -> BrokerResult<Slide> {
        let (record, mut vault) = match self.records.read(id).await {
            Err(BrokerError::CredentialNotFound(_)) => return Ok(Slide::NotCurrent),
            other => other?,
        };
        let current = provider.headers(&vault).is_some_and(|a| self.records.fingerprint(&a) == fingerprint);
        let (Some(session), true, CredentialState::Active) = (vault.session.clone(), current, record.state) else {
            return Ok(Slide::NotCurrent);
        };
        let lifetime = session.expires_at - session.obtained_at;
        let expires_at = used_at + lifetime;
        if expires_at - session.expires_at < lifetime / 10 {
            return Ok(Slide::NotYet(session.obtained_at + lifetime / 10));
        }
        vault.session = Some(self.timing.session(session.token, expires_at, used_at, session.lifetime_known));
        let meta = Meta::active(record.forced_at);
        let Some(extended) = self.records.write(id, record.version, &meta, &vault).await? else {
            return Ok(Slide::NotCurrent);
        };
        let header = provider.headers(&vault).ok_or(BrokerError::NoSession)?;
        let header = self.timing.promise(provider, &vault, header);
        self.plan(id, &extended, &vault);
        Ok(Slide::Stored(self.serve(provider, header, extended.version, &vault), used_at + lifetime / 10))
    }

    /// Plans the record's next wake-up from a fresh read.
    async fn replan(&self, id: &CredentialId) {
        if let Ok((record, vault)) = self.records.read(id).await {
            self.plan(id, &record, &vault);
        }
    }
}

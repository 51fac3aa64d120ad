//! The broker's use cases: serve authorization, renew sessions, manage stored credentials.
//!
//! Protocol-free: the gRPC layer parses requests into domain types and calls these methods;
//! the store, the providers and the upstream HTTP client are reached only from here.
//!
//! The read path (yup-oauth2's three arms): a cached header valid for `min_validity` → serve;
//! else, inside the credential's single flight, a stored session still valid → serve; else
//! renew it upstream (`renew.rs`) → serve.

mod admin;
mod budget;
mod cache;
pub mod chaos;
mod coherence;
mod error;
mod flight;
mod lease;
mod proxy;
mod recover;
mod renew;
mod rewrap;
pub mod scheduler;

pub use lease::Coordination;

pub use admin::{CredentialView, Page};
pub use cache::{AuthCache, CacheKey, Served};
pub use error::{BrokerError, BrokerResult};
pub use rewrap::{ProblemKind, RewrapCursor, RewrapProblem, RewrapReport, RewrapRequest};

use crate::crypto::Keyring;
use crate::domain::{CredentialId, CredentialState, ProviderName, Subject, Vault};
use crate::providers::http::HttpClient;
use crate::providers::{
    Authorization, OwnCredential, Provider, ProviderError, ProviderSettings, Registry, bearer, passolution,
};
use crate::store::{AnyStore, ChangeFeed, CredentialStore, StoreError, StoredCredential};
use flight::Flights;
use scheduler::Scheduler;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// What the broker is built from.
pub struct BrokerParts {
    pub registry: Registry,
    pub store: AnyStore,
    pub feed: ChangeFeed,
    pub keyring: Keyring,
    pub cache: AuthCache,
    pub http: HttpClient,
    pub scheduler: Scheduler,
    pub coordination: Coordination,
    pub chaos: chaos::Chaos,
}

pub struct Broker {
    registry: Registry,
    store: AnyStore,
    feed: ChangeFeed,
    keyring: Keyring,
    cache: AuthCache,
    flights: Flights,
    http: HttpClient,
    scheduler: Scheduler,
    coordination: Coordination,
    chaos: chaos::Chaos,
    /// Names this replica in lease and attempt owners (with a nonce per acquisition).
    replica: String,
    /// The last record read per credential (sealed): what logins renew from while the store
    /// is unreachable.
    records: moka::future::Cache<CredentialId, StoredCredential>,
    budgets: std::collections::HashMap<ProviderName, crate::store::budget::TokenBudget>,
}

impl Broker {
    pub fn new(parts: BrokerParts) -> Self {
        let BrokerParts { registry, store, feed, keyring, cache, http, scheduler, coordination, chaos } = parts;
        if !coordination.journal {
            tracing::error!(
                "the refresh journal is DISABLED (test-only negative control): refresh tokens may be sent twice"
            );
        }
        tokio::spawn(coherence::run(cache.clone(), feed.subscribe()));
        let replica = format!("{:08x}", rand::random::<u32>());
        let budgets = budget::budgets(&registry, &store);
        Self {
            registry,
            store,
            feed,
            keyring,
            cache,
            flights: Flights::default(),
            http,
            scheduler,
            coordination,
            chaos,
            replica,
            records: moka::future::Cache::builder().max_capacity(1_000_000).build(),
            budgets,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    fn provider(&self, name: &ProviderName) -> BrokerResult<&Arc<Provider>> {
        self.registry.get(name).ok_or_else(|| BrokerError::UnknownProvider(name.clone()))
    }

    /// Headers valid for at least `min_validity`, from the cache when it has them.
    pub async fn get_authorization(
        self: &Arc<Self>,
        provider: &ProviderName,
        subject: Option<&Subject>,
        min_validity: Duration,
    ) -> BrokerResult<Arc<Served>> {
        let provider = self.provider(provider)?;
        let until = OffsetDateTime::now_utc() + min_validity;
        let key = (provider.name.clone(), subject.cloned());
        let cached = self.cache.get(&key).await.filter(|s| s.valid_until(until));
        if let Some(served) = cached.as_ref().filter(|s| self.cache.fresh(s)) {
            return Ok(served.clone());
        }
        // One caller per credential does the slow part; the others find its result cached.
        let _flight = self.flights.enter(&key).await;
        if let Some(served) = self.cache.get(&key).await.filter(|s| s.valid_until(until) && self.cache.fresh(s)) {
            return Ok(served);
        }
        let result = match subject {
            None => self.own(provider, until).await,
            Some(subject) => self.credential(provider, subject, until, false).await,
        };
        match (result, cached) {
            (Ok(served), _) => {
                let served = Arc::new(served);
                self.cache.insert(key, served.clone()).await;
                Ok(served)
            }
            // The store is away: headers still valid for the caller are better than nothing.
            (Err(BrokerError::Store(StoreError::Unavailable(_))), Some(stale)) => Ok(stale),
            (Err(e), _) => Err(e),
        }
    }

    /// The provider instance's own credential (empty subject).
    async fn own(&self, provider: &Provider, until: OffsetDateTime) -> BrokerResult<Served> {
        let authorization = match provider.own_credential()? {
            OwnCredential::Static(headers) => headers,
            // Client-credentials tokens are idempotent to obtain: cached here, not stored.
            OwnCredential::ClientCredentials(settings) => {
                let tokens =
                    self.budgeted(&provider.name, passolution::client_credentials(&self.http, settings)).await?;
                bearer(&tokens.access_token, tokens.expires_at)
            }
        };
        check_lifetime(&authorization, until)?;
        Ok(self.serve(authorization, 0))
    }

    /// A subject's credential: from its stored session when valid (and `force` is off), else
    /// renewed — by this replica under the fleet-wide lease, or by whichever replica holds it
    /// (then this one waits for its announcement and re-reads).
    async fn credential(
        self: &Arc<Self>,
        provider: &Arc<Provider>,
        subject: &Subject,
        until: OffsetDateTime,
        force: bool,
    ) -> BrokerResult<Served> {
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        // Subscribed before the first read, so no announcement can slip between read and wait.
        let mut changes = self.feed.subscribe();
        let mut seen = None;
        for _ in 0..ROUNDS {
            let (record, vault) = match self.read(&id).await {
                Err(BrokerError::Store(error @ StoreError::Unavailable(_))) => {
                    return self.offline(provider, &id, until, error).await;
                }
                other => other?,
            };
            // `force` renews the header the caller saw; once the record changed, it is new.
            let force = force && *seen.get_or_insert(record.version) == record.version;
            if let Some(served) = self.serve_stored(provider, &id, &record, &vault, until, force)? {
                return Ok(served);
            }
            let Some(lease) = self.try_lease(&id).await? else {
                self.wait_for_change(&id, &mut changes).await;
                continue;
            };
            // Detached from the caller: a caller whose deadline passes must not cancel a refresh
            // that was sent but not yet committed (its new refresh token would be lost).
            let (broker, provider, id) = (Arc::clone(self), Arc::clone(provider), id.clone());
            let forced = force.then_some(record.version);
            let renewal = tokio::spawn(async move {
                let result = broker.renew_leased(&provider, &id, until, forced, lease.owner()).await;
                lease.release().await;
                result
            });
            return renewal.await.map_err(|e| BrokerError::Renewal(e.to_string()))?;
        }
        let detail = "another replica is renewing this credential; retry".to_owned();
        Err(BrokerError::NotServable { id, state: CredentialState::Refreshing, detail })
    }

    async fn read(&self, id: &CredentialId) -> BrokerResult<(StoredCredential, Vault)> {
        let Some(record) = self.store.get(id).await? else {
            self.records.invalidate(id).await;
            return Err(BrokerError::CredentialNotFound(id.clone()));
        };
        if self.keeps_offline_copy(id) {
            self.records.insert(id.clone(), record.clone()).await;
        }
        let vault = self.open(id, &record)?;
        Ok((record, vault))
    }

    /// Only logins can be renewed without the store, and only a Redis store can be away.
    fn keeps_offline_copy(&self, id: &CredentialId) -> bool {
        let login =
            |p: &Arc<Provider>| matches!(p.settings, ProviderSettings::Pass(_) | ProviderSettings::JouwOmgeving(_));
        matches!(self.store, AnyStore::Redis(_)) && self.registry.get(&id.provider).is_some_and(login)
    }

    /// The store is unreachable. Logins are idempotent, so they are renewed from the last
    /// record read (still sealed in memory), with in-process single flight only, and served
    /// without storing. Rotating refresh tokens fail closed: never a refresh without the journal.
    async fn offline(
        &self,
        provider: &Provider,
        id: &CredentialId,
        until: OffsetDateTime,
        error: StoreError,
    ) -> BrokerResult<Served> {
        let Some(record) = self.records.get(id).await.filter(|r| r.state == CredentialState::Active) else {
            return Err(error.into());
        };
        let vault = self.open(id, &record)?;
        if let Some(authorization) = provider.headers(&vault, until) {
            return Ok(self.serve(authorization, record.version));
        }
        if !matches!(vault.material, crate::domain::SecretMaterial::UsernamePassword { .. }) {
            return Err(error.into());
        }
        let tokens = self
            .obtain_login(provider, &vault)
            .await
            .map_err(|source| BrokerError::Upstream { provider: id.provider.clone(), source })?;
        let vault = Vault { session: Some(renew::session(tokens.access_token, tokens.expires_at)), ..vault };
        tracing::warn!(credential = %id, "store unavailable: renewed a login in memory only; it is stored again once the store is back");
        let offline =
            StoredCredential { sealed: self.seal(id, &vault), access_expires_at: vault.expires_at(), ..record.clone() };
        self.records.insert(id.clone(), offline).await;
        let authorization = provider.headers(&vault, until).ok_or(BrokerError::NoSession)?;
        Ok(self.serve(authorization, record.version))
    }

    /// Serves from the stored record when it can; `Ok(None)`: it needs renewing (or, when
    /// INDETERMINATE and quiet long enough, reconciling) under the lease.
    fn serve_stored(
        &self,
        provider: &Provider,
        id: &CredentialId,
        record: &StoredCredential,
        vault: &Vault,
        until: OffsetDateTime,
        force: bool,
    ) -> BrokerResult<Option<Served>> {
        let renews = provider.renews(vault);
        match record.state {
            CredentialState::Active | CredentialState::Refreshing => {
                if let Some(authorization) = provider.headers(vault, until).filter(|_| !force || !renews) {
                    self.plan(id, vault);
                    return Ok(Some(self.serve(authorization, record.version)));
                }
                if renews { Ok(None) } else { Err(ProviderError::AccessTokenTooShort.into()) }
            }
            CredentialState::Indeterminate if renews && self.quiet(record) => Ok(None),
            state => Err(BrokerError::NotServable { id: id.clone(), state, detail: record.detail.clone() }),
        }
    }

    /// Under the lease: re-read (the previous holder may just have finished), then renew,
    /// fence a vanished holder, or reconcile an unknown outcome. `forced`: the version whose
    /// header the caller reported as rejected.
    async fn renew_leased(
        &self,
        provider: &Provider,
        id: &CredentialId,
        until: OffsetDateTime,
        forced: Option<u64>,
        owner: &str,
    ) -> BrokerResult<Served> {
        let (mut record, vault) = self.read(id).await?;
        let force = forced == Some(record.version);
        if let Some(served) = self.serve_stored(provider, id, &record, &vault, until, force)? {
            return Ok(served);
        }
        match record.state {
            // The negative control behaves like a lease-only design: a holder whose lease
            // expired is simply superseded (and, when it wakes up, sends its token again).
            CredentialState::Refreshing if !self.coordination.journal => {}
            CredentialState::Refreshing => return Err(self.fence_vanished(id, &record, &vault, owner).await),
            CredentialState::Indeterminate => record = self.reconcile(provider, id, &record, &vault).await?,
            _ => {}
        }
        let (record, vault) = self.renew(provider, id, record, vault, owner).await?;
        let authorization = provider.headers(&vault, OffsetDateTime::now_utc()).ok_or(BrokerError::NoSession)?;
        check_lifetime(&authorization, until)?;
        self.plan(id, &vault);
        Ok(self.serve(authorization, record.version))
    }

    fn plan(&self, id: &CredentialId, vault: &Vault) {
        if let Some(session) = &vault.session {
            let key = (id.provider.clone(), Some(id.subject.clone()));
            self.scheduler.plan(key, session.obtained_at, session.expires_at);
        }
    }

    /// Called by the scheduler: renew if the session is still the one planned for.
    pub async fn refresh_ahead(self: &Arc<Self>, key: CacheKey, planned_expiry: OffsetDateTime) {
        let (provider_name, Some(subject)) = &key else { return };
        let Some(provider) = self.registry.get(provider_name) else { return };
        let _flight = self.flights.enter(&key).await;
        let id = CredentialId::new(provider_name.clone(), subject.clone());
        let current = async {
            let record = self.store.get(&id).await.ok()??;
            let vault: Vault = self.open(&id, &record).ok()?;
            (vault.session.as_ref()?.expires_at == planned_expiry && record.state == CredentialState::Active)
                .then_some(())
        };
        if current.await.is_none() {
            return; // renewed, replaced or deleted since the plan was made
        }
        match self.credential(provider, subject, OffsetDateTime::now_utc(), true).await {
            Ok(served) => self.cache.insert(key, Arc::new(served)).await,
            Err(e) => tracing::warn!(credential = %id, error = %e, "refresh ahead failed"),
        }
    }

    /// A caller says the header with `fingerprint` was refused upstream: renew once if it is
    /// still the current one. Reports for an older header, or for credentials that cannot be
    /// renewed, change nothing.
    pub async fn report_rejected(
        self: &Arc<Self>,
        provider: &ProviderName,
        subject: Option<&Subject>,
        fingerprint: &str,
    ) -> BrokerResult<bool> {
        let provider = self.provider(provider)?;
        let key = (provider.name.clone(), subject.cloned());
        let _flight = self.flights.enter(&key).await;
        let current = match self.cache.get(&key).await {
            Some(served) => Some(served.fingerprint.clone()),
            None => self.stored_fingerprint(provider, subject).await?,
        };
        if current.as_deref() != Some(fingerprint) {
            return Ok(false);
        }
        self.cache.invalidate(&key).await;
        let now = OffsetDateTime::now_utc();
        let served = match subject {
            None => self.own(provider, now).await?,
            Some(subject) => self.credential(provider, subject, now, true).await?,
        };
        let renewed = served.fingerprint != fingerprint;
        self.cache.insert(key, Arc::new(served)).await;
        Ok(renewed)
    }

    async fn stored_fingerprint(&self, provider: &Provider, subject: Option<&Subject>) -> BrokerResult<Option<String>> {
        let Some(subject) = subject else { return Ok(None) };
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        let Some(record) = self.store.get(&id).await? else { return Err(BrokerError::CredentialNotFound(id)) };
        let vault: Vault = self.open(&id, &record)?;
        Ok(provider.headers(&vault, OffsetDateTime::now_utc()).map(|a| self.fingerprint(&a)))
    }

    fn fingerprint(&self, authorization: &Authorization) -> String {
        self.keyring.fingerprint(authorization.headers.iter().map(|(_, v)| v.expose()))
    }

    fn serve(&self, authorization: Authorization, version: u64) -> Served {
        let fingerprint = self.fingerprint(&authorization);
        Served {
            headers: authorization.headers,
            expires_at: authorization.expires_at,
            fingerprint,
            version,
            cached_at: std::time::Instant::now(),
        }
    }

    fn open(&self, id: &CredentialId, record: &StoredCredential) -> BrokerResult<Vault> {
        self.keyring.open(id, &record.sealed).map_err(|source| BrokerError::Sealed { id: id.clone(), source })
    }

    fn seal(&self, id: &CredentialId, vault: &Vault) -> String {
        self.keyring.seal(id, vault)
    }
}

/// Reads before giving up on a credential that another replica keeps renewing.
const ROUNDS: usize = 3;

/// Refuses headers that cannot satisfy the caller even when fresh: renewing again would not
/// help, and would hammer the provider.
fn check_lifetime(authorization: &Authorization, until: OffsetDateTime) -> BrokerResult<()> {
    match authorization.expires_at {
        Some(expires) if expires < until => Err(BrokerError::LifetimeTooShort { expires_at: expires }),
        _ => Ok(()),
    }
}

//! The broker's use cases: serve authorization, renew sessions, manage stored credentials.
//!
//! Protocol-free: the gRPC layer parses requests into domain types and calls these methods;
//! the store, the providers and the upstream HTTP client are reached only from here.
//!
//! # Layout
//! - `mod.rs`: the read path. A cached header valid for `min_validity` → serve (the warm
//!   path: one cache lookup and a comparison). Otherwise, inside the credential's single
//!   flight, read the record and carry out what [`plan::decide`] says: serve, renew under the
//!   fleet-wide lease, or wait (for the planned renewal, another replica's renewal, …).
//! - `plan.rs`: that decision, pure. `renew.rs`: carrying it out under the lease (logins;
//!   rotations are delegated to `rotation/`, the single-use refresh-token path, which states
//!   the safety invariant and its proof sketch). `records.rs`: sealing and writing records.
//! - `report.rs`: ReportRejected, limited. `offline.rs`: the store is away.
//! - `lease.rs`, `flight.rs`, `coherence.rs`, `cache.rs`, `scheduler.rs`, `budget.rs`: the
//!   timing devices; `renewals.rs`: the running renewals a shutdown waits for. `admin.rs`: put, status, list, delete. `proxy.rs`: what ProxyCall
//!   asks of the broker. `chaos.rs`: test-only hooks (the `chaos` feature).

mod admin;
mod budget;
mod cache;
pub mod chaos;
mod coherence;
mod error;
mod flight;
mod lease;
mod offline;
pub mod plan;
mod proxy;
mod records;
mod renew;
pub mod renewals;
mod report;
mod rewrap;
pub mod rotation;
pub mod scheduler;

pub use admin::{CredentialView, Page};
pub use cache::{AuthCache, CacheKey, Served};
pub use error::{BrokerError, BrokerResult};
pub use plan::Timing;
pub use rewrap::{ProblemKind, RewrapCursor, RewrapProblem, RewrapReport, RewrapRequest};

use crate::crypto::Keyring;
use crate::domain::{CredentialId, ProviderName, Subject, Vault};
use crate::providers::http::HttpClient;
use crate::providers::{Authorization, OwnCredential, Provider, Registry, Renewal, bearer};
use crate::store::{AnyStore, ChangeFeed, StoreError, StoredCredential};
use crate::telemetry::metrics;
use compact_str::CompactString;
use flight::Flights;
use plan::Ask;
use records::Records;
use renew::Step;
use scheduler::Scheduler;
use std::sync::{Arc, OnceLock};
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
    pub timing: Timing,
    pub chaos: chaos::Chaos,
}

pub struct Broker {
    registry: Registry,
    records: Records,
    feed: ChangeFeed,
    keyring: Keyring,
    cache: AuthCache,
    flights: Flights,
    http: HttpClient,
    scheduler: Scheduler,
    timing: Timing,
    chaos: chaos::Chaos,
    /// Names this replica in lease and attempt owners (with a nonce per acquisition).
    replica: String,
    /// The last record read per login credential (sealed): what logins renew from while the
    /// store is unreachable (`offline.rs`).
    offline: quick_cache::sync::Cache<CredentialId, StoredCredential>,
    budgets: std::collections::HashMap<ProviderName, crate::store::budget::TokenBudget>,
    /// When each provider's own token was last renewed on a caller's report (not stored:
    /// limited per replica).
    own_forced: std::sync::Mutex<std::collections::HashMap<ProviderName, std::time::Instant>>,
    /// Leased renewals running in detached tasks; a shutdown closes it and waits for them.
    renewals: Arc<renewals::Renewals>,
}

impl Broker {
    pub fn new(parts: BrokerParts) -> Self {
        let BrokerParts { registry, store, feed, keyring, cache, http, scheduler, timing, chaos } = parts;
        if chaos.journal_off() {
            tracing::error!(
                "the refresh journal is DISABLED (test-only negative control): refresh tokens may be sent twice"
            );
        }
        let budgets = budget::budgets(&registry, &store);
        Self {
            registry,
            records: Records::new(store, keyring.clone(), feed.clone()),
            feed,
            keyring,
            cache,
            flights: Flights::default(),
            http,
            scheduler,
            timing,
            chaos,
            replica: format!("{:08x}", rand::random::<u32>()),
            offline: quick_cache::sync::Cache::new(1_000_000),
            budgets,
            own_forced: Default::default(),
            renewals: Default::default(),
        }
    }

    /// What keeps this replica's cache coherent with the others' writes: a task to run for
    /// as long as the broker serves (subscribed now, so no change announced after this call is
    /// missed).
    pub fn coherence(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        coherence::run(self.cache.clone(), self.feed.subscribe())
    }

    /// This replica's id (in audit events, lease owners).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The running renewals (what a draining replica waits for).
    pub fn renewals(&self) -> &renewals::Renewals {
        &self.renewals
    }

    pub fn store(&self) -> &AnyStore {
        self.records.store()
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
        let cached = self.cache.get(&key).filter(|s| s.valid_until(until));
        if let Some(served) = cached.as_ref().filter(|s| self.cache.fresh(s)) {
            metrics::cache_lookup(true);
            metrics::handed_out(&provider.name, served.expires_at);
            return Ok(served.clone());
        }
        metrics::cache_lookup(false);
        let result = match subject {
            None => self.own_cached(provider, &key, until).await,
            Some(subject) => self.credential(provider, subject, &key, until).await,
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
        self: &Arc<Self>,
        provider: &Arc<Provider>,
        subject: &Subject,
        key: &CacheKey,
        until: OffsetDateTime,
    ) -> BrokerResult<Arc<Served>> {
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        // Subscribed before the first read, so no announcement can slip between read and wait.
        let mut changes = self.feed.subscribe();
        let deadline = tokio::time::Instant::now() + self.timing.max_wait;
        // Started when another replica's lease first makes this caller wait; recorded however
        // the wait ends.
        let mut lease_wait = metrics::LeaseWait::new(&provider.name);
        loop {
            let step = {
                let _flight = self.flights.enter(key).await;
                if let Some(served) = self.cache.get(key).filter(|s| s.valid_until(until) && self.cache.fresh(s)) {
                    return Ok(served);
                }
                self.step(provider, &id, Ask::Serve { until }).await
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
                    tokio::time::Instant::now() + self.timing.lease_ttl
                }
                // Someone wrote between our read and our write: read again.
                Err(BrokerError::Conflict(_)) => tokio::time::Instant::now(),
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::RenewingElsewhere(id));
            }
            self.wait_for_change(&id, &mut changes, wake.min(deadline)).await;
        }
    }

    /// The provider instance's own credential (empty subject), in its single flight.
    async fn own_cached(
        &self,
        provider: &Provider,
        key: &CacheKey,
        until: OffsetDateTime,
    ) -> BrokerResult<Arc<Served>> {
        let _flight = self.flights.enter(key).await;
        if let Some(served) = self.cache.get(key).filter(|s| s.valid_until(until) && self.cache.fresh(s)) {
            return Ok(served);
        }
        let served = Arc::new(self.own(provider, until).await?);
        self.cache.insert(key.clone(), served.clone());
        Ok(served)
    }

    /// Obtains the instance's own headers. Client-credentials tokens are idempotent to
    /// obtain: cached here, not stored.
    async fn own(&self, provider: &Provider, until: OffsetDateTime) -> BrokerResult<Served> {
        let (authorization, renewable) = match provider.own_credential()? {
            OwnCredential::Static(headers) => (headers, false),
            OwnCredential::Obtained => {
                let started = std::time::Instant::now();
                let tokens = self.budgeted(&provider.name, provider.obtain_own_token(&self.http)).await;
                metrics::renewal(&provider.name, "client_credentials", tokens.is_ok(), started.elapsed());
                let tokens = tokens?;
                (bearer(&tokens.access_token, tokens.expires_at), true)
            }
        };
        if let Some(promised_until) = authorization.expires_at.filter(|end| *end < until) {
            return Err(BrokerError::LifetimeTooShort { promised_until });
        }
        Ok(self.served(authorization, 0, renewable, false))
    }

    /// Headers from a record's vault, as handed out.
    fn serve(&self, provider: &Provider, authorization: Authorization, version: u64, vault: &Vault) -> Served {
        let renewable = provider.renewal(vault) != Renewal::Static && provider.rejection_renews(vault);
        self.served(authorization, version, renewable, provider.usage_slides(vault))
    }

    fn served(&self, authorization: Authorization, version: u64, renewable: bool, slides: bool) -> Served {
        Served {
            fingerprint: CompactString::new(self.fingerprint(&authorization)),
            http: OnceLock::new(),
            headers: authorization.headers.into_boxed_slice(),
            expires_at: authorization.expires_at,
            version,
            cached_at: std::time::Instant::now(),
            renewable,
            slides,
        }
    }

    fn fingerprint(&self, authorization: &Authorization) -> String {
        self.keyring.fingerprint(authorization.headers.iter().map(|(_, v)| v.expose()))
    }
}

/// The monotonic instant of a wall-clock time (now, if it has passed).
fn wall_clock(at: OffsetDateTime) -> tokio::time::Instant {
    let ahead = (at - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + ahead
}

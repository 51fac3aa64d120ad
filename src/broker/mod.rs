//! The broker's use cases: serve authorization, renew sessions, manage stored credentials.
//!
//! Protocol-free: the gRPC layer parses requests into domain types and calls these methods;
//! the store, the providers and the upstream HTTP client are reached only from here.
//!
//! # Layout
//! [`Broker`] is a thin front over four parts, each a type that owns its fields, with its
//! `impl` in one file; a field shared by several parts has one owner and the others borrow it.
//! - `serve.rs`, [`Serving`](serve::Serving): the read path. Owns the header cache
//!   (`cache.rs`; kept coherent with other replicas' writes by `coherence.rs`) and the single
//!   flights (`flight.rs`); also the scheduler's wake-ups, a caller's report of a rejected
//!   header (its limits: `report.rs`) and PASS's sliding session.
//! - `renew.rs`, [`Renewer`](renew::Renewer): everything a renewal touches. Owns the records
//!   (`records.rs`: the store, keyring and change feed; the one place that seals, opens and
//!   announces), the upstream client, the [`Timing`] (`plan.rs`, with the pure decision
//!   `plan::decide`), the lease (`lease.rs`), the scheduler's handle (`scheduler.rs`), the
//!   running renewals a shutdown waits for (`renewals.rs`), the token budgets (`budget.rs`)
//!   and logins' last-known records for when the store is away (`offline.rs`). Single-use
//!   refresh tokens are rotated by `rotation/`, which states the safety invariant and its
//!   proof sketch.
//! - `own.rs`, [`OwnTokens`](own::OwnTokens): the providers' own tokens (empty subject).
//! - `admin.rs`, [`Admin`](admin::Admin): put, status, list, delete; `rewrap.rs`: re-sealing
//!   with the active key. A view over the other parts, with no state of its own.
//!
//! `chaos.rs`: test-only hooks (the `chaos` feature).

mod admin;
mod budget;
mod cache;
pub mod chaos;
mod coherence;
mod error;
mod flight;
mod lease;
mod offline;
mod own;
pub mod plan;
mod records;
mod renew;
pub mod renewals;
mod report;
mod rewrap;
pub mod rotation;
pub mod scheduler;
mod serve;

pub use admin::{Admin, CredentialView, Page};
pub use cache::{AuthCache, CacheKey, Served};
pub use error::{BrokerError, BrokerResult};
pub use plan::Timing;
pub use rewrap::{ProblemKind, RewrapCursor, RewrapProblem, RewrapReport, RewrapRequest};

use crate::crypto::Keyring;
use crate::domain::{ProviderName, Subject};
use crate::providers::http::HttpClient;
use crate::providers::{Provider, Registry};
use crate::store::{AnyStore, ChangeFeed};
use own::OwnTokens;
use records::Records;
use renew::Renewer;
use scheduler::Scheduler;
use serve::Serving;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

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

/// The front the gRPC surface, the proxy and startup call: each method hands the work to the
/// part that owns what it needs.
pub struct Broker {
    registry: Registry,
    serving: Serving,
    /// An `Arc`: a leased renewal runs in a detached task that owns what it uses.
    renewer: Arc<Renewer>,
    own: OwnTokens,
}

impl Broker {
    pub fn new(parts: BrokerParts) -> Self {
        let BrokerParts { registry, store, feed, keyring, cache, http, scheduler, timing, chaos } = parts;
        let records = Records::new(store, keyring, feed);
        let renewer = Renewer::new(&registry, records, http, timing, chaos, scheduler);
        Self { registry, serving: Serving::new(cache), renewer: Arc::new(renewer), own: OwnTokens::default() }
    }

    /// What keeps this replica's cache coherent with the others' writes: a task to run for
    /// as long as the broker serves (subscribed now, so no change announced after this call is
    /// missed).
    pub fn coherence(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        coherence::run(self.serving.cache().clone(), self.renewer.records().feed().subscribe())
    }

    /// This replica's id (in audit events, lease owners).
    pub fn replica(&self) -> &str {
        self.renewer.replica()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The running renewals (what a draining replica waits for).
    pub fn renewals(&self) -> &renewals::Renewals {
        self.renewer.running()
    }

    pub fn store(&self) -> &AnyStore {
        self.renewer.store()
    }

    /// The shared upstream client: no redirects, no automatic retries.
    pub fn http(&self) -> &HttpClient {
        self.renewer.http()
    }

    /// The provider instance's `api_base_url`, which proxied paths are joined to.
    pub fn api_base_url(&self, provider: &ProviderName) -> BrokerResult<&Url> {
        Ok(known(&self.registry, provider)?.api_base_url())
    }

    /// Whether an upstream `status` means the header was rejected (the instance's
    /// `rejected_statuses`, default 401): then the proxy renews and retries once.
    pub fn rejects(&self, provider: &ProviderName, status: u16) -> bool {
        self.registry.get(provider).is_some_and(|p| p.rejects(status))
    }

    /// Headers valid for at least `min_validity`, from the cache when it has them.
    pub async fn get_authorization(
        &self,
        provider: &ProviderName,
        subject: Option<&Subject>,
        min_validity: Duration,
    ) -> BrokerResult<Arc<Served>> {
        let provider = known(&self.registry, provider)?;
        self.serving.get_authorization((&self.renewer, &self.own), provider, subject, min_validity).await
    }

    /// A caller says the header it got was refused upstream (`report.rs`): renews once if the
    /// report is about the current header and the limits allow; returns whether it changed.
    pub async fn report_rejected(
        &self,
        provider: &ProviderName,
        subject: Option<&Subject>,
        fingerprint: &str,
    ) -> BrokerResult<bool> {
        let provider = known(&self.registry, provider)?;
        self.serving.report_rejected((&self.renewer, &self.own), provider, subject, fingerprint).await
    }

    /// PASS sliding expiry: a call sent at `used_at` with the headers fingerprinted
    /// `fingerprint` succeeded (`Serving::extend_session`). Returns when another successful
    /// call would next be worth storing, or `None` when the session used is no longer current.
    pub async fn extend_session(
        &self,
        provider: &ProviderName,
        subject: &Subject,
        fingerprint: &str,
        used_at: OffsetDateTime,
    ) -> BrokerResult<Option<OffsetDateTime>> {
        let provider = known(&self.registry, provider)?;
        self.serving.extend_session(&self.renewer, provider, subject, fingerprint, used_at).await
    }

    /// Called by the scheduler when `key`'s plan at `version` is due.
    pub async fn wake(&self, key: CacheKey, version: u64) {
        if let Some(provider) = self.registry.get(&key.0) {
            self.serving.wake(&self.renewer, provider, key, version).await;
        }
    }

    /// The administration part (put, status, list, delete, rewrap), over this broker's
    /// registry, cache and renewer.
    pub fn admin(&self) -> Admin<'_> {
        Admin { registry: &self.registry, cache: self.serving.cache(), renewer: &self.renewer }
    }

    #[cfg(test)]
    fn records(&self) -> &Records {
        self.renewer.records()
    }
}

/// The configured provider instance called `name`.
fn known<'a>(registry: &'a Registry, name: &ProviderName) -> BrokerResult<&'a Arc<Provider>> {
    registry.get(name).ok_or_else(|| BrokerError::UnknownProvider(name.clone()))
}

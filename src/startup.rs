//! Building the application from settings and running it until a shutdown signal.
//!
//! `Application::build` binds the listener (port 0 works, for tests) and wires the store,
//! keyring, cache and providers; `run_until_stopped` serves until the given future resolves,
//! lets in-flight RPCs finish, and gives up after the configured grace period; `drain.rs` holds
//! the steps before (readiness, drain delay) and after (running renewals).

mod cores;
mod drain;
mod monitoring;

use crate::broker::chaos::Chaos;
use crate::broker::scheduler::{self, Scheduler};
use crate::broker::{AuthCache, Broker, BrokerParts, Coordination};
use crate::config::{EncryptionSettings, Settings, StoreSettings};
use crate::crypto::Keyring;
use crate::grpc;
use crate::providers::Registry;
use crate::providers::http::HttpClient;
use crate::security::Gate;
use crate::security::tls::ReloadingTls;
use crate::store::{AnyStore, ChangeFeed, MemoryStore, RedisStore};
use cores::Cores;
use futures::FutureExt;
use listeners::Listener;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

mod listeners;

pub struct Application {
    listener: Listener,
    /// `[admin] listen`: the admin API apart from the main listener.
    admin: Option<Listener>,
    broker: Arc<Broker>,
    gate: Arc<Gate>,
    server: crate::config::ServerSettings,
    /// `[metrics] listen`, bound at build time (port 0 works, for tests).
    metrics_listener: Option<TcpListener>,
    /// How long running renewals may take to end after the server stopped.
    renewal_bound: Duration,
    proxy: crate::proxy::ProxySettings,
}

impl Application {
    /// Wires everything and binds `server.listen` (and `admin.listen`); does not serve yet.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tls = settings.server.tls.clone().map(ReloadingTls::new).transpose().map_err(anyhow::Error::msg)?;
        if let Some(tls) = &tls {
            tokio::spawn(tls.clone().watch());
        }
        let listener = Listener::bind(settings.server.listen, tls.clone()).await?;
        let admin = match settings.security.admin_listen {
            Some(addr) => Some(Listener::bind(addr, tls).await?),
            None => None,
        };
        let upstream = &settings.upstream;
        let (scheduler, plans) = Scheduler::new();
        let store = store(&settings.store)?;
        let feed = match &store {
            AnyStore::Memory(_) => ChangeFeed::memory(),
            AnyStore::Redis(redis) => {
                redis.check_access().await?;
                tokio::spawn(warn_about_durability(redis.clone()));
                ChangeFeed::redis(redis.clone())
            }
        };
        let coordination = coordination(&settings);
        let broker = Arc::new(Broker::new(BrokerParts {
            registry: Registry::new(settings.providers),
            store,
            feed,
            coordination,
            chaos: Chaos::from_env(),
            keyring: keyring(settings.encryption),
            cache: AuthCache::new(settings.cache.max_entries, settings.cache.ttl),
            http: HttpClient::new(upstream.connect_timeout, upstream.request_timeout),
            scheduler,
        }));
        // The scheduler holds only a weak reference: it ends when the broker is dropped.
        tokio::spawn(scheduler::run(Arc::downgrade(&broker), plans));
        let gate = gate(&settings.security, broker.replica())?;
        listeners::announce(&settings.server, &settings.security);
        let metrics_listener = match settings.telemetry.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let renewal_bound = drain::renewal_bound(settings.upstream.request_timeout);
        let (server, proxy) = (settings.server, settings.proxy);
        Ok(Self { listener, admin, broker, gate, server, proxy, metrics_listener, renewal_bound })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The admin listener's address, when `[admin] listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Listener::local_addr)
    }

    /// Where `/metrics` is served, when `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// Serves (ready once the store answered) until `shutdown` resolves; then reports
    /// NOT_SERVING, serves on for the drain delay, stops accepting, lets in-flight RPCs finish
    /// for at most the grace period, and waits for running renewals.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let readiness = grpc::Readiness::new().await;
        drain::watch_store(self.broker.store().clone(), readiness.clone()).await;
        let monitoring = monitoring::spawn(self.metrics_listener, self.broker.clone());
        let surface = grpc::Surface {
            gate: self.gate.clone(),
            reflection: self.server.reflection,
            admin: self.admin.is_none(),
            readiness: readiness.clone(),
        };
        let routes = grpc::routes_with(self.broker.clone(), self.proxy, surface).await;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
        let drain_delay = self.server.drain_delay;
        let draining = readiness.clone();
        let signal = async move {
            drain::until_stop_accepting(shutdown, draining, drain_delay).await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(());
        }
        .boxed()
        .shared();
        // Kept until every renewal has ended: a renewal a request started runs on its runtime.
        let cores = Cores::start(self.server.cores)?;
        let runtimes = cores.runtimes();
        tracing::info!(%addr, tls = self.server.tls.is_some(), cores = self.server.cores, "credbroker listening");
        let main = self.listener.serve(routes, &self.server, signal.clone(), &runtimes);
        let admin = async {
            let Some(admin) = self.admin else { return Ok(()) };
            tracing::info!(addr = %admin.local_addr(), "admin API listening");
            let routes = grpc::admin_routes(self.broker.clone(), self.gate.clone(), &readiness).await;
            admin.serve(routes, &self.server, signal, &[tokio::runtime::Handle::current()]).await
        };
        let server = futures::future::try_join(main, admin);
        let grace = self.server.shutdown_grace;
        tokio::select! {
            result = server => { result?; }
            _ = async { if stopping_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish within the grace period");
            }
        }
        drain::finish_renewals(self.broker.renewals(), self.renewal_bound).await;
        // Scraped until the very end: the drain is what operators watch.
        monitoring.inspect(|task| task.abort());
        tracing::info!("stopped");
        drop(cores);
        Ok(())
    }
}

/// The trust boundary's gate, with its housekeeping: idle rate-limit entries swept, a JWKS
/// URL kept fresh (both end with the gate).
fn gate(settings: &crate::security::SecuritySettings, replica: &str) -> anyhow::Result<Arc<Gate>> {
    let gate = Gate::new(settings, replica, grpc::status::security_code)
        .map_err(|e| anyhow::anyhow!("audit.path: cannot open the audit log: {e}"))?;
    let gate = Arc::new(gate);
    tokio::spawn(crate::security::gate::sweep(Arc::downgrade(&gate)));
    if let Some(jwks) = gate.jwks() {
        tokio::spawn(jwks.keep_fresh());
    }
    Ok(gate)
}

/// How renewals are timed and coordinated, from `[store]`, `[upstream]` and `[refresh]`.
fn coordination(settings: &Settings) -> Coordination {
    let (store, upstream, refresh) = (&settings.store, &settings.upstream, &settings.refresh);
    Coordination {
        lease_ttl: store.lease_ttl,
        reconcile_after: store.reconcile_after,
        request_timeout: upstream.request_timeout,
        ahead_ratio: upstream.refresh_ahead,
        jitter_ratio: upstream.refresh_jitter,
        clock_skew: refresh.clock_skew,
        max_wait: refresh.max_wait,
        journal_horizon: refresh.journal_horizon,
        rejected_interval: refresh.rejected_interval,
        rejected_min_age: refresh.rejected_min_age,
    }
}

fn store(settings: &StoreSettings) -> anyhow::Result<AnyStore> {
    if !settings.uses_redis() {
        tracing::info!("store: in memory (one replica only; nothing survives a restart)");
        return Ok(AnyStore::Memory(MemoryStore::new()));
    }
    let config = settings.redis();
    match &config.sentinel {
        Some(s) => tracing::info!(master = %s.master_name, sentinels = ?s.addresses, "store: redis via sentinel"),
        None => {
            tracing::info!(url = %crate::store::target::redact(&config.url), cluster = config.cluster, "store: redis")
        }
    }
    Ok(AnyStore::Redis(RedisStore::new(config)?))
}

/// Start-up check, off the start-up path: Redis may well be down right now.
async fn warn_about_durability(redis: RedisStore) {
    match redis.durability_warnings().await {
        Ok(problems) if problems.is_empty() => tracing::info!("redis durability: appendonly, fsync always, noeviction"),
        Ok(problems) => {
            for problem in problems {
                tracing::warn!(%problem, "redis could lose or evict acknowledged writes");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not check redis durability settings (unreachable?)"),
    }
}

fn keyring(settings: EncryptionSettings) -> Keyring {
    match settings {
        EncryptionSettings::Keys(keyring) => keyring,
        EncryptionSettings::Ephemeral => {
            tracing::warn!(
                "encryption: no key configured, using an ephemeral key; stored credentials die with this process"
            );
            Keyring::ephemeral()
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled: call it before binding, so that a signal arriving while the
/// server starts is never the default (fatal) one.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

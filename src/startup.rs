//! Building the application from settings and running it until a shutdown signal.
//!
//! `Application::build` binds the listener (port 0 works, for tests) and wires the store,
//! keyring, cache and providers (`wiring.rs`); `run_until_stopped` serves until the given
//! future resolves, lets in-flight RPCs finish, and gives up after the configured grace
//! period; `drain.rs` holds the steps before (readiness, drain delay) and after (running
//! renewals). Every background task runs in the application's [`Tasks`] (`tasks.rs`), which the
//! drain stops last.

mod cores;
mod drain;
mod monitoring;
mod tasks;
mod wiring;

use crate::broker::Broker;
use crate::config::Settings;
use crate::grpc;
use crate::security::Gate;
use crate::security::tls::ReloadingTls;
use cores::Cores;
use futures::FutureExt;
use listeners::Listener;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tasks::Tasks;
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
    /// Every background task, from build on; stopped last by the drain, or when dropped.
    tasks: Tasks,
}

impl Application {
    /// Wires everything and binds `server.listen` (and `admin.listen`); does not serve yet.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tasks = Tasks::new();
        let tls = settings.server.tls.clone().map(ReloadingTls::new).transpose().map_err(anyhow::Error::msg)?;
        if let Some(tls) = &tls {
            tasks.spawn("tls reload", tls.clone().watch());
        }
        let listener = Listener::bind(settings.server.listen, tls.clone()).await?;
        let admin = match settings.security.admin_listen {
            Some(addr) => Some(Listener::bind(addr, tls).await?),
            None => None,
        };
        let broker = wiring::broker(&settings, &tasks).await?;
        let gate = wiring::gate(&settings.security, broker.replica(), &tasks)?;
        listeners::announce(&settings.server, &settings.security);
        let metrics_listener = match settings.telemetry.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let renewal_bound = drain::renewal_bound(settings.upstream.request_timeout);
        let (server, proxy) = (settings.server, settings.proxy);
        Ok(Self { listener, admin, broker, gate, server, proxy, metrics_listener, renewal_bound, tasks })
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

    /// The application's background tasks: after `run_until_stopped` returns, closed and
    /// (within the drain's bound) empty.
    pub fn tasks(&self) -> tokio_util::task::TaskTracker {
        self.tasks.tracker()
    }

    /// Serves (ready once the store answered) until `shutdown` resolves; then reports
    /// NOT_SERVING, serves on for the drain delay, stops accepting, lets in-flight RPCs finish
    /// for at most the grace period, waits for running renewals, and stops every background
    /// task.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let readiness = grpc::Readiness::new().await;
        drain::watch_store(self.broker.store().clone(), readiness.clone(), &self.tasks).await;
        if let Some(monitoring) = monitoring::task(self.metrics_listener, self.broker.clone()) {
            self.tasks.spawn("metrics", monitoring);
        }
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
        let main = self.listener.serve(routes, &self.server, signal.clone(), (&runtimes, &self.tasks));
        let admin = async {
            let Some(admin) = self.admin else { return Ok(()) };
            tracing::info!(addr = %admin.local_addr(), "admin API listening");
            let routes = grpc::admin_routes(self.broker.clone(), self.gate.clone(), &readiness).await;
            admin.serve(routes, &self.server, signal, (&[tokio::runtime::Handle::current()], &self.tasks)).await
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
        // Last: the metrics are scraped until the very end (the drain is what operators watch),
        // and the audit writer writes every line queued.
        drain::stop_tasks(&self.tasks).await;
        tracing::info!("stopped");
        drop(cores);
        Ok(())
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

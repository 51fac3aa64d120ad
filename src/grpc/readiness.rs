//! Readiness as the gRPC health service reports it, per service.
//!
//! `credbroker.v1.CredentialBroker` and `credbroker.v1.CredentialAdmin` are SERVING only
//! after the store was reached once and until the replica starts draining (SIGTERM): that is
//! the readiness probe, and what a balancer's health check should ask. The empty service
//! `""` stays SERVING while the process answers at all: the liveness probe, which must not
//! depend on Redis (restarting a replica does not bring Redis back).

use super::pb::credential_admin_server::CredentialAdminServer;
use super::pb::credential_broker_server::CredentialBrokerServer;
use super::{AdminService, BrokerService};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

/// The services whose health is readiness.
const SERVICES: [&str; 2] = [
    <CredentialBrokerServer<BrokerService> as NamedService>::NAME,
    <CredentialAdminServer<AdminService> as NamedService>::NAME,
];

/// A handle to flip readiness; clones share it.
#[derive(Clone)]
pub struct Readiness {
    reporter: HealthReporter,
    inner: Arc<Inner>,
}

struct Inner {
    store_reached: AtomicBool,
    draining: AtomicBool,
    /// Serialises the reporter updates: a late "store reached" must not overwrite "draining".
    update: tokio::sync::Mutex<()>,
}

impl Readiness {
    /// NOT_SERVING for both services until [`Readiness::store_reached`]; `""` SERVING.
    pub async fn new() -> Self {
        let inner = Inner { store_reached: false.into(), draining: false.into(), update: Default::default() };
        let readiness = Self { reporter: HealthReporter::new(), inner: Arc::new(inner) };
        readiness.apply().await;
        readiness
    }

    /// The `grpc.health.v1.Health` service reporting these statuses.
    pub fn health_service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }

    /// The store answered once: ready, unless already draining.
    pub async fn store_reached(&self) {
        self.inner.store_reached.store(true, Ordering::SeqCst);
        self.apply().await;
    }

    /// SIGTERM: NOT_SERVING from now on.
    pub async fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.apply().await;
    }

    pub fn is_ready(&self) -> bool {
        self.inner.store_reached.load(Ordering::SeqCst) && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Publishes the status the flags give now (under the lock, so the last writer publishes
    /// the latest flags).
    async fn apply(&self) {
        let _update = self.inner.update.lock().await;
        let status = if self.is_ready() { ServingStatus::Serving } else { ServingStatus::NotServing };
        let metrics = crate::telemetry::metrics::instruments();
        metrics.ready.record(u64::from(self.is_ready()), &[]);
        metrics.draining.record(u64::from(self.is_draining()), &[]);
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

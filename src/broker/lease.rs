//! The fleet-wide lease around a renewal, and waiting for another replica's result.
//!
//! One replica takes the credential's lease (`SET NX PX` with a random owner nonce) and does
//! the upstream work; a watchdog task renews the lease every third of its TTL while the work
//! runs; the lease is released by compare-and-delete. Replicas that do not get it wait for the
//! credential's change announcement (bounded by the lease TTL), then re-read — no polling.
//!
//! The lease is only an efficiency device: a holder paused past its TTL still believes it
//! holds it. Correctness comes from the refresh journal (`rotation`).

use crate::domain::CredentialId;
use crate::store::{AnyStore, Change, CredentialStore};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Held while this replica renews a credential.
pub struct Lease {
    id: CredentialId,
    owner: String,
    store: AnyStore,
    watchdog: JoinHandle<()>,
}

impl Lease {
    /// A lease just acquired by `owner`: kept alive by its watchdog until released.
    pub fn held(store: AnyStore, id: CredentialId, owner: String, ttl: std::time::Duration) -> Self {
        let watchdog = watchdog(store.clone(), id.clone(), owner.clone(), ttl);
        Self { id, owner, store, watchdog }
    }

    /// Releases the lease (only if still ours) and stops its watchdog.
    pub async fn release(self) {
        self.watchdog.abort();
        if let Err(e) = self.store.release_lease(&self.id, &self.owner).await {
            tracing::debug!(credential = %self.id, error = %e, "lease release failed; it expires by itself");
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// Renews the lease every third of its TTL until aborted or the lease is found taken: a
/// holder that is alive keeps its lease however long the upstream takes.
fn watchdog(store: AnyStore, id: CredentialId, owner: String, ttl: std::time::Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            match store.renew_lease(&id, &owner, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(credential = %id, "lost the lease while renewing (paused?); the journal still guards the refresh");
                    return;
                }
                Err(e) => tracing::warn!(credential = %id, error = %e, "could not renew the lease"),
            }
        }
    })
}

/// Waits until `id` changes (another replica finished), changes may have been missed, or
/// `until` — whichever comes first.
pub async fn wait_for_change(
    id: &CredentialId,
    changes: &mut broadcast::Receiver<Change>,
    until: tokio::time::Instant,
) {
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            change = changes.recv() => match change {
                Ok(Change::Changed { id: changed, trace, .. }) if &changed == id => {
                    // The caller was served by that write (maybe another replica's
                    // renewal, in another trace): link this span to the writer's.
                    if let Some(writer) = trace {
                        tracing::Span::current().add_link(writer);
                    }
                    return;
                }
                Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                Ok(Change::Changed { .. }) => {}
                Err(broadcast::error::RecvError::Closed) => return deadline.await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ProviderName, Subject};
    use crate::store::MemoryStore;
    use std::time::{Duration, Instant};

    /// Fails if the watchdog stops renewing: for five TTLs nobody else can take a lease whose
    /// holder is alive; once the watchdog is stopped, the lease lapses (the same check can fail).
    #[tokio::test]
    async fn the_watchdog_keeps_a_live_holders_lease_and_only_it_does() {
        let store = AnyStore::Memory(MemoryStore::new());
        let id = CredentialId::new(
            ProviderName::parse("provider", "passolution").unwrap(),
            Subject::parse("subject", "watched").unwrap(),
        );
        let ttl = Duration::from_millis(1500);
        assert!(store.acquire_lease(&id, "holder", ttl).await.unwrap());
        let dog = watchdog(store.clone(), id.clone(), "holder".into(), ttl);
        let observed = Instant::now();
        while observed.elapsed() < ttl * 5 {
            assert!(!store.acquire_lease(&id, "intruder", ttl).await.unwrap(), "the live holder's lease lapsed");
            tokio::time::sleep(ttl / 10).await;
        }
        dog.abort();
        let stopped = Instant::now();
        while !store.acquire_lease(&id, "intruder", ttl).await.unwrap() {
            assert!(stopped.elapsed() < ttl * 20, "a lease nobody renews must lapse");
            tokio::time::sleep(ttl / 10).await;
        }
    }
}

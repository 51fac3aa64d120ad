//! The fleet-wide lease around a renewal, and waiting for another replica's result.
//!
//! One replica takes the credential's lease (`SET NX PX` with a random owner nonce) and does
//! the upstream work; a watchdog task renews the lease every third of its TTL while the work
//! runs; the lease is released by compare-and-delete. Replicas that do not get it wait for the
//! credential's change announcement (bounded by the lease TTL), then re-read — no polling.
//!
//! The lease is only an efficiency device: a holder paused past its TTL still believes it
//! holds it. Correctness comes from the refresh journal (`rotation`).

use super::Broker;
use crate::domain::CredentialId;
use crate::store::{AnyStore, Change, CredentialStore, StoreResult};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Held while this replica renews a credential.
pub struct Lease {
    id: CredentialId,
    owner: String,
    store: AnyStore,
    watchdog: JoinHandle<()>,
}

impl Lease {
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

impl Broker {
    /// Tries to take the credential's lease; `None` when another replica holds it.
    pub(super) async fn try_lease(&self, id: &CredentialId) -> StoreResult<Option<Lease>> {
        let owner = format!("{}-{:016x}", self.replica, rand::random::<u64>());
        let ttl = self.coordination.lease_ttl;
        if !self.store().acquire_lease(id, &owner, ttl).await? {
            return Ok(None);
        }
        self.chaos.point("after_lease", id).await;
        let (store, lease_id, lease_owner) = (self.store().clone(), id.clone(), owner.clone());
        let watchdog = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.renew_lease(&lease_id, &lease_owner, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(credential = %lease_id, "lost the lease while renewing (paused?); the journal still guards the refresh");
                        return;
                    }
                    Err(e) => tracing::warn!(credential = %lease_id, error = %e, "could not renew the lease"),
                }
            }
        });
        Ok(Some(Lease { id: id.clone(), owner, store: self.store().clone(), watchdog }))
    }

    /// Waits until `id` changes (another replica finished), changes may have been missed, or
    /// `until` — whichever comes first.
    pub(super) async fn wait_for_change(
        &self,
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
                    Ok(Change::Changed { id: changed, .. }) if &changed == id => return,
                    Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Ok(Change::Changed { .. }) => {}
                    Err(broadcast::error::RecvError::Closed) => return deadline.await,
                },
            }
        }
    }
}

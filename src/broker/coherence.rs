//! Keeps this replica's header cache coherent with the others: when a credential changes
//! anywhere, headers cached from an older version are dropped at once (a revoked Passolution
//! access token must not keep being handed out here). After a gap in the feed, everything is.

use super::cache::AuthCache;
use crate::store::Change;
use tokio::sync::broadcast;

pub async fn run(cache: AuthCache, mut changes: broadcast::Receiver<Change>) {
    loop {
        match changes.recv().await {
            Ok(Change::Changed { id, version, .. }) => {
                let key = (id.provider, Some(id.subject));
                if cache.get(&key).is_some_and(|served| served.version < version) {
                    cache.invalidate(&key);
                }
            }
            Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => cache.invalidate_all(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

//! Leases: one holder at a time; renew and release only by the holder; expiry frees it.

use super::id;
use credbroker::store::CredentialStore;
use std::time::Duration;

/// The lease contract on `store`.
pub(super) async fn leases(store: impl CredentialStore) {
    let l = id("passolution", "leased");
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_lease(&l, "a", ttl).await.unwrap());
    assert!(!store.acquire_lease(&l, "b", ttl).await.unwrap(), "held by a");
    assert!(!store.renew_lease(&l, "b", ttl).await.unwrap(), "only the holder renews");
    assert!(store.renew_lease(&l, "a", ttl).await.unwrap());
    store.release_lease(&l, "b").await.unwrap(); // not b's: a plain DEL would free it
    assert!(!store.acquire_lease(&l, "b", ttl).await.unwrap(), "still held by a");
    store.release_lease(&l, "a").await.unwrap();
    assert!(store.acquire_lease(&l, "b", ttl).await.unwrap(), "released");
    // The TTL passing is what is tested, not a condition to wait for: no read-only look at a
    // lease exists, and renewing or acquiring to see would change it.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(!store.renew_lease(&l, "b", ttl).await.unwrap(), "an expired lease cannot be renewed");
    assert!(store.acquire_lease(&l, "c", ttl).await.unwrap(), "expired");
}

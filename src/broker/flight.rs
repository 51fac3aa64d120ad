//! In-process single flight: at most one task per credential does the slow work (a store
//! read, an upstream token call); every other caller for that credential waits for it and
//! then finds the result in the cache.
//!
//! A map from credential to a tokio `Mutex<()>`. The map itself sits behind a std `Mutex`:
//! it is held only to look up or insert an entry, never across an `.await`, so a blocking
//! mutex is cheaper and cannot deadlock the runtime. The per-credential lock is tokio's,
//! because it *is* held across the upstream call.
//!
//! Entries are removed when the last interested task lets go, so the map holds only
//! credentials that have work in flight (not every credential ever seen).

use super::cache::CacheKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

type Slot = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub struct Flights {
    slots: Arc<Mutex<HashMap<CacheKey, Slot>>>,
}

/// Held while doing the work for one credential; dropping it lets the next caller in.
pub struct FlightGuard {
    key: CacheKey,
    slot: Slot,
    slots: Arc<Mutex<HashMap<CacheKey, Slot>>>,
    // An `Option` so `Drop` can release the lock *before* counting references.
    guard: Option<OwnedMutexGuard<()>>,
}

impl Flights {
    /// Waits for this credential's turn.
    pub async fn enter(&self, key: &CacheKey) -> FlightGuard {
        let slot = {
            let mut slots = self.slots.lock().expect("flight map poisoned");
            slots.entry(key.clone()).or_default().clone()
        };
        let guard = slot.clone().lock_owned().await;
        FlightGuard { key: key.clone(), slot, slots: self.slots.clone(), guard: Some(guard) }
    }

    /// Credentials with work in flight or waiting.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.slots.lock().expect("flight map poisoned").len()
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.slots.lock().expect("flight map poisoned");
        // Two references: the map's and ours. Anyone else waiting holds a third (they cloned
        // the slot under this same map lock), so the entry stays for them.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProviderName;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_at_a_time_per_key_and_the_map_empties() {
        let flights = Arc::new(Flights::default());
        let key: CacheKey = (ProviderName::parse("p", "x").unwrap(), None);
        let (inside, max_inside) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (flights, key, inside, max_inside) =
                    (flights.clone(), key.clone(), inside.clone(), max_inside.clone());
                tokio::spawn(async move {
                    let _guard = flights.enter(&key).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max_inside.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }
}

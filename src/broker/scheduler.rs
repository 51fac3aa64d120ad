//! The background task that wakes credentials when they next need attention: at the planned
//! renewal of their token (fixed when it was obtained, `plan::Timing::session`), or when
//! an unknown refresh outcome may be probed — so callers almost never wait on an upstream.
//!
//! The broker tells the scheduler about every record it reads or writes; the scheduler keeps
//! one due time per credential (a newer plan replaces the older) and, when it is due, asks the
//! broker to act (`Broker::wake`) — through the same single flight and lease as callers, and
//! only if the record is still the version the plan was made for. Every replica plans the same
//! time (it is stored with the token); the first to take the lease renews, the others find the
//! record changed.

use super::Broker;
use super::cache::CacheKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Wake `key` at `at` if its record is still at `version`.
#[derive(Debug)]
pub struct Plan {
    pub key: CacheKey,
    pub version: u64,
    pub at: Instant,
}

/// The broker's handle to the scheduler task.
#[derive(Clone)]
pub struct Scheduler {
    plans: mpsc::UnboundedSender<Plan>,
}

impl Scheduler {
    /// A handle and the receiving end that `run` consumes.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Plan>) {
        let (plans, rx) = mpsc::unbounded_channel();
        (Self { plans }, rx)
    }

    /// Plans a wake-up at wall-clock time `at` (at once if it has passed).
    pub fn plan(&self, key: CacheKey, at: OffsetDateTime, version: u64) {
        let delay: Duration = (at - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
        // A closed channel means the scheduler is gone (shutdown): nothing to plan.
        let _ = self.plans.send(Plan { key, version, at: Instant::now() + delay });
    }
}

/// The scheduler task (startup runs it): until the broker is dropped or the drain stops it.
pub async fn run(broker: Weak<Broker>, mut plans: mpsc::UnboundedReceiver<Plan>) {
    // Due times in order (seq breaks ties), and each credential's current entry.
    let mut due: BTreeMap<(Instant, u64), (CacheKey, u64)> = BTreeMap::new();
    let mut current: HashMap<CacheKey, (Instant, u64)> = HashMap::new();
    let mut seq = 0u64;
    loop {
        let next = due.keys().next().map(|(at, _)| *at);
        tokio::select! {
            plan = plans.recv() => {
                let Some(plan) = plan else { return };
                seq += 1;
                if let Some(old) = current.insert(plan.key.clone(), (plan.at, seq)) {
                    due.remove(&old);
                }
                due.insert((plan.at, seq), (plan.key, plan.version));
            }
            _ = sleep_until(next) => {
                let Some((_, (key, version))) = due.pop_first() else { continue };
                current.remove(&key);
                let Some(broker) = broker.upgrade() else { return };
                tokio::spawn(async move { broker.wake(key, version).await });
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

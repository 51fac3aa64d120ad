//! Refresh ahead: a background task that renews sessions at ~75 % of their lifetime
//! (jittered, clamped), so callers almost never wait on an upstream.
//!
//! The broker tells the scheduler about every session it serves or obtains; the scheduler
//! keeps one due time per credential (a newer session replaces the older plan) and, when it
//! is due, asks the broker to renew — through the same single flight as callers, and only if
//! the session is still the one that was planned for (someone else may have renewed it).

use super::Broker;
use super::cache::CacheKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When to renew, as a share of the session's lifetime.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    pub ahead_ratio: f64,
    /// ± this share of the lifetime, so sessions obtained together do not renew together.
    pub jitter_ratio: f64,
    /// Never plan sooner than this from now.
    pub min_delay: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self { ahead_ratio: 0.75, jitter_ratio: 0.05, min_delay: Duration::from_millis(500) }
    }
}

impl RefreshPolicy {
    /// How long from now to renew a session obtained at `obtained` that expires at `expires`.
    pub fn delay(&self, obtained: OffsetDateTime, expires: OffsetDateTime, now: OffsetDateTime) -> Duration {
        let lifetime = (expires - obtained).as_seconds_f64().max(0.0);
        let jitter = (rand::random::<f64>() * 2.0 - 1.0) * self.jitter_ratio * lifetime;
        let due = obtained + time::Duration::seconds_f64(lifetime * self.ahead_ratio + jitter);
        let delay = (due - now).as_seconds_f64().max(0.0);
        Duration::from_secs_f64(delay).max(self.min_delay)
    }
}

/// A renewal plan: renew `key` at `at` if its session still expires at `expires_at`.
#[derive(Debug)]
pub struct Plan {
    pub key: CacheKey,
    pub expires_at: OffsetDateTime,
    pub at: Instant,
}

/// The broker's handle to the scheduler task.
#[derive(Clone)]
pub struct Scheduler {
    plans: mpsc::UnboundedSender<Plan>,
    policy: RefreshPolicy,
}

impl Scheduler {
    /// A handle and the receiving end that `run` consumes.
    pub fn new(policy: RefreshPolicy) -> (Self, mpsc::UnboundedReceiver<Plan>) {
        let (plans, rx) = mpsc::unbounded_channel();
        (Self { plans, policy }, rx)
    }

    /// Plans the renewal of a session.
    pub fn plan(&self, key: CacheKey, obtained: OffsetDateTime, expires_at: OffsetDateTime) {
        let delay = self.policy.delay(obtained, expires_at, OffsetDateTime::now_utc());
        // A closed channel means the scheduler is gone (shutdown): nothing to plan.
        let _ = self.plans.send(Plan { key, expires_at, at: Instant::now() + delay });
    }
}

/// The scheduler task: runs until the broker is dropped.
pub async fn run(broker: Weak<Broker>, mut plans: mpsc::UnboundedReceiver<Plan>) {
    // Due times in order (seq breaks ties), and each credential's current entry.
    let mut due: BTreeMap<(Instant, u64), (CacheKey, OffsetDateTime)> = BTreeMap::new();
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
                due.insert((plan.at, seq), (plan.key, plan.expires_at));
            }
            _ = sleep_until(next) => {
                let Some((_, (key, expires_at))) = due.pop_first() else { continue };
                current.remove(&key);
                let Some(broker) = broker.upgrade() else { return };
                tokio::spawn(async move { broker.refresh_ahead(key, expires_at).await });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_three_quarters_of_the_lifetime_within_the_jitter() {
        let policy = RefreshPolicy::default();
        let obtained = OffsetDateTime::now_utc();
        for _ in 0..100 {
            let delay = policy.delay(obtained, obtained + time::Duration::minutes(5), obtained).as_secs_f64();
            assert!((210.0..=240.0).contains(&delay), "{delay}"); // 225 s ± 15 s
        }
        let late =
            policy.delay(obtained, obtained + time::Duration::seconds(10), obtained + time::Duration::seconds(20));
        assert_eq!(late, policy.min_delay, "an overdue renewal is clamped, not negative");
    }
}

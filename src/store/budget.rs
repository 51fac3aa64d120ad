//! The token budget: how fast the whole fleet may call one provider's token endpoint.
//! Passolution allows 300 token requests a minute for all replicas together; the broker keeps
//! the fleet below a configured budget (default 240) and honours `Retry-After`.
//!
//! # Algorithm: GCRA
//! One number per provider, the *theoretical arrival time* (TAT): when the budget would be
//! fully rested. A request may go when `TAT - tolerance <= now`; it then moves the TAT one
//! interval (`60 s / per_minute`) later, starting from `max(TAT, now)` so idle time does not
//! bank up. `tolerance = (BURST - 1) × interval` lets [`BURST`] requests go back to back; after
//! that they are spaced one interval apart. A burst of expiring credentials is queued, not
//! dropped: callers wait for their turn, up to their own `max_wait`.
//!
//! A refused request changes nothing: the TAT moves only when a slot is granted, so a caller
//! who gives up (or whose future is dropped mid-wait) never holds a slot. Waiters sleep for
//! the wait the budget names (plus jitter, so waiters on different replicas do not ask at the
//! same instant) and ask again; at most one ask per waiter per interval, never a tight loop.
//!
//! A `Retry-After` from the provider moves the TAT to `now + retry_after + tolerance`: nobody
//! goes before `now + retry_after`, and then requests resume one interval apart, without the
//! burst a separate "not before" flag would let loose on a provider that just said 429.
//!
//! # Backends
//! - Memory: the TAT in a std `Mutex`, for one replica.
//! - Redis: the same arithmetic in one Lua script per operation, on the key
//!   `<prefix>:{budget:<provider>}` (a string: the TAT in microseconds of Redis time, expiring
//!   when it no longer matters). Times come from Redis `TIME`, never from a replica's clock:
//!   replicas' clocks differ, and a fast one would take slots early. The key ends in `}` while
//!   every credential key ends in a suffix, so no provider name can collide with one.

use super::{RedisStore, StoreError};
use crate::domain::ProviderName;
use rand::Rng;
use redis::Script;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How many token requests may go back to back before spacing applies. Large enough that a
/// handful of credentials expiring together do not wait on each other; small enough that
/// any 60 s window holds at most `per_minute + BURST - 1` requests (243 for the default 240,
/// well under Passolution's 300) and that no short window sees a spike.
pub const BURST: u32 = 4;

/// A `Retry-After` longer than this is capped, so a misread header cannot stop a provider's
/// refreshes for hours.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(3600);

/// The most random delay added to a wait.
const MAX_JITTER: Duration = Duration::from_millis(50);

// ARGV: interval, tolerance (µs). Returns 0 (a slot was taken now) or the milliseconds until
// one may be free; a refusal writes nothing. `%d`, because Lua's default number formatting
// would round a 16-digit timestamp. The key expires when the TAT passes: an absent key and
// a past TAT mean the same.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
          local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or 0, now)
          local earliest = tat - tonumber(ARGV[2])
          if earliest > now then return math.ceil((earliest - now) / 1000) end
          tat = tat + tonumber(ARGV[1])
          redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
          return 0",
    )
});

// ARGV: retry-after, tolerance (µs). Moves the TAT later, never earlier.
static BACK_OFF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
          local held = now + tonumber(ARGV[1]) + tonumber(ARGV[2])
          if held > (tonumber(redis.call('GET', KEYS[1])) or 0) then
            redis.call('SET', KEYS[1], string.format('%d', held), 'PX', string.format('%d', math.ceil((held - now) / 1000)))
          end
          return 0",
    )
});

/// Where the budget is kept: one replica (memory) or the whole fleet (Redis).
#[allow(clippy::large_enum_variant, reason = "built once per provider, at start-up")]
pub enum BudgetBackend {
    Memory,
    Redis(RedisStore),
}

/// Why a token request may not go.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The next slot is further away than the caller would wait; nothing was reserved.
    #[error("token budget exhausted: the next slot is {0:?} away")]
    WouldWait(Duration),
    /// The shared budget cannot be read: send nothing (fail closed).
    #[error("token budget unavailable")]
    Unavailable(#[source] StoreError),
}

/// The token-endpoint budget of one provider instance.
pub struct TokenBudget {
    provider: ProviderName,
    gcra: Gcra,
    state: State,
}

#[allow(clippy::large_enum_variant, reason = "one per provider, never moved on a hot path")]
enum State {
    Local(Local),
    Shared(Shared),
}

impl TokenBudget {
    /// A budget of `per_minute` token requests (at least 1) for `provider`. With
    /// [`BudgetBackend::Redis`], every replica's budget for the same provider and key prefix
    /// is one budget.
    pub fn new(backend: BudgetBackend, provider: &ProviderName, per_minute: u32) -> Self {
        let state = match backend {
            BudgetBackend::Memory => State::Local(Local::new()),
            BudgetBackend::Redis(store) => {
                let key = format!("{}:{{budget:{provider}}}", store.key_prefix());
                State::Shared(Shared { store, key })
            }
        };
        Self { provider: provider.clone(), gcra: Gcra::new(per_minute), state }
    }

    /// Waits until the fleet may send one more token request, at most `max_wait`. Requests are
    /// spread evenly (GCRA: one per 60/per_minute s, a small burst allowance), so a burst of
    /// expiring credentials is queued, not dropped. Err when the wait would exceed max_wait;
    /// `WouldWait` then says how far away the next slot was.
    #[tracing::instrument(name = "budget.acquire", skip_all, fields(provider = %self.provider), err(level = "warn"))]
    pub async fn acquire(&self, max_wait: Duration) -> Result<(), BudgetError> {
        let started = Instant::now();
        let mut waited = false;
        loop {
            let wait = self.try_take().await?;
            if wait.is_zero() {
                if waited {
                    self.record_wait(started.elapsed());
                }
                return Ok(());
            }
            waited = true;
            let left = max_wait.saturating_sub(started.elapsed());
            if wait > left {
                return Err(BudgetError::WouldWait(wait));
            }
            tokio::time::sleep((wait + self.jitter()).min(left)).await;
        }
    }

    fn record_wait(&self, took: Duration) {
        let metrics = crate::telemetry::metrics::instruments();
        let provider = [crate::telemetry::metrics::provider(&self.provider)];
        metrics.budget_waits.add(1, &provider);
        metrics.budget_wait_duration.record(took.as_secs_f64(), &provider);
    }

    /// The provider said 429 with Retry-After: nobody in the fleet sends before then (capped
    /// at [`MAX_BACK_OFF`]). Best effort: if Redis cannot be reached, the next `acquire` fails
    /// closed anyway.
    #[tracing::instrument(name = "budget.back_off", skip_all, fields(provider = %self.provider, ?retry_after))]
    pub async fn back_off(&self, retry_after: Duration) {
        let retry_after = micros(retry_after.min(MAX_BACK_OFF));
        match &self.state {
            State::Local(local) => local.hold(self.gcra, retry_after),
            State::Shared(shared) => {
                if let Err(e) = shared.hold(self.gcra, retry_after).await {
                    tracing::warn!(error = ?e, "could not record Retry-After for the fleet");
                }
            }
        }
    }

    /// Takes a slot if one is free now (returns zero); otherwise how long until one may be.
    async fn try_take(&self) -> Result<Duration, BudgetError> {
        match &self.state {
            State::Local(local) => Ok(local.take(self.gcra)),
            State::Shared(shared) => shared.take(self.gcra).await,
        }
    }

    /// Up to a quarter interval (at most [`MAX_JITTER`]), so waiters on different replicas do
    /// not all ask at the same instant; small enough that a freed slot is taken long before
    /// the burst allowance could go unused.
    fn jitter(&self) -> Duration {
        let cap = (self.gcra.interval / 4).min(micros(MAX_JITTER));
        Duration::from_micros(rand::rng().random_range(0..=cap))
    }
}

/// The in-process budget. A std `Mutex`, not tokio's: the critical section is a few integer
/// operations with no `.await`, so it is never held across a suspension point.
struct Local {
    origin: Instant,
    /// The TAT, in µs since `origin`.
    tat: Mutex<u64>,
}

impl Local {
    fn new() -> Self {
        Self { origin: Instant::now(), tat: Mutex::new(0) }
    }

    fn take(&self, gcra: Gcra) -> Duration {
        let now = micros(self.origin.elapsed());
        // A panic elsewhere cannot leave a single integer half-written: ignore poisoning.
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        match gcra.take(*tat, now) {
            Ok(next) => {
                *tat = next;
                Duration::ZERO
            }
            Err(wait) => Duration::from_micros(wait),
        }
    }

    fn hold(&self, gcra: Gcra, retry_after: u64) {
        let now = micros(self.origin.elapsed());
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        *tat = gcra.hold(*tat, now, retry_after);
    }
}

/// The fleet's budget, in Redis.
struct Shared {
    store: RedisStore,
    key: String,
}

impl Shared {
    async fn take(&self, gcra: Gcra) -> Result<Duration, BudgetError> {
        let mut conn = self.store.connection().await.map_err(BudgetError::Unavailable)?;
        let millis: u64 = ACQUIRE
            .key(&self.key)
            .arg(gcra.interval)
            .arg(gcra.tolerance)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Duration::from_millis(millis))
    }

    async fn hold(&self, gcra: Gcra, retry_after: u64) -> Result<(), BudgetError> {
        let mut conn = self.store.connection().await.map_err(BudgetError::Unavailable)?;
        BACK_OFF.key(&self.key).arg(retry_after).arg(gcra.tolerance).invoke_async(&mut conn).await.map_err(unavailable)
    }
}

/// GCRA arithmetic in microseconds; the Lua scripts above are the same, line for line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gcra {
    /// Between two requests at the steady rate: 60 s / per_minute.
    interval: u64,
    /// How far ahead of `now` the TAT may run: `(BURST - 1) × interval`.
    tolerance: u64,
}

impl Gcra {
    fn new(per_minute: u32) -> Self {
        // Rounded up: rounding down would let a minute hold one request too many.
        let interval = 60_000_000_u64.div_ceil(u64::from(per_minute.max(1)));
        Self { interval, tolerance: interval * u64::from(BURST - 1) }
    }

    /// `Ok(new TAT)`: go now. `Err(µs)`: wait that long and ask again; the TAT stays as it
    /// was, so nothing is reserved.
    fn take(self, tat: u64, now: u64) -> Result<u64, u64> {
        let tat = tat.max(now);
        match tat.saturating_sub(self.tolerance).checked_sub(now) {
            Some(wait) if wait > 0 => Err(wait),
            _ => Ok(tat + self.interval),
        }
    }

    /// The TAT after a `Retry-After`: the first slot opens `retry_after` from now, with no
    /// burst allowance left. Never earlier than it was.
    fn hold(self, tat: u64, now: u64, retry_after: u64) -> u64 {
        tat.max(now + retry_after + self.tolerance)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn unavailable(e: redis::RedisError) -> BudgetError {
    BudgetError::Unavailable(StoreError::Unavailable(Box::new(e)))
}

#[cfg(test)]
mod tests;

//! Waiting on a condition, never on the clock: [`eventually`] polls a probe until it reports
//! that the condition holds, and fails with what it last saw when the deadline passes. The
//! deadlines are generous (the machine is shared and loaded); a test that is right ends as
//! soon as the condition holds, so a long deadline costs nothing.
//!
//! A probe returns a [`Condition`]: `bool`, `Option<T>` (`Some` holds) or `Result<T, E>` (`Ok`
//! holds; `Err` is the observation reported on failure, so make it say what was seen).

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls start quickly and slow down to this, so a long wait does not load the machine.
const SLOWEST_POLL: Duration = Duration::from_millis(100);

/// What a probe found: the condition holds (with a value) or not yet (with an observation).
pub trait Condition {
    type Value;
    type Observed: Debug;
    fn check(self) -> Result<Self::Value, Self::Observed>;
}

impl Condition for bool {
    type Value = ();
    type Observed = bool;
    fn check(self) -> Result<(), bool> {
        if self { Ok(()) } else { Err(false) }
    }
}

impl<T> Condition for Option<T> {
    type Value = T;
    type Observed = &'static str;
    fn check(self) -> Result<T, &'static str> {
        self.ok_or("None")
    }
}

impl<T, E: Debug> Condition for Result<T, E> {
    type Value = T;
    type Observed = E;
    fn check(self) -> Result<T, E> {
        self
    }
}

/// Polls `probe` until its condition holds and returns the value it found; panics naming
/// `what` and the last observation once `within` has passed.
pub async fn eventually<C: Condition, F: Future<Output = C>>(
    what: &str,
    within: Duration,
    probe: impl FnMut() -> F,
) -> C::Value {
    match poll(within, probe).await {
        Ok(value) => value,
        Err(last) => panic!("not within {within:?}: {what}; last seen: {last:?}"),
    }
}

/// [`eventually`] for a caller that decides itself what a timeout means: the value once the
/// condition holds, or the last observation when `within` has passed.
pub async fn poll<C: Condition, F: Future<Output = C>>(
    within: Duration,
    mut probe: impl FnMut() -> F,
) -> Result<C::Value, C::Observed> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        let last = match probe().await.check() {
            Ok(value) => return Ok(value),
            Err(observed) => observed,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(SLOWEST_POLL);
    }
}

/// `future`'s output, or a panic naming `what` if it takes longer than `patience`: for a
/// step that must end by itself (a deadline the broker enforces), not for a condition.
pub async fn within<T>(what: &str, patience: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(patience, future).await.unwrap_or_else(|_| panic!("{what} did not end within {patience:?}"))
}

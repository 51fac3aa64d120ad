//! A global cap on proxied calls in flight and on the bytes they hold in memory.
//!
//! A call takes a slot before any of its request is read (`grpc::proxy_admission` admits it
//! from the request's headers) and keeps it until its response has gone to the connection.
//! Bytes are reserved as a call buffers them — a unary request body as its frames arrive, a
//! unary response body as it is read, the replay copy of a streamed upload — and all come
//! back when the call ends. A spent budget refuses at once with `RESOURCE_EXHAUSTED` naming
//! the limit: waiting in a queue would be unbounded buffering of its own.
//!
//! What is not reserved is small and bounded per call: a streamed call holds at most a few
//! chunks in transit, so the call cap bounds it.
//!
//! Both budgets are tokio semaphores, used only with `try_acquire`: no task ever waits on
//! them. The bytes a call holds are merged into one permit behind a std `Mutex`, locked for
//! the merge only.

use super::ProxyError;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The two budgets, shared by every proxied call.
#[derive(Debug)]
pub struct InFlight {
    calls: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_calls: usize,
    max_bytes: u64,
}

/// One admitted call: its slot, and the bytes it holds. Both are given back on drop.
#[derive(Debug)]
pub struct Admission {
    _slot: OwnedSemaphorePermit,
    bytes: Arc<Semaphore>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
    max_bytes: u64,
}

impl InFlight {
    /// `max_bytes` is clamped to what a semaphore can count (far beyond any real memory).
    pub fn new(max_calls: usize, max_bytes: u64) -> Arc<Self> {
        let max_calls = max_calls.min(Semaphore::MAX_PERMITS);
        let bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            calls: Arc::new(Semaphore::new(max_calls)),
            bytes: Arc::new(Semaphore::new(bytes)),
            max_calls,
            max_bytes,
        })
    }

    /// A slot for one call, or `TooManyCalls`.
    pub fn admit(&self) -> Result<Arc<Admission>, ProxyError> {
        let slot = self.calls.clone().try_acquire_owned().map_err(|_| ProxyError::TooManyCalls(self.max_calls))?;
        Ok(Arc::new(Admission {
            _slot: slot,
            bytes: self.bytes.clone(),
            held: Mutex::new(None),
            max_bytes: self.max_bytes,
        }))
    }

    /// Calls in flight now (for tests and diagnostics).
    pub fn calls(&self) -> usize {
        self.max_calls - self.calls.available_permits()
    }
}

impl Admission {
    /// Reserves `bytes` more for this call until it ends, or `TooManyBytes`.
    pub fn hold(&self, bytes: usize) -> Result<(), ProxyError> {
        if bytes == 0 {
            return Ok(());
        }
        let exhausted = || ProxyError::TooManyBytes(self.max_bytes);
        let count = u32::try_from(bytes).map_err(|_| exhausted())?;
        let permit = self.bytes.clone().try_acquire_many_owned(count).map_err(|_| exhausted())?;
        let mut held = self.held.lock().expect("admission bytes poisoned");
        match held.as_mut() {
            Some(all) => all.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_bytes_come_back_when_a_call_ends() {
        let in_flight = InFlight::new(2, 100);
        let first = in_flight.admit().unwrap();
        let second = in_flight.admit().unwrap();
        assert!(matches!(in_flight.admit(), Err(ProxyError::TooManyCalls(2))));
        assert_eq!(in_flight.calls(), 2);
        first.hold(60).unwrap();
        second.hold(40).unwrap();
        assert!(matches!(second.hold(1), Err(ProxyError::TooManyBytes(100))));
        drop(first);
        assert_eq!(in_flight.calls(), 1);
        second.hold(60).unwrap();
        let third = in_flight.admit().unwrap();
        assert!(matches!(third.hold(1), Err(ProxyError::TooManyBytes(100))));
        drop((second, third));
        assert_eq!(in_flight.calls(), 0);
        in_flight.admit().unwrap().hold(100).unwrap();
    }
}

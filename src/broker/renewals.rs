//! The renewals running in this process, and the gate that stops new ones when it drains.
//!
//! Every leased renewal (a caller's, the scheduler's, a proxied 401's) runs in a detached
//! task holding a [`Running`] permit. On shutdown the gate closes — no renewal starts after
//! that — and the process waits until the count is zero: a Passolution refresh that was
//! reserved or sent is committed (or reopened) before the process exits, instead of being
//! cut between send and commit and left INDETERMINATE.
//!
//! The count and the gate sit in one `watch` value, changed under its lock: a permit is
//! either taken before the gate closed (and is waited for) or refused, never in between.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default)]
struct State {
    running: usize,
    closed: bool,
}

/// Shared by the broker and the shutdown sequence.
#[derive(Debug)]
pub struct Renewals {
    state: watch::Sender<State>,
}

/// Held by a running renewal; dropping it counts the renewal as finished.
#[derive(Debug)]
pub struct Running(Arc<Renewals>);

impl Default for Renewals {
    fn default() -> Self {
        let renewals = Self { state: watch::Sender::new(State::default()) };
        renewals.publish();
        renewals
    }
}

impl Renewals {
    /// A permit for one renewal, or `None` once the gate is closed (draining).
    pub fn start(self: &Arc<Self>) -> Option<Running> {
        let mut admitted = false;
        self.state.send_if_modified(|state| {
            admitted = !state.closed;
            state.running += usize::from(admitted);
            admitted
        });
        self.publish();
        admitted.then(|| Running(self.clone()))
    }

    /// The running count as the `credbroker_renewals_in_flight` gauge.
    fn publish(&self) {
        crate::telemetry::metrics::instruments().renewals_in_flight.record(self.running() as u64, &[]);
    }

    /// Renewals running now.
    pub fn running(&self) -> usize {
        self.state.borrow().running
    }

    /// Closes the gate and waits, at most `bound`, for the running renewals to end. Returns
    /// how many were still running when the bound ran out (0: all ended).
    pub async fn close_and_wait(&self, bound: Duration) -> usize {
        self.state.send_modify(|state| state.closed = true);
        let mut changes = self.state.subscribe();
        match tokio::time::timeout(bound, changes.wait_for(|state| state.running == 0)).await {
            Ok(_) => 0,
            Err(_) => self.running(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.state.send_modify(|state| state.running -= 1);
        self.0.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_waits_for_running_renewals_and_refuses_new_ones() {
        let renewals = Arc::new(Renewals::default());
        let running = renewals.start().expect("open before shutdown");
        let closing = tokio::spawn({
            let renewals = renewals.clone();
            async move { renewals.close_and_wait(Duration::from_secs(30)).await }
        });
        // The gate closes before the wait: a new renewal is refused while one still runs.
        while renewals.start().is_some_and(drop_permit) {
            tokio::task::yield_now().await;
        }
        assert!(!closing.is_finished(), "a renewal is still running");
        drop(running);
        assert_eq!(closing.await.unwrap(), 0);
        assert_eq!(renewals.running(), 0);
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let renewals = Arc::new(Renewals::default());
        let _stuck = renewals.start().unwrap();
        assert_eq!(renewals.close_and_wait(Duration::from_millis(50)).await, 1);
    }

    fn drop_permit(permit: Running) -> bool {
        drop(permit);
        true
    }
}

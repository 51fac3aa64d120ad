//! Every background task of the process, owned by startup: spawned into one [`TaskTracker`],
//! stopped by one [`CancellationToken`] that the drain cancels once the servers have stopped
//! and the running renewals have ended (`run_until_stopped`), then waited for, bounded.
//!
//! No constructor spawns. A part that needs something running hands startup the future (the
//! change feed's relay, the audit writer, the cache's coherence, the scheduler, …) and startup
//! spawns it here, so one place knows everything that runs and ends it. Work a request starts
//! (a leased renewal, a proxied call's renewal) is not a background task: `broker::renewals`
//! counts it, and the drain waits for it before this.

use std::future::Future;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Self { tracker: TaskTracker::new(), stop: CancellationToken::new() }
    }

    /// Runs `task` until it ends or the drain stops it.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.spawn_on(name, task, &Handle::current()));
    }

    /// Runs `task` on `runtime` until it ends or the drain stops it; its handle says which.
    pub fn spawn_on<T: Send + 'static>(
        &self,
        name: &'static str,
        task: impl Future<Output = T> + Send + 'static,
        runtime: &Handle,
    ) -> JoinHandle<Option<T>> {
        let stop = self.stop.clone();
        let task = async move {
            let ended = stop.run_until_cancelled(task).await;
            tracing::debug!(task = name, stopped = ended.is_none(), "background task done");
            ended
        };
        self.tracker.spawn_on(task, runtime)
    }

    /// Runs `task(token)`: a task that watches the drain's token itself, so that it can finish
    /// what it holds before it ends (the audit writer writes the lines already queued).
    pub fn spawn_finishing<F>(&self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = task(self.stop.clone());
        self.tracker.spawn(async move {
            task.await;
            tracing::debug!(task = name, "background task done");
        });
    }

    /// Something to wait on: how many tasks still run, and whether the drain closed the set.
    pub fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }

    /// Stops every task and waits for them, at most `bound`. Returns how many were still
    /// running when it ran out (0: all ended).
    pub async fn stop(&self, bound: Duration) -> usize {
        self.stop.cancel();
        self.tracker.close();
        match tokio::time::timeout(bound, self.tracker.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tracker.len(),
        }
    }
}

/// An application dropped without running to its end (a test's, a failed start) stops its
/// tasks too.
impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

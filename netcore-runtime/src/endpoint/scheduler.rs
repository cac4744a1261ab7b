//! Delayed and periodic tasks that stop with their endpoint.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs tasks after a delay or every interval, on tokio's clock. All stop when the endpoint
/// shuts down.
#[derive(Debug, Clone)]
pub struct Scheduler {
    stop: CancellationToken,
}

/// A scheduled task; cancel it with [`cancel`](TaskHandle::cancel). Dropping the handle does not
/// cancel the task.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    token: CancellationToken,
}

impl TaskHandle {
    /// Stops the task: it does not run again, and a run in progress is abandoned at its next await.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether the task was cancelled (or its endpoint stopped).
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Scheduler {
    pub(crate) fn new(stop: CancellationToken) -> Self {
        Self { stop }
    }

    /// Runs `task` once after `delay`.
    pub fn after<F>(&self, delay: Duration, task: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.stop.child_token();
        let handle = TaskHandle { token: token.clone() };
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = async { tokio::time::sleep(delay).await; task.await } => {}
            }
        });
        handle
    }

    /// Runs `task` every `interval`, the first time one interval from now. A run that overruns
    /// delays the next one rather than overlapping it.
    pub fn every<F, Fut>(&self, interval: Duration, mut task: F) -> TaskHandle
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let token = self.stop.child_token();
        let handle = TaskHandle { token: token.clone() };
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = task() => {}
                }
            }
        });
        handle
    }
}

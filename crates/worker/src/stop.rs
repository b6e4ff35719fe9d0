//! One signal that tells every part of the pipeline to stop, and why.
//!
//! Two things stop a worker: a shutdown request (SIGTERM, the caller's future) and a fatal
//! failure (an output the broker would not take, an inference error). Both go through the same
//! signal so every task has one thing to watch; the difference only matters for `run`'s
//! result. It can be set from any thread — librdkafka's delivery callback and the inference
//! thread are not async — and awaited from tasks (mini-redis's `Shutdown`, plus a cause).

use std::sync::Arc;
use tokio::sync::watch;

/// The state of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopState {
    Running,
    /// Graceful shutdown was requested.
    Requested,
    /// Something failed that the worker cannot continue after; the first cause is kept.
    Failed(String),
}

/// A cloneable handle on the pipeline's stop state.
#[derive(Debug, Clone)]
pub struct Stop {
    state: Arc<watch::Sender<StopState>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Self {
        Self {
            state: Arc::new(watch::Sender::new(StopState::Running)),
        }
    }

    /// Requests a graceful stop (no effect once stopping).
    pub fn request(&self) {
        self.state.send_if_modified(|state| {
            if *state == StopState::Running {
                *state = StopState::Requested;
                true
            } else {
                false
            }
        });
    }

    /// Records a fatal failure and stops. The first failure wins, even over a request.
    pub fn fail(&self, cause: impl Into<String>) {
        let cause = cause.into();
        self.state.send_if_modified(|state| {
            if matches!(state, StopState::Failed(_)) {
                false
            } else {
                *state = StopState::Failed(cause);
                true
            }
        });
    }

    pub(crate) fn is_stopping(&self) -> bool {
        *self.state.borrow() != StopState::Running
    }

    /// The fatal failure, if any.
    pub fn failure(&self) -> Option<String> {
        match &*self.state.borrow() {
            StopState::Failed(cause) => Some(cause.clone()),
            _ => None,
        }
    }

    /// Resolves once the pipeline is stopping (immediately if it already is).
    pub async fn stopped(&self) {
        let mut receiver = self.state.subscribe();
        // Errors only if the sender is gone, which cannot happen while `self` holds it.
        let _ = receiver
            .wait_for(|state| *state != StopState::Running)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn stopped_resolves_on_request_from_another_thread() {
        let stop = Stop::new();
        assert!(!stop.is_stopping());
        let remote = stop.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote.request();
        });
        tokio::time::timeout(Duration::from_secs(5), stop.stopped())
            .await
            .unwrap();
        thread.join().unwrap();
        assert!(stop.is_stopping());
        assert_eq!(stop.failure(), None);
        // Already stopping: resolves at once.
        stop.stopped().await;
    }

    #[test]
    fn first_failure_wins_and_overrides_a_request() {
        let stop = Stop::new();
        stop.request();
        stop.fail("delivery failed");
        stop.fail("second");
        stop.request();
        assert_eq!(stop.failure().as_deref(), Some("delivery failed"));
    }
}

//! Liveness and readiness, as the HTTP probes report them.
//!
//! Alive means the process is up and serving HTTP. Ready means it is doing useful work: the
//! model is loaded *and* the group coordinator has assigned it input partitions. A replica
//! without partitions (more replicas than partitions, or mid-rebalance) is healthy but not
//! ready, which is what an orchestrator's rollout should wait on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Shared readiness flags, set by the pipeline and read by `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    model_loaded: AtomicBool,
    assigned_partitions: AtomicUsize,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_model_loaded(&self, loaded: bool) {
        self.model_loaded.store(loaded, Ordering::Release);
    }

    pub fn set_assigned_partitions(&self, count: usize) {
        self.assigned_partitions.store(count, Ordering::Release);
    }

    pub fn model_loaded(&self) -> bool {
        self.model_loaded.load(Ordering::Acquire)
    }

    pub fn assigned_partitions(&self) -> usize {
        self.assigned_partitions.load(Ordering::Acquire)
    }

    pub fn ready(&self) -> bool {
        self.model_loaded() && self.assigned_partitions() > 0
    }

    /// A one-line explanation for the probe's response body.
    pub fn describe(&self) -> String {
        format!(
            "model_loaded={} assigned_partitions={}",
            self.model_loaded(),
            self.assigned_partitions()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_both_a_model_and_partitions() {
        let health = Health::new();
        assert!(!health.ready());
        health.set_model_loaded(true);
        assert!(!health.ready());
        health.set_assigned_partitions(3);
        assert!(health.ready());
        health.set_assigned_partitions(0);
        assert!(!health.ready());
        assert_eq!(health.describe(), "model_loaded=true assigned_partitions=0");
    }
}

//! Liveness and readiness, as the HTTP probes report them.
//!
//! Alive means the process is up and serving HTTP. Ready means it is doing useful work: the
//! model is loaded, the group coordinator has assigned it input partitions, *and* it can
//! reach a broker. A replica without partitions (more replicas than partitions, or
//! mid-rebalance) is healthy but not ready, which is what an orchestrator's rollout should wait
//! on. So is a replica cut off from its brokers: librdkafka keeps the partition assignment
//! through an outage, so the assignment alone would report a worker that cannot consume or
//! produce as ready.
//!
//! Broker reachability comes from librdkafka's periodic statistics (see
//! [`crate::delivery::context`]): reachable while at least one cluster broker's connection is
//! `UP`. Until the first statistics arrive it is assumed, since an assignment already proves
//! that the group coordinator answered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Shared readiness flags, set by the pipeline and read by `/readyz`.
#[derive(Debug)]
pub struct Health {
    model_loaded: AtomicBool,
    assigned_partitions: AtomicUsize,
    broker_reachable: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            model_loaded: AtomicBool::new(false),
            assigned_partitions: AtomicUsize::new(0),
            broker_reachable: AtomicBool::new(true),
        }
    }
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whether any broker of the cluster is connected; returns the previous value so
    /// the caller can log the transitions only.
    pub(crate) fn set_broker_reachable(&self, reachable: bool) -> bool {
        self.broker_reachable.swap(reachable, Ordering::AcqRel)
    }

    pub fn broker_reachable(&self) -> bool {
        self.broker_reachable.load(Ordering::Acquire)
    }

    pub fn set_model_loaded(&self, loaded: bool) {
        self.model_loaded.store(loaded, Ordering::Release);
    }

    pub(crate) fn set_assigned_partitions(&self, count: usize) {
        self.assigned_partitions.store(count, Ordering::Release);
    }

    pub fn model_loaded(&self) -> bool {
        self.model_loaded.load(Ordering::Acquire)
    }

    pub fn assigned_partitions(&self) -> usize {
        self.assigned_partitions.load(Ordering::Acquire)
    }

    pub fn ready(&self) -> bool {
        self.model_loaded() && self.assigned_partitions() > 0 && self.broker_reachable()
    }

    /// A one-line explanation for the probe's response body.
    pub fn describe(&self) -> String {
        format!(
            "model_loaded={} assigned_partitions={} broker_reachable={}",
            self.model_loaded(),
            self.assigned_partitions(),
            self.broker_reachable()
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
        assert_eq!(
            health.describe(),
            "model_loaded=true assigned_partitions=0 broker_reachable=true"
        );
    }

    #[test]
    fn a_worker_cut_off_from_its_brokers_is_not_ready() {
        let health = Health::new();
        health.set_model_loaded(true);
        health.set_assigned_partitions(2);
        assert!(health.ready());
        assert!(health.set_broker_reachable(false));
        assert!(!health.ready());
        assert!(health.describe().ends_with("broker_reachable=false"));
        assert!(!health.set_broker_reachable(true));
        assert!(health.ready());
    }
}

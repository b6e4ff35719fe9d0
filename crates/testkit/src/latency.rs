//! Exact latencies of a worker run, for the bench's percentiles: a [`LatencyObserver`] that
//! keeps every pair it is told.

use credit_worker::telemetry::metrics::LatencyObserver;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// A fixed-capacity, lock-free record of every acknowledged output's end-to-end and worker
/// latency, in microseconds, for exact percentiles (the histograms only have buckets).
/// Entries past the capacity are counted but not kept.
pub struct LatencyLog {
    /// One (end-to-end, in-worker) pair per output, in recording order.
    slots: Box<[(AtomicU32, AtomicU32)]>,
    next: AtomicUsize,
}

impl LatencyLog {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: (0..capacity)
                .map(|_| (AtomicU32::new(0), AtomicU32::new(0)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Records one output's end-to-end and worker latencies.
    pub fn record(&self, end_to_end_seconds: f64, in_worker_seconds: f64) {
        let micros = |seconds: f64| (seconds * 1e6).clamp(0.0, f64::from(u32::MAX)) as u32;
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some((end_to_end, in_worker)) = self.slots.get(index) {
            end_to_end.store(micros(end_to_end_seconds), Ordering::Relaxed);
            in_worker.store(micros(in_worker_seconds), Ordering::Relaxed);
        }
    }

    /// Latencies recorded so far (including any beyond the capacity).
    pub fn len(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept end-to-end latencies, in microseconds, in recording order.
    pub fn end_to_end_micros(&self) -> Vec<u32> {
        self.kept(|(end_to_end, _)| end_to_end)
    }

    /// The kept worker latencies, in microseconds, in the same order.
    pub fn in_worker_micros(&self) -> Vec<u32> {
        self.kept(|(_, in_worker)| in_worker)
    }

    fn kept(&self, field: impl Fn(&(AtomicU32, AtomicU32)) -> &AtomicU32) -> Vec<u32> {
        let kept = self.len().min(self.slots.len());
        self.slots[..kept]
            .iter()
            .map(|pair| field(pair).load(Ordering::Relaxed))
            .collect()
    }
}

impl LatencyObserver for LatencyLog {
    fn record(&self, end_to_end_seconds: f64, in_worker_seconds: f64) {
        LatencyLog::record(self, end_to_end_seconds, in_worker_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_latency_log_counts_but_does_not_keep() {
        let log = LatencyLog::with_capacity(1);
        log.record(0.5, 0.25);
        log.record(1.0, 0.5);
        assert_eq!(log.len(), 2);
        assert_eq!(log.end_to_end_micros(), vec![500_000]);
        assert_eq!(log.in_worker_micros(), vec![250_000]);
    }
}

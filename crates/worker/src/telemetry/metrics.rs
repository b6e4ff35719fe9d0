//! Prometheus metrics of the worker, all prefixed `credit_risk_`.
//!
//! Each [`Metrics`] has its own registry rather than the process-global one, so several
//! workers in one process (the integration tests) do not clash, and `/metrics` shows exactly
//! one worker's numbers.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `credit_risk_records_consumed_total` | counter | |
//! | `credit_risk_decisions_total` | counter (on delivery) | `decision` = `good` / `bad` |
//! | `credit_risk_decisions_by_group_total` | counter (as published; see [`crate::telemetry::fairness`]) | `field`, `group`, `decision` |
//! | `credit_risk_dead_lettered_total` | counter (on delivery) | `reason` |
//! | `credit_risk_delivery_failures_total` | counter | |
//! | `credit_risk_offset_commits_total` | counter | `result` = `ok` / `error` |
//! | `credit_risk_transactions_total` | counter (exactly-once mode) | `result` = `committed` / `aborted` |
//! | `credit_risk_batch_size` | histogram (records per inference) | |
//! | `credit_risk_inference_latency_seconds` | histogram (one ONNX Runtime run) | |
//! | `credit_risk_explanation_latency_seconds` | histogram (one batch's reasons) | |
//! | `credit_risk_end_to_end_latency_seconds` | histogram (input timestamp → output acked) | |
//! | `credit_risk_worker_latency_seconds` | histogram (input consumed → output acked) | |
//! | `credit_risk_consumer_lag` | gauge (high watermark − position) | `partition` |
//! | `credit_risk_assigned_partitions` | gauge | |
//! | `credit_risk_brokers_up` | gauge (consumer's connected brokers) | |
//! | `credit_risk_model_info` | gauge, always 1 | `version` (the model in service) |
//! | `credit_risk_model_reloads_total` | counter | `result` = `ok` / `failed` / `incompatible_schema` |

use credit_core::decision::Class;
use credit_core::decode::RejectReason;
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Arc;

/// Namespace (prefix) of every metric.
pub(crate) const NAMESPACE: &str = "credit_risk";

/// The worker's metrics and the registry that exposes them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub records_consumed: IntCounter,
    pub decisions: IntCounterVec,
    /// Decisions by protected field and group ([`crate::telemetry::fairness`]).
    pub decisions_by_group: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub delivery_failures: IntCounter,
    pub offset_commits: IntCounterVec,
    pub transactions: IntCounterVec,
    pub batch_size: Histogram,
    pub inference_latency: Histogram,
    /// Computing one batch's reasons (the model run on edited rows), after its inference.
    pub explanation_latency: Histogram,
    pub end_to_end_latency: Histogram,
    /// The worker's share of `end_to_end_latency`: from taking the record from the consumer
    /// to the acknowledgement of its output.
    pub worker_latency: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub assigned_partitions: IntGauge,
    pub brokers_up: IntGauge,
    pub model_info: IntGaugeVec,
    /// Reload attempts (SIGHUP), by whether the new model loaded and passed its self-check.
    pub model_reloads: IntCounterVec,
    /// Told every acknowledged output's exact latencies, when a caller asked for them; `None`
    /// in production.
    latency_observer: Option<Arc<dyn LatencyObserver>>,
}

/// Something that wants every acknowledged output's exact latencies beside the histograms,
/// which only have buckets (the worker bench, for exact percentiles).
pub trait LatencyObserver: Send + Sync {
    /// One acknowledged output whose input had a timestamp: its end-to-end and in-worker
    /// latencies.
    fn record(&self, end_to_end_seconds: f64, in_worker_seconds: f64);
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// How a model reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReloadResult {
    /// Loaded, checked and handed to the pipeline.
    Ok,
    /// The bundle did not load or failed its checks.
    Failed,
    /// The bundle loaded, but its schema would refuse records the current one accepts.
    IncompatibleSchema,
}

impl ReloadResult {
    const ALL: [Self; 3] = [Self::Ok, Self::Failed, Self::IncompatibleSchema];

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::IncompatibleSchema => "incompatible_schema",
        }
    }
}

impl Metrics {
    /// Creates and registers every metric. Fails only on an invalid metric definition (a
    /// programming error), never on input.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some(NAMESPACE.to_owned()), None)?;
        let records_consumed = IntCounter::new(
            "records_consumed_total",
            "Records consumed from the input topic.",
        )?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "decisions_total",
                "Decisions acknowledged by the broker, by decision.",
            ),
            &["decision"],
        )?;
        let decisions_by_group = IntCounterVec::new(
            Opts::new(
                "decisions_by_group_total",
                "Decisions by protected field of the served schema and the applicant's group in \
                 it (a category, false/true, a band of a number, missing): counted as a batch \
                 is published (exactly-once mode: when its transaction commits).",
            ),
            &["field", "group", "decision"],
        )?;
        let dead_lettered = IntCounterVec::new(
            Opts::new(
                "dead_lettered_total",
                "Records sent to the dead-letter topic and acknowledged, by reason.",
            ),
            &["reason"],
        )?;
        let delivery_failures = IntCounter::new(
            "delivery_failures_total",
            "Outputs the broker did not acknowledge; their input offsets are never committed.",
        )?;
        let offset_commits = IntCounterVec::new(
            Opts::new("offset_commits_total", "Offset commits, by result."),
            &["result"],
        )?;
        let transactions = IntCounterVec::new(
            Opts::new(
                "transactions_total",
                "Batch transactions in exactly-once mode, by result.",
            ),
            &["result"],
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("batch_size", "Records scored by one inference.")
                .buckets(exponential_buckets(1.0, 2.0, 17)?),
        )?;
        let inference_latency = Histogram::with_opts(
            HistogramOpts::new(
                "inference_latency_seconds",
                "Duration of one ONNX Runtime inference (one batch).",
            )
            .buckets(exponential_buckets(0.000_05, 2.0, 18)?),
        )?;
        let explanation_latency = Histogram::with_opts(
            HistogramOpts::new(
                "explanation_latency_seconds",
                "Duration of computing one batch's adverse-action reasons (one ONNX Runtime run \
                 over the edited rows), after its inference.",
            )
            .buckets(exponential_buckets(0.000_05, 2.0, 18)?),
        )?;
        let end_to_end_latency = Histogram::with_opts(
            HistogramOpts::new(
                "end_to_end_latency_seconds",
                "From the input record's Kafka timestamp to the broker's acknowledgement of \
                 its output.",
            )
            .buckets(exponential_buckets(0.000_5, 2.0, 18)?),
        )?;
        let worker_latency = Histogram::with_opts(
            HistogramOpts::new(
                "worker_latency_seconds",
                "From the worker taking the input record from its consumer to the broker's \
                 acknowledgement of its output: end-to-end latency less what happened before \
                 the worker had the record (upstream producer, broker, fetch, consumer lag).",
            )
            .buckets(exponential_buckets(0.000_5, 2.0, 18)?),
        )?;
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "consumer_lag",
                "Records behind the end of each assigned input partition (high watermark - \
                 position).",
            ),
            &["partition"],
        )?;
        let assigned_partitions = IntGauge::new(
            "assigned_partitions",
            "Input partitions assigned to this worker.",
        )?;
        let brokers_up = IntGauge::new(
            "brokers_up",
            "Cluster brokers the consumer is connected to, from librdkafka's statistics; 0 \
             means the worker is cut off and /readyz says so.",
        )?;
        let model_info = IntGaugeVec::new(
            Opts::new("model_info", "The served model; the value is always 1."),
            &["version"],
        )?;
        let model_reloads = IntCounterVec::new(
            Opts::new(
                "model_reloads_total",
                "Model reloads, by result: `ok` (loaded and self-checked; served from the next \
                 batch) or `failed` (the current model stays in service).",
            ),
            &["result"],
        )?;

        registry.register(Box::new(records_consumed.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(decisions_by_group.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(delivery_failures.clone()))?;
        registry.register(Box::new(offset_commits.clone()))?;
        registry.register(Box::new(transactions.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(inference_latency.clone()))?;
        registry.register(Box::new(explanation_latency.clone()))?;
        registry.register(Box::new(end_to_end_latency.clone()))?;
        registry.register(Box::new(worker_latency.clone()))?;
        registry.register(Box::new(consumer_lag.clone()))?;
        registry.register(Box::new(assigned_partitions.clone()))?;
        registry.register(Box::new(brokers_up.clone()))?;
        registry.register(Box::new(model_info.clone()))?;
        registry.register(Box::new(model_reloads.clone()))?;

        // Every label value known in advance is shown from the start, at 0, so dashboards and
        // alerts (`rate(...)`) see the series before the first event.
        for class in Class::ALL {
            decisions.with_label_values(&[class.as_str()]);
        }
        for reason in RejectReason::ALL {
            dead_lettered.with_label_values(&[reason.as_str()]);
        }
        for result in ["ok", "error"] {
            offset_commits.with_label_values(&[result]);
        }
        for result in ["committed", "aborted"] {
            transactions.with_label_values(&[result]);
        }
        for result in ReloadResult::ALL {
            model_reloads.with_label_values(&[result.as_str()]);
        }

        Ok(Self {
            registry,
            records_consumed,
            decisions,
            decisions_by_group,
            dead_lettered,
            delivery_failures,
            offset_commits,
            transactions,
            batch_size,
            inference_latency,
            explanation_latency,
            end_to_end_latency,
            worker_latency,
            consumer_lag,
            assigned_partitions,
            brokers_up,
            model_info,
            model_reloads,
            latency_observer: None,
        })
    }

    /// Also tells `observer` every output's exact latencies.
    pub fn with_latency_observer(mut self, observer: Arc<dyn LatencyObserver>) -> Self {
        self.latency_observer = Some(observer);
        self
    }

    /// Observes one acknowledged output's latencies: end to end when its input had a
    /// timestamp, and in the worker (histograms, and the exact log if any).
    pub fn observe_latency(&self, end_to_end_seconds: Option<f64>, in_worker_seconds: f64) {
        self.worker_latency.observe(in_worker_seconds);
        if let Some(end_to_end) = end_to_end_seconds {
            self.end_to_end_latency.observe(end_to_end);
            if let Some(observer) = &self.latency_observer {
                observer.record(end_to_end, in_worker_seconds);
            }
        }
    }

    /// Counts one offset commit by its result.
    pub(crate) fn count_commit(&self, ok: bool) {
        self.offset_commits
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Counts one exactly-once batch transaction by its result.
    pub(crate) fn count_transaction(&self, committed: bool) {
        self.transactions
            .with_label_values(&[if committed { "committed" } else { "aborted" }])
            .inc();
    }

    /// Counts one model reload by its result.
    pub(crate) fn count_reload(&self, result: ReloadResult) {
        self.model_reloads
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// Sets `credit_risk_model_info{version}` to 1 (and forgets any previous version).
    pub fn set_model_version(&self, version: &str) {
        self.model_info.reset();
        self.model_info.with_label_values(&[version]).set(1);
    }

    /// Acknowledged decisions, both classes.
    pub fn decisions_total(&self) -> u64 {
        Class::ALL
            .iter()
            .map(|class| self.decisions.with_label_values(&[class.as_str()]).get())
            .sum()
    }

    /// Acknowledged dead letters, all reasons.
    pub fn dead_lettered_total(&self) -> u64 {
        RejectReason::ALL
            .iter()
            .map(|reason| {
                self.dead_lettered
                    .with_label_values(&[reason.as_str()])
                    .get()
            })
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|error| prometheus::Error::Msg(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_with_the_prefix() {
        let metrics = Metrics::new().unwrap();
        metrics.records_consumed.inc();
        metrics.batch_size.observe(3.0);
        metrics.inference_latency.observe(0.001);
        metrics.end_to_end_latency.observe(0.02);
        metrics.consumer_lag.with_label_values(&["0"]).set(7);
        metrics.set_model_version("lstm-abc");
        let text = metrics.encode().unwrap();
        for name in [
            "credit_risk_records_consumed_total 1",
            "credit_risk_decisions_total{decision=\"bad\"} 0",
            "credit_risk_decisions_total{decision=\"good\"} 0",
            "credit_risk_dead_lettered_total{reason=\"invalid_json\"} 0",
            "credit_risk_delivery_failures_total 0",
            "credit_risk_offset_commits_total{result=\"ok\"} 0",
            "credit_risk_transactions_total{result=\"committed\"} 0",
            "credit_risk_batch_size_bucket",
            "credit_risk_inference_latency_seconds_bucket",
            "credit_risk_end_to_end_latency_seconds_bucket",
            "credit_risk_worker_latency_seconds_bucket",
            "credit_risk_consumer_lag{partition=\"0\"} 7",
            "credit_risk_assigned_partitions 0",
            "credit_risk_brokers_up 0",
            "credit_risk_model_info{version=\"lstm-abc\"} 1",
            "credit_risk_model_reloads_total{result=\"ok\"} 0",
            "credit_risk_model_reloads_total{result=\"failed\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    /// Keeps every pair it is told, in order.
    #[derive(Default)]
    struct Pairs(std::sync::Mutex<Vec<(f64, f64)>>);

    impl LatencyObserver for Pairs {
        fn record(&self, end_to_end_seconds: f64, in_worker_seconds: f64) {
            self.0
                .lock()
                .unwrap()
                .push((end_to_end_seconds, in_worker_seconds));
        }
    }

    #[test]
    fn worker_latency_is_observed_for_every_output_end_to_end_only_with_a_timestamp() {
        let pairs = Arc::new(Pairs::default());
        let metrics = Metrics::new()
            .unwrap()
            .with_latency_observer(Arc::clone(&pairs) as Arc<dyn LatencyObserver>);
        metrics.observe_latency(Some(0.030), 0.004);
        metrics.observe_latency(None, 0.002);
        metrics.observe_latency(Some(0.010), 0.001);
        assert_eq!(metrics.worker_latency.get_sample_count(), 3);
        assert!((metrics.worker_latency.get_sample_sum() - 0.007).abs() < 1e-9);
        assert_eq!(metrics.end_to_end_latency.get_sample_count(), 2);
        // The observer is told each timed output's pair, in order.
        assert_eq!(
            *pairs.0.lock().unwrap(),
            vec![(0.030, 0.004), (0.010, 0.001)]
        );
    }

    #[test]
    fn model_info_shows_only_the_current_version() {
        let metrics = Metrics::new().unwrap();
        metrics.set_model_version("v1");
        metrics.set_model_version("v2");
        let text = metrics.encode().unwrap();
        assert!(!text.contains("version=\"v1\""), "{text}");
        assert!(text.contains("credit_risk_model_info{version=\"v2\"} 1"));
    }

    #[test]
    fn totals_add_up_labels() {
        let metrics = Metrics::new().unwrap();
        metrics.decisions.with_label_values(&["good"]).inc_by(3);
        metrics.decisions.with_label_values(&["bad"]).inc();
        metrics
            .dead_lettered
            .with_label_values(&[RejectReason::MissingKey.as_str()])
            .inc();
        assert_eq!(metrics.decisions_total(), 4);
        assert_eq!(metrics.dead_lettered_total(), 1);
    }
}

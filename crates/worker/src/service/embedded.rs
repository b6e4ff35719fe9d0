//! Embedded mode: the whole service on one machine, no Kafka installation needed.
//!
//! With `kafka.brokers` empty, the worker starts librdkafka's mock cluster in-process, creates
//! the topics, and — once it has joined the consumer group and is ready — streams the German
//! Credit applicants (repeated to `records`) into the input topic, keyed `app-000001`...
//! The records go through the real worker code path (consumer group, batching, ONNX Runtime,
//! idempotent producer, offset commits). A reader tails the output and dead-letter topics until
//! every application has an answer, then the worker shuts down gracefully and a summary of
//! counts, bad rate, throughput and end-to-end latency is returned. `/metrics` is served
//! throughout.

use crate::config::{Config, KafkaConfig};
use crate::pipeline::RunReport;
use crate::service::{ServiceError, Worker};
use crate::stop::Stop;
use crate::telemetry::health::Health;
use credit_core::artifacts::SCHEMA_FILE;
use credit_core::dataset::{self, DatasetError};
use credit_core::decision::{Class, OwnedDecision};
use credit_core::schema::{Schema, SchemaError};
use credit_kafka::feed::{feed_blocking, now_micros, FeedRecord, FED_AT_HEADER};
use credit_kafka::mock::EmbeddedCluster;
use credit_kafka::tail::{Tail, Tailed};
use rdkafka::error::KafkaError;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the embedded run does.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedOptions {
    /// Records to stream: the data set's 1,000 applicants, repeated as needed.
    pub records: usize,
    /// The German Credit CSV.
    pub data: PathBuf,
    /// Feed at most this many records per second (default: as fast as possible).
    pub rate: Option<f64>,
    /// Mock brokers.
    pub brokers: i32,
    /// Partitions of the input and output topics.
    pub partitions: i32,
    /// Give up if the run takes longer than this.
    pub timeout: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            records: 1000,
            data: PathBuf::from("data/german_credit.csv"),
            rate: None,
            brokers: 3,
            partitions: 3,
            timeout: Duration::from_secs(600),
        }
    }
}

/// Why the embedded run failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot start the embedded Kafka cluster: {0}")]
    Cluster(#[source] KafkaError),
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot feed the input topic: {0}")]
    Feed(#[source] KafkaError),
    #[error("cannot read the output topics: {0}")]
    Read(#[source] KafkaError),
    #[error("the worker did not become ready (model loaded, partitions assigned) in time")]
    NotReady,
    #[error("timed out: {answered} of {expected} applications answered")]
    Incomplete { expected: usize, answered: usize },
}

/// The outcome of an embedded run.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedSummary {
    pub records_in: usize,
    /// Applications with a decision (distinct keys).
    pub decided: usize,
    /// Applications dead-lettered (distinct keys).
    pub dead_lettered: usize,
    pub bad: usize,
    pub good: usize,
    /// Outputs beyond the first per application (at-least-once redeliveries).
    pub duplicates: usize,
    /// From the start of the feed to the last answer.
    pub elapsed: Duration,
    pub latency_p50: Duration,
    pub latency_p95: Duration,
    pub latency_p99: Duration,
    pub model_version: Option<String>,
    pub threshold: Option<f32>,
    pub metrics_address: SocketAddr,
    /// Whether the run was interrupted (SIGINT/SIGTERM) before every answer arrived.
    pub interrupted: bool,
    pub report: RunReport,
    /// The first `bad` decision read, to show what a decline carries.
    pub first_decline: Option<OwnedDecision>,
}

impl EmbeddedSummary {
    /// Share of decisions that are `bad`.
    pub fn bad_rate(&self) -> f64 {
        if self.decided == 0 {
            0.0
        } else {
            self.bad as f64 / self.decided as f64
        }
    }

    /// Answered applications per second, over the feed-to-last-answer time.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            (self.decided + self.dead_lettered) as f64 / seconds
        } else {
            0.0
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl fmt::Display for EmbeddedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Embedded run{}",
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )?;
        writeln!(f, "  records in:      {}", self.records_in)?;
        writeln!(
            f,
            "  decided:         {} ({} bad, {} good; bad rate {:.1}%)",
            self.decided,
            self.bad,
            self.good,
            self.bad_rate() * 100.0
        )?;
        writeln!(f, "  dead-lettered:   {}", self.dead_lettered)?;
        if let Some(decline) = &self.first_decline {
            let reasons = decline.reasons.as_deref().unwrap_or_default();
            let listed: Vec<String> = reasons
                .iter()
                .map(|reason| format!("{} (+{:.2})", reason.field, reason.contribution))
                .collect();
            writeln!(
                f,
                "  first decline:   {} at {:.3}; reasons: {}",
                decline.application_id,
                decline.probability_bad,
                if listed.is_empty() {
                    "off".to_owned()
                } else {
                    listed.join(", ")
                }
            )?;
        }
        if self.duplicates > 0 {
            writeln!(
                f,
                "  duplicates:      {} (at-least-once redeliveries)",
                self.duplicates
            )?;
        }
        if let (Some(version), Some(threshold)) = (&self.model_version, self.threshold) {
            writeln!(f, "  model:           {version} (threshold {threshold})")?;
        }
        writeln!(
            f,
            "  throughput:      {:.0} records/s ({} records in {:.3} s)",
            self.throughput(),
            self.decided + self.dead_lettered,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  end-to-end latency (fed -> answer received): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            millis(self.latency_p50),
            millis(self.latency_p95),
            millis(self.latency_p99)
        )?;
        writeln!(
            f,
            "  worker:          {} consumed, {} decisions and {} dead letters acknowledged, \
             offsets committed {:?}",
            self.report.consumed,
            self.report.decided,
            self.report.dead_lettered,
            self.report.committed
        )?;
        write!(
            f,
            "  metrics served at http://{}/metrics",
            self.metrics_address
        )
    }
}

/// `path` if it exists; a relative path missing from the current directory is also looked up
/// in the crate's directory, so `cargo run` works from anywhere in a checkout.
pub fn resolve_path(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let in_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if in_crate.exists() {
        in_crate
    } else {
        path.to_path_buf()
    }
}

/// The data set's applicants (read with `schema`) as input records: key `app-000001`...,
/// repeated to `count`.
pub fn applicant_records(
    schema: &Schema,
    data: &Path,
    count: usize,
) -> Result<Vec<FeedRecord>, DatasetError> {
    let rows = dataset::load_labelled(schema, data)?;
    let payloads: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| row.applicant.to_json(schema))
        .collect();
    Ok((0..count)
        .map(|index| FeedRecord {
            key: Some(format!("app-{:06}", index + 1).into_bytes()),
            payload: Some(payloads[index % payloads.len()].clone()),
            headers: vec![("source".to_owned(), b"embedded-demo".to_vec())],
        })
        .collect())
}

/// The mock brokers keep at most 5 MiB per partition and silently drop older records beyond
/// that (retention): spread large runs over enough partitions that nothing is dropped before
/// the worker reads it.
fn partitions_for(records: &[FeedRecord], at_least: i32) -> i32 {
    const BUDGET_BYTES: usize = 3 * 1024 * 1024;
    let bytes: usize = records
        .iter()
        .map(|r| r.payload.as_ref().map_or(0, Vec::len) + 100)
        .sum();
    let needed = i32::try_from(bytes.div_ceil(BUDGET_BYTES)).unwrap_or(i32::MAX);
    needed.max(at_least).max(1)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Waits until the worker is ready, or `stop`.
async fn wait_ready(health: &Health, stop: &Stop) -> Result<(), EmbeddedError> {
    while !health.ready() {
        tokio::select! {
            () = stop.stopped() => return Err(EmbeddedError::NotReady),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    Ok(())
}

/// Tails the output topics until `expected` distinct applications are answered, or `stop`.
async fn read_answers(
    tail: &Tail,
    expected: usize,
    stop: &Stop,
) -> Result<Vec<Tailed>, EmbeddedError> {
    let mut answered = HashSet::new();
    let mut outputs = Vec::with_capacity(expected);
    while answered.len() < expected {
        let record = tokio::select! {
            () = stop.stopped() => break,
            record = tail.next() => record.map_err(EmbeddedError::Read)?,
        };
        answered.insert(record.key.clone());
        outputs.push(record);
    }
    Ok(outputs)
}

/// Runs embedded mode with `config` (whose `kafka.brokers` is ignored) until every record is
/// answered, `interrupt` resolves, or the timeout passes.
pub async fn run(
    mut config: Config,
    options: EmbeddedOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<EmbeddedSummary, ServiceError> {
    config.model.dir = resolve_path(&config.model.dir);
    // The demo's records are written in the served model's schema.
    let schema = Schema::load(&config.model.dir.join(SCHEMA_FILE)).map_err(EmbeddedError::from)?;
    let records = applicant_records(&schema, &resolve_path(&options.data), options.records)
        .map_err(EmbeddedError::from)?;
    shorten_empty_fetches(&mut config.kafka);
    let cluster = start_cluster(&config.kafka, &options, &records)?;
    let bootstrap = cluster.bootstrap_servers().to_owned();
    let kafka = &config.kafka;
    let (input, output, dead_letter) = (
        kafka.input_topic.clone(),
        kafka.output_topic.clone(),
        kafka.dead_letter_topic.clone(),
    );
    tracing::info!(config = %config, %bootstrap, "embedded mode: starting a mock Kafka cluster");

    let worker = Worker::start(config).await?;
    // As in production: SIGHUP reloads the model from `model.dir`.
    let sighup =
        super::reload::reload_on_sighup(worker.reload_handle()).map_err(ServiceError::Signal)?;
    let metrics_address = worker.http_address();
    let health = Arc::clone(worker.health());
    let tail = Tail::open(&bootstrap, &[&output, &dead_letter])
        .await
        .map_err(EmbeddedError::Read)?;
    let expected = records.len();
    let signals = Signals::default();

    let shutdown = shutdown_trigger(interrupt, options.timeout, &signals);
    let working = async {
        let result = worker.run(&bootstrap, shutdown).await;
        signals.reader_stop.request();
        result
    };
    let feed = Feed {
        bootstrap: bootstrap.clone(),
        topic: input,
        records,
        rate: options.rate,
    };
    let driving = feed_and_read(feed, &health, &tail, &signals);
    let (report, driven) = tokio::join!(working, driving);
    sighup.abort();
    let report = report?;
    let (started_us, outputs) = driven?;
    drop(tail);
    drop(cluster);
    Ok(summarise(SummaryInputs {
        expected,
        started_us,
        outputs: &outputs,
        output_topic: &output,
        metrics_address,
        interrupted: signals.interrupted.load(Ordering::Relaxed),
        timed_out: signals.timed_out.load(Ordering::Relaxed),
        report,
    })?)
}

/// The mock brokers answer an empty fetch only after the full `fetch.wait.max.ms` (default
/// 500 ms) instead of as soon as data arrives, as real brokers do: keep it short here.
fn shorten_empty_fetches(kafka: &mut KafkaConfig) {
    if !kafka.client.contains_key("fetch.wait.max.ms") {
        kafka
            .client
            .entry("consumer.fetch.wait.max.ms".to_owned())
            .or_insert_with(|| "10".to_owned());
    }
}

/// Starts the mock brokers and creates the input, output and dead-letter topics.
fn start_cluster(
    kafka: &KafkaConfig,
    options: &EmbeddedOptions,
    records: &[FeedRecord],
) -> Result<EmbeddedCluster, EmbeddedError> {
    let cluster = EmbeddedCluster::start(options.brokers).map_err(EmbeddedError::Cluster)?;
    let partitions = partitions_for(records, options.partitions);
    for (topic, partitions) in [
        (&kafka.input_topic, partitions),
        (&kafka.output_topic, partitions),
        (&kafka.dead_letter_topic, 1),
    ] {
        cluster
            .create_topic(topic, partitions)
            .map_err(EmbeddedError::Cluster)?;
    }
    Ok(cluster)
}

/// What the worker, the feeder-reader and the shutdown trigger tell each other.
#[derive(Default)]
struct Signals {
    /// Requested once the worker has stopped: no more answers will come.
    reader_stop: Stop,
    /// Requested once every application is answered (or the reader gave up).
    all_answered: Stop,
    interrupted: AtomicBool,
    timed_out: AtomicBool,
}

/// The worker's shutdown: every application answered, `interrupt`, or `timeout`, noting which.
async fn shutdown_trigger(
    interrupt: impl Future<Output = ()>,
    timeout: Duration,
    signals: &Signals,
) {
    tokio::select! {
        () = signals.all_answered.stopped() => {}
        () = interrupt => signals.interrupted.store(true, Ordering::Relaxed),
        () = tokio::time::sleep(timeout) => signals.timed_out.store(true, Ordering::Relaxed),
    }
}

/// The input records and where they go.
struct Feed {
    bootstrap: String,
    topic: String,
    records: Vec<FeedRecord>,
    rate: Option<f64>,
}

/// Once the worker is ready: feeds the records (on a blocking thread) while reading their
/// answers, then asks the worker to shut down. Returns when the feed started, and the answers.
async fn feed_and_read(
    feed: Feed,
    health: &Health,
    tail: &Tail,
    signals: &Signals,
) -> Result<(i64, Vec<Tailed>), EmbeddedError> {
    let expected = feed.records.len();
    wait_ready(health, &signals.reader_stop).await?;
    tracing::info!(records = expected, input = %feed.topic, "worker ready; feeding applications");
    let started_us = now_micros();
    let feeding = tokio::task::spawn_blocking(move || {
        feed_blocking(&feed.bootstrap, &feed.topic, &feed.records, feed.rate)
    });
    let outputs = read_answers(tail, expected, &signals.reader_stop).await;
    signals.all_answered.request();
    match feeding.await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(EmbeddedError::Feed(error)),
        Err(_) => return Err(EmbeddedError::Feed(KafkaError::Canceled)),
    }
    Ok((started_us, outputs?))
}

struct SummaryInputs<'a> {
    expected: usize,
    started_us: i64,
    outputs: &'a [Tailed],
    output_topic: &'a str,
    metrics_address: SocketAddr,
    interrupted: bool,
    timed_out: bool,
    report: RunReport,
}

fn summarise(inputs: SummaryInputs<'_>) -> Result<EmbeddedSummary, EmbeddedError> {
    let mut seen = HashSet::new();
    let (mut decided, mut dead_lettered, mut bad, mut good, mut duplicates) = (0, 0, 0, 0, 0);
    let mut latencies = Vec::with_capacity(inputs.outputs.len());
    let (mut model_version, mut threshold) = (None, None);
    let mut first_decline = None;
    let mut last_us = inputs.started_us;
    for record in inputs.outputs {
        if !seen.insert(record.key.clone()) {
            duplicates += 1;
            continue;
        }
        last_us = last_us.max(record.received_at_us);
        if let Some(fed_at) = record
            .header(FED_AT_HEADER)
            .and_then(|v| v.parse::<i64>().ok())
        {
            let micros = u64::try_from(record.received_at_us - fed_at).unwrap_or(0);
            latencies.push(Duration::from_micros(micros));
        }
        if record.topic != inputs.output_topic {
            dead_lettered += 1;
            continue;
        }
        decided += 1;
        if let Some(decision) = record
            .payload
            .as_deref()
            .and_then(|payload| OwnedDecision::from_json(payload).ok())
        {
            threshold.get_or_insert(decision.threshold);
            model_version.get_or_insert(decision.model_version.clone());
            match decision.decision {
                Class::Bad => {
                    bad += 1;
                    first_decline.get_or_insert(decision);
                }
                Class::Good => good += 1,
            }
        }
    }
    if inputs.timed_out && seen.len() < inputs.expected {
        return Err(EmbeddedError::Incomplete {
            expected: inputs.expected,
            answered: seen.len(),
        });
    }
    latencies.sort_unstable();
    let elapsed_us = u64::try_from(last_us - inputs.started_us).unwrap_or(0);
    Ok(EmbeddedSummary {
        records_in: inputs.expected,
        decided,
        dead_lettered,
        bad,
        good,
        duplicates,
        elapsed: Duration::from_micros(elapsed_us),
        latency_p50: percentile(&latencies, 0.50),
        latency_p95: percentile(&latencies, 0.95),
        latency_p99: percentile(&latencies, 0.99),
        model_version,
        threshold,
        metrics_address: inputs.metrics_address,
        interrupted: inputs.interrupted,
        report: inputs.report,
        first_decline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_runs_get_enough_partitions_for_the_mock_retention() {
        let record = FeedRecord {
            payload: Some(vec![b'x'; 500]),
            ..FeedRecord::default()
        };
        assert_eq!(partitions_for(&vec![record.clone(); 1000], 3), 3);
        // 100,000 x 600 bytes = 60 MB: 20 partitions of 3 MiB.
        assert_eq!(partitions_for(&vec![record; 100_000], 3), 20);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.95), Duration::from_millis(95));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn applicant_records_repeat_the_data_set_with_sequential_keys() {
        let schema = Schema::load(&resolve_path(Path::new("models/schema.toml"))).unwrap();
        let records = applicant_records(
            &schema,
            &resolve_path(Path::new("data/german_credit.csv")),
            1002,
        )
        .unwrap();
        assert_eq!(records.len(), 1002);
        assert_eq!(records[0].key.as_deref(), Some(&b"app-000001"[..]));
        assert_eq!(records[1001].key.as_deref(), Some(&b"app-001002"[..]));
        assert_eq!(records[1000].payload, records[0].payload);
        assert_ne!(records[1].payload, records[0].payload);
    }

    fn output(topic: &str, key: &str, decision: Option<&str>, fed_at: i64, at: i64) -> Tailed {
        Tailed {
            topic: topic.to_owned(),
            partition: 0,
            offset: 0,
            key: Some(key.as_bytes().to_vec()),
            payload: decision.map(|d| {
                format!(
                    "{{\"application_id\":\"{key}\",\"decision\":\"{d}\",\"probability_bad\":0.5,\
                     \"threshold\":0.4,\"model_version\":\"v1\",\"scored_at\":\"t\"}}"
                )
                .into_bytes()
            }),
            headers: vec![(
                FED_AT_HEADER.to_owned(),
                Some(fed_at.to_string().into_bytes()),
            )],
            timestamp_ms: None,
            received_at_us: at,
        }
    }

    #[test]
    fn summary_counts_distinct_answers_and_measures_from_the_feed() {
        let outputs = vec![
            output("out", "a", Some("bad"), 1_000, 3_000),
            output("out", "b", Some("good"), 1_000, 5_000),
            output("dlq", "c", None, 1_000, 4_000),
            output("out", "a", Some("bad"), 1_000, 9_000),
        ];
        let summary = summarise(SummaryInputs {
            expected: 3,
            started_us: 1_000,
            outputs: &outputs,
            output_topic: "out",
            metrics_address: "127.0.0.1:1".parse().unwrap(),
            interrupted: false,
            timed_out: false,
            report: RunReport::default(),
        })
        .unwrap();
        assert_eq!((summary.decided, summary.dead_lettered), (2, 1));
        assert_eq!((summary.bad, summary.good, summary.duplicates), (1, 1, 1));
        assert_eq!(summary.bad_rate(), 0.5);
        assert_eq!(summary.elapsed, Duration::from_micros(4_000));
        assert_eq!(summary.latency_p50, Duration::from_micros(3_000));
        assert_eq!(summary.latency_p99, Duration::from_micros(4_000));
        assert_eq!(summary.model_version.as_deref(), Some("v1"));
        assert!((summary.throughput() - 750.0).abs() < 1e-6);
        let text = summary.to_string();
        assert!(text.contains("bad rate 50.0%"), "{text}");
    }
}

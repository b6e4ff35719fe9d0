//! The load generator behind `worker produce`: streams synthetic applicants into the input
//! topic of a real cluster, paced, until a count is reached or it is stopped.
//!
//! It exists for what the embedded demo cannot show: a worker fleet under a steady stream
//! (docker-compose's `loadgen` service feeds the dashboard) and soak tests. Applicants come
//! from [`credit_synthetic`] (drawn between real neighbours of the same class, so the model's
//! scores look like production ones), keyed `gen-000000001`, ...; every `invalid_every`-th
//! record is deliberately broken so the dead-letter path shows up on the dashboard too.
//!
//! It uses the worker's producer settings ([`producer_config`]), so the `kafka.client` table
//! (TLS, SASL) of the same configuration file applies.

use crate::config::KafkaConfig;
use crate::delivery::clients::{producer_config, without_secrets};
use credit_core::dataset::{self, DatasetError};
use credit_core::schema::{FieldKind, Schema, SchemaError};
use credit_kafka::log::forward_log;
use credit_synthetic::generator::{GeneratedRow, Generator, GeneratorError, BLOCK_ROWS};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::ClientContext;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the load generator waits for outstanding deliveries once done.
pub(crate) const FLUSH_LIMIT: Duration = Duration::from_secs(30);
/// How long it waits for them once stopped (SIGTERM): an orchestrator's grace period is short,
/// and records stuck behind an unreachable broker would not be delivered in it anyway.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);
/// Longest blocking wait between two looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// What to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub topic: String,
    /// Records per second; `None` produces as fast as the broker accepts.
    pub rate: Option<f64>,
    /// Records to produce; 0 runs until stopped.
    pub records: u64,
    /// Every n-th record is invalid (0: none).
    pub invalid_every: u64,
    /// Seed of the synthetic applicants.
    pub seed: u64,
    /// The schema of the records to produce: the served model's (`schema.toml` of its bundle).
    pub schema: PathBuf,
    /// The labelled CSV the synthetic applicants are drawn around (read with `schema`).
    pub data: PathBuf,
    /// How often progress is logged.
    pub progress_every: Duration,
}

/// What was produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSummary {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub invalid: u64,
    pub elapsed: Duration,
}

impl LoadSummary {
    /// Delivered records per second.
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} records ({} deliberately invalid), {} delivered, {} failed, in {:.1} s \
             ({:.0} records/s)",
            self.sent,
            self.invalid,
            self.delivered,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

/// Why the load generator could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot generate applicants: {0}")]
    Generator(#[from] GeneratorError),
    #[error("cannot create the producer: {0}")]
    Producer(KafkaError),
    #[error("cannot produce to `{topic}`: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("`rate` must be a positive number of records per second, not {0}")]
    Rate(f64),
}

/// Counts delivery reports.
#[derive(Default)]
struct LoadContext {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for LoadContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }
}

impl ProducerContext for LoadContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((error, _)) => {
                let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                // The first failure and then every thousandth: a missing topic fails them all.
                if failed == 1 || failed.is_multiple_of(1000) {
                    tracing::warn!(%error, failed, "generated records not delivered");
                }
                failed
            }
        };
    }
}

/// The payload of the `index`-th record: the applicant, or a broken variant of it.
///
/// Broken records cycle through the kinds of damage the dead-letter topic sorts by reason:
/// the schema's first bounded number out of range, its first category field given an unknown
/// value, and bytes that are not JSON.
pub fn payload(
    schema: &Schema,
    row: &GeneratedRow,
    index: u64,
    invalid_every: u64,
) -> (Vec<u8>, bool) {
    let json = row.applicant.to_json(schema);
    if invalid_every == 0 || !(index + 1).is_multiple_of(invalid_every) {
        return (json, false);
    }
    let broken = match (index / invalid_every) % 3 {
        0 => out_of_range(schema).map(|(field, value)| replace_field(&json, field, &value)),
        1 => unknown_category(schema).map(|field| replace_field(&json, field, "\"spaceship\"")),
        _ => None,
    };
    (broken.unwrap_or_else(|| b"{not json".to_vec()), true)
}

/// The first wire field with numeric bounds, and a value just above them.
fn out_of_range(schema: &Schema) -> Option<(&str, String)> {
    schema
        .fields()
        .iter()
        .filter(|field| field.is_wire())
        .find_map(|field| match field.kind {
            FieldKind::Integer { max, .. } if max < i64::MAX => {
                Some((field.name.as_str(), (max + 1).to_string()))
            }
            FieldKind::Number { max, .. } if max < 1e300 => {
                Some((field.name.as_str(), (max * 2.0 + 1.0).to_string()))
            }
            _ => None,
        })
}

/// The first wire field that is a category (none of which is `spaceship`).
fn unknown_category(schema: &Schema) -> Option<&str> {
    schema
        .fields()
        .iter()
        .filter(|field| field.is_wire())
        .find(|field| {
            field
                .categories()
                .is_some_and(|categories| categories.iter().all(|c| c.value != "spaceship"))
        })
        .map(|field| field.name.as_str())
}

/// `json` with the value of top-level `field` replaced by `value` (raw JSON).
fn replace_field(json: &[u8], field: &str, value: &str) -> Vec<u8> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).unwrap_or_default();
    let value = serde_json::from_str(value).unwrap_or(serde_json::Value::Null);
    object.insert(field.to_owned(), value);
    serde_json::to_vec(&object).unwrap_or_else(|_| json.to_vec())
}

/// Sleeps for `duration` unless `stop` is set meanwhile; true if it was.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return false;
        };
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

/// Waits for outstanding deliveries: up to [`FLUSH_LIMIT`], or [`STOP_GRACE`] once `stop` is
/// set. What is still undelivered then is purged, so its delivery reports count it as failed.
fn finish(producer: &ThreadedProducer<LoadContext>, stop: &AtomicBool) {
    let started = Instant::now();
    let mut deadline = started + FLUSH_LIMIT;
    let mut stopped = false;
    while producer.flush(STOP_CHECK).is_err() {
        if !stopped && stop.load(Ordering::Relaxed) {
            stopped = true;
            deadline = deadline.min(Instant::now() + STOP_GRACE);
        }
        if Instant::now() >= deadline {
            let left = producer.in_flight_count();
            tracing::warn!(
                left,
                waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "generated records still undelivered; dropping them"
            );
            producer.purge(PurgeConfig::default().queue().inflight());
            // Serves the purged records' delivery reports (quick: nothing is left to send).
            let _ = producer.flush(STOP_GRACE);
            return;
        }
    }
}

/// Produces until `options.records` are sent or `stop` is set, then waits for outstanding
/// deliveries ([`finish`]). Blocking: run it on a blocking thread.
pub fn run_blocking(
    kafka: &KafkaConfig,
    options: &LoadOptions,
    stop: &AtomicBool,
) -> Result<LoadSummary, LoadError> {
    if let Some(rate) = options.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(LoadError::Rate(rate));
        }
    }
    let schema = Schema::load(&options.schema)?;
    let seed_rows = dataset::load_labelled(&schema, &options.data)?;
    let generator = Generator::new(&schema, seed_rows, options.seed)?;
    let producer = create_producer(kafka)?;
    let started = Instant::now();
    let counts = produce(&producer, &generator, options, stop, started)?;
    finish(&producer, stop);
    let context = producer.context();
    Ok(LoadSummary {
        sent: counts.sent,
        delivered: context.delivered.load(Ordering::Relaxed),
        failed: context.failed.load(Ordering::Relaxed),
        invalid: counts.invalid,
        elapsed: started.elapsed(),
    })
}

/// The worker's producer settings under the load generator's own client id.
fn create_producer(kafka: &KafkaConfig) -> Result<ThreadedProducer<LoadContext>, LoadError> {
    let mut config = producer_config(kafka, &kafka.brokers);
    config.set("client.id", "credit-risk-loadgen");
    config
        .create_with_context(LoadContext::default())
        .map_err(|error| LoadError::Producer(without_secrets(error, &kafka.client)))
}

/// Records handed to the producer so far.
struct Counts {
    sent: u64,
    invalid: u64,
}

/// Generates applicants block by block and hands them to the producer, paced, until
/// `options.records` are sent or `stop` is set.
fn produce(
    producer: &ThreadedProducer<LoadContext>,
    generator: &Generator,
    options: &LoadOptions,
    stop: &AtomicBool,
    started: Instant,
) -> Result<Counts, LoadError> {
    let mut last_progress = started;
    let mut rows = Vec::with_capacity(BLOCK_ROWS as usize);
    let mut counts = Counts {
        sent: 0,
        invalid: 0,
    };
    let limit = if options.records == 0 {
        u64::MAX
    } else {
        options.records
    };
    while counts.sent < limit {
        rows.clear();
        generator.generate(counts.sent, BLOCK_ROWS.min(limit - counts.sent), &mut rows)?;
        for row in &rows {
            if stop.load(Ordering::Relaxed)
                || wait_for_turn(options.rate, started, counts.sent, stop)
            {
                return Ok(counts);
            }
            let (payload, broken) =
                payload(generator.schema(), row, counts.sent, options.invalid_every);
            if let Handover::Stopped =
                hand_over(producer, options, row, &payload, counts.sent, stop)?
            {
                return Ok(counts);
            }
            counts.sent += 1;
            counts.invalid += u64::from(broken);
            if last_progress.elapsed() >= options.progress_every {
                last_progress = Instant::now();
                log_progress(producer, counts.sent);
            }
        }
    }
    Ok(counts)
}

/// Waits until the record after `sent` ones is due at `rate`; true if `stop` was set meanwhile.
fn wait_for_turn(rate: Option<f64>, started: Instant, sent: u64, stop: &AtomicBool) -> bool {
    let Some(rate) = rate else {
        return false;
    };
    let due = started + Duration::from_secs_f64(sent as f64 / rate);
    due.checked_duration_since(Instant::now())
        .is_some_and(|wait| sleep_unless_stopped(wait, stop))
}

/// Whether a record reached the producer's queue.
enum Handover {
    Queued,
    Stopped,
}

/// Hands the `index`-th record to the producer, waiting while its queue is full, unless `stop`
/// is set meanwhile.
fn hand_over(
    producer: &ThreadedProducer<LoadContext>,
    options: &LoadOptions,
    row: &GeneratedRow,
    payload: &[u8],
    index: u64,
    stop: &AtomicBool,
) -> Result<Handover, LoadError> {
    let trace = format!("loadgen-{}-{}", options.seed, index + 1);
    let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
        key: "trace-id",
        value: Some(&trace),
    });
    let mut record = BaseRecord::to(&options.topic)
        .key(row.application_id.as_bytes())
        .payload(payload)
        .headers(headers);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(Handover::Queued),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // The queue stays full while the broker is unreachable.
                if sleep_unless_stopped(Duration::from_millis(5), stop) {
                    return Ok(Handover::Stopped);
                }
                record = back;
            }
            Err((source, _)) => {
                return Err(LoadError::Produce {
                    topic: options.topic.clone(),
                    source,
                })
            }
        }
    }
}

/// Logs how many records are sent, delivered and failed so far.
fn log_progress(producer: &ThreadedProducer<LoadContext>, sent: u64) {
    let context = producer.context();
    tracing::info!(
        sent,
        delivered = context.delivered.load(Ordering::Relaxed),
        failed = context.failed.load(Ordering::Relaxed),
        "producing"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::embedded::resolve_path;
    use credit_core::applicant::Applicant;
    use credit_kafka::mock::EmbeddedCluster;
    use credit_kafka::tail::high_watermarks_blocking;
    use std::path::Path;

    fn schema_path() -> PathBuf {
        resolve_path(Path::new("models/schema.toml"))
    }

    fn rows(count: u64) -> (Schema, Vec<GeneratedRow>) {
        let schema = Schema::load(&schema_path()).expect("the schema");
        let data =
            dataset::load_labelled(&schema, &resolve_path(Path::new("data/german_credit.csv")))
                .expect("the data set");
        let generator = Generator::new(&schema, data, 1).expect("generator");
        let mut rows = Vec::new();
        generator.generate(0, count, &mut rows).expect("rows");
        (schema, rows)
    }

    #[test]
    fn every_nth_payload_is_broken_in_a_way_the_decoder_names() {
        let (schema, rows) = rows(12);
        let mut reasons = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let (bytes, broken) = payload(&schema, row, index as u64, 4);
            assert_eq!(broken, (index + 1) % 4 == 0, "record {index}");
            match Applicant::from_json(&schema, &bytes) {
                Ok(applicant) => {
                    assert!(!broken, "record {index} should be invalid");
                    assert_eq!(applicant, row.applicant);
                }
                Err(error) => {
                    assert!(broken, "record {index} should be valid: {error}");
                    reasons.push(error.to_string());
                }
            }
        }
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        // The shipped schema's first bounded number and first category.
        assert!(reasons[0].contains("duration_months"), "{}", reasons[0]);
        assert!(reasons[1].contains("checking_account"), "{}", reasons[1]);
    }

    #[test]
    fn without_invalid_every_all_payloads_are_valid() {
        let (schema, rows) = rows(50);
        for (index, row) in rows.iter().enumerate() {
            let (bytes, broken) = payload(&schema, row, index as u64, 0);
            assert!(!broken);
            assert!(Applicant::from_json(&schema, &bytes).is_ok());
        }
    }

    #[test]
    fn produces_the_requested_count_to_a_broker() {
        let cluster = EmbeddedCluster::start(1).expect("mock cluster");
        cluster.create_topic("load", 2).expect("topic");
        let mut kafka = crate::config::Config::defaults().expect("defaults").kafka;
        kafka.brokers = cluster.bootstrap_servers().to_owned();
        let options = LoadOptions {
            topic: "load".to_owned(),
            rate: None,
            records: 300,
            invalid_every: 10,
            seed: 3,
            schema: schema_path(),
            data: resolve_path(Path::new("data/german_credit.csv")),
            progress_every: Duration::from_secs(60),
        };
        let summary = run_blocking(&kafka, &options, &AtomicBool::new(false)).expect("produced");
        assert_eq!(
            (summary.sent, summary.delivered, summary.failed),
            (300, 300, 0)
        );
        assert_eq!(summary.invalid, 30);
        let ends = high_watermarks_blocking(cluster.bootstrap_servers(), "load").expect("ends");
        assert_eq!(ends.values().sum::<i64>(), 300);
    }

    #[test]
    fn a_non_positive_rate_is_refused_by_name() {
        let kafka = crate::config::Config::defaults().expect("defaults").kafka;
        let options = LoadOptions {
            topic: "t".to_owned(),
            rate: Some(0.0),
            records: 1,
            invalid_every: 0,
            seed: 1,
            schema: schema_path(),
            data: PathBuf::from("data/german_credit.csv"),
            progress_every: Duration::from_secs(1),
        };
        let error = run_blocking(&kafka, &options, &AtomicBool::new(false)).unwrap_err();
        assert!(error.to_string().contains("rate"), "{error}");
    }

    #[test]
    fn a_stop_ends_the_run_promptly_while_the_broker_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut kafka = crate::config::Config::defaults().expect("defaults").kafka;
        kafka.brokers = format!("127.0.0.1:{port}");
        // A small queue, full within the first second, as a long run's would be.
        kafka
            .client
            .insert("queue.buffering.max.messages".to_owned(), "1000".to_owned());
        let options = LoadOptions {
            topic: "load".to_owned(),
            rate: None,
            records: 0,
            invalid_every: 0,
            seed: 1,
            schema: schema_path(),
            data: resolve_path(Path::new("data/german_credit.csv")),
            progress_every: Duration::from_secs(60),
        };
        let stop = AtomicBool::new(false);
        let (summary, stopped_at) = std::thread::scope(|scope| {
            let running = scope.spawn(|| run_blocking(&kafka, &options, &stop));
            std::thread::sleep(Duration::from_secs(2));
            stop.store(true, Ordering::Relaxed);
            let stopped_at = Instant::now();
            (running.join().expect("no panic"), stopped_at)
        });
        let took = stopped_at.elapsed();
        let summary = summary.expect("a summary");
        assert!(took < STOP_GRACE + Duration::from_secs(3), "took {took:?}");
        assert_eq!(summary.delivered, 0, "{summary}");
        assert_eq!(
            summary.failed, summary.sent,
            "undelivered records are counted: {summary}"
        );
    }
}

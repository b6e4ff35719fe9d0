//! End-to-end scenarios of the worker, runnable against any broker.
//!
//! The integration tests run them on the in-process mock cluster
//! (`tests/worker_mock_cluster.rs`); a test file for a real broker (Tansu) runs the same
//! functions with a [`RemoteBroker`]. Each scenario creates its own topics and consumer group
//! (unique names), so scenarios can share one broker, and checks its outcome from the outside:
//! by reading the output topics and the group's committed offsets, as an operator would.
//!
//! Scenarios return `Err(TestkitError::Failed(..))` with an explanation when an expectation
//! does not hold, so the calling test can simply `unwrap()` the result.

use crate::http::get as get_blocking;
use credit_core::applicant::{Applicant, MAX_RECORD_BYTES};
use credit_core::artifacts::{
    model_version, ArtifactPaths, JSON_SCHEMA_FILE, KEY_PREPROCESSOR_SHA256, KEY_THRESHOLD,
    KEY_VERSION, MODEL_FILE, PREPROCESSOR_FILE, REFERENCE_FILE, SCHEMA_FILE,
};
use credit_core::bundle;
use credit_core::dataset::{self, DatasetError};
use credit_core::decision::OwnedDecision;
use credit_core::decode::RejectReason;
use credit_core::explain::{Explainer, ReasonsMode, Reference, DEFAULT_TOP};
use credit_core::loader::{self, LoadOptions, LoadedModel};
use credit_core::model::onnx_export::write_onnx;
use credit_core::model::weights::NetworkWeights;
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
use credit_core::scoring::onnx_runtime::OnnxScorer;
use credit_kafka::feed::{create_topics, feed_blocking, Fed, FeedRecord};
use credit_kafka::headers;
use credit_kafka::mock::EmbeddedCluster;
use credit_kafka::tail::{committed_offsets_blocking, high_watermarks_blocking, Tail, Tailed};
use credit_worker::config::{Config, ConfigError};
use credit_worker::pipeline::placement;
use credit_worker::pipeline::{PipelineError, RunReport};
use credit_worker::service::embedded::resolve_path;
use credit_worker::service::reload::ReloadHandle;
use credit_worker::service::{ServiceError, Worker};
use credit_worker::stop::Stop;
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a scenario waits for outputs before failing.
pub const OUTPUT_TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variable with librdkafka debug contexts for the scenario workers' consumers.
pub const DEBUG_ENV: &str = "CREDIT_RISK_TESTKIT_KAFKA_DEBUG";

/// Why a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// An expectation did not hold.
    #[error("scenario failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error("cannot write the test model: {0}")]
    Model(String),
    #[error("a helper task failed: {0}")]
    Task(String),
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(TestkitError::Failed(format!($($message)+)));
        }
    };
}

/// A broker the scenarios can run against.
pub trait TestBroker: Sync {
    fn bootstrap_servers(&self) -> String;
    /// Creates a topic with `partitions` partitions.
    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> impl Future<Output = Result<(), TestkitError>> + Send;
}

impl TestBroker for EmbeddedCluster {
    fn bootstrap_servers(&self) -> String {
        EmbeddedCluster::bootstrap_servers(self).to_owned()
    }

    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> impl Future<Output = Result<(), TestkitError>> + Send {
        let created = EmbeddedCluster::create_topic(self, name, partitions);
        async move { Ok(created?) }
    }
}

/// A real broker, reached at `bootstrap`; topics are created with the admin API.
#[derive(Debug, Clone)]
pub struct RemoteBroker {
    pub bootstrap: String,
}

impl TestBroker for RemoteBroker {
    fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> impl Future<Output = Result<(), TestkitError>> + Send {
        let (bootstrap, name) = (self.bootstrap.clone(), name.to_owned());
        async move { Ok(create_topics(&bootstrap, &[(&name, partitions)]).await?) }
    }
}

/// Topic and group names unique to one scenario run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub input: String,
    pub output: String,
    pub dead_letter: String,
    pub group: String,
}

impl Topics {
    pub fn unique(scenario: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let suffix = format!(
            "{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_millis()
        );
        Self {
            input: format!("{scenario}-in-{suffix}"),
            output: format!("{scenario}-out-{suffix}"),
            dead_letter: format!("{scenario}-dlq-{suffix}"),
            group: format!("{scenario}-group-{suffix}"),
        }
    }

    /// Creates the three topics (`partitions` for input and output, 1 for dead letters).
    pub async fn create<B: TestBroker>(
        &self,
        broker: &B,
        partitions: i32,
    ) -> Result<(), TestkitError> {
        broker.create_topic(&self.input, partitions).await?;
        broker.create_topic(&self.output, partitions).await?;
        broker.create_topic(&self.dead_letter, 1).await?;
        Ok(())
    }
}

/// Writes a small randomly initialised model (same interface and metadata contract as a
/// trained one) and its preprocessor into `dir`, with their manifest. Returns the model version,
/// the hash of the weights as the trainer computes it.
///
/// Scenarios test the plumbing, not the model, so they do not need the trained artifacts;
/// a random network still gives a spread of probabilities around the threshold.
pub fn write_test_model(dir: &Path, threshold: f32, seed: u64) -> Result<String, TestkitError> {
    write_test_model_fitted_on(dir, threshold, seed, usize::MAX)
}

/// [`write_test_model`] with a preprocessor fitted on the first `fit_rows` applicants only:
/// another "training run", whose features differ from the other test models' for the same
/// applicant (so scoring them with another model's preprocessing shows).
pub fn write_test_model_fitted_on(
    dir: &Path,
    threshold: f32,
    seed: u64,
    fit_rows: usize,
) -> Result<String, TestkitError> {
    let schema = shipped_schema()?;
    let rows = dataset::load_labelled(&schema, &resolve_path(Path::new("data/german_credit.csv")))?;
    let applicants: Vec<Applicant> = rows
        .into_iter()
        .take(fit_rows)
        .map(|row| row.applicant)
        .collect();
    write_test_bundle(dir, &schema, &applicants, threshold, seed)
}

/// The shipped German Credit schema (`models/schema.toml`).
pub fn shipped_schema() -> Result<Schema, TestkitError> {
    Schema::load(&resolve_path(Path::new("models/schema.toml")))
        .map_err(|e| TestkitError::Model(e.to_string()))
}

/// Writes a small randomly initialised model for `schema` into `dir`, its preprocessor fitted
/// on `applicants`, with the schema, its JSON Schema and the manifest: a complete bundle of any
/// lender's schema, as the trainer writes one. Returns the model version.
pub fn write_test_bundle(
    dir: &Path,
    schema: &Schema,
    applicants: &[Applicant],
    threshold: f32,
    seed: u64,
) -> Result<String, TestkitError> {
    let preprocessor =
        Preprocessor::fit(schema, applicants).map_err(|e| TestkitError::Model(e.to_string()))?;
    let blocks = preprocessor.attribute_blocks();
    let weights =
        NetworkWeights::random(preprocessor.width, blocks.len(), 4, 8, 1, 8, &blocks, seed);
    let version = model_version(&weights, &preprocessor.fingerprint(), threshold);
    let metadata = vec![
        (KEY_VERSION.to_owned(), version.clone()),
        (KEY_THRESHOLD.to_owned(), threshold.to_string()),
        (
            KEY_PREPROCESSOR_SHA256.to_owned(),
            preprocessor.fingerprint(),
        ),
    ];
    std::fs::create_dir_all(dir).map_err(|e| TestkitError::Model(e.to_string()))?;
    let paths = ArtifactPaths::new(dir);
    std::fs::write(paths.schema(), schema.source())
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    bundle::write_json_schema(dir, schema).map_err(|e| TestkitError::Model(e.to_string()))?;
    preprocessor
        .save(&paths.preprocessor())
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    write_onnx(&paths.model(), &weights, &metadata)
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    let reference =
        Reference::typical(schema, applicants).map_err(|e| TestkitError::Model(e.to_string()))?;
    std::fs::write(paths.reference(), reference.to_json(schema))
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    let files = [
        MODEL_FILE,
        PREPROCESSOR_FILE,
        SCHEMA_FILE,
        JSON_SCHEMA_FILE,
        REFERENCE_FILE,
    ];
    bundle::write_manifest(dir, &version, &files)
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    Ok(version)
}

/// A configuration for a scenario: its topics and group, the model in `model_dir`, metrics on
/// a free loopback port, short intervals, and a 6 s session timeout (so the mock's
/// rebalances, which wait up to the session timeout for members, stay short).
pub fn scenario_config(
    bootstrap: &str,
    topics: &Topics,
    model_dir: &Path,
) -> Result<Config, TestkitError> {
    let mut config = Config::from_toml_with_env(
        r#"
        [kafka]
        commit_interval_ms = 200
        lag_refresh_ms = 500
        drain_timeout_ms = 10000
        [kafka.client]
        "consumer.session.timeout.ms" = "6000"
        "consumer.heartbeat.interval.ms" = "500"
        "consumer.fetch.wait.max.ms" = "10"
        [batching]
        max_batch = 64
        max_wait_ms = 5
        [metrics]
        address = "127.0.0.1:0"
        "#,
        HashMap::new(),
    )?;
    config.kafka.brokers = bootstrap.to_owned();
    config.kafka.input_topic = topics.input.clone();
    config.kafka.output_topic = topics.output.clone();
    config.kafka.dead_letter_topic = topics.dead_letter.clone();
    config.kafka.group_id = topics.group.clone();
    config.model.dir = model_dir.to_path_buf();
    // librdkafka's debug contexts for the worker's consumer, e.g. `cgrp,fetch` (shown with
    // RUST_LOG=librdkafka=debug).
    if let Ok(debug) = std::env::var(DEBUG_ENV) {
        config
            .kafka
            .client
            .insert("consumer.debug".to_owned(), debug);
    }
    config.validate()?;
    Ok(config)
}

/// The labelled data of a shipped example schema, by the schema's name.
fn example_data(schema: &Schema) -> Result<std::path::PathBuf, TestkitError> {
    let file = match schema.name() {
        "german-credit" => "data/german_credit.csv",
        "retail-loan" => "data/retail_loan_book.csv",
        other => {
            return Err(TestkitError::Model(format!(
                "no example data for schema `{other}`"
            )))
        }
    };
    Ok(resolve_path(Path::new(file)))
}

/// The second example lender's schema (`schemas/retail-loan.toml`).
pub fn retail_loan_schema() -> Result<Schema, TestkitError> {
    Schema::load(&resolve_path(Path::new("schemas/retail-loan.toml")))
        .map_err(|e| TestkitError::Model(e.to_string()))
}

/// The applicants of `schema`'s example data file, read with `schema`.
pub fn example_applicants(schema: &Schema) -> Result<Vec<Applicant>, TestkitError> {
    Ok(dataset::load_labelled(schema, &example_data(schema)?)?
        .into_iter()
        .map(|row| row.applicant)
        .collect())
}

/// [`write_test_model`] for the retail-loan schema, fitted on its loan book.
pub fn write_retail_test_model(
    dir: &Path,
    threshold: f32,
    seed: u64,
) -> Result<String, TestkitError> {
    let schema = retail_loan_schema()?;
    let applicants = example_applicants(&schema)?;
    write_test_bundle(dir, &schema, &applicants, threshold, seed)
}

/// `count` valid records of the schema of the bundle in `model_dir` (its example data,
/// repeated), keyed `app-000001`..., each with a `trace-id` header.
pub fn bundle_records(model_dir: &Path, count: usize) -> Result<Vec<FeedRecord>, TestkitError> {
    let schema = Schema::load(&ArtifactPaths::new(model_dir).schema())
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    let applicants = example_applicants(&schema)?;
    Ok((0..count)
        .map(|index| FeedRecord {
            key: Some(format!("app-{:06}", index + 1).into_bytes()),
            payload: Some(applicants[index % applicants.len()].to_json(&schema)),
            headers: vec![("trace-id".to_owned(), format!("trace-{index}").into_bytes())],
        })
        .collect())
}

/// `count` valid applicant records, keyed `app-000001`..., each with a `trace-id` header.
pub fn applicant_records(count: usize) -> Result<Vec<FeedRecord>, TestkitError> {
    let schema = shipped_schema()?;
    let rows = dataset::load_labelled(&schema, &resolve_path(Path::new("data/german_credit.csv")))?;
    Ok((0..count)
        .map(|index| FeedRecord {
            key: Some(format!("app-{:06}", index + 1).into_bytes()),
            payload: Some(rows[index % rows.len()].applicant.to_json(&schema)),
            headers: vec![("trace-id".to_owned(), format!("trace-{index}").into_bytes())],
        })
        .collect())
}

/// Produces `records` into `topic` and returns where each landed.
pub async fn feed(
    bootstrap: &str,
    topic: &str,
    records: Vec<FeedRecord>,
) -> Result<Vec<Fed>, TestkitError> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || feed_blocking(&bootstrap, &topic, &records, None))
        .await
        .map_err(|e| TestkitError::Task(e.to_string()))?
        .map_err(TestkitError::from)
}

/// The group's committed positions on `topic`.
pub async fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, TestkitError> {
    let (bootstrap, group, topic) = (bootstrap.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || committed_offsets_blocking(&bootstrap, &group, &topic))
        .await
        .map_err(|e| TestkitError::Task(e.to_string()))?
        .map_err(TestkitError::from)
}

/// The end offsets of `topic`.
pub async fn high_watermarks(
    bootstrap: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, TestkitError> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || high_watermarks_blocking(&bootstrap, &topic))
        .await
        .map_err(|e| TestkitError::Task(e.to_string()))?
        .map_err(TestkitError::from)
}

/// A worker running in a background task.
pub struct RunningWorker {
    stop: Stop,
    http: SocketAddr,
    reload: ReloadHandle,
    task: JoinHandle<Result<RunReport, ServiceError>>,
}

impl RunningWorker {
    /// Starts a worker with `config` (against `config.kafka.brokers`).
    pub async fn start(config: Config) -> Result<Self, TestkitError> {
        let bootstrap = config.kafka.brokers.clone();
        let worker = Worker::start(config).await?;
        let http = worker.http_address();
        let reload = worker.reload_handle();
        let stop = Stop::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            worker
                .run(&bootstrap, async move { shutdown.stopped().await })
                .await
        });
        Ok(Self {
            stop,
            http,
            reload,
            task,
        })
    }

    /// Requests a model reload from `model.dir` (what SIGHUP does).
    pub fn reload(&self) {
        self.reload.request();
    }

    /// The worker's HTTP address (`/metrics`, `/healthz`, `/readyz`).
    pub fn http_address(&self) -> SocketAddr {
        self.http
    }

    /// GETs `path` from the worker's HTTP endpoint.
    pub async fn get(&self, path: &str) -> Result<(u16, String), TestkitError> {
        let (address, path) = (self.http, path.to_owned());
        tokio::task::spawn_blocking(move || get_blocking(address, &path))
            .await
            .map_err(|e| TestkitError::Task(e.to_string()))?
            .map_err(|e| TestkitError::Task(format!("GET {}: {e}", self.http)))
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.get("/readyz").await?.0 == 200 {
                return Ok(());
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "worker not ready after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Requests a graceful shutdown (what SIGTERM does).
    pub fn shutdown(&self) {
        self.stop.request();
    }

    /// Waits for the worker to finish.
    pub async fn join(self) -> Result<RunReport, ServiceError> {
        self.task
            .await
            .unwrap_or_else(|error| Err(ServiceError::Config(format!("worker task: {error}"))))
    }

    /// Shuts down and waits.
    pub async fn stop(self) -> Result<RunReport, ServiceError> {
        self.shutdown();
        self.join().await
    }
}

/// Reads `topics` until `done` holds for what was read, failing after [`OUTPUT_TIMEOUT`].
async fn read_until(
    tail: &Tail,
    into: &mut Vec<Tailed>,
    what: &str,
    done: impl FnMut(&[Tailed]) -> bool,
) -> Result<(), TestkitError> {
    let reached = tail.collect_until(into, done, OUTPUT_TIMEOUT).await?;
    ensure!(
        reached,
        "timed out waiting for {what}; {} records read",
        into.len()
    );
    Ok(())
}

/// Polls the worker's `/metrics` until it has consumed at least `count` records.
async fn wait_for_consumed(worker: &RunningWorker, count: u64) -> Result<(), TestkitError> {
    wait_for_metric(worker, "credit_risk_records_consumed_total", count)
        .await
        .map(drop)
}

/// Polls the worker's `/metrics` until the sample `series` (name and labels, as printed)
/// reaches `at_least`; returns that `/metrics` body.
pub async fn wait_for_metric(
    worker: &RunningWorker,
    series: &str,
    at_least: u64,
) -> Result<String, TestkitError> {
    let started = tokio::time::Instant::now();
    loop {
        let (_, body) = worker.get("/metrics").await?;
        let value = sample(&body, series).unwrap_or(0.0);
        if value >= at_least as f64 {
            return Ok(body);
        }
        ensure!(
            started.elapsed() < OUTPUT_TIMEOUT,
            "`{series}` is {value}, not {at_least}, after {OUTPUT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn distinct_keys(records: &[Tailed]) -> HashSet<Option<Vec<u8>>> {
    records.iter().map(|record| record.key.clone()).collect()
}

/// Where the input topic ends, per partition, according to the producer's delivery reports:
/// one past the last offset a fed record landed at. Broker-independent: Tansu 0.6 answers
/// ListOffsets(latest) with 1 on partitions that hold many records, so the broker's own
/// watermarks cannot be trusted there.
fn end_offsets(fed: &[Fed]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for record in fed {
        let end = ends.entry(record.partition).or_insert(0);
        *end = (*end).max(record.offset + 1);
    }
    ends
}

/// Checks that the group's committed positions equal the input topic's end offsets: every
/// input record was delivered and committed.
async fn ensure_fully_committed(
    bootstrap: &str,
    topics: &Topics,
    fed: &[Fed],
) -> Result<(), TestkitError> {
    let committed = committed_offsets(bootstrap, &topics.group, &topics.input).await?;
    let ends = end_offsets(fed);
    ensure!(
        committed == ends,
        "committed offsets {committed:?} do not cover the input topic's end offsets {ends:?}"
    );
    Ok(())
}

/// N valid records in → exactly N decisions out, keyed by application id, with the input's
/// headers and a `model-version` header; input offsets fully committed; metrics and probes
/// served while running.
pub async fn every_record_gets_exactly_one_decision<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    model_version: &str,
    count: usize,
) -> Result<RunReport, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("decided");
    topics.create(broker, 3).await?;
    let fed = feed(&bootstrap, &topics.input, bundle_records(model_dir, count)?).await?;
    let worker = RunningWorker::start(scenario_config(&bootstrap, &topics, model_dir)?).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "decisions", |o| o.len() >= count).await?;

    let (status, ready) = worker.get("/readyz").await?;
    ensure!(status == 200, "/readyz answered {status}: {ready}");
    // Periodic commits happen, and are counted (rust-rdkafka never reports async ones).
    wait_for_metric(
        &worker,
        "credit_risk_offset_commits_total{result=\"ok\"}",
        1,
    )
    .await?;
    let (_, metrics) = worker.get("/metrics").await?;
    for expected in [
        format!("credit_risk_records_consumed_total {count}"),
        format!("credit_risk_model_info{{version=\"{model_version}\"}} 1"),
        "credit_risk_batch_size_count".to_owned(),
        "credit_risk_end_to_end_latency_seconds_count".to_owned(),
        "credit_risk_worker_latency_seconds_count".to_owned(),
    ] {
        ensure!(
            metrics.contains(&expected),
            "/metrics lacks `{expected}`:\n{metrics}"
        );
    }
    let report = worker.stop().await?;
    // Anything more would be a duplicate.
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;

    ensure!(
        outputs.len() == count,
        "{} outputs for {count} records",
        outputs.len()
    );
    let expected_keys: HashSet<Option<Vec<u8>>> = (1..=count)
        .map(|i| Some(format!("app-{i:06}").into_bytes()))
        .collect();
    ensure!(
        distinct_keys(&outputs) == expected_keys,
        "output keys differ from input keys"
    );
    for output in &outputs {
        let key = output.key_text().unwrap_or_default();
        ensure!(
            output.topic == topics.output,
            "{key} went to {}",
            output.topic
        );
        let decision = OwnedDecision::from_json(output.payload.as_deref().unwrap_or_default())
            .map_err(|e| TestkitError::Failed(format!("decision of {key} is not JSON: {e}")))?;
        ensure!(
            decision.application_id == key,
            "decision {decision:?} under key {key}"
        );
        ensure!(decision.model_version == model_version, "{decision:?}");
        ensure!(
            (0.0..=1.0).contains(&decision.probability_bad),
            "{decision:?}"
        );
        ensure!(
            chrono::DateTime::parse_from_rfc3339(&decision.scored_at).is_ok(),
            "scored_at of {decision:?} is not RFC 3339"
        );
        let index: usize = key
            .trim_start_matches("app-")
            .parse()
            .map_err(|_| TestkitError::Failed(format!("unexpected key {key}")))?;
        let expected_trace = format!("trace-{}", index - 1);
        ensure!(
            output.header("trace-id") == Some(expected_trace.as_str()),
            "{key}: input header not kept: {:?}",
            output.headers
        );
        ensure!(
            output.header(headers::MODEL_VERSION) == Some(model_version),
            "{key}: no model-version header: {:?}",
            output.headers
        );
    }
    ensure!(
        report.consumed == count as u64 && report.decided == count as u64,
        "report {report:?}"
    );
    ensure!(report.dead_lettered == 0, "report {report:?}");
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(report)
}

/// One bad record of each kind, between valid ones.
struct BadRecord {
    record: FeedRecord,
    reason: RejectReason,
    field: &'static str,
}

fn bad_records() -> Result<Vec<BadRecord>, TestkitError> {
    let valid = applicant_records(1)?
        .pop()
        .and_then(|record| record.payload)
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&valid)
        .map_err(|e| TestkitError::Failed(format!("applicant JSON: {e}")))?;
    let variant = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut copy = json.clone();
        edit(&mut copy);
        serde_json::to_vec(&copy).unwrap_or_default()
    };
    let missing_age = variant(&|j| {
        if let Some(object) = j.as_object_mut() {
            object.remove("age_years");
        }
    });
    let old = variant(&|j| j["age_years"] = 900.into());
    let yacht = variant(&|j| j["purpose"] = "yacht".into());
    let months_as_text = variant(&|j| j["duration_months"] = "six".into());
    let record = |key: Option<&str>, payload: Option<Vec<u8>>, trace: &str| FeedRecord {
        key: key.map(|k| k.as_bytes().to_vec()),
        payload,
        headers: vec![("trace-id".to_owned(), trace.as_bytes().to_vec())],
    };
    Ok(vec![
        BadRecord {
            record: record(None, Some(valid.clone()), "bad-no-key"),
            reason: RejectReason::MissingKey,
            field: "key",
        },
        BadRecord {
            record: record(Some("bad-json"), Some(b"{not json".to_vec()), "bad-json"),
            reason: RejectReason::InvalidJson,
            field: "record",
        },
        BadRecord {
            record: record(
                Some("bad-utf8"),
                Some(vec![b'{', 0xff, 0xfe, b'}']),
                "bad-utf8",
            ),
            reason: RejectReason::NotUtf8,
            field: "record",
        },
        BadRecord {
            record: record(Some("bad-missing"), Some(missing_age), "bad-missing"),
            reason: RejectReason::MissingField,
            field: "age_years",
        },
        BadRecord {
            record: record(Some("bad-range"), Some(old), "bad-range"),
            reason: RejectReason::OutOfRange,
            field: "age_years",
        },
        BadRecord {
            record: record(Some("bad-category"), Some(yacht), "bad-category"),
            reason: RejectReason::UnknownCategory,
            field: "purpose",
        },
        BadRecord {
            record: record(Some("bad-type"), Some(months_as_text), "bad-type"),
            reason: RejectReason::WrongType,
            field: "duration_months",
        },
        BadRecord {
            record: record(
                Some("bad-oversize"),
                Some(vec![b' '; MAX_RECORD_BYTES + 1]),
                "bad-oversize",
            ),
            reason: RejectReason::Oversize,
            field: "record",
        },
        BadRecord {
            record: record(Some("bad-tombstone"), None, "bad-tombstone"),
            reason: RejectReason::EmptyPayload,
            field: "record",
        },
    ])
}

/// Bad records of every kind reach the dead-letter topic with their original key, payload and
/// headers plus error and source headers, and are counted by reason; the valid records around
/// them still get decisions; the stream never stops.
pub async fn invalid_records_are_dead_lettered<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
) -> Result<RunReport, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("dead-letter");
    topics.create(broker, 2).await?;
    let bad = bad_records()?;
    let valid = applicant_records(bad.len() + 1)?;
    // valid, bad, valid, bad, ..., valid
    let mut records = Vec::new();
    for (index, good) in valid.into_iter().enumerate() {
        records.push(good);
        if let Some(bad) = bad.get(index) {
            records.push(bad.record.clone());
        }
    }
    let total = records.len();
    let fed = feed(&bootstrap, &topics.input, records.clone()).await?;
    let worker = RunningWorker::start(scenario_config(&bootstrap, &topics, model_dir)?).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "all outputs", |o| o.len() >= total).await?;
    // Counted by reason (on acknowledgement, which may trail the reader by a moment).
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = worker.get("/metrics").await?.1;
        if bad.iter().all(|b| {
            metrics.contains(&format!(
                "credit_risk_dead_lettered_total{{reason=\"{}\"}} 1",
                b.reason
            ))
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for b in &bad {
        let line = format!(
            "credit_risk_dead_lettered_total{{reason=\"{}\"}} 1",
            b.reason
        );
        ensure!(metrics.contains(&line), "/metrics lacks `{line}`");
    }
    let report = worker.stop().await?;

    let by_trace: HashMap<&str, &Tailed> = outputs
        .iter()
        .filter_map(|o| Some((o.header("trace-id")?, o)))
        .collect();
    for b in &bad {
        let trace = String::from_utf8_lossy(&b.record.headers[0].1).into_owned();
        let dead = by_trace
            .get(trace.as_str())
            .ok_or_else(|| TestkitError::Failed(format!("{trace}: no output")))?;
        ensure!(
            dead.topic == topics.dead_letter,
            "{trace} went to {}",
            dead.topic
        );
        ensure!(dead.key == b.record.key, "{trace}: key changed");
        ensure!(dead.payload == b.record.payload, "{trace}: payload changed");
        ensure!(
            dead.header(headers::ERROR_REASON) == Some(b.reason.as_str()),
            "{trace}: error-reason {:?}, expected {}",
            dead.header(headers::ERROR_REASON),
            b.reason
        );
        ensure!(
            dead.header(headers::ERROR_FIELD) == Some(b.field),
            "{trace}: error-field {:?}, expected {}",
            dead.header(headers::ERROR_FIELD),
            b.field
        );
        ensure!(
            dead.header(headers::ERROR_MESSAGE)
                .is_some_and(|m| !m.is_empty()),
            "{trace}: no error-message"
        );
        ensure!(
            dead.header(headers::SOURCE_TOPIC) == Some(topics.input.as_str()),
            "{trace}: source-topic {:?}",
            dead.header(headers::SOURCE_TOPIC)
        );
        let position = fed
            .iter()
            .zip(&records)
            .find(|(_, r)| r.headers == b.record.headers)
            .map(|(f, _)| (f.partition.to_string(), f.offset.to_string()))
            .unwrap_or_default();
        ensure!(
            dead.header(headers::SOURCE_PARTITION) == Some(position.0.as_str())
                && dead.header(headers::SOURCE_OFFSET) == Some(position.1.as_str()),
            "{trace}: source position {:?}/{:?}, fed at {position:?}",
            dead.header(headers::SOURCE_PARTITION),
            dead.header(headers::SOURCE_OFFSET)
        );
    }
    let decided = outputs.iter().filter(|o| o.topic == topics.output).count();
    ensure!(
        decided == bad.len() + 1,
        "{decided} decisions for {} valid records",
        bad.len() + 1
    );
    ensure!(
        report.dead_lettered == bad.len() as u64 && report.decided == decided as u64,
        "report {report:?}"
    );
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(report)
}

/// Several versions of the same application, in order: decisions come out in the same order
/// per key (same partition, produced in consumption order by the idempotent producer).
pub async fn per_key_order_is_kept<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    keys: usize,
    versions: usize,
) -> Result<(), TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("order");
    topics.create(broker, 3).await?;
    let applicants = applicant_records(keys * versions)?;
    let records: Vec<FeedRecord> = (0..versions)
        .flat_map(|version| (0..keys).map(move |key| (version, key)))
        .zip(applicants)
        .map(|((version, key), mut record)| {
            record.key = Some(format!("app-{key:04}").into_bytes());
            record.headers = vec![("seq".to_owned(), version.to_string().into_bytes())];
            record
        })
        .collect();
    let fed = feed(&bootstrap, &topics.input, records).await?;
    let mut config = scenario_config(&bootstrap, &topics, model_dir)?;
    // Small batches: versions of a key are spread over many batches.
    config.batching.max_batch = 7;
    let worker = RunningWorker::start(config).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "decisions", |o| {
        o.len() >= keys * versions
    })
    .await?;
    worker.stop().await?;
    let mut by_key: BTreeMap<Vec<u8>, Vec<(i32, i64, String)>> = BTreeMap::new();
    for output in &outputs {
        by_key
            .entry(output.key.clone().unwrap_or_default())
            .or_default()
            .push((
                output.partition,
                output.offset,
                output.header("seq").unwrap_or_default().to_owned(),
            ));
    }
    ensure!(
        by_key.len() == keys,
        "{} keys decided, expected {keys}",
        by_key.len()
    );
    let expected: Vec<String> = (0..versions).map(|v| v.to_string()).collect();
    for (key, mut decisions) in by_key {
        decisions.sort();
        let partitions: HashSet<i32> = decisions.iter().map(|d| d.0).collect();
        ensure!(
            partitions.len() == 1,
            "{key:?} spread over partitions {partitions:?}"
        );
        let order: Vec<String> = decisions.into_iter().map(|d| d.2).collect();
        ensure!(
            order == expected,
            "{key:?}: versions decided in order {order:?}"
        );
    }
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(())
}

/// Shutdown in the middle of a backlog: `run` returns after finishing what it consumed; every
/// consumed record has its output, the committed offsets cover exactly those, and nothing
/// beyond them was answered.
pub async fn shutdown_drains_in_flight<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    backlog: usize,
) -> Result<RunReport, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("drain");
    topics.create(broker, 3).await?;
    let fed = feed(&bootstrap, &topics.input, applicant_records(backlog)?).await?;
    let mut config = scenario_config(&bootstrap, &topics, model_dir)?;
    config.batching.max_batch = 16;
    // Periodic commits would not be wrong, but the point is what the shutdown itself commits.
    config.kafka.commit_interval_ms = 3_600_000;
    let worker = RunningWorker::start(config).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    // Stop as soon as the worker reports progress (its own counter, not the tail: reading the
    // outputs back can lag the worker by the whole backlog on a slow broker).
    wait_for_consumed(&worker, 200).await?;
    let report = worker.stop().await?;
    ensure!(
        report.consumed < backlog as u64,
        "the worker consumed the whole backlog ({}) before the shutdown; use a larger one",
        report.consumed
    );
    let consumed = usize::try_from(report.consumed).unwrap_or(usize::MAX);
    read_until(
        &tail,
        &mut outputs,
        &format!("every consumed record's output (worker's report: {report:?})"),
        |o| o.len() >= consumed,
    )
    .await?;
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;
    let answered = distinct_keys(&outputs);
    ensure!(
        answered.len() == outputs.len(),
        "duplicates after a clean shutdown"
    );
    ensure!(
        answered.len() == consumed,
        "{} answered, {consumed} consumed",
        answered.len()
    );
    let committed = committed_offsets(&bootstrap, &topics.group, &topics.input).await?;
    ensure!(
        committed.values().sum::<i64>() == report.consumed as i64,
        "committed {committed:?} do not add up to the {consumed} consumed records \
         (worker's report: {report:?}; input end offsets {:?})",
        high_watermarks(&bootstrap, &topics.input).await?
    );
    for record in &fed {
        let below = committed
            .get(&record.partition)
            .is_some_and(|position| record.offset < *position);
        ensure!(
            below == answered.contains(&record.key),
            "{:?} at {}:{} answered={} but committed position {:?}",
            record.key.as_deref().map(String::from_utf8_lossy),
            record.partition,
            record.offset,
            !below,
            committed.get(&record.partition)
        );
    }
    Ok(report)
}

/// Delivery fails (the mock broker rejects every produce request until the producer's
/// message timeout): the worker stops with an error and commits nothing past the undelivered
/// records. Restarted once the broker recovers, it answers every record: nothing is lost.
pub async fn nothing_is_lost_when_delivery_fails(
    cluster: &EmbeddedCluster,
    model_dir: &Path,
    count: usize,
) -> Result<(), TestkitError> {
    let bootstrap = TestBroker::bootstrap_servers(cluster);
    let topics = Topics::unique("delivery-failure");
    topics.create(cluster, 2).await?;
    let fed = feed(&bootstrap, &topics.input, applicant_records(count)?).await?;

    cluster.fail_requests(
        RDKafkaApiKey::Produce,
        vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000],
    )?;
    let mut config = scenario_config(&bootstrap, &topics, model_dir)?;
    config
        .kafka
        .client
        .insert("producer.message.timeout.ms".to_owned(), "1500".to_owned());
    let failing = RunningWorker::start(config).await?;
    let outcome = tokio::time::timeout(OUTPUT_TIMEOUT, failing.join())
        .await
        .map_err(|_| {
            TestkitError::Failed("the worker kept running although delivery failed".into())
        })?;
    match outcome {
        Err(ServiceError::Pipeline(PipelineError::Failed { cause, report })) => {
            ensure!(cause.contains("not delivered"), "unexpected cause: {cause}");
            ensure!(report.delivery_failures > 0, "report {report:?}");
        }
        other => {
            return Err(TestkitError::Failed(format!(
                "expected a delivery failure, got {other:?}"
            )))
        }
    }
    let committed = committed_offsets(&bootstrap, &topics.group, &topics.input).await?;
    ensure!(
        committed.values().all(|position| *position == 0),
        "offsets {committed:?} were committed although nothing was delivered"
    );

    cluster.clear_request_errors(RDKafkaApiKey::Produce)?;
    let config = scenario_config(&bootstrap, &topics, model_dir)?;
    let outputs = answer_all_after_restart(config, &topics, count).await?;
    ensure!(distinct_keys(&outputs).len() == count, "answers missing");
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(())
}

/// Polls `/readyz` until its status satisfies `wanted`, failing after [`OUTPUT_TIMEOUT`];
/// returns the last body.
async fn wait_for_readiness(
    worker: &RunningWorker,
    what: &str,
    wanted: impl Fn(u16) -> bool,
) -> Result<String, TestkitError> {
    let started = tokio::time::Instant::now();
    loop {
        let (status, body) = worker.get("/readyz").await?;
        if wanted(status) {
            return Ok(body);
        }
        ensure!(
            started.elapsed() < OUTPUT_TIMEOUT,
            "/readyz still answers {status} ({}) after {OUTPUT_TIMEOUT:?}; wanted {what}",
            body.trim()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A broker outage on a one-broker cluster: while the broker is down the worker stays alive
/// (`/healthz` 200) but not ready (`/readyz` names the lost broker); once it is back the worker
/// is ready again and answers the records fed during and after the outage. Every record is
/// answered and committed.
pub async fn readiness_follows_the_broker(
    cluster: &EmbeddedCluster,
    model_dir: &Path,
    count: usize,
) -> Result<(), TestkitError> {
    const BROKER: i32 = 1;
    let bootstrap = TestBroker::bootstrap_servers(cluster);
    let topics = Topics::unique("outage");
    topics.create(cluster, 2).await?;
    let records = applicant_records(count)?;
    let (before, after) = records.split_at(count / 2);
    let mut fed = feed(&bootstrap, &topics.input, before.to_vec()).await?;
    let worker = RunningWorker::start(scenario_config(&bootstrap, &topics, model_dir)?).await?;
    worker.wait_ready(OUTPUT_TIMEOUT).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "the answers before the outage", |o| {
        distinct_keys(o).len() >= before.len()
    })
    .await?;

    cluster.broker_down(BROKER)?;
    let body = wait_for_readiness(&worker, "503 while the broker is down", |status| {
        status != 200
    })
    .await?;
    // Not ready because of the broker, while the partitions are still assigned (librdkafka
    // keeps them until the group session expires), not merely because they were lost later.
    ensure!(
        body.contains("broker_reachable=false") && !body.contains("assigned_partitions=0"),
        "/readyz went 503 without naming the lost broker while partitions were assigned: {}",
        body.trim()
    );
    let (alive, _) = worker.get("/healthz").await?;
    ensure!(alive == 200, "/healthz answered {alive} during the outage");

    cluster.broker_up(BROKER)?;
    wait_for_readiness(&worker, "200 once the broker is back", |status| {
        status == 200
    })
    .await?;
    fed.extend(feed(&bootstrap, &topics.input, after.to_vec()).await?);
    read_until(&tail, &mut outputs, "every record's answer", |o| {
        distinct_keys(o).len() >= count
    })
    .await?;
    worker.stop().await?;
    ensure!(
        distinct_keys(&outputs).len() == count,
        "{} of {count} records answered",
        distinct_keys(&outputs).len()
    );
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(())
}

/// The configuration of an exactly-once worker for `topics`.
pub fn exactly_once_config(
    bootstrap: &str,
    topics: &Topics,
    model_dir: &Path,
) -> Result<Config, TestkitError> {
    let mut config = scenario_config(bootstrap, topics, model_dir)?;
    config.kafka.exactly_once = true;
    config.kafka.transactional_id = format!("{}-replica-0", topics.group);
    config.validate()?;
    Ok(config)
}

/// The value of the sample `series` (name and labels, as printed) in a `/metrics` body.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Exactly-once mode end to end: every record (valid and invalid) gets exactly one output,
/// read with `read_committed` (librdkafka's default isolation, the tail's); the outputs were
/// committed in transactions, and the consumer made no offset commit of its own (in this mode
/// the positions travel inside the transactions). Returns the number of transactions.
pub async fn exactly_once_answers_each_record_once<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    count: usize,
) -> Result<u64, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("exactly-once");
    topics.create(broker, 2).await?;
    let mut records = applicant_records(count)?;
    for record in records.iter_mut().step_by(10) {
        record.payload = Some(b"{not json".to_vec());
    }
    feed(&bootstrap, &topics.input, records).await?;
    let worker = RunningWorker::start(exactly_once_config(&bootstrap, &topics, model_dir)?).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "every record's output", |o| {
        distinct_keys(o).len() >= count
    })
    .await?;
    let (_, metrics) = worker.get("/metrics").await?;
    let report = worker.stop().await?;
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;
    ensure!(
        outputs.len() == count && distinct_keys(&outputs).len() == count,
        "{} outputs for {} distinct keys, {count} records fed",
        outputs.len(),
        distinct_keys(&outputs).len()
    );
    let dead = outputs
        .iter()
        .filter(|o| o.topic == topics.dead_letter)
        .count();
    ensure!(
        dead == count.div_ceil(10),
        "{dead} dead letters, expected {}",
        count.div_ceil(10)
    );
    let committed = sample(
        &metrics,
        "credit_risk_transactions_total{result=\"committed\"}",
    );
    ensure!(
        committed.is_some_and(|n| n >= 1.0),
        "no committed transaction counted: {committed:?}"
    );
    let aborted = sample(
        &metrics,
        "credit_risk_transactions_total{result=\"aborted\"}",
    );
    ensure!(aborted == Some(0.0), "aborted transactions: {aborted:?}");
    for result in ["ok", "error"] {
        let commits = sample(
            &metrics,
            &format!("credit_risk_offset_commits_total{{result=\"{result}\"}}"),
        );
        ensure!(
            commits == Some(0.0),
            "the consumer committed offsets itself ({result}: {commits:?}) in exactly-once mode"
        );
    }
    ensure!(
        report.decided + report.dead_lettered == count as u64,
        "report {report:?}"
    );
    Ok(committed.unwrap_or(0.0) as u64)
}

/// A fenced exactly-once replica (the broker answers its transaction commit with
/// `PRODUCER_FENCED`, as it does once another process has taken the same
/// `kafka.transactional_id`) stops with an error naming the failed transaction instead of
/// carrying on; a healthy replica started afterwards answers every record.
pub async fn a_fenced_exactly_once_worker_stops(
    cluster: &EmbeddedCluster,
    model_dir: &Path,
    count: usize,
) -> Result<String, TestkitError> {
    let bootstrap = TestBroker::bootstrap_servers(cluster);
    let topics = Topics::unique("fenced");
    topics.create(cluster, 2).await?;
    feed(&bootstrap, &topics.input, applicant_records(count)?).await?;
    cluster.fail_requests(
        RDKafkaApiKey::EndTxn,
        vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 1_000],
    )?;
    let fenced = RunningWorker::start(exactly_once_config(&bootstrap, &topics, model_dir)?).await?;
    let outcome = tokio::time::timeout(OUTPUT_TIMEOUT, fenced.join())
        .await
        .map_err(|_| TestkitError::Failed("a fenced worker kept running".into()))?;
    let cause = match outcome {
        Err(ServiceError::Pipeline(PipelineError::Failed { cause, .. })) => cause,
        other => {
            return Err(TestkitError::Failed(format!(
                "expected the fenced worker to fail, got {other:?}"
            )))
        }
    };
    ensure!(
        cause.contains("transaction commit failed"),
        "the failure does not name the transaction: {cause}"
    );
    cluster.clear_request_errors(RDKafkaApiKey::EndTxn)?;
    let config = exactly_once_config(&bootstrap, &topics, model_dir)?;
    answer_all_after_restart(config, &topics, count).await?;
    Ok(cause)
}

/// Exactly-once mode against a broker without transactions (Tansu 0.6 refuses `EndTxn`): the
/// worker must not fall back to something weaker; it stops with an error that names the
/// transaction step that failed. Returns that error.
pub async fn exactly_once_without_broker_transactions_stops<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
) -> Result<String, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("no-transactions");
    topics.create(broker, 2).await?;
    feed(&bootstrap, &topics.input, applicant_records(50)?).await?;
    let config = exactly_once_config(&bootstrap, &topics, model_dir)?;
    let message = match RunningWorker::start(config).await {
        Err(error) => error.to_string(),
        Ok(worker) => match tokio::time::timeout(OUTPUT_TIMEOUT, worker.join()).await {
            Err(_) => {
                return Err(TestkitError::Failed(
                    "the exactly-once worker kept running on a broker without transactions".into(),
                ))
            }
            Ok(Ok(report)) => {
                return Err(TestkitError::Failed(format!(
                    "the exactly-once worker stopped without an error: {report:?}"
                )))
            }
            Ok(Err(error)) => error.to_string(),
        },
    };
    ensure!(
        message.contains("transaction"),
        "the error does not name the transactions: {message}"
    );
    Ok(message)
}

/// Starts a worker with `config` (the restart after a failure), reads the output topics
/// until each of the `count` records fed has an output, stops the worker, and returns what
/// was read.
async fn answer_all_after_restart(
    config: Config,
    topics: &Topics,
    count: usize,
) -> Result<Vec<Tailed>, TestkitError> {
    let bootstrap = config.kafka.brokers.clone();
    let worker = RunningWorker::start(config).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(
        &tail,
        &mut outputs,
        "every record's output after the restart",
        |o| distinct_keys(o).len() >= count,
    )
    .await?;
    worker.stop().await?;
    Ok(outputs)
}

/// A second replica joins mid-stream: the first gives up half its partitions (draining and
/// committing them in the revocation callback), the second continues where the first stopped.
/// Every record is answered.
///
/// On a broker that accepts commits while a rebalance is being prepared (Kafka does, for the
/// current generation), the revocation commit makes the handover exact: pass
/// `allow_duplicates = false` to check that no record is answered twice. librdkafka's mock
/// cluster rejects those commits (`REBALANCE_IN_PROGRESS`), so there the new owner restarts
/// from the last periodic commit and some records are answered twice — allowed by
/// at-least-once, and what `allow_duplicates = true` accepts. Returns the number of duplicates.
pub async fn rebalance_hands_over_without_loss<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    count: usize,
    allow_duplicates: bool,
) -> Result<usize, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("rebalance");
    topics.create(broker, 4).await?;
    let config = scenario_config(&bootstrap, &topics, model_dir)?;
    let first = RunningWorker::start(config.clone()).await?;
    first.wait_ready(OUTPUT_TIMEOUT).await?;
    // Feed slowly enough that the stream is still flowing when the second replica arrives.
    let records = applicant_records(count)?;
    let (feed_bootstrap, feed_topic) = (bootstrap.clone(), topics.input.clone());
    let feeding = tokio::task::spawn_blocking(move || {
        feed_blocking(
            &feed_bootstrap,
            &feed_topic,
            &records,
            Some(count as f64 / 8.0),
        )
    });
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "the first replica's outputs", |o| {
        o.len() >= count / 8
    })
    .await?;
    let second = RunningWorker::start(config).await?;
    read_until(&tail, &mut outputs, "every record's output", |o| {
        distinct_keys(o).len() >= count
    })
    .await?;
    let fed = feeding
        .await
        .map_err(|e| TestkitError::Task(e.to_string()))??;
    let second_report = second.stop().await?;
    let first_report = first.stop().await?;
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;
    ensure!(
        second_report.consumed > 0,
        "the second replica never got partitions: {second_report:?}"
    );
    let answered = distinct_keys(&outputs).len();
    ensure!(answered == count, "{answered} of {count} records answered");
    let duplicates = outputs.len() - answered;
    ensure!(
        allow_duplicates || duplicates == 0,
        "{duplicates} records answered twice (first {first_report:?}, second {second_report:?})"
    );
    if allow_duplicates {
        // Stopping one replica rebalances the other, whose revocation commit the mock rejects:
        // its last records may stay uncommitted (to be answered again after a restart), but
        // nothing may be committed that was not answered.
        let committed = committed_offsets(&bootstrap, &topics.group, &topics.input).await?;
        let ends = end_offsets(&fed);
        ensure!(
            committed.iter().all(|(partition, position)| ends
                .get(partition)
                .is_some_and(|end| position <= end)),
            "committed offsets {committed:?} beyond the input's end offsets {ends:?}"
        );
    } else {
        ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    }
    Ok(duplicates)
}

/// [`rebalance_hands_over_without_loss`] on a broker where the handover must also be exact
/// (no record answered twice).
pub async fn rebalance_hands_over_without_loss_or_duplicates<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    count: usize,
) -> Result<(), TestkitError> {
    rebalance_hands_over_without_loss(broker, model_dir, count, false)
        .await
        .map(|_| ())
}

/// `count` records through a worker whose reasons are `mode`: each decision that `mode` wants
/// carries exactly the reasons an [`Explainer`] on the bundle's own model and reference gives
/// its applicant (fields, order, values and contributions), the others an empty list, and with
/// reasons off no decision has the field.
pub async fn decisions_carry_the_models_own_reasons<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    count: usize,
    mode: ReasonsMode,
) -> Result<usize, TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("reasons");
    topics.create(broker, 2).await?;
    let records = bundle_records(model_dir, count)?;
    let model = |e: &dyn std::fmt::Display| TestkitError::Model(e.to_string());
    let loaded = loader::load(&LoadOptions {
        dir: model_dir,
        ort_dylib: None,
        threshold: None,
        intra_threads: 1,
    })
    .map_err(|e| model(&e))?;
    let schema = &loaded.schema;
    let mut by_key = HashMap::new();
    for record in &records {
        let applicant = Applicant::from_json(schema, record.payload.as_deref().unwrap_or_default())
            .map_err(|e| model(&e))?;
        by_key.insert(record.key.clone().unwrap_or_default(), applicant);
    }
    fed_and_decided(&bootstrap, &topics, records, model_dir, mode, count)
        .await?
        .into_iter()
        .try_fold(0, |explained, (key, decision)| {
            let applicant = by_key
                .get(key.as_bytes())
                .ok_or_else(|| TestkitError::Failed(format!("decision for unknown key {key}")))?;
            let expected = expected_reasons(&loaded, applicant, decision.probability_bad, mode)?;
            match (decision.reasons.as_deref(), expected) {
                (None, None) => Ok(explained),
                (Some(got), Some(expected)) => {
                    ensure!(
                        got.len() == expected.len(),
                        "{key}: {} reasons published, {} expected: {got:?}",
                        got.len(),
                        expected.len()
                    );
                    for (reason, (field, contribution)) in got.iter().zip(&expected) {
                        let wanted = &schema.fields()[*field];
                        ensure!(
                            reason.field == wanted.name
                                && reason.label == wanted.label
                                && reason.code == wanted.reason_code
                                && reason.statement == wanted.reason_statement
                                && (f64::from(reason.contribution) - contribution).abs() < 1e-4,
                            "{key}: published {reason:?}, expected `{}` contributing {contribution}",
                            wanted.name
                        );
                        let value = applicant.values()[*field];
                        let on_wire = credit_core::applicant::wire(wanted, value)
                            .map(|w| serde_json::to_value(w).unwrap_or_default())
                            .unwrap_or_default();
                        ensure!(reason.value == on_wire, "{key}: value of {reason:?}");
                    }
                    Ok(explained + usize::from(!got.is_empty()))
                }
                (got, expected) => Err(TestkitError::Failed(format!(
                    "{key} (mode {}): published {got:?}, expected {expected:?}",
                    mode.as_str()
                ))),
            }
        })
}

/// Feeds `records`, runs a worker with reasons `mode` over them and returns each decision by
/// key.
async fn fed_and_decided(
    bootstrap: &str,
    topics: &Topics,
    records: Vec<FeedRecord>,
    model_dir: &Path,
    mode: ReasonsMode,
    count: usize,
) -> Result<Vec<(String, OwnedDecision)>, TestkitError> {
    feed(bootstrap, &topics.input, records).await?;
    let mut config = scenario_config(bootstrap, topics, model_dir)?;
    config.reasons.mode = mode;
    let worker = RunningWorker::start(config).await?;
    let tail = Tail::open(bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "decisions", |o| o.len() >= count).await?;
    worker.stop().await?;
    outputs
        .iter()
        .map(|output| {
            let key = output.key_text().unwrap_or_default().to_owned();
            let decision = OwnedDecision::from_json(output.payload.as_deref().unwrap_or_default())
                .map_err(|e| TestkitError::Failed(format!("decision of {key} is not JSON: {e}")))?;
            Ok((key, decision))
        })
        .collect()
}

/// The reasons `mode` gives an applicant scored `probability_bad` by `loaded`, computed apart
/// from the worker: the positive contributions, largest first, at most the default number.
fn expected_reasons(
    loaded: &LoadedModel,
    applicant: &Applicant,
    probability_bad: f32,
    mode: ReasonsMode,
) -> Result<Option<Vec<(usize, f64)>>, TestkitError> {
    if mode == ReasonsMode::Off {
        return Ok(None);
    }
    if !mode.wants(probability_bad, loaded.threshold) {
        return Ok(Some(Vec::new()));
    }
    let model = |e: &dyn std::fmt::Display| TestkitError::Model(e.to_string());
    let reference = loaded
        .reference
        .as_ref()
        .ok_or_else(|| TestkitError::Model("the bundle has no reference".into()))?;
    let mut explainer =
        Explainer::new(&loaded.preprocessor, reference, DEFAULT_TOP).map_err(|e| model(&e))?;
    let row = loaded
        .preprocessor
        .transform_batch(std::slice::from_ref(applicant))
        .map_err(|e| model(&e))?;
    let mut scorer = loaded.sessions.open(1).map_err(|e| model(&e))?;
    explainer
        .reasons_of_row(&mut scorer, &row)
        .map(Some)
        .map_err(|e| model(&e))
}

/// Copies the served artifacts of `from` into `to`, the manifest last, the way an operator
/// deploys a new model before sending SIGHUP.
pub fn deploy_model(from: &Path, to: &Path) -> Result<(), TestkitError> {
    let (from, to) = (ArtifactPaths::new(from), ArtifactPaths::new(to));
    for (source, target) in [
        (from.schema(), to.schema()),
        (from.json_schema(), to.json_schema()),
        (from.reference(), to.reference()),
        (from.preprocessor(), to.preprocessor()),
        (from.model(), to.model()),
        (from.manifest(), to.manifest()),
    ] {
        std::fs::copy(&source, &target).map_err(|e| {
            TestkitError::Model(format!(
                "copy {} to {}: {e}",
                source.display(),
                target.display()
            ))
        })?;
    }
    Ok(())
}

/// What the model in `dir` answers for each of `applicants`, scored by its own preprocessor:
/// the probability a decision from that model must carry.
fn probabilities_of(dir: &Path, applicants: &[Applicant]) -> Result<Vec<f32>, TestkitError> {
    let paths = ArtifactPaths::new(dir);
    let schema = Schema::load(&paths.schema()).map_err(|e| TestkitError::Model(e.to_string()))?;
    let preprocessor = Preprocessor::load(&paths.preprocessor(), &schema)
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    let mut scorer =
        OnnxScorer::load(&paths.model(), 1).map_err(|e| TestkitError::Model(e.to_string()))?;
    let features = preprocessor
        .transform_batch(applicants)
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    let mut probabilities = Vec::new();
    scorer
        .score_into(&features, applicants.len(), &mut probabilities)
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    Ok(probabilities)
}

/// Feeds `records` and waits until `total` outputs were read in all.
async fn feed_and_read(
    bootstrap: &str,
    topics: &Topics,
    records: Vec<FeedRecord>,
    tail: &Tail,
    outputs: &mut Vec<Tailed>,
    total: usize,
) -> Result<Vec<Fed>, TestkitError> {
    let fed = feed(bootstrap, &topics.input, records).await?;
    read_until(tail, outputs, &format!("{total} outputs"), |o| {
        o.len() >= total
    })
    .await?;
    Ok(fed)
}

/// The value of the sample `series` in a `/metrics` body.
fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Model reloads while the worker runs (what SIGHUP triggers), served from a batch boundary.
///
/// The worker starts with the model in `model_dir`. Three phases:
/// 1. model A answers `per_phase` records;
/// 2. model B (own threshold) is deployed and reloaded while the worker is idle, then
///    `per_phase` more records arrive: `model_info` shows B before any of them is scored, and
///    B answers all of them;
/// 3. model C — whose preprocessor was fitted on other data, so its features differ from A's
///    and B's — is deployed and reloaded in the middle of a backlog of `10 × per_phase`
///    records.
///
/// Checks: every input answered exactly once and committed; each decision's version (payload
/// and header) and threshold are those of the model that produced its probability, i.e. the
/// probability equals what that model computes from its *own* preprocessing of the applicant
/// (a batch preprocessed for one model and scored by another fails this); in every output
/// partition the versions only move forward (A… B… C…); `model_info` shows C alone at the end.
pub async fn reload_swaps_the_model_at_a_batch_boundary<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    per_phase: usize,
) -> Result<(), TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("reload");
    topics.create(broker, 3).await?;
    // Each model also kept in a directory of its own, to compute what it must answer.
    let staged = |name: &str| model_dir.join(format!("staged-{name}"));
    std::fs::create_dir_all(staged("a")).map_err(|e| TestkitError::Model(e.to_string()))?;
    deploy_model(model_dir, &staged("a"))?;
    let version_b = write_test_model(&staged("b"), 0.25, 1_001)?;
    let version_c = write_test_model_fitted_on(&staged("c"), 0.75, 1_002, 40)?;

    let total = 12 * per_phase;
    let mut records = applicant_records(total)?;
    let phase3 = records.split_off(2 * per_phase);
    let phase2 = records.split_off(per_phase);
    let phase1 = records;
    let schema = shipped_schema()?;
    let mut applicants: HashMap<String, Applicant> = HashMap::new();
    for record in phase1.iter().chain(&phase2).chain(&phase3) {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let applicant =
            Applicant::from_json(&schema, record.payload.as_deref().unwrap_or_default())
                .map_err(|e| TestkitError::Failed(format!("test record {key}: {e}")))?;
        applicants.insert(key, applicant);
    }

    let worker = RunningWorker::start(scenario_config(&bootstrap, &topics, model_dir)?).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    let mut fed =
        feed_and_read(&bootstrap, &topics, phase1, &tail, &mut outputs, per_phase).await?;
    let (_, metrics) = worker.get("/metrics").await?;
    let version_a = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("credit_risk_model_info{version=\"")?
                .split('"')
                .next()
        })
        .map(str::to_owned)
        .ok_or_else(|| TestkitError::Failed(format!("no model_info in:\n{metrics}")))?;

    // Phase 2: reload while idle; the swap shows before the next record is scored.
    deploy_model(&staged("b"), model_dir)?;
    worker.reload();
    wait_for_metric(&worker, "credit_risk_model_reloads_total{result=\"ok\"}", 1).await?;
    wait_for_metric(
        &worker,
        &format!("credit_risk_model_info{{version=\"{version_b}\"}}"),
        1,
    )
    .await?;
    let (_, metrics) = worker.get("/metrics").await?;
    ensure!(
        !metrics.contains(&format!("version=\"{version_a}\"")),
        "model_info still shows {version_a} after the swap:\n{metrics}"
    );
    fed.extend(
        feed_and_read(
            &bootstrap,
            &topics,
            phase2,
            &tail,
            &mut outputs,
            2 * per_phase,
        )
        .await?,
    );

    // Phase 3: reload in the middle of a backlog, so the new model rides on a batch full of
    // records rather than on an empty one. The backlog is sent in two halves and the second
    // only once the reload is confirmed: on a fast machine the worker can clear the first half
    // before the new model has loaded, and the phase would then have no records left for C.
    deploy_model(&staged("c"), model_dir)?;
    let mut phase3_first = phase3;
    let phase3_second = phase3_first.split_off(phase3_first.len() / 2);
    let (feed_bootstrap, feed_topic) = (bootstrap.clone(), topics.input.clone());
    let feeding = tokio::task::spawn_blocking(move || {
        feed_blocking(&feed_bootstrap, &feed_topic, &phase3_first, None)
    });
    wait_for_consumed(&worker, (2 * per_phase + per_phase / 2) as u64).await?;
    worker.reload();
    fed.extend(
        feeding
            .await
            .map_err(|e| TestkitError::Task(e.to_string()))??,
    );
    wait_for_metric(&worker, "credit_risk_model_reloads_total{result=\"ok\"}", 2).await?;
    fed.extend(feed(&bootstrap, &topics.input, phase3_second).await?);
    read_until(&tail, &mut outputs, "every output", |o| o.len() >= total).await?;
    let (_, metrics) = worker.get("/metrics").await?;
    worker.stop().await?;
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;

    ensure!(
        metric_value(
            &metrics,
            &format!("credit_risk_model_info{{version=\"{version_c}\"}}")
        ) == Some(1.0)
            && metrics.matches("credit_risk_model_info{").count() == 1,
        "model_info does not show {version_c} alone:\n{metrics}"
    );
    ensure!(
        metric_value(
            &metrics,
            "credit_risk_model_reloads_total{result=\"failed\"}"
        ) == Some(0.0),
        "a reload failed:\n{metrics}"
    );
    ensure!(
        outputs.len() == total,
        "{} outputs for {total} records",
        outputs.len()
    );
    ensure!(
        distinct_keys(&outputs).len() == total,
        "some records were answered twice, others not at all"
    );

    // What each model answers, by version, in key order.
    let keys: Vec<String> = {
        let mut keys: Vec<String> = applicants.keys().cloned().collect();
        keys.sort();
        keys
    };
    let ordered: Vec<Applicant> = keys.iter().map(|key| applicants[key].clone()).collect();
    let mut expected: HashMap<&str, HashMap<&str, f32>> = HashMap::new();
    for (version, dir) in [
        (version_a.as_str(), staged("a")),
        (version_b.as_str(), staged("b")),
        (version_c.as_str(), staged("c")),
    ] {
        let probabilities = probabilities_of(&dir, &ordered)?;
        expected.insert(
            version,
            keys.iter().map(String::as_str).zip(probabilities).collect(),
        );
    }
    let rank_of = |version: &str| {
        [&version_a, &version_b, &version_c]
            .iter()
            .position(|v| v.as_str() == version)
    };
    let mut by_partition: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    let mut phase3_versions = HashSet::new();
    for output in &outputs {
        let key = output.key_text().unwrap_or_default();
        ensure!(
            output.topic == topics.output,
            "{key} went to {}",
            output.topic
        );
        let decision = OwnedDecision::from_json(output.payload.as_deref().unwrap_or_default())
            .map_err(|e| TestkitError::Failed(format!("decision of {key} is not JSON: {e}")))?;
        let version = decision.model_version.as_str();
        let Some(rank) = rank_of(version) else {
            return Err(TestkitError::Failed(format!(
                "{key}: unknown version {version}"
            )));
        };
        ensure!(
            output.header(headers::MODEL_VERSION) == Some(version),
            "{key}: model-version header {:?}, payload {version}",
            output.header(headers::MODEL_VERSION)
        );
        let index: usize = key
            .trim_start_matches("app-")
            .parse()
            .map_err(|_| TestkitError::Failed(format!("unexpected key {key}")))?;
        let phase = (index - 1) / per_phase;
        match phase {
            0 => ensure!(version == version_a, "{key} (phase 1) decided by {version}"),
            1 => ensure!(version == version_b, "{key} (phase 2) decided by {version}"),
            _ => {
                ensure!(version != version_a, "{key} (phase 3) decided by {version}");
                phase3_versions.insert(rank);
            }
        }
        let thresholds = [None, Some(0.25), Some(0.75)];
        if let Some(threshold) = thresholds[rank] {
            ensure!(
                decision.threshold == threshold,
                "{key}: threshold {} with {version}",
                decision.threshold
            );
        }
        let model_says = expected[version]
            .get(key)
            .copied()
            .ok_or_else(|| TestkitError::Failed(format!("{key}: not an input key")))?;
        // Batch composition may move ONNX Runtime's results in the last bits; another model or
        // another model's preprocessing moves them by orders of magnitude more.
        let same = (decision.probability_bad - model_says).abs() < 1e-5;
        ensure!(
            same,
            "{key}: probability {} labelled {version}, which answers {model_says}: scored by \
             another model or with another model's preprocessing",
            decision.probability_bad
        );
        by_partition
            .entry(output.partition)
            .or_default()
            .push((output.offset, rank));
    }
    ensure!(
        phase3_versions.len() == 2,
        "the mid-stream reload was not seen in the middle of phase 3 (versions {phase3_versions:?})"
    );
    for (partition, mut decided) in by_partition {
        decided.sort();
        ensure!(
            decided.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "output partition {partition}: model versions go back and forth"
        );
    }
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(())
}

/// Reloads that must fail — a truncated ONNX file, then a preprocessor from another training
/// run — are counted as failed and keep the current model: records before, between and after
/// are all answered by it, exactly once, and committed.
pub async fn a_failed_reload_keeps_the_current_model<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    model_version: &str,
    per_phase: usize,
) -> Result<(), TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("bad-reload");
    topics.create(broker, 2).await?;
    let mut records = applicant_records(3 * per_phase)?;
    let phase3 = records.split_off(2 * per_phase);
    let phase2 = records.split_off(per_phase);
    let phase1 = records;
    let worker = RunningWorker::start(scenario_config(&bootstrap, &topics, model_dir)?).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    let mut fed =
        feed_and_read(&bootstrap, &topics, phase1, &tail, &mut outputs, per_phase).await?;

    let paths = ArtifactPaths::new(model_dir);
    let good_model =
        std::fs::read(paths.model()).map_err(|e| TestkitError::Model(e.to_string()))?;
    std::fs::write(paths.model(), &good_model[..good_model.len() / 3])
        .map_err(|e| TestkitError::Model(e.to_string()))?;
    worker.reload();
    wait_for_metric(
        &worker,
        "credit_risk_model_reloads_total{result=\"failed\"}",
        1,
    )
    .await?;
    fed.extend(
        feed_and_read(
            &bootstrap,
            &topics,
            phase2,
            &tail,
            &mut outputs,
            2 * per_phase,
        )
        .await?,
    );

    // A valid model file again, but with a preprocessor fitted on other data.
    let other = model_dir.join("other-run");
    write_test_model_fitted_on(&other, 0.5, 1_003, 300)?;
    std::fs::write(paths.model(), &good_model).map_err(|e| TestkitError::Model(e.to_string()))?;
    std::fs::copy(
        ArtifactPaths::new(&other).preprocessor(),
        paths.preprocessor(),
    )
    .map_err(|e| TestkitError::Model(e.to_string()))?;
    worker.reload();
    wait_for_metric(
        &worker,
        "credit_risk_model_reloads_total{result=\"failed\"}",
        2,
    )
    .await?;
    fed.extend(
        feed_and_read(
            &bootstrap,
            &topics,
            phase3,
            &tail,
            &mut outputs,
            3 * per_phase,
        )
        .await?,
    );
    let (_, metrics) = worker.get("/metrics").await?;
    worker.stop().await?;
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;

    for expected in [
        format!("credit_risk_model_info{{version=\"{model_version}\"}} 1"),
        "credit_risk_model_reloads_total{result=\"failed\"} 2".to_owned(),
        "credit_risk_model_reloads_total{result=\"ok\"} 0".to_owned(),
    ] {
        ensure!(
            metrics.contains(&expected),
            "/metrics lacks `{expected}`:\n{metrics}"
        );
    }
    let total = 3 * per_phase;
    ensure!(
        outputs.len() == total,
        "{} outputs for {total} records",
        outputs.len()
    );
    ensure!(
        distinct_keys(&outputs).len() == total,
        "answers missing or duplicated"
    );
    for output in &outputs {
        let key = output.key_text().unwrap_or_default();
        ensure!(
            output.topic == topics.output,
            "{key} went to {}",
            output.topic
        );
        let decision = OwnedDecision::from_json(output.payload.as_deref().unwrap_or_default())
            .map_err(|e| TestkitError::Failed(format!("decision of {key} is not JSON: {e}")))?;
        ensure!(
            decision.model_version == model_version
                && output.header(headers::MODEL_VERSION) == Some(model_version),
            "{key} decided by {decision:?}"
        );
    }
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(())
}

/// A reload keeps every record valid that producers may already send. The worker serves the
/// bundle in `model_dir`; then a bundle whose schema adds a *required* field is deployed and
/// refused on reload (counted as `incompatible_schema`, the current model keeps answering);
/// then one whose schema only adds an *optional* field is taken. Every record before, between
/// and after is answered exactly once, by the model in service, and committed.
pub async fn a_reload_takes_only_a_schema_that_accepts_every_current_record<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    model_version: &str,
    per_phase: usize,
) -> Result<(), TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("schema-reload");
    topics.create(broker, 2).await?;
    let paths = ArtifactPaths::new(model_dir);
    let current = Schema::load(&paths.schema()).map_err(|e| TestkitError::Model(e.to_string()))?;
    let applicants = example_applicants(&current)?;
    let with_field = |required: bool| {
        let text = format!(
            "{}\n[[field]]\nname = \"added_in_test\"\nlabel = \"Added in a test\"\ntype = \"boolean\"\nrequired = {required}\n",
            current.source()
        );
        Schema::parse(&text, "test schema").map_err(|e| TestkitError::Model(e.to_string()))
    };
    // The new schemas read the same applicants, the added field missing.
    let widen = |schema: &Schema| -> Result<Vec<Applicant>, TestkitError> {
        applicants
            .iter()
            .take(500)
            .map(|applicant| {
                let mut values = applicant.values().to_vec();
                values.push(credit_core::applicant::AttributeValue::Missing);
                Applicant::from_values(schema, values)
                    .or_else(|_| {
                        let mut values = applicant.values().to_vec();
                        values.push(credit_core::applicant::AttributeValue::Categorical(0));
                        Applicant::from_values(schema, values)
                    })
                    .map_err(|e| TestkitError::Model(e.to_string()))
            })
            .collect()
    };
    let required = with_field(true)?;
    let optional = with_field(false)?;
    let narrowing = model_dir.join("staged-required");
    write_test_bundle(&narrowing, &required, &widen(&required)?, 0.5, 2_001)?;
    let widening = model_dir.join("staged-optional");
    let version_widened = write_test_bundle(&widening, &optional, &widen(&optional)?, 0.5, 2_002)?;

    let mut records = bundle_records(model_dir, 3 * per_phase)?;
    let phase3 = records.split_off(2 * per_phase);
    let phase2 = records.split_off(per_phase);
    let phase1 = records;
    let worker = RunningWorker::start(scenario_config(&bootstrap, &topics, model_dir)?).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    let mut fed =
        feed_and_read(&bootstrap, &topics, phase1, &tail, &mut outputs, per_phase).await?;

    deploy_model(&narrowing, model_dir)?;
    worker.reload();
    wait_for_metric(
        &worker,
        "credit_risk_model_reloads_total{result=\"incompatible_schema\"}",
        1,
    )
    .await?;
    let (status, served) = worker.get("/schema").await?;
    ensure!(
        status == 200 && !served.contains("added_in_test"),
        "/schema changed to a refused schema: {status} {served}"
    );
    fed.extend(
        feed_and_read(
            &bootstrap,
            &topics,
            phase2,
            &tail,
            &mut outputs,
            2 * per_phase,
        )
        .await?,
    );

    deploy_model(&widening, model_dir)?;
    worker.reload();
    wait_for_metric(&worker, "credit_risk_model_reloads_total{result=\"ok\"}", 1).await?;
    let (_, served) = worker.get("/schema").await?;
    ensure!(
        served.contains("added_in_test"),
        "/schema does not show the accepted schema: {served}"
    );
    fed.extend(
        feed_and_read(
            &bootstrap,
            &topics,
            phase3,
            &tail,
            &mut outputs,
            3 * per_phase,
        )
        .await?,
    );
    worker.stop().await?;
    tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
        .await?;

    let total = 3 * per_phase;
    ensure!(
        outputs.len() == total && distinct_keys(&outputs).len() == total,
        "{} outputs ({} keys) for {total} records",
        outputs.len(),
        distinct_keys(&outputs).len()
    );
    let mut versions: Vec<(usize, String)> = Vec::new();
    for output in &outputs {
        let key = output.key_text().unwrap_or_default();
        ensure!(
            output.topic == topics.output,
            "{key} went to {}",
            output.topic
        );
        let decision = OwnedDecision::from_json(output.payload.as_deref().unwrap_or_default())
            .map_err(|e| TestkitError::Failed(format!("decision of {key} is not JSON: {e}")))?;
        let index: usize = key.trim_start_matches("app-").parse().unwrap_or(0);
        versions.push((index, decision.model_version));
    }
    for (index, version) in &versions {
        let expected = if *index <= 2 * per_phase {
            model_version
        } else {
            version_widened.as_str()
        };
        ensure!(
            version == expected,
            "app-{index:06} decided by {version}, expected {expected}"
        );
    }
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    Ok(())
}

/// With `model.reserve_inference_core`: every record is decided and committed; during the run
/// the inference thread runs alone on the last core the process may use and no other thread of
/// the process may use that core; after it, every thread may use all the cores again. With
/// fewer than 2 cores the worker runs unpinned, and only the decisions are checked.
///
/// The reservation moves every thread of the process: run it in a test binary of its own.
pub async fn a_reserved_core_runs_the_inference_thread_alone<B: TestBroker>(
    broker: &B,
    model_dir: &Path,
    count: usize,
) -> Result<(), TestkitError> {
    let bootstrap = broker.bootstrap_servers();
    let topics = Topics::unique("reserved");
    topics.create(broker, 3).await?;
    let fed = feed(&bootstrap, &topics.input, applicant_records(count)?).await?;
    let mut config = scenario_config(&bootstrap, &topics, model_dir)?;
    config.model.reserve_inference_core = true;
    let all = placement::cores_of(placement::CALLING_THREAD)
        .map_err(|e| TestkitError::Failed(e.to_string()))?;
    let worker = RunningWorker::start(config).await?;
    let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter]).await?;
    let mut outputs = Vec::new();
    read_until(&tail, &mut outputs, "decisions", |o| o.len() >= count).await?;
    let during = thread_cores()?;
    let report = worker.stop().await?;
    let after = thread_cores()?;

    ensure!(
        report.decided == count as u64 && distinct_keys(&outputs).len() == count,
        "{} decided, {} distinct outputs, for {count} records",
        report.decided,
        distinct_keys(&outputs).len()
    );
    ensure_fully_committed(&bootstrap, &topics, &fed).await?;
    let Some(&reserved) = all.last().filter(|_| all.len() >= 2) else {
        return Ok(());
    };
    ensure!(
        during
            .iter()
            .any(|(name, cores)| name == "inference" && cores == &[reserved]),
        "no inference thread on core {reserved} alone: {during:?}"
    );
    ensure!(
        during
            .iter()
            .all(|(name, cores)| name == "inference" || !cores.contains(&reserved)),
        "threads other than the inference thread may use core {reserved}: {during:?}"
    );
    ensure!(
        after.iter().all(|(_, cores)| cores == &all),
        "threads not given all of {all:?} back: {after:?}"
    );
    Ok(())
}

/// Every thread of this process: its name and the cores it may run on. A thread that ends
/// meanwhile is left out.
fn thread_cores() -> Result<Vec<(String, Vec<usize>)>, TestkitError> {
    let tids = placement::thread_ids().map_err(|e| TestkitError::Failed(e.to_string()))?;
    Ok(tids
        .into_iter()
        .filter_map(|tid| {
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            Some((name.trim_end().to_owned(), placement::cores_of(tid).ok()?))
        })
        .collect())
}

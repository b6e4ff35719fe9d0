//! The backfill with a Kafka topic as input and as output, against both brokers: librdkafka's
//! mock cluster (in process) and a Tansu process (`scripts/setup.sh --with-tansu`; without it
//! the Tansu tests fail saying how to install it).
//!
//! Records are the worker's input (key = application id, payload = applicant JSON), fed with
//! the same producer the worker scenarios use; outputs are read back from files and topics.

use credit_testkit::reliability;

use credit_backfill::topic::{RangeEnd, RangeStart};
use credit_backfill::{
    BackfillError, BackfillModel, KafkaOptions, OutputPaths, ScoreOptions, Shard,
};
use credit_core::decision::OwnedDecision;
use credit_kafka::feed::{feed_blocking, FeedRecord};
use credit_kafka::tail::{committed_offsets_blocking, high_watermarks_blocking, Tail};
use credit_testkit::scenarios::{applicant_records, Topics};
use reliability::{runtime, BrokerKind, ScenarioBroker};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// One scenario at a time: each starts a broker, and two cores are shared.
static SERIAL: Mutex<()> = Mutex::new(());

/// Every this-many-th record is not JSON; one more record has no key.
const INVALID_EVERY: usize = 500;

/// Feed rate on Tansu: slow enough that the producer sends every record in a batch of its own.
const TANSU_FEED_RATE: f64 = 200.0;

fn manifest() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn model() -> &'static BackfillModel {
    static MODEL: OnceLock<BackfillModel> = OnceLock::new();
    MODEL.get_or_init(|| BackfillModel::load(&manifest().join("models"), None, None).unwrap())
}

/// A broker with the scenario's topics (input and output with 6 partitions).
struct Setup {
    _serial: std::sync::MutexGuard<'static, ()>,
    runtime: tokio::runtime::Runtime,
    broker: ScenarioBroker,
    topics: Topics,
    dir: tempfile::TempDir,
    /// Records per second fed: Tansu gets one record per produce batch (see
    /// `tansu_reports_end_offsets_that_miss_most_of_a_batch`).
    rate: Option<f64>,
}

impl Setup {
    fn start(kind: BrokerKind, scenario: &str) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let logs = reliability::log_dir(scenario).unwrap();
        let broker = ScenarioBroker::start(kind, &logs).unwrap_or_else(|e| panic!("{e}"));
        let topics = Topics::unique(scenario);
        let runtime = runtime();
        runtime
            .block_on(broker.create_topics(&topics))
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            _serial: serial,
            runtime,
            broker,
            topics,
            dir: tempfile::tempdir().unwrap(),
            rate: match kind {
                BrokerKind::Tansu => Some(TANSU_FEED_RATE),
                BrokerKind::Mock => None,
            },
        }
    }

    fn address(&self, topic: &str) -> PathBuf {
        PathBuf::from(format!("kafka://{}/{topic}", self.broker.bootstrap()))
    }

    /// Feeds `count` records keyed from `first` (see [`records`]); returns the valid ids and
    /// the number of invalid records.
    fn feed(&self, first: usize, count: usize) -> (BTreeSet<String>, usize) {
        let (records, valid, invalid) = records(first, count);
        feed_blocking(
            &self.broker.bootstrap(),
            &self.topics.input,
            &records,
            self.rate,
        )
        .unwrap();
        (valid, invalid)
    }

    fn options(&self, output: PathBuf) -> ScoreOptions {
        ScoreOptions {
            input: self.address(&self.topics.input),
            output,
            kafka: KafkaOptions {
                group: self.topics.group.clone(),
                ..ScoreOptions::default().kafka
            },
            batch_size: 256,
            workers: 2,
            durable: false,
            reference: Some(manifest().join("data/german_credit.csv")),
            ..ScoreOptions::default()
        }
    }

    /// Every decision on `topic`, read until `expected` distinct ids have one.
    fn decisions(&self, topic: &str, expected: usize) -> Vec<OwnedDecision> {
        let bootstrap = self.broker.bootstrap();
        self.runtime.block_on(async {
            let tail = Tail::open(&bootstrap, &[topic]).await.unwrap();
            let mut read = Vec::new();
            let mut ids = BTreeSet::new();
            tail.collect_until(
                &mut read,
                |records| {
                    if let Some(last) = records.last() {
                        ids.insert(last.key.clone());
                    }
                    ids.len() >= expected
                },
                Duration::from_secs(60),
            )
            .await
            .unwrap();
            // Whatever else is already there (duplicates), without waiting long for it.
            tail.collect_until(&mut read, |_| false, Duration::from_secs(2))
                .await
                .unwrap();
            read.iter()
                .map(|record| {
                    let decision =
                        OwnedDecision::from_json(record.payload.as_deref().unwrap()).unwrap();
                    assert_eq!(
                        record.key_text(),
                        Some(decision.application_id.as_str()),
                        "keyed by application id"
                    );
                    assert_eq!(
                        record.header("model-version"),
                        Some(decision.model_version.as_str())
                    );
                    decision
                })
                .collect()
        })
    }
}

/// `count` worker-input records keyed `app-<first>`...: every [`INVALID_EVERY`]th one is
/// not JSON and the last one has no key. Returns them, the valid ids, and the invalid count.
fn records(first: usize, count: usize) -> (Vec<FeedRecord>, BTreeSet<String>, usize) {
    let mut records = applicant_records(first + count).unwrap().split_off(first);
    let mut valid = BTreeSet::new();
    let mut invalid = 0;
    let last = records.len() - 1;
    for (number, record) in records.iter_mut().enumerate() {
        if number == last {
            record.key = None;
            invalid += 1;
        } else if number % INVALID_EVERY == INVALID_EVERY - 1 {
            record.payload = Some(b"{\"duration_months\": tw".to_vec());
            invalid += 1;
        } else {
            valid.insert(String::from_utf8(record.key.clone().unwrap()).unwrap());
        }
    }
    (records, valid, invalid)
}

/// Asserts two id sets are equal, reporting counts and a few differences (not thousands).
fn assert_same_ids(found: &BTreeSet<String>, expected: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = expected.difference(found).take(5).collect();
    let extra: Vec<_> = found.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} found, {} expected; missing e.g. {missing:?}, unexpected e.g. {extra:?}",
        found.len(),
        expected.len()
    );
}

/// Scored application ids of a JSON Lines output, each once.
fn file_ids(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut ids = BTreeSet::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = row["application_id"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "{id} twice in {}", path.display());
    }
    ids
}

fn a_topic_is_rescored_once_over_a_fixed_range(kind: BrokerKind) {
    let setup = Setup::start(kind, "backfill-topic-to-file");
    let (valid, invalid) = setup.feed(0, 3_000);
    let output = setup.dir.path().join("scored.jsonl");
    let options = setup.options(output.clone());

    let summary = credit_backfill::run(&options, model(), &|_| {}).unwrap();
    assert_same_ids(&file_ids(&output), &valid, "every valid record scored once");
    assert_eq!(summary.rows, valid.len() as u64);
    assert_eq!(summary.rejects, invalid as u64);
    let rejects = std::fs::read_to_string(OutputPaths::for_output(&output).rejects).unwrap();
    let rejected: Vec<serde_json::Value> = rejects
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rejected.len(), invalid);
    assert!(
        rejected.iter().all(|r| r["kafka"]["partition"].is_i64()
            && r["kafka"]["offset"].is_i64()
            && !r["reason"].as_str().unwrap().is_empty()),
        "each rejection says where the record is and why: {rejected:?}"
    );
    assert!(
        rejected.iter().any(|r| r["field"] == "key"),
        "the record without a key is rejected for it: {rejected:?}"
    );
    println!(
        "{kind:?}: {} records in, {} scored, {} rejected, {:.0} rows/s",
        valid.len() + invalid,
        summary.rows,
        summary.rejects,
        summary.rows_per_second
    );

    // The group was shown the final position of every partition.
    let bootstrap = setup.broker.bootstrap();
    let ends = high_watermarks_blocking(&bootstrap, &setup.topics.input).unwrap();
    let committed =
        committed_offsets_blocking(&bootstrap, &setup.topics.group, &setup.topics.input).unwrap();
    assert_eq!(committed, ends, "the group's positions are the range ends");

    // The range was fixed when the run started: later records do not make the same run
    // longer, and rerunning the finished run changes nothing.
    setup.feed(3_000, 100);
    let again = credit_backfill::run(&options, model(), &|_| {}).unwrap();
    assert!(again.already_complete);
    assert_same_ids(&file_ids(&output), &valid, "the finished run is unchanged");
}

fn a_crashed_topic_to_topic_run_resumes_and_answers_every_record(kind: BrokerKind) {
    let setup = Setup::start(kind, "backfill-topic-to-topic");
    let (valid, _) = setup.feed(0, 2_000);
    let state = setup.dir.path().join("nightly");
    let mut options = setup.options(setup.address(&setup.topics.output));
    options.state = Some(state.clone());
    options.stop_after_rows = Some(700);

    let crashed = credit_backfill::run(&options, model(), &|_| {}).unwrap_err();
    assert!(
        matches!(crashed, BackfillError::SimulatedCrash { .. }),
        "{crashed}"
    );
    options.stop_after_rows = None;
    let summary = credit_backfill::run(&options, model(), &|_| {}).unwrap();
    assert_eq!(summary.rows, valid.len() as u64);

    let decisions = setup.decisions(&setup.topics.output, valid.len());
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for decision in &decisions {
        *counts.entry(decision.application_id.as_str()).or_default() += 1;
        assert_eq!(decision.model_version, model().version);
    }
    let answered: BTreeSet<String> = counts.keys().map(|id| id.to_string()).collect();
    assert_same_ids(&answered, &valid, "every valid record has a decision");
    let duplicates = decisions.len() - counts.len();
    assert!(
        duplicates <= options.batch_size,
        "only the chunk in flight at the crash is published again: {duplicates} duplicates"
    );
    println!(
        "{kind:?}: crash after 700 rows, resumed: {} decisions for {} ids, {duplicates} duplicates",
        decisions.len(),
        counts.len()
    );
    assert!(OutputPaths::for_output(&state).summary.is_file());
}

fn shards_split_a_topic_by_partition(kind: BrokerKind) {
    let setup = Setup::start(kind, "backfill-topic-shards");
    let (valid, _) = setup.feed(0, 1_500);
    let mut union = BTreeSet::new();
    let mut total = 0;
    for index in 0..2 {
        let output = setup.dir.path().join(format!("shard-{index}.jsonl"));
        let mut options = setup.options(output.clone());
        options.shard = Shard { index, count: 2 };
        credit_backfill::run(&options, model(), &|_| {}).unwrap();
        let ids = file_ids(&output);
        assert!(!ids.is_empty(), "shard {index} got partitions");
        total += ids.len();
        union.extend(ids);
    }
    assert_eq!(total, union.len(), "no record in both shards");
    assert_same_ids(&union, &valid, "together the shards cover every record");
}

fn a_time_range_reads_only_the_records_of_that_time(kind: BrokerKind) {
    let setup = Setup::start(kind, "backfill-topic-time");
    let pause = || std::thread::sleep(Duration::from_millis(1_100));
    setup.feed(0, 200);
    pause();
    let from = chrono::Utc::now();
    pause();
    let (between, _) = setup.feed(200, 200);
    pause();
    let until = chrono::Utc::now();
    pause();
    setup.feed(400, 200);
    let output = setup.dir.path().join("between.jsonl");
    let mut options = setup.options(output.clone());
    options.kafka.from = RangeStart::Time(from.timestamp_millis());
    options.kafka.until = RangeEnd::Time(until.timestamp_millis());
    credit_backfill::run(&options, model(), &|_| {}).unwrap();
    assert_same_ids(
        &file_ids(&output),
        &between,
        "only the records between --from and --until",
    );
}

/// Records written in transactions: each commit leaves a marker at the partition's end, so
/// the range ends on an offset that holds no record. The run must see the partitions as done
/// (not wait for records that never come) and score every committed record.
fn transactional_inputs_are_read_to_the_end_of_their_range(kind: BrokerKind) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let setup = Setup::start(kind, "backfill-topic-transactional");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", setup.broker.bootstrap())
        .set("transactional.id", format!("{}-txn", setup.topics.group))
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).unwrap();
    let (records, valid, _) = records(0, 301);
    for chunk in records[..300].chunks(100) {
        producer.begin_transaction().unwrap();
        for record in chunk {
            let mut pending = BaseRecord::<[u8], [u8]>::to(&setup.topics.input)
                .key(record.key.as_deref().unwrap())
                .payload(record.payload.as_deref().unwrap());
            while let Err((_, back)) = producer.send(pending) {
                producer.poll(Duration::from_millis(10));
                pending = back;
            }
        }
        producer.commit_transaction(timeout).unwrap();
    }
    let output = setup.dir.path().join("transactional.jsonl");
    let summary = credit_backfill::run(&setup.options(output.clone()), model(), &|_| {}).unwrap();
    assert_same_ids(
        &file_ids(&output),
        &valid,
        "every committed record scored once",
    );
    assert_eq!(summary.rejects, 0);
}

fn a_kafka_output_needs_a_state_path_and_a_missing_topic_is_named() {
    let options = ScoreOptions {
        input: PathBuf::from("data/german_credit.csv"),
        output: PathBuf::from("kafka://127.0.0.1:1/decisions"),
        ..ScoreOptions::default()
    };
    let error = credit_backfill::run(&options, model(), &|_| {}).unwrap_err();
    assert!(error.to_string().contains("--state"), "{error}");

    let error = credit_backfill::run(
        &ScoreOptions {
            input: PathBuf::from("kafka://127.0.0.1:1/"),
            output: PathBuf::from("out.jsonl"),
            ..ScoreOptions::default()
        },
        model(),
        &|_| {},
    )
    .unwrap_err();
    assert!(error.to_string().contains("HOST:PORT"), "{error}");
}

#[test]
fn mock_cluster_a_topic_is_rescored_once_over_a_fixed_range() {
    a_topic_is_rescored_once_over_a_fixed_range(BrokerKind::Mock);
}

#[test]
fn mock_cluster_a_crashed_topic_to_topic_run_resumes_and_answers_every_record() {
    a_crashed_topic_to_topic_run_resumes_and_answers_every_record(BrokerKind::Mock);
}

#[test]
fn mock_cluster_transactional_inputs_are_read_to_the_end_of_their_range() {
    transactional_inputs_are_read_to_the_end_of_their_range(BrokerKind::Mock);
}

#[test]
fn mock_cluster_shards_split_a_topic_by_partition() {
    shards_split_a_topic_by_partition(BrokerKind::Mock);
}

#[test]
fn mock_cluster_a_time_range_reads_only_the_records_of_that_time() {
    a_time_range_reads_only_the_records_of_that_time(BrokerKind::Mock);
}

#[test]
fn tansu_a_topic_is_rescored_once_over_a_fixed_range() {
    a_topic_is_rescored_once_over_a_fixed_range(BrokerKind::Tansu);
}

#[test]
fn tansu_a_crashed_topic_to_topic_run_resumes_and_answers_every_record() {
    a_crashed_topic_to_topic_run_resumes_and_answers_every_record(BrokerKind::Tansu);
}

#[test]
fn tansu_a_time_range_reads_only_the_records_of_that_time() {
    a_time_range_reads_only_the_records_of_that_time(BrokerKind::Tansu);
}

/// Tansu 0.6 (in-memory storage) reports a partition's end offset as if each produce batch
/// held one record: after one batch of many records the high watermark is 1. A reader that
/// reads "up to the end" therefore stops after the first record of the last batch, and the
/// backfill, which fixes its range at the high watermarks, would miss the rest. Real Kafka and
/// the mock cluster report the end correctly; on Tansu the scenarios above feed one record per
/// batch. This test pins the defect: if it starts failing, Tansu was fixed and the slow feed
/// can go.
#[test]
fn tansu_reports_end_offsets_that_miss_most_of_a_batch() {
    let mut setup = Setup::start(BrokerKind::Tansu, "backfill-tansu-watermarks");
    setup.rate = None;
    let (records, _, _) = records(0, 3_000);
    let fed = feed_blocking(
        &setup.broker.bootstrap(),
        &setup.topics.input,
        &records,
        None,
    )
    .unwrap();
    let mut delivered_end: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &fed {
        let end = delivered_end.entry(record.partition).or_default();
        *end = (*end).max(record.offset + 1);
    }
    let reported =
        high_watermarks_blocking(&setup.broker.bootstrap(), &setup.topics.input).unwrap();
    println!("Tansu: records delivered up to {delivered_end:?}, end offsets reported {reported:?}");
    assert!(
        delivered_end
            .iter()
            .any(|(partition, end)| reported.get(partition).copied().unwrap_or(0) < *end),
        "Tansu now reports end offsets that cover every delivered record: the one-record \
         batches of the Tansu scenarios are no longer needed"
    );
}

#[test]
fn bad_kafka_addresses_and_a_kafka_output_without_state_are_refused() {
    a_kafka_output_needs_a_state_path_and_a_missing_topic_is_named();
}

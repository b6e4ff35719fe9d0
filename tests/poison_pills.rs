//! Poison pills on the mock cluster: records whose output the producer or the broker refuses.
//!
//! Kafka accepts records far larger than the worker's producer may send (`message.max.bytes`,
//! 1,000,000 bytes), and a dead letter or decision copying such a record used to fail, stop
//! the worker, and stop it again on the same record after every restart. Each test feeds a
//! pill between valid records and checks from the outside that the pill is answered (cut as
//! `kafka.max_copied_bytes` says, with headers saying so), that its neighbours are decided,
//! that the worker stops only when asked and that every input offset is committed.
//!
//! The input producer here may send records of up to 25 MB; the mock broker itself accepts
//! requests up to librdkafka's `receive.message.max.bytes` (100 MB) and has no per-topic limit,
//! so a broker's own refusals are injected as produce errors. But a mock partition keeps only
//! about 5 MB, and a record set that alone exceeds that, appended after others, leaves the log
//! starting past it (librdkafka 2.12's mock drops the older sets before inserting the new one).
//! So the 20 MB pill is fed to a partition of its own, where nothing precedes or follows it.

use credit_kafka::feed::FeedRecord;
use credit_kafka::headers;
use credit_kafka::mock::EmbeddedCluster;
use credit_kafka::tail::{Tail, Tailed};
use credit_testkit::scenarios::{self, sample, RunningWorker, Topics, OUTPUT_TIMEOUT};
use credit_worker::config::Config;
use credit_worker::pipeline::RunReport;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// librdkafka's default producer limit, which every output must stay under.
const PRODUCER_LIMIT: usize = 1_000_000;
/// `kafka.max_copied_bytes` by default.
const MAX_COPIED: usize = 512 * 1024;
const TRACE: &str = "trace-id";

/// A mock cluster and a test model in a temporary directory.
fn setup() -> (EmbeddedCluster, TempDir) {
    // Logs with `RUST_LOG=credit_risk=debug cargo test ... -- --nocapture`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_test_model(dir.path(), 0.5, 7).expect("test model");
    (cluster, dir)
}

/// `count` valid records traced `{name}-0`, `{name}-1`...
fn valid(name: &str, count: usize) -> Vec<FeedRecord> {
    let mut records = scenarios::applicant_records(count).expect("applicants");
    for (index, record) in records.iter_mut().enumerate() {
        record.key = Some(format!("{name}-app-{index}").into_bytes());
        record.headers = vec![(TRACE.to_owned(), format!("{name}-{index}").into_bytes())];
    }
    records
}

/// A record traced `trace`, with `extra` headers after the trace header.
fn record(trace: &str, key: Vec<u8>, payload: Vec<u8>, extra: &[(&str, Vec<u8>)]) -> FeedRecord {
    let mut headers = vec![(TRACE.to_owned(), trace.as_bytes().to_vec())];
    headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    FeedRecord {
        key: Some(key),
        payload: Some(payload),
        headers,
    }
}

/// A valid applicant payload.
fn applicant() -> Vec<u8> {
    scenarios::applicant_records(1)
        .expect("applicant")
        .remove(0)
        .payload
        .expect("payload")
}

/// Produces `records` in order into `partition` of `topic` with a producer allowed records of
/// up to 25 MB; returns their offsets.
async fn produce(bootstrap: &str, topic: &str, partition: i32, records: &[FeedRecord]) -> Vec<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.max.bytes", "25000000")
        .set("enable.idempotence", "true")
        .create()
        .expect("input producer");
    let mut offsets = Vec::new();
    for fed in records {
        let headers = fed.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        let mut produced: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .headers(headers);
        if let Some(key) = &fed.key {
            produced = produced.key(key);
        }
        if let Some(payload) = &fed.payload {
            produced = produced.payload(payload);
        }
        let delivery = producer
            .send(produced, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .expect("input record delivered");
        offsets.push(delivery.offset);
    }
    offsets
}

/// A configuration for `topics` on `cluster`, the test model in `dir`.
fn config(cluster: &EmbeddedCluster, topics: &Topics, dir: &Path) -> Config {
    scenarios::scenario_config(cluster.bootstrap_servers(), topics, dir).expect("config")
}

/// What a worker answered: every output read, by trace.
struct Answers {
    outputs: Vec<Tailed>,
    report: RunReport,
}

impl Answers {
    /// The outputs of the record traced `trace`.
    fn of(&self, trace: &str) -> Vec<&Tailed> {
        self.outputs
            .iter()
            .filter(|output| output.header(TRACE) == Some(trace))
            .collect()
    }

    /// The one output of the record traced `trace`.
    fn only(&self, trace: &str) -> &Tailed {
        let outputs = self.of(trace);
        assert_eq!(outputs.len(), 1, "outputs of {trace}: {outputs:#?}");
        outputs[0]
    }
}

/// A worker running on the topics of a test, and what it answered so far.
struct Running {
    worker: RunningWorker,
    tail: Tail,
    outputs: Vec<Tailed>,
}

impl Running {
    async fn start(config: Config, topics: &Topics) -> Self {
        let bootstrap = config.kafka.brokers.clone();
        let worker = RunningWorker::start(config).await.expect("worker start");
        let tail = Tail::open(&bootstrap, &[&topics.output, &topics.dead_letter])
            .await
            .expect("tail");
        Self {
            worker,
            tail,
            outputs: Vec::new(),
        }
    }

    /// Reads outputs until every record traced in `traces` has one; fails after
    /// [`OUTPUT_TIMEOUT`] with the worker's own outcome.
    async fn until_answered(self, traces: &[String]) -> Self {
        let Self {
            worker,
            tail,
            mut outputs,
        } = self;
        let answered = tail
            .collect_until(
                &mut outputs,
                |read| {
                    traces
                        .iter()
                        .all(|trace| read.iter().any(|o| o.header(TRACE) == Some(trace.as_str())))
                },
                OUTPUT_TIMEOUT,
            )
            .await
            .expect("reading the outputs");
        if !answered {
            let outcome = worker.stop().await;
            panic!(
                "{} outputs read, not all of {traces:?} answered after {OUTPUT_TIMEOUT:?}; \
                 the worker: {outcome:?}",
                outputs.len()
            );
        }
        Self {
            worker,
            tail,
            outputs,
        }
    }

    /// Shuts the worker down, which must succeed: it did not stop on a record.
    async fn stop(self) -> Answers {
        let Self {
            worker,
            tail,
            mut outputs,
        } = self;
        let report = match worker.stop().await {
            Ok(report) => report,
            Err(error) => panic!("the worker stopped on its own: {error}"),
        };
        // Anything more would be a duplicate.
        tail.collect_until(&mut outputs, |_| false, Duration::from_millis(500))
            .await
            .expect("reading the outputs");
        assert!(
            report.delivery_failures == 0,
            "delivery failures: {report:?}"
        );
        Answers { outputs, report }
    }
}

/// Runs a worker with `config` until every record traced in `traces` has an output, then
/// shuts it down.
async fn answer(config: Config, topics: &Topics, traces: &[String]) -> Answers {
    Running::start(config, topics)
        .await
        .until_answered(traces)
        .await
        .stop()
        .await
}

fn traces(records: &[FeedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8_lossy(&record.headers[0].1).into_owned())
        .collect()
}

/// Every valid record of `records` has exactly one output, a decision.
fn assert_decided(answers: &Answers, topics: &Topics, records: &[FeedRecord]) {
    for trace in traces(records) {
        let output = answers.only(&trace);
        assert_eq!(output.topic, topics.output, "{trace} was not decided");
    }
}

/// The group committed every input offset: one past the last offset of each partition fed.
async fn assert_committed_through(cluster: &EmbeddedCluster, topics: &Topics, ends: &[(i32, i64)]) {
    let committed =
        scenarios::committed_offsets(cluster.bootstrap_servers(), &topics.group, &topics.input)
            .await
            .expect("committed offsets");
    let expected: BTreeMap<i32, i64> = ends.iter().map(|&(p, last)| (p, last + 1)).collect();
    assert_eq!(committed, expected);
}

/// What an output weighs for the producer's limit: key, payload and headers.
fn size(output: &Tailed) -> usize {
    output.key.as_ref().map_or(0, Vec::len)
        + output.payload.as_ref().map_or(0, Vec::len)
        + output
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
}

fn number(output: &Tailed, header: &str) -> Option<usize> {
    output.header(header)?.parse().ok()
}

/// `output` is the dead letter of `pill`, fed at `partition` and `offset`, holding a prefix of
/// its key and payload, with the headers that say it was cut and how large the pill was.
fn assert_cut_dead_letter(
    output: &Tailed,
    pill: &FeedRecord,
    (partition, offset): (i32, i64),
    topics: &Topics,
) {
    let key = pill.key.as_deref().unwrap_or_default();
    let payload = pill.payload.as_deref().unwrap_or_default();
    assert_eq!(output.topic, topics.dead_letter);
    assert_eq!(output.header(headers::ERROR_REASON), Some("oversize"));
    assert_eq!(
        output.header(headers::ERROR_PAYLOAD_TRUNCATED),
        Some("true")
    );
    assert_eq!(
        number(output, headers::ERROR_ORIGINAL_KEY_BYTES),
        Some(key.len())
    );
    assert_eq!(
        number(output, headers::ERROR_ORIGINAL_PAYLOAD_BYTES),
        Some(payload.len())
    );
    let original_headers: usize = pill.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(
        number(output, headers::ERROR_ORIGINAL_HEADERS_BYTES),
        Some(original_headers)
    );
    let kept_key = output.key.as_deref().unwrap_or_default();
    let kept_payload = output.payload.as_deref().unwrap_or_default();
    assert!(
        key.starts_with(kept_key) && !kept_key.is_empty(),
        "key not a prefix"
    );
    assert!(
        payload.starts_with(kept_payload) && !kept_payload.is_empty(),
        "payload not a prefix"
    );
    assert!(kept_key.len() + kept_payload.len() <= MAX_COPIED);
    assert!(size(output) < PRODUCER_LIMIT, "{} bytes", size(output));
    assert_eq!(
        output.header(headers::SOURCE_TOPIC),
        Some(topics.input.as_str())
    );
    assert_eq!(
        output.header(headers::SOURCE_PARTITION),
        Some(partition.to_string().as_str())
    );
    assert_eq!(
        output.header(headers::SOURCE_OFFSET),
        Some(offset.to_string().as_str())
    );
}

/// Valid records, `pill` (in partition `partition`), valid records (in partition 0): the pill
/// is dead-lettered cut, its neighbours are decided, every offset is committed, and the worker
/// runs until it is told to stop.
async fn a_pill_among_valid_records_is_dead_lettered_cut(pill: FeedRecord, partition: i32) {
    let (cluster, dir) = setup();
    let topics = Topics::unique("pill");
    topics.create(&cluster, 2).await.expect("topics");
    let bootstrap = cluster.bootstrap_servers().to_owned();
    let before = valid("before", 5);
    let after = valid("after", 5);
    produce(&bootstrap, &topics.input, 0, &before).await;
    let pill_offset = produce(
        &bootstrap,
        &topics.input,
        partition,
        std::slice::from_ref(&pill),
    )
    .await[0];
    let last = produce(&bootstrap, &topics.input, 0, &after).await[4];
    let records: Vec<FeedRecord> = before
        .iter()
        .chain([&pill])
        .chain(&after)
        .cloned()
        .collect();
    let answers = answer(
        config(&cluster, &topics, dir.path()),
        &topics,
        &traces(&records),
    )
    .await;
    assert_cut_dead_letter(
        answers.only("pill"),
        &pill,
        (partition, pill_offset),
        &topics,
    );
    assert_decided(&answers, &topics, &before);
    assert_decided(&answers, &topics, &after);
    assert_eq!(answers.report.dead_lettered, 1, "{:?}", answers.report);
    let ends = if partition == 0 {
        vec![(0, last)]
    } else {
        vec![(0, last), (partition, pill_offset)]
    };
    assert_committed_through(&cluster, &topics, &ends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_just_under_a_megabyte_is_dead_lettered_cut_and_its_neighbours_decided() {
    a_pill_among_valid_records_is_dead_lettered_cut(
        record("pill", b"pill-999900".to_vec(), vec![b'x'; 999_900], &[]),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_payload_is_dead_lettered_cut_and_its_neighbours_decided() {
    let mut payload = applicant();
    payload.resize(1 << 20, b' ');
    a_pill_among_valid_records_is_dead_lettered_cut(
        record("pill", b"pill-1mb".to_vec(), payload, &[]),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_megabyte_payload_is_dead_lettered_cut_and_its_neighbours_decided() {
    a_pill_among_valid_records_is_dead_lettered_cut(
        record("pill", b"pill-20mb".to_vec(), vec![b'{'; 20 << 20], &[]),
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_key_is_dead_lettered_cut_and_its_neighbours_decided() {
    a_pill_among_valid_records_is_dead_lettered_cut(
        record("pill", vec![b'k'; 1 << 20], applicant(), &[]),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_record_with_a_one_megabyte_header_is_decided_with_that_header_cut() {
    let (cluster, dir) = setup();
    let topics = Topics::unique("big-header");
    topics.create(&cluster, 1).await.expect("topics");
    let blob = vec![b'h'; 1 << 20];
    let pill = record(
        "pill",
        b"app-big-header".to_vec(),
        applicant(),
        &[("blob", blob.clone()), ("after-blob", b"x".to_vec())],
    );
    let neighbours = valid("valid", 5);
    let records: Vec<FeedRecord> = [pill.clone()]
        .into_iter()
        .chain(neighbours.iter().cloned())
        .collect();
    let offsets = produce(cluster.bootstrap_servers(), &topics.input, 0, &records).await;
    let answers = answer(
        config(&cluster, &topics, dir.path()),
        &topics,
        &traces(&records),
    )
    .await;
    let decision = answers.only("pill");
    assert_eq!(
        decision.topic, topics.output,
        "the valid record was not decided"
    );
    assert_eq!(decision.key.as_deref(), Some(&b"app-big-header"[..]));
    assert!(decision.header(headers::MODEL_VERSION).is_some());
    assert_eq!(decision.header(headers::HEADERS_TRUNCATED), Some("true"));
    let original: usize = pill.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(
        number(decision, headers::ORIGINAL_HEADERS_BYTES),
        Some(original)
    );
    let kept_blob = decision
        .headers
        .iter()
        .find(|(name, _)| name == "blob")
        .and_then(|(_, value)| value.as_deref())
        .unwrap_or_default();
    assert!(blob.starts_with(kept_blob) && kept_blob.len() <= MAX_COPIED);
    assert!(size(decision) < PRODUCER_LIMIT, "{} bytes", size(decision));
    assert_decided(&answers, &topics, &neighbours);
    assert_committed_through(&cluster, &topics, &[(0, offsets[5])]).await;
}

/// The records the broker's injected refusal hit: dead-lettered as `undeliverable`, each with
/// its key, trace header and source position; every other record decided.
fn assert_refused_ones_dead_lettered(
    answers: &Answers,
    topics: &Topics,
    records: &[FeedRecord],
    offsets: &[i64],
) -> usize {
    let mut refused = 0;
    for (fed, offset) in records.iter().zip(offsets) {
        let trace = String::from_utf8_lossy(&fed.headers[0].1).into_owned();
        let outputs = answers.of(&trace);
        let dead: Vec<&&Tailed> = outputs
            .iter()
            .filter(|output| output.topic == topics.dead_letter)
            .collect();
        if dead.is_empty() {
            assert!(
                outputs.iter().any(|output| output.topic == topics.output),
                "{trace} unanswered"
            );
            continue;
        }
        refused += 1;
        assert_eq!(dead.len(), 1, "{trace}: {dead:#?}");
        let dead = dead[0];
        assert_eq!(dead.header(headers::ERROR_REASON), Some("undeliverable"));
        assert!(dead
            .header(headers::ERROR_MESSAGE)
            .is_some_and(|message| message.contains("refused")));
        assert_eq!(dead.key, fed.key, "{trace}: key");
        assert_eq!(
            dead.header(headers::SOURCE_OFFSET),
            Some(offset.to_string().as_str())
        );
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_the_broker_refuses_for_its_record_is_dead_lettered_and_the_stream_goes_on() {
    let (cluster, dir) = setup();
    let topics = Topics::unique("refused");
    topics.create(&cluster, 1).await.expect("topics");
    let first = valid("first", 20);
    let offsets = produce(cluster.bootstrap_servers(), &topics.input, 0, &first).await;
    // The worker is the only producer from here on: its first produce request is refused,
    // as a broker refuses an invalid record (a record without a key on a compacted topic).
    cluster
        .fail_requests(
            RDKafkaApiKey::Produce,
            vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
        )
        .expect("fault injection");
    let answers = answer(
        config(&cluster, &topics, dir.path()),
        &topics,
        &traces(&first),
    )
    .await;
    let refused = assert_refused_ones_dead_lettered(&answers, &topics, &first, &offsets);
    assert!(refused >= 1, "no output was refused");
    for trace in traces(&first) {
        assert_eq!(answers.of(&trace).len(), 1, "{trace} answered twice");
    }
    assert_committed_through(&cluster, &topics, &[(0, offsets[19])]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_on_a_poison_pill_answers_it_and_every_record_behind_it() {
    let (cluster, dir) = setup();
    let topics = Topics::unique("restart");
    topics.create(&cluster, 1).await.expect("topics");
    let bootstrap = cluster.bootstrap_servers().to_owned();
    let first = valid("first", 10);
    produce(&bootstrap, &topics.input, 0, &first).await;
    // A first run answers and commits everything so far: the group's position is now the
    // offset the next record will take.
    answer(
        config(&cluster, &topics, dir.path()),
        &topics,
        &traces(&first),
    )
    .await;
    // About 3 MB together: the mock partition keeps 5 MB.
    let pills = [
        record(
            "pill-payload",
            b"pill-1mb".to_vec(),
            vec![b'x'; 1 << 20],
            &[],
        ),
        record("pill-key", vec![b'k'; 1 << 20], applicant(), &[]),
        record(
            "pill-header",
            b"app-big-header".to_vec(),
            applicant(),
            &[("blob", vec![b'h'; 1 << 20])],
        ),
    ];
    let behind = valid("behind", 20);
    let records: Vec<FeedRecord> = pills.iter().cloned().chain(behind.clone()).collect();
    let offsets = produce(&bootstrap, &topics.input, 0, &records).await;
    let position = scenarios::committed_offsets(&bootstrap, &topics.group, &topics.input)
        .await
        .expect("committed offsets");
    assert_eq!(
        position.get(&0),
        Some(&offsets[0]),
        "the restart does not begin at the pill"
    );

    let answers = answer(
        config(&cluster, &topics, dir.path()),
        &topics,
        &traces(&records),
    )
    .await;
    assert_cut_dead_letter(
        answers.only("pill-payload"),
        &pills[0],
        (0, offsets[0]),
        &topics,
    );
    assert_cut_dead_letter(
        answers.only("pill-key"),
        &pills[1],
        (0, offsets[1]),
        &topics,
    );
    let decision = answers.only("pill-header");
    assert_eq!(decision.topic, topics.output);
    assert_eq!(decision.header(headers::HEADERS_TRUNCATED), Some("true"));
    assert_decided(&answers, &topics, &behind);
    // Nothing of the first run was answered again (the reader sees both runs' outputs).
    for trace in traces(&first) {
        assert_eq!(answers.of(&trace).len(), 1, "{trace} answered again");
    }
    assert_committed_through(&cluster, &topics, &[(0, offsets[offsets.len() - 1])]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_aborts_a_transaction_with_a_refused_output_and_retries_it_dead_lettered() {
    refused_in_a_transaction(20, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_arrives_while_its_transaction_is_still_produced_is_retried_not_fatal() {
    // One record per produce request, sent at once: the refusal comes back while the rest of
    // the 500-record batch is still being produced, and librdkafka then refuses those sends.
    refused_in_a_transaction(500, |config| {
        config.batching.max_batch = 500;
        config.batching.max_wait_ms = 200;
        for (key, value) in [
            ("producer.linger.ms", "0"),
            ("producer.batch.num.messages", "1"),
        ] {
            config.kafka.client.insert(key.to_owned(), value.to_owned());
        }
    })
    .await;
}

/// `count` records through an exactly-once worker (tuned by `tune`) whose first produce
/// request the broker refuses as `INVALID_RECORD`: the transaction is aborted and produced
/// again with the refused outputs dead-lettered, and every record is answered.
async fn refused_in_a_transaction(count: usize, tune: impl FnOnce(&mut Config)) {
    let (cluster, dir) = setup();
    let topics = Topics::unique("refused-eos");
    topics.create(&cluster, 1).await.expect("topics");
    let bootstrap = cluster.bootstrap_servers().to_owned();
    let first = valid("first", count);
    let offsets = produce(&bootstrap, &topics.input, 0, &first).await;
    cluster
        .fail_requests(
            RDKafkaApiKey::Produce,
            vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
        )
        .expect("fault injection");
    let mut config =
        scenarios::exactly_once_config(&bootstrap, &topics, dir.path()).expect("config");
    tune(&mut config);
    config.validate().expect("tuned config");
    let running = Running::start(config, &topics)
        .await
        .until_answered(&traces(&first))
        .await;
    // The outputs can be read before their transaction commits (the mock does not hold them
    // back from `read_committed` readers): wait for the commit to be counted.
    let metrics = scenarios::wait_for_metric(
        &running.worker,
        "credit_risk_transactions_total{result=\"committed\"}",
        1,
    )
    .await
    .expect("a committed transaction is counted");
    let answers = running.stop().await;
    // The mock cluster shows aborted transactions' records to `read_committed` readers too
    // (see README), so a record may appear twice here; each has its answer all the same.
    let refused = assert_refused_ones_dead_lettered(&answers, &topics, &first, &offsets);
    assert!(refused >= 1, "no output was refused");
    let aborted = sample(
        &metrics,
        "credit_risk_transactions_total{result=\"aborted\"}",
    );
    assert!(aborted.is_some_and(|n| n >= 1.0), "aborted: {aborted:?}");
    let committed = sample(
        &metrics,
        "credit_risk_transactions_total{result=\"committed\"}",
    );
    assert!(
        committed.is_some_and(|n| n >= 1.0),
        "committed: {committed:?}"
    );
    // Counted once, on the commit of the retried transaction.
    assert_eq!(
        answers.report.decided + answers.report.dead_lettered,
        count as u64,
        "{:?}",
        answers.report
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_after_a_retried_transaction_is_not_stopped_by_its_skipped_sequence() {
    // Two batches: the first's produce request is refused and its transaction retried; the
    // next transaction then meets the sequence numbers the refused request left unused.
    refused_in_a_transaction(20, |config| config.batching.max_batch = 12).await;
}

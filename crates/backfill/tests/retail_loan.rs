//! The second shipped lender through the backfill: the retail-loan book
//! (`data/retail_loan_book.csv`, `schemas/retail-loan.toml`: a key column, optional fields,
//! numbers, a boolean, a protected field) scored from its file, and from a topic of worker
//! input records on the mock cluster and on Tansu, with a bundle of that schema (a randomly
//! initialised network: the tests are about reading and writing, not the model).

use credit_backfill::{BackfillModel, OutputPaths, ScoreOptions};
use credit_kafka::feed::feed_blocking;
use credit_testkit::reliability::{self, runtime, BrokerKind, ScenarioBroker};
use credit_testkit::scenarios::{bundle_records, write_retail_test_model, Topics};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// One scenario at a time: each starts a broker, and two cores are shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A retail-loan bundle in a temporary directory, loaded.
fn bundle() -> (tempfile::TempDir, BackfillModel) {
    let dir = tempfile::tempdir().unwrap();
    write_retail_test_model(dir.path(), 0.2, 5).unwrap();
    let model = BackfillModel::load(dir.path(), None, None).unwrap();
    (dir, model)
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

#[test]
fn the_retail_loan_book_is_scored_from_its_file_with_a_backtest_on_its_outcomes() {
    let (_bundle, model) = bundle();
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("scored.jsonl");
    let book = root().join("data/retail_loan_book.csv");
    let options = ScoreOptions {
        input: book.clone(),
        output: output.clone(),
        include_fields: true,
        durable: false,
        reference: Some(book),
        ..ScoreOptions::default()
    };
    let summary = credit_backfill::run(&options, &model, &|_| {}).unwrap();
    assert_eq!((summary.rows, summary.rejects), (20_000, 0));
    let ids = file_ids(&output);
    assert_eq!(ids.len(), 20_000);
    assert!(ids.contains("loan-0000001"), "ids come from the key column");
    assert!(
        summary.backtest.is_some(),
        "the book's outcomes give a backtest"
    );
    assert!(summary.psi.is_some(), "the reference gives a PSI");
    // Optional fields left empty in the book are written as null.
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(
        text.contains("\"employment_years\":null"),
        "a missing value is null"
    );
}

fn a_topic_of_retail_loan_records_is_scored_once(kind: BrokerKind) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let (bundle, model) = bundle();
    let logs = reliability::log_dir("retail-topic").unwrap();
    let broker = ScenarioBroker::start(kind, &logs).unwrap_or_else(|e| panic!("{e}"));
    let topics = Topics::unique("retail-topic");
    runtime()
        .block_on(broker.create_topics(&topics))
        .unwrap_or_else(|e| panic!("{e}"));
    let records = bundle_records(bundle.path(), 1_000).unwrap();
    let expected: BTreeSet<String> = records
        .iter()
        .map(|record| String::from_utf8(record.key.clone().unwrap()).unwrap())
        .collect();
    let rate = match kind {
        BrokerKind::Tansu => Some(200.0),
        BrokerKind::Mock => None,
    };
    feed_blocking(&broker.bootstrap(), &topics.input, &records, rate).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("scored.jsonl");
    let options = ScoreOptions {
        input: PathBuf::from(format!("kafka://{}/{}", broker.bootstrap(), topics.input)),
        output: output.clone(),
        kafka: credit_backfill::KafkaOptions {
            group: topics.group.clone(),
            ..ScoreOptions::default().kafka
        },
        batch_size: 256,
        workers: 2,
        durable: false,
        ..ScoreOptions::default()
    };
    let summary = credit_backfill::run(&options, &model, &|_| {}).unwrap();
    assert_eq!((summary.rows, summary.rejects), (1_000, 0));
    assert_eq!(file_ids(&output), expected);
    assert!(!OutputPaths::for_output(&output)
        .rejects
        .metadata()
        .is_ok_and(|m| m.len() > 0));
}

#[test]
fn mock_cluster_a_topic_of_retail_loan_records_is_scored_once() {
    a_topic_of_retail_loan_records_is_scored_once(BrokerKind::Mock);
}

#[test]
fn tansu_a_topic_of_retail_loan_records_is_scored_once() {
    a_topic_of_retail_loan_records_is_scored_once(BrokerKind::Tansu);
}

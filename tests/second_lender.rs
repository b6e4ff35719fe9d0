//! Another lender's applicants end to end on the mock cluster: the worker serves a bundle of
//! the retail-loan schema (`schemas/retail-loan.toml`: optional fields, numbers, a boolean, a
//! protected field that is no model input) with the same code as German Credit, and a reload
//! takes only a schema that accepts every record the current one accepts.

use credit_kafka::mock::EmbeddedCluster;
use credit_testkit::scenarios::{self, TestkitError};
use tempfile::TempDir;

/// A mock cluster and a retail-loan test bundle.
fn setup() -> (EmbeddedCluster, TempDir, String) {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    let version = scenarios::write_retail_test_model(dir.path(), 0.2, 11).expect("retail model");
    (cluster, dir, version)
}

fn passed<T>(result: Result<T, TestkitError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retail_loan_record_gets_exactly_one_decision() {
    let (cluster, dir, version) = setup();
    let report = passed(
        scenarios::every_record_gets_exactly_one_decision(&cluster, dir.path(), &version, 500)
            .await,
    );
    assert_eq!(report.consumed, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refuses_a_new_required_field_and_takes_a_new_optional_one() {
    let (cluster, dir, version) = setup();
    passed(
        scenarios::a_reload_takes_only_a_schema_that_accepts_every_current_record(
            &cluster,
            dir.path(),
            &version,
            100,
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_credit_reload_refuses_a_new_required_field_too() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    let version = scenarios::write_test_model(dir.path(), 0.5, 7).expect("test model");
    passed(
        scenarios::a_reload_takes_only_a_schema_that_accepts_every_current_record(
            &cluster,
            dir.path(),
            &version,
            100,
        )
        .await,
    );
}

//! Adverse-action reasons end to end on the mock cluster: each decision carries the reasons of
//! the model that made it, computed apart from the worker with the bundle's own model and
//! reference applicant, for any lender's schema; `off` publishes none; a bundle without a
//! reference applicant is refused while reasons are on.

use credit_core::artifacts::{REFERENCE_FILE, SCHEMA_FILE};
use credit_core::bundle;
use credit_core::explain::{ExplainError, ReasonsMode};
use credit_kafka::mock::EmbeddedCluster;
use credit_testkit::scenarios::{self, TestkitError};
use credit_worker::config::Config;
use credit_worker::service::model::{self, LoadError};
use std::collections::HashMap;

fn passed<T>(result: Result<T, TestkitError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decline_carries_the_reasons_of_the_model_that_declined_it() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_test_model(dir.path(), 0.5, 3).expect("test model");
    let explained = passed(
        scenarios::decisions_carry_the_models_own_reasons(
            &cluster,
            dir.path(),
            300,
            ReasonsMode::Declines,
        )
        .await,
    );
    assert!(explained > 0, "no decline was explained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_lenders_decisions_all_carry_reasons_in_mode_all() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_retail_test_model(dir.path(), 0.5, 5).expect("retail model");
    let explained = passed(
        scenarios::decisions_carry_the_models_own_reasons(
            &cluster,
            dir.path(),
            200,
            ReasonsMode::All,
        )
        .await,
    );
    assert!(
        explained > 100,
        "only {explained} of 200 decisions explained"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reasons_off_no_decision_has_a_reasons_field() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_test_model(dir.path(), 0.5, 3).expect("test model");
    passed(
        scenarios::decisions_carry_the_models_own_reasons(
            &cluster,
            dir.path(),
            100,
            ReasonsMode::Off,
        )
        .await,
    );
}

#[test]
fn a_bundle_without_a_reference_is_refused_while_reasons_are_on() {
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_test_model(dir.path(), 0.5, 3).expect("test model");
    std::fs::remove_file(dir.path().join(REFERENCE_FILE)).expect("remove the reference");
    let version = bundle::seal(dir.path()).expect("reseal").model_version;
    assert!(dir.path().join(SCHEMA_FILE).exists());
    let mut config = Config::from_toml_with_env("", HashMap::new()).expect("defaults");
    config.model.dir = dir.path().to_path_buf();
    match model::load(&config.model, config.reasons) {
        Err(LoadError::Explain {
            dir: named,
            source: ExplainError::NoReference,
        }) => assert_eq!(named, dir.path()),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(served) => panic!("served {} without a reference", served.version),
    }
    config.reasons.mode = ReasonsMode::Off;
    let served = model::load(&config.model, config.reasons).expect("loads with reasons off");
    assert_eq!(served.version, version);
}

//! The worker end to end on librdkafka's in-process mock cluster: real consumer groups,
//! commits, idempotent producer and headers, no broker installation.
//!
//! The scenarios live in `credit_testkit::scenarios` so that a test against a real broker
//! (Tansu) can run the same ones with a `RemoteBroker`. Each test starts its own mock cluster
//! and writes a small random model (the scenarios test the plumbing, not the model). The mock
//! delays a consumer group's first join by 3 s, which dominates most tests' run time.

use credit_kafka::mock::EmbeddedCluster;
use credit_testkit::scenarios::{self, TestkitError};
use std::path::Path;
use tempfile::TempDir;

/// A mock cluster and a test model in a temporary directory.
fn setup(brokers: i32) -> (EmbeddedCluster, TempDir, String) {
    // Logs with `RUST_LOG=credit_risk=debug cargo test ... -- --nocapture`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = EmbeddedCluster::start(brokers).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    let version = scenarios::write_test_model(dir.path(), 0.5, 7).expect("test model");
    (cluster, dir, version)
}

fn passed<T>(result: Result<T, TestkitError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_gets_exactly_one_decision_with_its_key_and_headers() {
    let (cluster, dir, version) = setup(3);
    let report = passed(
        scenarios::every_record_gets_exactly_one_decision(&cluster, dir.path(), &version, 500)
            .await,
    );
    assert_eq!(report.consumed, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_records_go_to_the_dead_letter_topic_and_neighbours_are_decided() {
    let (cluster, dir, _) = setup(1);
    let report = passed(scenarios::invalid_records_are_dead_lettered(&cluster, dir.path()).await);
    assert!(report.dead_lettered > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_for_one_key_keep_their_order() {
    let (cluster, dir, _) = setup(3);
    passed(scenarios::per_key_order_is_kept(&cluster, dir.path(), 40, 5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_stream_finishes_and_commits_everything_consumed() {
    let (cluster, dir, _) = setup(1);
    passed(scenarios::shutdown_drains_in_flight(&cluster, dir.path(), 12_000).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_only_committed_after_delivery_so_a_restart_loses_nothing() {
    let (cluster, dir, _) = setup(1);
    passed(scenarios::nothing_is_lost_when_delivery_fails(&cluster, dir.path(), 200).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_its_broker_is_alive_but_not_ready_and_loses_nothing() {
    let (cluster, dir, _) = setup(1);
    passed(scenarios::readiness_follows_the_broker(&cluster, dir.path(), 400).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_mode_answers_each_record_once_in_transactions() {
    let (cluster, dir, _) = setup(1);
    let transactions =
        passed(scenarios::exactly_once_answers_each_record_once(&cluster, dir.path(), 1_000).await);
    eprintln!("1,000 records answered in {transactions} transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_exactly_once_worker_stops_and_a_successor_answers_everything() {
    let (cluster, dir, _) = setup(1);
    let cause =
        passed(scenarios::a_fenced_exactly_once_worker_stops(&cluster, dir.path(), 300).await);
    eprintln!("fenced worker: {cause}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_takes_over_partitions_without_loss() {
    let (cluster, dir, _) = setup(1);
    // The mock rejects commits during a rebalance, so redeliveries are expected here (see the
    // scenario's documentation); a real broker runs it with `allow_duplicates = false`.
    let duplicates = passed(
        scenarios::rebalance_hands_over_without_loss(&cluster, dir.path(), 2_000, true).await,
    );
    eprintln!("{duplicates} records answered twice across the rebalance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_fails_the_start_with_the_path_in_the_message() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let topics = scenarios::Topics::unique("no-model");
    passed(topics.create(&cluster, 1).await);
    let config = passed(scenarios::scenario_config(
        cluster.bootstrap_servers(),
        &topics,
        Path::new("/nonexistent/models"),
    ));
    let worker = passed(scenarios::RunningWorker::start(config).await);
    let error = worker.join().await.expect_err("the worker must not start");
    assert!(error.to_string().contains("/nonexistent/models"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_model_takes_over_at_a_batch_boundary_with_its_version_and_threshold() {
    let (cluster, dir, _) = setup(1);
    passed(scenarios::reload_swaps_the_model_at_a_batch_boundary(&cluster, dir.path(), 200).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_its_checks_keeps_the_current_model_and_the_stream_flowing() {
    let (cluster, dir, version) = setup(1);
    passed(
        scenarios::a_failed_reload_keeps_the_current_model(&cluster, dir.path(), &version, 100)
            .await,
    );
}

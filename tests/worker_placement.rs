//! `model.reserve_inference_core` end to end on the mock cluster. A test binary of its own:
//! the reservation moves every thread of the process, which would confine the other tests'
//! threads for the length of the run.

use credit_kafka::mock::EmbeddedCluster;
use credit_testkit::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_reserved_core_the_inference_thread_runs_alone_on_it_and_every_record_is_decided() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_test_model(dir.path(), 0.5, 7).expect("test model");
    if let Err(error) =
        scenarios::a_reserved_core_runs_the_inference_thread_alone(&cluster, dir.path(), 2_000)
            .await
    {
        panic!("{error}");
    }
}

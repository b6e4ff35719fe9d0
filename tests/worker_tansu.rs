//! The worker's end-to-end scenarios against a real Kafka-protocol broker process: Tansu, started
//! on a free loopback port by this harness with in-memory storage.
//!
//! The same scenario functions as `worker_mock_cluster.rs` run here, so the guarantees do not rest
//! on librdkafka's mock alone. `scripts/setup.sh --with-tansu` (run by `scripts/test.sh` and CI)
//! installs Tansu; without it these tests fail with a message saying how to install it, rather
//! than passing without having run. Tansu 0.6 lacks transactions, so exactly-once mode is
//! tested on the mock cluster; here a test pins that the mode stops with the reason instead.

use credit_testkit::scenarios::{self, RemoteBroker, TestkitError};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A Tansu broker process, killed when dropped.
struct Tansu {
    child: Child,
    address: SocketAddr,
}

/// `tansu` from PATH, else from cargo's bin directory (where `cargo install` puts it).
fn tansu_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
            .unwrap_or_default();
        home.join("bin").join("tansu")
    })
}

impl Tansu {
    fn start() -> Self {
        let binary = tansu_binary();
        assert!(
            binary.is_file(),
            "Tansu is not installed ({} not found): run `scripts/setup.sh --with-tansu` \
             (cargo install tansu --version 0.6.0 --locked --features dynostore)",
            binary.display()
        );
        // Reserve a free port, release it, and hand it to Tansu.
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port");
        let url = format!("tcp://{address}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "tansu did not listen on {address} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, address }
    }

    fn broker(&self) -> RemoteBroker {
        RemoteBroker {
            bootstrap: self.address.to_string(),
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> (Tansu, TempDir, String) {
    let tansu = Tansu::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let version = scenarios::write_test_model(dir.path(), 0.5, 7).expect("test model");
    (tansu, dir, version)
}

fn passed<T>(result: Result<T, TestkitError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_every_record_gets_exactly_one_decision_with_its_key_and_headers() {
    let (tansu, dir, version) = setup();
    let report = passed(
        scenarios::every_record_gets_exactly_one_decision(
            &tansu.broker(),
            dir.path(),
            &version,
            500,
        )
        .await,
    );
    assert_eq!(report.consumed, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_a_second_lenders_records_each_get_exactly_one_decision() {
    let tansu = Tansu::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let version = scenarios::write_retail_test_model(dir.path(), 0.2, 11).expect("retail model");
    let report = passed(
        scenarios::every_record_gets_exactly_one_decision(
            &tansu.broker(),
            dir.path(),
            &version,
            300,
        )
        .await,
    );
    assert_eq!(report.consumed, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_invalid_records_go_to_the_dead_letter_topic_and_neighbours_are_decided() {
    let (tansu, dir, _) = setup();
    let report =
        passed(scenarios::invalid_records_are_dead_lettered(&tansu.broker(), dir.path()).await);
    assert!(report.dead_lettered > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_decisions_for_one_key_keep_their_order() {
    let (tansu, dir, _) = setup();
    passed(scenarios::per_key_order_is_kept(&tansu.broker(), dir.path(), 40, 5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_shutdown_mid_stream_finishes_and_commits_everything_consumed() {
    let (tansu, dir, _) = setup();
    passed(scenarios::shutdown_drains_in_flight(&tansu.broker(), dir.path(), 30_000).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_a_second_replica_takes_over_partitions_without_loss_or_duplicates() {
    let (tansu, dir, _) = setup();
    passed(
        scenarios::rebalance_hands_over_without_loss_or_duplicates(
            &tansu.broker(),
            dir.path(),
            2_000,
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_refuses_transactions_so_exactly_once_mode_stops_naming_them() {
    let (tansu, dir, _) = setup();
    let message = passed(
        scenarios::exactly_once_without_broker_transactions_stops(&tansu.broker(), dir.path())
            .await,
    );
    eprintln!("exactly-once on Tansu: {message}");
}

//! The worker binary as operators run it: security settings reach librdkafka, secrets stay out
//! of logs and `/metrics`, and broken model files stop the start with a message naming them.
//!
//! Each test runs `target/release/worker` as a child process with `CREDIT_RISK__*` environment
//! overrides, the way the Docker image is configured. No broker is needed: the client settings
//! are applied (and secrets could leak) before any connection succeeds, and a refused
//! connection keeps the worker retrying, which is the moment to read its logs and metrics.

// Each test file uses its own part of the worker-process helpers.
use credit_testkit::worker_process;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use worker_process::{
    closed_port, http_get, send_signal, shipped_models_copy, wait_for_metrics, Running,
};

const SECRET: &str = "hunter2-do-not-log-me";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn worker(envs: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .current_dir(root())
        .env("CREDIT_RISK__LOGGING__FORMAT", "json")
        .env("CREDIT_RISK__LOGGING__LEVEL", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

/// Runs a worker that is expected to fail at start-up; returns its exit status and output.
fn run_to_failure(envs: &[(&str, String)]) -> (Output, String) {
    let mut child = worker(envs).spawn().expect("start the worker");
    let started = Instant::now();
    while child.try_wait().expect("poll the worker").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the worker did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn sasl_credentials_never_appear_in_logs_or_metrics() {
    let metrics_port = closed_port();
    let envs = [
        (
            "CREDIT_RISK__KAFKA__BROKERS",
            format!("127.0.0.1:{}", closed_port()),
        ),
        (
            "CREDIT_RISK__METRICS__ADDRESS",
            format!("127.0.0.1:{metrics_port}"),
        ),
        (
            "CREDIT_RISK__KAFKA__CLIENT__SECURITY_PROTOCOL",
            "SASL_PLAINTEXT".to_owned(),
        ),
        (
            "CREDIT_RISK__KAFKA__CLIENT__SASL_MECHANISMS",
            "SCRAM-SHA-512".to_owned(),
        ),
        (
            "CREDIT_RISK__KAFKA__CLIENT__SASL_USERNAME",
            "scorer".to_owned(),
        ),
        (
            "CREDIT_RISK__KAFKA__CLIENT__SASL_PASSWORD",
            SECRET.to_owned(),
        ),
    ];
    let mut running = Running(worker(&envs).spawn().expect("start the worker"));
    // Drain both pipes from the start, so a verbose worker never blocks on a full pipe.
    let readers: Vec<_> = [
        running
            .0
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        running
            .0
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    })
    .collect();

    // Wait for /metrics; the worker keeps retrying the (refused) broker meanwhile.
    let metrics = wait_for_metrics(&mut running, metrics_port, &["credit_risk_model_info"]);
    // Give librdkafka time to try (and log) a few connections with the SASL settings.
    std::thread::sleep(Duration::from_secs(3));
    let readiness = http_get(metrics_port, "/readyz").expect("/readyz answers");
    let _ = running.0.kill();
    let _ = running.0.wait();
    let logs: String = readers
        .into_iter()
        .map(|reader| reader.join().unwrap_or_default())
        .collect();

    assert!(
        logs.contains("SASL_PLAINTEXT") && logs.contains("SCRAM-SHA-512"),
        "the effective (non-secret) security settings are logged at start-up:\n{logs}"
    );
    assert!(
        logs.contains("sasl.password") && logs.contains("<redacted>"),
        "the password key is shown, redacted:\n{logs}"
    );
    assert!(!logs.contains(SECRET), "the password leaked into the logs");
    assert!(
        !metrics.contains(SECRET),
        "the password leaked into /metrics"
    );
    assert!(
        readiness.starts_with("HTTP/1.1 503"),
        "not ready without partitions: {readiness}"
    );
}

#[test]
fn tls_settings_reach_librdkafka_and_a_bad_ca_file_stops_the_start_by_name() {
    let (output, text) = run_to_failure(&[
        (
            "CREDIT_RISK__KAFKA__BROKERS",
            format!("127.0.0.1:{}", closed_port()),
        ),
        ("CREDIT_RISK__METRICS__ADDRESS", "127.0.0.1:0".to_owned()),
        (
            "CREDIT_RISK__KAFKA__CLIENT__SECURITY_PROTOCOL",
            "SSL".to_owned(),
        ),
        (
            "CREDIT_RISK__KAFKA__CLIENT__SSL_CA_LOCATION",
            "/nonexistent/ca.pem".to_owned(),
        ),
    ]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("ssl.ca.location") || text.contains("/nonexistent/ca.pem"),
        "the error names the TLS setting or file:\n{text}"
    );
}

fn start_with_models(dir: &Path) -> (Output, String) {
    run_to_failure(&[
        (
            "CREDIT_RISK__KAFKA__BROKERS",
            format!("127.0.0.1:{}", closed_port()),
        ),
        ("CREDIT_RISK__METRICS__ADDRESS", "127.0.0.1:0".to_owned()),
        ("CREDIT_RISK__MODEL__DIR", dir.display().to_string()),
    ])
}

#[test]
fn a_truncated_model_stops_the_start_naming_the_file() {
    let dir = shipped_models_copy();
    let model = dir.path().join("credit_lstm.onnx");
    let bytes = std::fs::read(&model).expect("model");
    std::fs::write(&model, &bytes[..bytes.len() / 3]).expect("truncate");
    let (output, text) = start_with_models(dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("credit_lstm.onnx"), "{text}");
}

#[test]
fn a_preprocessor_from_another_training_run_stops_the_start() {
    let dir = shipped_models_copy();
    let path = dir.path().join("preprocessor.json");
    let mut artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("preprocessor")).expect("json");
    // Another training run: same schema, other fitted statistics.
    let scaled = artifact
        .pointer_mut("/attributes/1/encoding/mean")
        .expect("duration_months' fitted mean");
    let mean = scaled.as_f64().expect("a number");
    *scaled = serde_json::json!(mean + 1.0);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&artifact).expect("json"),
    )
    .expect("write");
    // Re-sealed, as a careless deployment might: the model's own record still refuses the pair.
    worker_process::reseal(dir.path());
    let (output, text) = start_with_models(dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("do not belong together") && text.contains("preprocessor.json"),
        "{text}"
    );
}

#[test]
fn a_missing_preprocessor_stops_the_start_naming_the_file() {
    let dir = shipped_models_copy();
    std::fs::remove_file(dir.path().join("preprocessor.json")).expect("remove");
    let (output, text) = start_with_models(dir.path());
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("preprocessor.json"), "{text}");
}

#[test]
fn sighup_swaps_in_a_new_model_and_a_broken_one_is_refused_without_stopping_the_worker() {
    use credit_testkit::scenarios::write_test_model;
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = write_test_model(dir.path(), 0.5, 21).expect("first model");
    let metrics_port = closed_port();
    let mut running = Running(
        worker(&[
            (
                "CREDIT_RISK__KAFKA__BROKERS",
                format!("127.0.0.1:{}", closed_port()),
            ),
            (
                "CREDIT_RISK__METRICS__ADDRESS",
                format!("127.0.0.1:{metrics_port}"),
            ),
            ("CREDIT_RISK__MODEL__DIR", dir.path().display().to_string()),
            // Less librdkafka chatter from the refused broker.
            ("CREDIT_RISK__LOGGING__LEVEL", "info".to_owned()),
        ])
        .spawn()
        .expect("start the worker"),
    );
    let stderr = running.0.stderr.take().expect("stderr");
    let stdout = running.0.stdout.take().expect("stdout");
    let readers = [
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = { stderr }.read_to_string(&mut text);
            text
        }),
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = { stdout }.read_to_string(&mut text);
            text
        }),
    ];
    let serving_first = format!("credit_risk_model_info{{version=\"{first}\"}} 1");
    wait_for_metrics(&mut running, metrics_port, &[&serving_first]);

    // A new model deployed in place, then SIGHUP: it is swapped in (no traffic needed).
    let second = write_test_model(dir.path(), 0.5, 22).expect("second model");
    send_signal(&running.0, "-HUP");
    let serving_second = format!("credit_risk_model_info{{version=\"{second}\"}} 1");
    let metrics = wait_for_metrics(
        &mut running,
        metrics_port,
        &[
            "credit_risk_model_reloads_total{result=\"ok\"} 1",
            &serving_second,
        ],
    );
    assert!(
        !metrics.contains(&first),
        "the old version is gone:\n{metrics}"
    );

    // A truncated model: refused, counted, the second one stays.
    let model = dir.path().join("credit_lstm.onnx");
    let bytes = std::fs::read(&model).expect("model");
    std::fs::write(&model, &bytes[..bytes.len() / 3]).expect("truncate");
    send_signal(&running.0, "-HUP");
    wait_for_metrics(
        &mut running,
        metrics_port,
        &[
            "credit_risk_model_reloads_total{result=\"failed\"} 1",
            &serving_second,
        ],
    );

    // SIGTERM still stops it.
    send_signal(&running.0, "-TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("poll") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let logs: String = readers
        .into_iter()
        .map(|reader| reader.join().unwrap_or_default())
        .collect();
    assert!(status.success(), "exit after SIGTERM: {status}\n{logs}");
    assert!(
        logs.contains("model swapped") && logs.contains(&second),
        "the swap is logged with the versions:\n{logs}"
    );
    assert!(
        logs.contains("model reload failed") && logs.contains("credit_lstm.onnx"),
        "the failed reload is logged naming the file:\n{logs}"
    );
}

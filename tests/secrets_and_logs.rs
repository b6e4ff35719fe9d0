//! What the worker binary prints, tried as an attacker would: secrets in every librdkafka
//! property that can hold one, hostile record keys, broken configuration, and signals.
//!
//! Each test runs `target/release/worker` as a child process configured through
//! `CREDIT_RISK__*` variables, as the Docker image is, and reads everything it writes (both
//! pipes), `/metrics` and `/readyz`. Running workers use librdkafka's mock cluster, started in
//! this process on loopback ports.

// Each test file uses its own part of the worker-process helpers.
use credit_testkit::worker_process;

use credit_kafka::feed::{feed_blocking, FeedRecord};
use credit_kafka::mock::EmbeddedCluster;
use credit_kafka::tail::high_watermarks_blocking;
use credit_testkit::scenarios::{applicant_records, Topics};
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker_process::{closed_port, http_get};

/// Part of every canary value: none of it may show up anywhere.
const CANARY: &str = "CANARY";

/// Secret properties this librdkafka build accepts (a client is created with them): the
/// running worker gets a canary in each.
const ACCEPTED_SECRET_KEYS: &[&str] = &[
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.kerberos.keytab",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.key.location",
    "ssl.keystore.password",
    "ssl.keystore.location",
    "ssl.certificate.pem",
    "ssl.ca.pem",
    "consumer.sasl.password",
    "producer.ssl.key.password",
];

/// Secret properties this librdkafka build refuses (OAuth/OIDC needs libcurl, which it lacks)
/// or does not know (`sasl.jaas.config` is Java's): creating the client fails on them.
const REFUSED_SECRET_KEYS: &[&str] = &[
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.extensions",
    "sasl.jaas.config",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment variable that sets the librdkafka property `key`.
fn client_variable(key: &str) -> String {
    format!(
        "CREDIT_RISK__KAFKA__CLIENT__{}",
        key.replace('.', "_").to_uppercase()
    )
}

/// A canary value for `key`, shaped like what the property holds.
fn canary_value(key: &str) -> String {
    let tag = key.replace('.', "-");
    if key.ends_with("oauthbearer.config") {
        format!("principal={CANARY}-{tag} scope={CANARY}-scope")
    } else {
        format!("{CANARY}-{tag}-x9")
    }
}

fn canaries(keys: &[&str]) -> Vec<(String, OsString)> {
    keys.iter()
        .map(|key| (client_variable(key), canary_value(key).into()))
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, OsString)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), OsString::from(value)))
        .collect()
}

/// A worker child process whose output is collected as it comes (so it never blocks on a
/// full pipe); killed when dropped.
struct Worker {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Worker {
    fn start(args: &[&str], envs: &[(String, OsString)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .current_dir(root())
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the worker");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        let readers = pipes
            .into_iter()
            .map(|mut pipe| {
                let output = Arc::clone(&output);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 8192];
                    while let Ok(read) = pipe.read(&mut buffer) {
                        if read == 0 {
                            break;
                        }
                        output
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push_str(&String::from_utf8_lossy(&buffer[..read]));
                    }
                })
            })
            .collect();
        Self {
            child,
            output,
            readers,
        }
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the worker") {
            panic!("the worker exited ({status}):\n{}", self.output());
        }
    }

    /// Waits until the output contains `text`.
    fn wait_for_output(&mut self, text: &str, limit: Duration) {
        let started = Instant::now();
        while !self.output().contains(text) {
            self.assert_running();
            assert!(
                started.elapsed() < limit,
                "no `{text}` within {limit:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the worker to exit by itself, at most `limit`; its status and whole output.
    fn wait(mut self, limit: Duration) -> (ExitStatus, String, Duration) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the worker") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "the worker did not exit within {limit:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        (status, self.output(), took)
    }

    /// Sends SIGTERM, then [`Worker::wait`]s.
    fn terminate(self, limit: Duration) -> (ExitStatus, String, Duration) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait(limit)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails showing where `CANARY` occurs in `text`, if it does.
fn assert_no_canary(what: &str, text: &str) {
    if let Some(at) = text.find(CANARY) {
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        panic!("a canary leaked into {what}:\n{}", &text[start..end]);
    }
}

/// A mock cluster with the worker's three topics, and the environment that points a worker
/// at them.
fn cluster_and_worker_env(
    scenario: &str,
    metrics_port: u16,
) -> (EmbeddedCluster, Topics, Vec<(String, OsString)>) {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let topics = Topics::unique(scenario);
    for topic in [&topics.input, &topics.output, &topics.dead_letter] {
        cluster.create_topic(topic, 1).expect("topic");
    }
    let envs = env(&[
        ("CREDIT_RISK__KAFKA__BROKERS", cluster.bootstrap_servers()),
        ("CREDIT_RISK__KAFKA__INPUT_TOPIC", &topics.input),
        ("CREDIT_RISK__KAFKA__OUTPUT_TOPIC", &topics.output),
        ("CREDIT_RISK__KAFKA__DEAD_LETTER_TOPIC", &topics.dead_letter),
        ("CREDIT_RISK__KAFKA__GROUP_ID", &topics.group),
        (
            "CREDIT_RISK__METRICS__ADDRESS",
            &format!("127.0.0.1:{metrics_port}"),
        ),
    ]);
    (cluster, topics, envs)
}

/// Waits until `topic` holds at least `count` records, while the worker keeps running.
fn wait_for_records(worker: &mut Worker, bootstrap: &str, topic: &str, count: i64) {
    let started = Instant::now();
    loop {
        let end: i64 = high_watermarks_blocking(bootstrap, topic)
            .map(|ends| ends.values().sum())
            .unwrap_or(0);
        if end >= count {
            return;
        }
        worker.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{topic} did not reach {count} records:\n{}",
            worker.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A key that, written raw, ends the worker's log line, starts a forged one, and sends the
/// terminal escape sequences (clear screen, set window title, red).
const FORGED_KEY: &str = "app-1\n2099-01-01T00:00:00.000000Z ERROR credit_risk: FORGED admin \
     logged in\r\u{1b}[2J\u{1b}]0;FORGED\u{7}\u{1b}[31m\u{9b}31m\u{202e}";

#[test]
fn secrets_in_every_client_property_stay_out_of_logs_metrics_and_readiness_in_both_formats() {
    for format in ["text", "json"] {
        let metrics_port = closed_port();
        let (cluster, topics, mut envs) = cluster_and_worker_env("secrets", metrics_port);
        let bootstrap = cluster.bootstrap_servers().to_owned();
        let mut records = applicant_records(1).expect("a record");
        records.push(FeedRecord {
            key: Some(b"app-invalid".to_vec()),
            payload: Some(b"{not json".to_vec()),
            headers: Vec::new(),
        });
        feed_blocking(&bootstrap, &topics.input, &records, None).expect("fed");
        envs.extend(env(&[
            ("CREDIT_RISK__LOGGING__FORMAT", format),
            ("CREDIT_RISK__LOGGING__LEVEL", "trace"),
            ("CREDIT_RISK__KAFKA__CLIENT__DEBUG", "all"),
        ]));
        envs.extend(canaries(ACCEPTED_SECRET_KEYS));
        let mut worker = Worker::start(&[], &envs);
        wait_for_records(&mut worker, &bootstrap, &topics.output, 1);
        wait_for_records(&mut worker, &bootstrap, &topics.dead_letter, 1);
        let metrics = http_get(metrics_port, "/metrics").expect("/metrics answers");
        let readiness = http_get(metrics_port, "/readyz").expect("/readyz answers");
        let (status, logs, _) = worker.terminate(Duration::from_secs(60));

        assert!(status.success(), "{format}: {status}\n{logs}");
        assert!(
            logs.contains("sasl.password") && logs.contains("<redacted>"),
            "{format}: the start-up line names the secret keys, redacted:\n{logs}"
        );
        assert!(
            logs.contains("Client configuration"),
            "{format}: librdkafka's debug=all output is in the log"
        );
        assert!(
            metrics.contains("credit_risk_records_consumed_total 2"),
            "{metrics}"
        );
        assert!(readiness.contains("model_loaded=true"), "{readiness}");
        assert_no_canary(&format!("the {format} log"), &logs);
        assert_no_canary("/metrics", &metrics);
        assert_no_canary("/readyz", &readiness);
    }
}

#[test]
fn a_secret_librdkafka_quotes_in_its_own_messages_is_scrubbed_in_both_formats() {
    for format in ["text", "json"] {
        // The unsecured-token parser rejects the unknown name and quotes the rest of the
        // setting, secret included, in the error it logs on every connection attempt.
        let config = format!("principal=admin unknown={CANARY}-oauthbearer-x9");
        let mut envs = env(&[
            (
                "CREDIT_RISK__KAFKA__BROKERS",
                &format!("127.0.0.1:{}", closed_port()),
            ),
            ("CREDIT_RISK__METRICS__ADDRESS", "127.0.0.1:0"),
            ("CREDIT_RISK__LOGGING__FORMAT", format),
            ("CREDIT_RISK__LOGGING__LEVEL", "debug"),
            (
                "CREDIT_RISK__KAFKA__CLIENT__SECURITY_PROTOCOL",
                "SASL_PLAINTEXT",
            ),
            ("CREDIT_RISK__KAFKA__CLIENT__SASL_MECHANISMS", "OAUTHBEARER"),
            (
                "CREDIT_RISK__KAFKA__CLIENT__ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT",
                "true",
            ),
        ]);
        envs.push((
            client_variable("sasl.oauthbearer.config"),
            OsString::from(&config),
        ));
        let mut worker = Worker::start(&[], &envs);
        worker.wait_for_output(
            "sasl.oauthbearer.config beginning at",
            Duration::from_secs(60),
        );
        let (_, logs, _) = worker.terminate(Duration::from_secs(60));
        assert_no_canary(&format!("the {format} log"), &logs);
    }
}

#[test]
fn a_refused_secret_setting_stops_the_worker_naming_the_key_but_not_the_value() {
    for key in REFUSED_SECRET_KEYS {
        let mut envs = env(&[
            (
                "CREDIT_RISK__KAFKA__BROKERS",
                &format!("127.0.0.1:{}", closed_port()),
            ),
            ("CREDIT_RISK__METRICS__ADDRESS", "127.0.0.1:0"),
            ("CREDIT_RISK__LOGGING__FORMAT", "json"),
            ("CREDIT_RISK__LOGGING__LEVEL", "debug"),
        ]);
        envs.extend(canaries(&[key]));
        let (status, output, _) = Worker::start(&[], &envs).wait(Duration::from_secs(60));
        assert!(!status.success(), "{key}: {output}");
        assert!(
            output.contains("error: worker failed: cannot create the Kafka"),
            "{key}: {output}"
        );
        assert!(output.contains(key), "{key} is named: {output}");
        assert_no_canary(&format!("the refusal of {key}"), &output);
    }
}

#[test]
fn a_toml_syntax_error_is_located_without_quoting_the_line_and_printed_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("worker.toml");
    std::fs::write(
        &file,
        format!("[kafka.client]\n\"sasl.password\" = \"{CANARY}-unterminated\n"),
    )
    .expect("write");
    let file = file.display().to_string();
    let (status, output, _) =
        Worker::start(&["--config", &file], &[]).wait(Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("{file}: not valid TOML at line 2, column ")),
        "{output}"
    );
    assert_eq!(
        output.matches("not valid TOML").count(),
        1,
        "printed once: {output}"
    );
    assert_eq!(output.lines().count(), 1, "one line: {output}");
    assert_no_canary("the TOML error", &output);
}

#[test]
fn a_secret_that_is_not_utf8_in_the_environment_is_named_not_printed() {
    use std::os::unix::ffi::OsStringExt;
    let mut value = format!("{CANARY}-latin1-").into_bytes();
    value.push(0xff);
    let envs = vec![(client_variable("sasl.password"), OsString::from_vec(value))];
    let (status, output, _) = Worker::start(&[], &envs).wait(Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("CREDIT_RISK__KAFKA__CLIENT__SASL_PASSWORD is not valid UTF-8"),
        "{output}"
    );
    assert_eq!(
        output.lines().count(),
        1,
        "printed once, on one line: {output}"
    );
    assert_no_canary("the environment error", &output);
}

#[test]
fn a_configuration_error_is_printed_once() {
    let envs = env(&[("CREDIT_RISK__BATCHING__MAX_BATCH", "lots")]);
    let (status, output, _) = Worker::start(&[], &envs).wait(Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    assert_eq!(
        output.matches("batching.max_batch").count(),
        1,
        "the problem is reported once: {output}"
    );
    assert!(output.starts_with("error: configuration: "), "{output}");
}

#[test]
fn a_directory_given_as_the_configuration_file_is_called_a_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().display().to_string();
    let (status, output, _) =
        Worker::start(&["--config", &path], &[]).wait(Duration::from_secs(30));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("{path} is a directory")),
        "{output}"
    );
    assert!(!output.contains("not found"), "{output}");
}

#[test]
fn a_forged_record_key_neither_forges_a_log_line_nor_reaches_the_terminal_in_either_format() {
    for format in ["text", "json"] {
        let (cluster, topics, mut envs) = cluster_and_worker_env("forged", closed_port());
        let bootstrap = cluster.bootstrap_servers().to_owned();
        let record = FeedRecord {
            key: Some(FORGED_KEY.as_bytes().to_vec()),
            payload: Some(format!("{{\"purpose\": \"{FORGED_KEY}\"").into_bytes()),
            headers: Vec::new(),
        };
        feed_blocking(&bootstrap, &topics.input, &[record], None).expect("fed");
        envs.extend(env(&[
            ("CREDIT_RISK__LOGGING__FORMAT", format),
            ("CREDIT_RISK__LOGGING__LEVEL", "info"),
        ]));
        let mut worker = Worker::start(&[], &envs);
        wait_for_records(&mut worker, &bootstrap, &topics.dead_letter, 1);
        let (status, logs, _) = worker.terminate(Duration::from_secs(60));
        assert!(status.success(), "{status}\n{logs}");

        let rejected: Vec<&str> = logs
            .lines()
            .filter(|line| line.contains("record rejected"))
            .collect();
        assert_eq!(
            rejected.len(),
            1,
            "{format}: one line per dead letter:\n{logs}"
        );
        assert!(
            rejected[0].contains("app-1\\n2099-01-01"),
            "{format}: the key is shown, escaped: {}",
            rejected[0]
        );
        for line in logs.lines() {
            assert!(!line.starts_with("2099"), "{format}: a forged line: {line}");
            assert!(
                !line.contains("FORGED admin") || line.contains("record rejected"),
                "{format}: {line}"
            );
            if format == "json" {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
            }
        }
        for control in ['\r', '\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
            assert!(
                !logs.contains(control),
                "{format}: {control:?} reached the output:\n{logs:?}"
            );
        }
    }
}

#[test]
fn worker_produce_stops_promptly_on_sigterm_while_the_broker_is_unreachable() {
    let brokers = format!("127.0.0.1:{}", closed_port());
    let mut worker = Worker::start(
        &[
            "produce",
            "--brokers",
            &brokers,
            "--topic",
            "load",
            "--records",
            "0",
        ],
        &env(&[
            ("CREDIT_RISK__LOGGING__LEVEL", "info"),
            // A small queue: full within a second, as a long run's would be after a while.
            (
                "CREDIT_RISK__KAFKA__CLIENT__QUEUE_BUFFERING_MAX_MESSAGES",
                "1000",
            ),
        ]),
    );
    std::thread::sleep(Duration::from_secs(3));
    worker.assert_running();
    let (status, output, took) = worker.terminate(Duration::from_secs(60));
    assert!(
        took < Duration::from_secs(8),
        "exit {took:?} after SIGTERM:\n{output}"
    );
    assert!(
        output.contains("records were not delivered"),
        "what was lost is said: {output}"
    );
    assert!(!status.success(), "{status}");
}

//! Reliability scenarios of the real `worker` binary against a real broker process (Tansu):
//! `kill -9` of the worker at random moments, a broker outage, a replica killed mid-stream.
//!
//! Shared by the integration tests (`tests/reliability_tansu.rs`, moderate sizes) and the
//! full-size run (`benches/reliability.rs`, `scripts/crash-test.sh`). Everything is checked from the outside, as an operator would: the worker is a
//! child process configured through `CREDIT_RISK__*` variables, its outputs are read back from
//! the output topics, its probes and metrics over HTTP, its committed offsets from the broker.
//!
//! Every scenario ends with the same verdict: each input application id must have at least one
//! decision or dead letter (a loss is reported with the missing ids), and after a graceful stop
//! the group's committed offsets must reach the input's end offsets. Duplicates are counted,
//! not forbidden: the worker promises at-least-once, and a `kill -9` loses its uncommitted
//! progress by design. Waits are bounded by *lack of progress* (a stall), never by how long a
//! step may take, so a slow machine does not fail a scenario that is making progress.
//!
//! Each process's output goes to a log file under `target/tmp/reliability/`, named in failure
//! messages.

use crate::paths;
use crate::proc_stats;

use crate::http::get as get_blocking;
use crate::scenarios::{applicant_records, Topics};
use credit_kafka::feed::{create_topics, feed_blocking, Fed, FeedRecord};
use credit_kafka::mock::EmbeddedCluster;
use credit_kafka::tail::{committed_offsets_blocking, Tail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A scenario's failure: what did not hold, with the evidence.
pub type Outcome<T> = Result<T, String>;

/// The runtime the scenarios' async parts (topic creation, readers) run on: two workers, like
/// the machine's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// Every this-many-th input record is not JSON, so it must come out as a dead letter.
pub const INVALID_EVERY: usize = 1_000;
/// A wait fails when what it waits for has not moved for this long.
pub const STALL: Duration = Duration::from_secs(90);
/// Partitions of the input and output topics.
pub const PARTITIONS: i32 = 6;
/// The consumer session timeout given to the workers (how soon a killed member is evicted).
pub const SESSION_TIMEOUT_MS: u32 = 6_000;

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process whose stdout and stderr go to a log file; killed (SIGKILL) when dropped.
pub struct Process {
    child: Child,
    label: String,
    log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, label: &str, log: PathBuf) -> Outcome<Self> {
        let file =
            File::create(&log).map_err(|e| format!("{label}: log {}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("{label}: log {}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("{label}: cannot start {command:?}: {e}"))?;
        Ok(Self {
            child,
            label: label.to_owned(),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) -> Outcome<()> {
        if self.exited().is_some() {
            let exit = self.describe_exit();
            return Err(format!(
                "{} had already exited before the kill ({exit})",
                self.label
            ));
        }
        self.child
            .kill()
            .map_err(|e| format!("kill -9 {}: {e}", self.label))?;
        self.child
            .wait()
            .map_err(|e| format!("wait {}: {e}", self.label))?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit (bounded by [`STALL`], as everything else).
    pub fn terminate(&mut self) -> Outcome<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("kill -TERM {}: {e}", self.label))?;
        ensure!(status.success(), "kill -TERM {} failed", self.label);
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            ensure!(
                started.elapsed() < STALL,
                "{} did not exit within {STALL:?} of SIGTERM (log {})",
                self.label,
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn describe_exit(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("exited with {status}; log {}", self.log.display()),
            _ => format!("running; log {}", self.log.display()),
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The log's length in bytes (a bookmark for [`Process::log_between`]).
    pub fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// What the log gained after the bookmark `from`, up to `to`.
    pub fn log_between(&self, from: u64, to: u64) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        let end = usize::try_from(to).unwrap_or(usize::MAX).min(text.len());
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(end);
        String::from_utf8_lossy(&text[start..end]).into_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_address() -> Outcome<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Waits until something accepts connections on `address`, failing if `process` exits.
fn wait_listening(address: SocketAddr, process: &mut Process) -> Outcome<()> {
    let started = Instant::now();
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if process.exited().is_some() {
            let exit = process.describe_exit();
            return Err(format!(
                "{} exited before listening on {address} ({exit}):\n{}",
                process.label,
                process.log_tail(20)
            ));
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{} did not listen on {address} within 30 s:\n{}",
            process.label,
            process.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `name` from PATH, else from cargo's bin directory.
fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
        Some(home.join("bin").join(name)).filter(|path| path.is_file())
    })
}

/// A directory for one scenario's logs.
pub fn log_dir(scenario: &str) -> Outcome<PathBuf> {
    let dir = paths::target_tmp_dir().join("reliability").join(format!(
        "{scenario}-{}-{}",
        std::process::id(),
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// The broker

/// An S3-compatible object store on loopback (moto's server), holding a bucket `tansu`: the
/// broker's storage, in a process of its own so that it outlives the broker.
pub struct ObjectStore {
    /// Held for its `Drop`, which stops the server.
    _process: Process,
    address: SocketAddr,
}

impl ObjectStore {
    pub fn start(logs: &Path) -> Outcome<Self> {
        let binary = find_binary("moto_server").ok_or_else(|| {
            "moto_server is not installed (an S3-compatible server for Tansu's persistent \
             storage): run `scripts/setup.sh --with-tansu` (pip install 'moto[server]')"
                .to_owned()
        })?;
        let address = free_address()?;
        let mut command = Command::new(binary);
        command.args(["-H", "127.0.0.1", "-p", &address.port().to_string()]);
        let mut process = Process::spawn(command, "moto_server", logs.join("moto.log"))?;
        wait_listening(address, &mut process)?;
        let store = Self {
            _process: process,
            address,
        };
        store.create_bucket("tansu")?;
        Ok(store)
    }

    fn create_bucket(&self, bucket: &str) -> Outcome<()> {
        let request = || -> std::io::Result<String> {
            let mut stream = TcpStream::connect(self.address)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "PUT /{bucket} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
                self.address
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        let response = request().map_err(|e| format!("create bucket {bucket}: {e}"))?;
        ensure!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "create bucket {bucket}: {}",
            response.lines().next().unwrap_or_default()
        );
        Ok(())
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Where Tansu keeps its data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// In the broker's memory: lost when it stops.
    Memory,
    /// In an S3 bucket `tansu` at this endpoint: survives the broker.
    S3 { endpoint: String },
}

/// A Tansu broker process on a fixed loopback port; it can be killed and started again there.
pub struct Tansu {
    process: Option<Process>,
    address: SocketAddr,
    /// The address the broker tells clients to connect to (its own, unless a proxy sits in
    /// front of it).
    advertised: SocketAddr,
    storage: Storage,
    logs: PathBuf,
    starts: u32,
}

impl Tansu {
    pub fn start(storage: Storage, logs: &Path) -> Outcome<Self> {
        let address = free_address()?;
        Self::start_advertising(storage, logs, address, address)
    }

    /// A broker listening on `address` that tells clients to connect to `advertised` (where
    /// a proxy in front of it listens).
    pub fn start_advertising(
        storage: Storage,
        logs: &Path,
        address: SocketAddr,
        advertised: SocketAddr,
    ) -> Outcome<Self> {
        let mut tansu = Self {
            process: None,
            address,
            advertised,
            storage,
            logs: logs.to_path_buf(),
            starts: 0,
        };
        tansu.launch()?;
        Ok(tansu)
    }

    fn launch(&mut self) -> Outcome<()> {
        let binary = find_binary("tansu").ok_or_else(|| {
            "Tansu is not installed: run `scripts/setup.sh --with-tansu` (cargo install tansu \
             --version 0.6.0 --locked --features dynostore)"
                .to_owned()
        })?;
        let mut command = Command::new(binary);
        command.args([
            "broker",
            "--listener-url",
            &format!("tcp://{}", self.address),
            "--advertised-listener-url",
            &format!("tcp://{}", self.advertised),
        ]);
        match &self.storage {
            Storage::Memory => {
                command.args(["--storage-engine", "memory://tansu/"]);
            }
            Storage::S3 { endpoint } => {
                command
                    .args(["--storage-engine", "s3://tansu/"])
                    .env("AWS_ACCESS_KEY_ID", "reliability")
                    .env("AWS_SECRET_ACCESS_KEY", "reliability")
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .env("AWS_ENDPOINT", endpoint)
                    .env("AWS_ALLOW_HTTP", "true");
            }
        }
        self.starts += 1;
        let label = format!("tansu#{}", self.starts);
        let log = self.logs.join(format!("tansu-{}.log", self.starts));
        let mut process = Process::spawn(command, &label, log)?;
        wait_listening(self.address, &mut process)?;
        self.process = Some(process);
        Ok(())
    }

    /// `kill -9` the broker.
    pub fn kill9(&mut self) -> Outcome<()> {
        match self.process.take() {
            Some(mut process) => process.kill9(),
            None => Err("the broker is not running".into()),
        }
    }

    /// Starts a new broker process on the same port with the same storage.
    pub fn restart(&mut self) -> Outcome<()> {
        ensure!(self.process.is_none(), "the broker is still running");
        self.launch()
    }

    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }

    /// Whether the broker process is still running (it must not die on its own).
    pub fn check_alive(&mut self) -> Outcome<()> {
        if let Some(process) = &mut self.process {
            if process.exited().is_some() {
                return Err(format!(
                    "the broker exited on its own ({}):\n{}",
                    process.describe_exit(),
                    process.log_tail(20)
                ));
            }
        }
        Ok(())
    }
}

/// Creates the scenario's topics: input and output with [`PARTITIONS`], dead letters with 1.
pub async fn create_scenario_topics(bootstrap: &str, topics: &Topics) -> Outcome<()> {
    create_topics(
        bootstrap,
        &[
            (&topics.input, PARTITIONS),
            (&topics.output, PARTITIONS),
            (&topics.dead_letter, 1),
        ],
    )
    .await
    .map_err(|e| format!("cannot create the topics: {e}"))
}

/// Which broker a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// A Tansu process (in-memory storage).
    Tansu,
    /// librdkafka's mock cluster, in this process, reached by the worker processes over
    /// loopback like any broker.
    Mock,
}

/// A running broker of either kind.
pub enum ScenarioBroker {
    Tansu(Tansu),
    Mock(EmbeddedCluster),
}

impl ScenarioBroker {
    pub fn start(kind: BrokerKind, logs: &Path) -> Outcome<Self> {
        match kind {
            BrokerKind::Tansu => Ok(Self::Tansu(Tansu::start(Storage::Memory, logs)?)),
            BrokerKind::Mock => EmbeddedCluster::start(1)
                .map(Self::Mock)
                .map_err(|e| format!("cannot start the mock cluster: {e}")),
        }
    }

    pub fn bootstrap(&self) -> String {
        match self {
            Self::Tansu(tansu) => tansu.bootstrap(),
            Self::Mock(cluster) => cluster.bootstrap_servers().to_owned(),
        }
    }

    /// The scenario's topics (the mock has no CreateTopics: its own API creates them).
    pub async fn create_topics(&self, topics: &Topics) -> Outcome<()> {
        match self {
            Self::Tansu(tansu) => create_scenario_topics(&tansu.bootstrap(), topics).await,
            Self::Mock(cluster) => {
                for (topic, partitions) in [
                    (&topics.input, PARTITIONS),
                    (&topics.output, PARTITIONS),
                    (&topics.dead_letter, 1),
                ] {
                    cluster
                        .create_topic(topic, partitions)
                        .map_err(|e| format!("cannot create {topic} on the mock: {e}"))?;
                }
                Ok(())
            }
        }
    }

    pub fn check_alive(&mut self) -> Outcome<()> {
        match self {
            Self::Tansu(tansu) => tansu.check_alive(),
            Self::Mock(_) => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker

/// The real `worker` binary as a child process, configured through environment variables.
pub struct WorkerProcess {
    process: Process,
    http: SocketAddr,
    label: String,
}

impl WorkerProcess {
    /// Starts `worker` against `bootstrap` for `topics` (its group included) with the shipped
    /// model, and waits until it serves HTTP (the model is loaded by then).
    pub fn start(bootstrap: &str, topics: &Topics, label: &str, logs: &Path) -> Outcome<Self> {
        let manifest = paths::repo_root();
        let mut command = Command::new(paths::worker_binary());
        // Inherited CREDIT_RISK__* variables (or a RUST_LOG meant for Tansu) would change the
        // scenario.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDIT_RISK") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .current_dir(manifest)
            .env("CREDIT_RISK__KAFKA__BROKERS", bootstrap)
            .env("CREDIT_RISK__KAFKA__GROUP_ID", &topics.group)
            .env("CREDIT_RISK__KAFKA__INPUT_TOPIC", &topics.input)
            .env("CREDIT_RISK__KAFKA__OUTPUT_TOPIC", &topics.output)
            .env("CREDIT_RISK__KAFKA__DEAD_LETTER_TOPIC", &topics.dead_letter)
            .env("CREDIT_RISK__METRICS__ADDRESS", "127.0.0.1:0")
            .env("CREDIT_RISK__LOGGING__FORMAT", "json")
            .env(
                "CREDIT_RISK__KAFKA__CLIENT__CONSUMER_SESSION_TIMEOUT_MS",
                SESSION_TIMEOUT_MS.to_string(),
            )
            .env(
                "CREDIT_RISK__KAFKA__CLIENT__CONSUMER_HEARTBEAT_INTERVAL_MS",
                "500",
            );
        if std::env::var_os("ORT_DYLIB_PATH").is_none() {
            command.env(
                "ORT_DYLIB_PATH",
                manifest.join(".onnxruntime/libonnxruntime.so"),
            );
        }
        let log = logs.join(format!("{label}.log"));
        let mut process = Process::spawn(command, label, log)?;
        let started = Instant::now();
        let http = loop {
            if let Some(address) = served_address(&process) {
                break address;
            }
            if process.exited().is_some() {
                return Err(format!(
                    "{label} exited during start-up ({}):\n{}",
                    process.describe_exit(),
                    process.log_tail(20)
                ));
            }
            ensure!(
                started.elapsed() < STALL,
                "{label} did not serve HTTP within {STALL:?}:\n{}",
                process.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Self {
            process,
            http,
            label: label.to_owned(),
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn log(&self) -> &Path {
        self.process.log()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// GET `path` from the worker's HTTP server.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        get_blocking(self.http, path)
    }

    /// The value of an unlabelled metric, if the worker answered.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").ok()?;
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The sum of a labelled metric's series (e.g. `credit_risk_dead_lettered_total`).
    pub fn metric_sum(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").ok()?;
        let prefix = format!("{name}{{");
        Some(
            body.lines()
                .filter(|line| line.starts_with(&prefix))
                .filter_map(|line| line.rsplit(' ').next()?.trim().parse::<f64>().ok())
                .sum(),
        )
    }

    pub fn consumed(&self) -> Option<u64> {
        self.metric("credit_risk_records_consumed_total")
            .map(|v| v as u64)
    }

    pub fn assigned_partitions(&self) -> Option<i64> {
        self.metric("credit_risk_assigned_partitions")
            .map(|v| v as i64)
    }

    /// Fails if the worker has exited (it must only stop when told to).
    pub fn check_alive(&mut self) -> Outcome<()> {
        if self.process.exited().is_some() {
            return Err(format!(
                "{} exited on its own ({}):\n{}",
                self.label,
                self.process.describe_exit(),
                self.process.log_tail(30)
            ));
        }
        Ok(())
    }

    /// Waits until `condition` holds for the worker; fails if the worker exits or `STALL`
    /// passes. `what` names the condition in the failure.
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut condition: impl FnMut(&Self) -> bool,
    ) -> Outcome<Duration> {
        let started = Instant::now();
        loop {
            if condition(self) {
                return Ok(started.elapsed());
            }
            self.check_alive()?;
            ensure!(
                started.elapsed() < STALL,
                "{}: {what} did not happen within {STALL:?} (log {})",
                self.label,
                self.process.log().display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`.
    pub fn kill9(mut self) -> Outcome<()> {
        self.process.kill9()
    }

    /// SIGTERM: the worker must drain, commit and exit 0.
    pub fn stop_gracefully(mut self) -> Outcome<()> {
        let status = self.process.terminate()?;
        ensure!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            self.label,
            self.process.log_tail(30)
        );
        Ok(())
    }
}

/// The address in the worker's "serving /metrics" log line, once it has been written.
fn served_address(process: &Process) -> Option<SocketAddr> {
    let text = fs::read_to_string(process.log()).ok()?;
    text.lines()
        .filter(|line| line.contains("serving /metrics"))
        .find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            value
                .get("address")
                .or_else(|| value.pointer("/fields/address"))
                .and_then(|a| a.as_str())
                .and_then(|a| a.parse().ok())
        })
}

// ---------------------------------------------------------------------------------------------
// Inputs and outputs

/// `count` applicant records keyed `app-000001`...; every [`INVALID_EVERY`]-th is not JSON.
pub fn inputs(count: usize) -> Outcome<Vec<FeedRecord>> {
    let mut records = applicant_records(count).map_err(|e| e.to_string())?;
    for record in records
        .iter_mut()
        .skip(INVALID_EVERY - 1)
        .step_by(INVALID_EVERY)
    {
        record.payload = Some(b"{\"checking_account\": not json".to_vec());
    }
    Ok(records)
}

fn key_of(record: &FeedRecord) -> String {
    String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned()
}

/// Produces `records` on a blocking thread (at most `rate` per second), returning where each
/// landed once all are acknowledged.
pub fn start_feeding(
    bootstrap: &str,
    topic: &str,
    records: Vec<FeedRecord>,
    rate: Option<f64>,
) -> tokio::task::JoinHandle<Outcome<Vec<Fed>>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        feed_blocking(&bootstrap, &topic, &records, rate)
            .map_err(|e| format!("feeding {topic} failed: {e}"))
    })
}

pub async fn finish_feeding(
    feeding: tokio::task::JoinHandle<Outcome<Vec<Fed>>>,
) -> Outcome<Vec<Fed>> {
    feeding
        .await
        .map_err(|e| format!("the feeder panicked: {e}"))?
}

/// What has been read from the output topics.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Outputs (decisions and dead letters) per application id.
    pub per_key: HashMap<String, u32>,
    pub decisions: u64,
    pub dead_letters: u64,
    /// Outputs that are not what the worker promises (wrong key, unparsable decision).
    pub anomalies: Vec<String>,
    /// When the last output was read.
    pub last_read: Option<Instant>,
    /// Positions read so far, and how often one was read again with another key (a broker
    /// that reused offsets).
    positions: HashMap<(String, i32, i64), String>,
    pub reused_offsets: u64,
}

impl Outputs {
    fn record(&mut self, output: &credit_kafka::tail::Tailed, decisions_topic: &str) {
        let key = output.key_text().unwrap_or_default().to_owned();
        let position = (output.topic.clone(), output.partition, output.offset);
        match self.positions.insert(position, key.clone()) {
            Some(previous) if previous != key => self.reused_offsets += 1,
            _ => {}
        }
        if output.topic == decisions_topic {
            self.decisions += 1;
            let decision: Option<serde_json::Value> = output
                .payload
                .as_deref()
                .and_then(|payload| serde_json::from_slice(payload).ok());
            let id = decision
                .as_ref()
                .and_then(|d| d.get("application_id"))
                .and_then(|id| id.as_str());
            let verdict = decision
                .as_ref()
                .and_then(|d| d.get("decision"))
                .and_then(|d| d.as_str());
            if id != Some(key.as_str()) || !matches!(verdict, Some("good" | "bad")) {
                self.anomalies.push(format!(
                    "decision at {}:{} keyed {key:?} is {:?}",
                    output.partition,
                    output.offset,
                    output.payload.as_deref().map(String::from_utf8_lossy)
                ));
            }
        } else {
            self.dead_letters += 1;
        }
        *self.per_key.entry(key).or_default() += 1;
        self.last_read = Some(Instant::now());
    }

    pub fn total(&self) -> u64 {
        self.decisions + self.dead_letters
    }
}

/// Reads the output and dead-letter topics in the background, from the beginning.
pub struct Collector {
    outputs: Arc<Mutex<Outputs>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start(bootstrap: &str, topics: &Topics) -> Outcome<Self> {
        let tail = Tail::open(bootstrap, &[&topics.output, &topics.dead_letter])
            .await
            .map_err(|e| format!("cannot read the output topics: {e}"))?;
        let outputs = Arc::new(Mutex::new(Outputs::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping, decisions_topic) =
            (outputs.clone(), stop.clone(), topics.output.clone());
        let task = tokio::spawn(async move {
            while !stopping.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), tail.next()).await {
                    Ok(Ok(output)) => shared
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(&output, &decisions_topic),
                    // Broker errors (an outage) are retried by the client: keep reading.
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => {}
                }
            }
        });
        Ok(Self {
            outputs,
            stop,
            task,
        })
    }

    /// Runs `f` on what has been read so far.
    pub fn with<T>(&self, f: impl FnOnce(&Outputs) -> T) -> T {
        f(&self.outputs.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Distinct application ids answered so far.
    pub fn answered(&self) -> usize {
        self.with(|o| o.per_key.len())
    }

    /// Waits until every id in `expected` has an output. Fails, naming the missing ids, when
    /// nothing new has been answered for [`STALL`] or when `check` fails (a process died).
    pub async fn wait_all_answered(
        &self,
        expected: &[String],
        mut check: impl FnMut() -> Outcome<()>,
    ) -> Outcome<()> {
        let mut answered = 0;
        let mut progress_at = Instant::now();
        loop {
            let now_answered = self.with(|o| {
                expected
                    .iter()
                    .filter(|key| o.per_key.contains_key(*key))
                    .count()
            });
            if now_answered == expected.len() {
                return Ok(());
            }
            if now_answered > answered {
                answered = now_answered;
                progress_at = Instant::now();
            }
            check()?;
            if progress_at.elapsed() >= STALL {
                return Err(format!(
                    "LOSS: {} of {} inputs have no decision or dead letter after {STALL:?} \
                     without progress; missing: {}",
                    expected.len() - answered,
                    expected.len(),
                    self.missing(expected, 20).join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Up to `limit` ids of `expected` without an output.
    pub fn missing(&self, expected: &[String], limit: usize) -> Vec<String> {
        self.with(|o| {
            expected
                .iter()
                .filter(|key| !o.per_key.contains_key(*key))
                .take(limit)
                .cloned()
                .collect()
        })
    }

    /// Reads for a little longer (late duplicates), then stops.
    pub async fn finish(self, settle: Duration) -> Outputs {
        tokio::time::sleep(settle).await;
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        Arc::try_unwrap(self.outputs)
            .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
            .unwrap_or_else(|shared| {
                std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner))
            })
    }
}

/// One past the last offset a fed record landed at, per partition (Tansu's ListOffsets is not
/// to be trusted, the producer's delivery reports are).
pub fn end_offsets(fed: &[Fed]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for record in fed {
        let end = ends.entry(record.partition).or_insert(0);
        *end = (*end).max(record.offset + 1);
    }
    ends
}

/// Waits until the group's committed offsets reach the input's end offsets (the last worker
/// re-processes what killed ones answered but did not commit); fails after [`STALL`] without
/// progress.
pub async fn wait_fully_committed(bootstrap: &str, topics: &Topics, fed: &[Fed]) -> Outcome<()> {
    let ends = end_offsets(fed);
    let mut last = (BTreeMap::new(), Instant::now());
    loop {
        let committed = committed_offsets(bootstrap, topics).await?;
        if committed == ends {
            return Ok(());
        }
        if committed != last.0 {
            last = (committed.clone(), Instant::now());
        }
        ensure!(
            last.1.elapsed() < STALL,
            "the committed offsets {committed:?} stopped short of the input's end offsets \
             {ends:?} for {STALL:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn committed_offsets(bootstrap: &str, topics: &Topics) -> Outcome<BTreeMap<i32, i64>> {
    let (bootstrap, group, input) = (
        bootstrap.to_owned(),
        topics.group.clone(),
        topics.input.clone(),
    );
    tokio::task::spawn_blocking(move || committed_offsets_blocking(&bootstrap, &group, &input))
        .await
        .map_err(|e| format!("offset look-up panicked: {e}"))?
        .map_err(|e| format!("cannot read the committed offsets: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Verdict and figures

/// What a scenario measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub scenario: String,
    pub inputs: usize,
    pub decisions: u64,
    pub dead_letters: u64,
    /// Inputs without any output (must be 0).
    pub losses: usize,
    /// Outputs beyond the first for an input.
    pub duplicates: u64,
    pub kills: usize,
    pub elapsed: Duration,
    /// Scenario-specific figures, in order.
    pub notes: Vec<(String, String)>,
    pub logs: PathBuf,
}

impl Figures {
    pub fn duplicate_percent(&self) -> f64 {
        if self.inputs == 0 {
            0.0
        } else {
            self.duplicates as f64 * 100.0 / self.inputs as f64
        }
    }

    fn note(&mut self, name: &str, value: impl fmt::Display) {
        self.notes.push((name.to_owned(), value.to_string()));
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario:     {}", self.scenario)?;
        writeln!(f, "inputs:       {}", self.inputs)?;
        writeln!(
            f,
            "outputs:      {} decisions, {} dead letters",
            self.decisions, self.dead_letters
        )?;
        writeln!(f, "kills:        {}", self.kills)?;
        writeln!(f, "losses:       {}", self.losses)?;
        writeln!(
            f,
            "duplicates:   {} ({:.2}% of inputs)",
            self.duplicates,
            self.duplicate_percent()
        )?;
        writeln!(f, "time:         {:.1} s", self.elapsed.as_secs_f64())?;
        for (name, value) in &self.notes {
            writeln!(f, "{:<13} {value}", format!("{name}:"))?;
        }
        write!(f, "logs:         {}", self.logs.display())
    }
}

/// The common verdict: every input answered by an output with its key, nothing answered that
/// was not an input, and (after a graceful stop) the committed offsets at the input's end.
#[allow(clippy::too_many_arguments)] // the scenario's whole context, each named
async fn verdict(
    scenario: &str,
    bootstrap: &str,
    topics: &Topics,
    expected: &[String],
    fed: &[Fed],
    outputs: Outputs,
    started: Instant,
    logs: PathBuf,
) -> Outcome<Figures> {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|key| !outputs.per_key.contains_key(*key))
        .collect();
    ensure!(
        missing.is_empty(),
        "LOSS: {} inputs have no output: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let known: std::collections::HashSet<&str> = expected.iter().map(String::as_str).collect();
    let strangers: Vec<&String> = outputs
        .per_key
        .keys()
        .filter(|key| !known.contains(key.as_str()))
        .collect();
    ensure!(
        strangers.is_empty(),
        "outputs for ids that were never input: {:?}",
        &strangers[..strangers.len().min(20)]
    );
    ensure!(
        outputs.anomalies.is_empty(),
        "{} malformed outputs, e.g. {}",
        outputs.anomalies.len(),
        outputs.anomalies[0]
    );
    let invalid = expected.len() / INVALID_EVERY;
    ensure!(
        outputs.dead_letters >= invalid as u64,
        "{} dead letters for {invalid} invalid inputs",
        outputs.dead_letters
    );
    let committed = committed_offsets(bootstrap, topics).await?;
    let ends = end_offsets(fed);
    ensure!(
        committed == ends,
        "after the graceful stop the committed offsets {committed:?} are not the input's end \
         offsets {ends:?}"
    );
    Ok(Figures {
        scenario: scenario.to_owned(),
        inputs: expected.len(),
        decisions: outputs.decisions,
        dead_letters: outputs.dead_letters,
        losses: 0,
        duplicates: outputs.total() - outputs.per_key.len() as u64,
        elapsed: started.elapsed(),
        logs,
        ..Figures::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: kill -9 the worker at random moments

/// The crash test's parameters.
#[derive(Debug, Clone)]
pub struct CrashPlan {
    pub records: usize,
    pub kills: usize,
    pub seed: u64,
    /// Input records per second (the stream goes on while the workers are killed).
    pub feed_rate: f64,
}

impl CrashPlan {
    /// A plan whose stream lasts about `feed_seconds`.
    pub fn new(records: usize, kills: usize, seed: u64, feed_seconds: f64) -> Self {
        Self {
            records,
            kills,
            seed,
            feed_rate: records as f64 / feed_seconds,
        }
    }
}

/// Streams `plan.records` applicants into a 6-partition topic while the `worker` binary is
/// started, killed with SIGKILL after a random (seeded) number of consumed records, and started
/// again, `plan.kills` times; a last worker finishes the stream and is stopped with SIGTERM.
/// Every input must have an output.
pub async fn crash_test(plan: &CrashPlan) -> Outcome<Figures> {
    let started = Instant::now();
    let logs = log_dir("crash")?;
    let mut tansu = Tansu::start(Storage::Memory, &logs)?;
    let bootstrap = tansu.bootstrap();
    let topics = Topics::unique("crash");
    create_scenario_topics(&bootstrap, &topics).await?;
    let records = inputs(plan.records)?;
    let expected: Vec<String> = records.iter().map(key_of).collect();
    let collector = Collector::start(&bootstrap, &topics).await?;
    let feeding = start_feeding(&bootstrap, &topics.input, records, Some(plan.feed_rate));

    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    // Each life is killed after consuming a random share of its part of the stream.
    let share = plan.records / (plan.kills + 1);
    let mut lives = Vec::new();
    for kill in 0..plan.kills {
        let mut worker =
            WorkerProcess::start(&bootstrap, &topics, &format!("worker-{kill}"), &logs)?;
        let life_started = Instant::now();
        let threshold: u64 = rng.gen_range((share / 4).max(1) as u64..=(share as u64).max(2));
        let extra_delay = Duration::from_millis(rng.gen_range(0..200));
        // Wait for the random moment, watching for progress: a worker that stops consuming
        // (or never starts) fails the scenario rather than hanging it.
        let mut last = (0, Instant::now());
        loop {
            worker.check_alive()?;
            tansu.check_alive()?;
            let consumed = worker.consumed().unwrap_or(0);
            if consumed >= threshold {
                break;
            }
            if consumed > last.0 {
                last = (consumed, Instant::now());
            }
            ensure!(
                last.1.elapsed() < STALL,
                "{} consumed {consumed} records and then nothing for {STALL:?} (waiting to \
                 reach {threshold} before kill {}; {} of {} inputs answered; log {})",
                worker.label(),
                kill + 1,
                collector.answered(),
                plan.records,
                worker.log().display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(extra_delay).await;
        let consumed = worker.consumed().unwrap_or(0);
        let answered = collector.answered();
        ensure!(
            answered < plan.records,
            "the stream was fully answered before kill {}: use more records or fewer kills",
            kill + 1
        );
        worker.kill9()?;
        lives.push(format!(
            "kill {} after {:.1} s, {consumed} consumed ({answered} answered overall)",
            kill + 1,
            life_started.elapsed().as_secs_f64()
        ));
    }

    let mut last = WorkerProcess::start(&bootstrap, &topics, "worker-final", &logs)?;
    collector
        .wait_all_answered(&expected, || {
            last.check_alive()?;
            tansu.check_alive()
        })
        .await?;
    let fed = finish_feeding(feeding).await?;
    wait_fully_committed(&bootstrap, &topics, &fed).await?;
    last.stop_gracefully()?;
    let outputs = collector.finish(Duration::from_millis(500)).await;
    let mut figures = verdict(
        "crash (kill -9 of the worker)",
        &bootstrap,
        &topics,
        &expected,
        &fed,
        outputs,
        started,
        logs,
    )
    .await?;
    figures.kills = plan.kills;
    figures.note("seed", plan.seed);
    figures.note("feed rate", format!("{:.0} records/s", plan.feed_rate));
    for (index, life) in lives.iter().enumerate() {
        figures.note(&format!("life {}", index + 1), life);
    }
    Ok(figures)
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: the broker goes away and comes back

/// The outage's parameters.
#[derive(Debug, Clone)]
pub struct OutagePlan {
    /// Records fed before the outage (the backlog being scored when the broker dies).
    pub before: usize,
    /// Records fed after the broker is back.
    pub after: usize,
    /// How long the broker stays down.
    pub down_for: Duration,
}

/// What the outage scenario observed of the worker while the broker was down.
#[derive(Debug, Default)]
pub struct OutageObservations {
    pub readyz: Vec<u16>,
    pub healthz: Vec<u16>,
    pub broker_log_lines: usize,
}

/// A worker scores a backlog on a Tansu whose data lives in an object store of its own
/// process; the broker is killed (SIGKILL) mid-stream, stays down for `down_for`, and a new
/// broker process starts on the same port with the same storage. The same worker process must
/// stay up, log the broker's loss, and answer every record once the broker is back. Returns
/// the figures and what `/readyz` and `/healthz` answered during the outage (asserted by the
/// caller, since readiness during an outage is a separate question).
pub async fn broker_outage(plan: &OutagePlan) -> Outcome<(Figures, OutageObservations)> {
    let started = Instant::now();
    let logs = log_dir("outage")?;
    let store = ObjectStore::start(&logs)?;
    let mut tansu = Tansu::start(
        Storage::S3 {
            endpoint: store.endpoint(),
        },
        &logs,
    )?;
    let bootstrap = tansu.bootstrap();
    let topics = Topics::unique("outage");
    create_scenario_topics(&bootstrap, &topics).await?;
    let records = inputs(plan.before + plan.after)?;
    let expected: Vec<String> = records.iter().map(key_of).collect();
    let (first, second) = records.split_at(plan.before);
    let (first, second) = (first.to_vec(), second.to_vec());
    let collector = Collector::start(&bootstrap, &topics).await?;
    let mut fed = finish_feeding(start_feeding(&bootstrap, &topics.input, first, None)).await?;

    let mut worker = WorkerProcess::start(&bootstrap, &topics, "worker", &logs)?;
    worker
        .wait_for("ready (/readyz 200)", |w| {
            w.get("/readyz").is_ok_and(|(status, _)| status == 200)
        })
        .await?;
    // Mid-stream: part of the backlog answered (and committed), the rest still to do.
    let threshold = (plan.before / 5).max(1);
    worker
        .wait_for(&format!("{threshold} records answered"), |_| {
            collector.answered() >= threshold
        })
        .await?;
    let committed_before = committed_offsets(&bootstrap, &topics).await?;
    let answered_before = collector.answered();
    let consumed_before = worker.consumed().unwrap_or(0);
    let acked_before = (
        worker
            .metric_sum("credit_risk_decisions_total")
            .unwrap_or(0.0),
        worker
            .metric_sum("credit_risk_dead_lettered_total")
            .unwrap_or(0.0),
    );
    let read_before = collector.with(|o| (o.decisions, o.dead_letters));

    // The outage.
    let log_mark = worker.process().log_len();
    tansu.kill9()?;
    let down_at = Instant::now();
    let mut seen = OutageObservations::default();
    while down_at.elapsed() < plan.down_for {
        worker.check_alive()?;
        seen.healthz
            .push(worker.get("/healthz").map_or(0, |(status, _)| status));
        seen.readyz
            .push(worker.get("/readyz").map_or(0, |(status, _)| status));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    worker.check_alive()?;
    let log_end = worker.process().log_len();
    let outage_log = worker.process().log_between(log_mark, log_end);
    seen.broker_log_lines = outage_log
        .lines()
        .filter(|line| {
            (line.contains("\"WARN\"") || line.contains("\"ERROR\""))
                && line.contains(&tansu.address.port().to_string())
        })
        .count();
    tansu.restart()?;
    let up_at = Instant::now();

    // The broker kept the group's committed offsets (the storage survived it).
    let committed_after = committed_offsets(&bootstrap, &topics).await?;
    ensure!(
        committed_before
            .iter()
            .all(|(partition, position)| committed_after
                .get(partition)
                .is_some_and(|after| after >= position)),
        "the restarted broker lost committed offsets: before the outage {committed_before:?}, \
         after {committed_after:?}"
    );
    fed.extend(finish_feeding(start_feeding(&bootstrap, &topics.input, second, None)).await?);
    let waited = collector
        .wait_all_answered(&expected, || {
            worker.check_alive()?;
            tansu.check_alive()
        })
        .await;
    if let Err(failure) = waited {
        let context = format!(
            "just before the broker was killed the worker had {} decisions and {} dead letters \
             acknowledged by the broker, {} and {} had been read back; now it reports {:?} and \
             {:?}, {:?} read back (decisions, dead letters, output offsets read twice with different keys); committed offsets before the kill {committed_before:?}, after \
             the restart {committed_after:?}; logs {}",
            acked_before.0,
            acked_before.1,
            read_before.0,
            read_before.1,
            worker.metric_sum("credit_risk_decisions_total"),
            worker.metric_sum("credit_risk_dead_lettered_total"),
            collector.with(|o| (o.decisions, o.dead_letters, o.reused_offsets)),
            logs.display()
        );
        // Is it the reader or the topic? Read everything again from offset 0.
        let fresh = Collector::start(&bootstrap, &topics).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let missing = collector.missing(&expected, usize::MAX);
        let found = fresh.with(|o| {
            missing
                .iter()
                .filter(|key| o.per_key.contains_key(*key))
                .count()
        });
        let total = fresh.with(Outputs::total);
        drop(fresh.finish(Duration::ZERO).await);
        return Err(format!(
            "{failure}\n({context}; a fresh read of the output topics from offset 0 finds \
             {total} outputs and {found} of the {} missing ids)",
            missing.len()
        ));
    }
    let recovered_in = up_at.elapsed();
    wait_fully_committed(&bootstrap, &topics, &fed).await?;
    let ready_after = worker
        .wait_for("ready again after the outage", |w| {
            w.get("/readyz").is_ok_and(|(status, _)| status == 200)
        })
        .await;
    worker.stop_gracefully()?;
    ready_after?;
    let outputs = collector.finish(Duration::from_millis(500)).await;
    let mut figures = verdict(
        "broker outage (kill -9 of Tansu, restart on the same port and storage)",
        &bootstrap,
        &topics,
        &expected,
        &fed,
        outputs,
        started,
        logs,
    )
    .await?;
    let ready_200 = seen.readyz.iter().filter(|status| **status == 200).count();
    figures.note(
        "broker down",
        format!("{:.1} s", plan.down_for.as_secs_f64()),
    );
    figures.note(
        "at the kill",
        format!(
            "{consumed_before} consumed, {answered_before} answered, {} decisions and {} dead \
             letters acknowledged, committed {committed_before:?}",
            acked_before.0, acked_before.1
        ),
    );
    figures.note("after restart", format!("committed {committed_after:?}"));
    figures.note(
        "/readyz down",
        format!(
            "{ready_200} of {} probes answered 200 while the broker was down",
            seen.readyz.len()
        ),
    );
    figures.note(
        "/healthz down",
        format!(
            "{} of {} probes answered 200",
            seen.healthz.iter().filter(|s| **s == 200).count(),
            seen.healthz.len()
        ),
    );
    figures.note(
        "broker logs",
        format!(
            "{} WARN/ERROR lines about the broker while it was down",
            seen.broker_log_lines
        ),
    );
    figures.note(
        "recovery",
        format!(
            "all answered {:.1} s after the broker restarted",
            recovered_in.as_secs_f64()
        ),
    );
    drop(store);
    Ok((figures, seen))
}

/// What the readiness scenario saw: `/readyz` and `/healthz` statuses probed every 250 ms
/// while the broker was down, and how long the worker took to be ready again after it was
/// back.
#[derive(Debug)]
pub struct ReadinessObservations {
    pub seen: OutageObservations,
    pub ready_again_after: Duration,
}

/// Readiness through a broker outage: a worker is ready on a Tansu broker (in-memory
/// storage: this scenario is about the probes, not the data), the broker is killed with
/// SIGKILL for `down_for`, then a new one is started on the same port and the topics created
/// again. The worker must stay alive throughout and be ready again once the broker is back.
pub async fn readiness_through_an_outage(down_for: Duration) -> Outcome<ReadinessObservations> {
    let logs = log_dir("readiness")?;
    let mut tansu = Tansu::start(Storage::Memory, &logs)?;
    let bootstrap = tansu.bootstrap();
    let topics = Topics::unique("readiness");
    create_scenario_topics(&bootstrap, &topics).await?;
    let mut worker = WorkerProcess::start(&bootstrap, &topics, "worker", &logs)?;
    worker
        .wait_for("ready (/readyz 200)", |w| {
            w.get("/readyz").is_ok_and(|(status, _)| status == 200)
        })
        .await?;

    tansu.kill9()?;
    let down_at = Instant::now();
    let mut seen = OutageObservations::default();
    while down_at.elapsed() < down_for {
        worker.check_alive()?;
        seen.healthz
            .push(worker.get("/healthz").map_or(0, |(status, _)| status));
        seen.readyz
            .push(worker.get("/readyz").map_or(0, |(status, _)| status));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tansu.restart()?;
    create_scenario_topics(&bootstrap, &topics).await?;
    let ready_again_after = worker
        .wait_for("ready again once the broker is back", |w| {
            w.get("/readyz").is_ok_and(|(status, _)| status == 200)
        })
        .await?;
    worker.stop_gracefully()?;
    tansu.check_alive()?;
    Ok(ReadinessObservations {
        seen,
        ready_again_after,
    })
}

// ---------------------------------------------------------------------------------------------
// Hostile input at volume

/// The hostile payload number `i`: cycles through records just over the size limit, deep
/// nesting, very long strings, invalid UTF-8, truncated JSON, `"NaN"` and huge numbers.
fn hostile_payload(i: usize) -> Vec<u8> {
    let limit = credit_core::applicant::MAX_RECORD_BYTES;
    match i % 7 {
        0 => {
            let mut oversize = b"{\"purpose\":\"".to_vec();
            oversize.extend(std::iter::repeat_n(b'x', limit + 100));
            oversize.extend_from_slice(b"\"}");
            oversize
        }
        1 => format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes(),
        2 => format!("{{\"purpose\":\"{}\"}}", "y".repeat(12_000)).into_bytes(),
        3 => vec![0xff, 0xfe, b'{', 0xc3, 0x28, b'}'],
        4 => b"{\"checking_account\":\"below_0_dm\",\"duration_mon".to_vec(),
        5 => b"{\"age_years\":\"NaN\",\"credit_amount_dm\":\"NaN\"}".to_vec(),
        _ => b"{\"age_years\":1e308,\"credit_amount_dm\":-99999999999999999999999}".to_vec(),
    }
}

/// A stream in which every other record is hostile (see [`hostile_payload`]): every record
/// must be answered (decision or dead letter), and the worker's peak memory is reported.
pub async fn hostile_stream(records: usize, feed_seconds: f64) -> Outcome<Figures> {
    let started = Instant::now();
    let logs = log_dir("hostile")?;
    let mut broker = ScenarioBroker::start(BrokerKind::Tansu, &logs)?;
    let bootstrap = broker.bootstrap();
    let topics = Topics::unique("hostile");
    broker.create_topics(&topics).await?;
    let mut inputs = applicant_records(records).map_err(|e| e.to_string())?;
    for (i, record) in inputs.iter_mut().skip(1).step_by(2).enumerate() {
        record.payload = Some(hostile_payload(i));
    }
    let hostile = records / 2;
    let expected: Vec<String> = inputs.iter().map(key_of).collect();
    let collector = Collector::start(&bootstrap, &topics).await?;
    let mut worker = WorkerProcess::start(&bootstrap, &topics, "worker", &logs)?;
    let feeding = start_feeding(
        &bootstrap,
        &topics.input,
        inputs,
        Some(records as f64 / feed_seconds),
    );
    collector
        .wait_all_answered(&expected, || {
            worker.check_alive()?;
            broker.check_alive()
        })
        .await?;
    let fed = finish_feeding(feeding).await?;
    wait_fully_committed(&bootstrap, &topics, &fed).await?;
    let peak = proc_stats::peak_rss_mib_of(&worker.process().pid().to_string());
    worker.stop_gracefully()?;
    let outputs = collector.finish(Duration::from_millis(500)).await;
    let mut figures = verdict(
        "hostile stream (every other record hostile)",
        &bootstrap,
        &topics,
        &expected,
        &fed,
        outputs,
        started,
        logs,
    )
    .await?;
    ensure!(
        figures.dead_letters >= hostile as u64,
        "{} dead letters for {hostile} hostile records",
        figures.dead_letters
    );
    figures.note(
        "hostile",
        format!("{hostile} records (over-limit, nested, long, non-UTF-8, truncated, NaN, huge)"),
    );
    figures.note(
        "worker peak",
        peak.map_or_else(|| "unknown".to_owned(), |mib| format!("{mib:.1} MiB RSS")),
    );
    Ok(figures)
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: one of two replicas killed mid-stream

/// Two `worker` processes share a group on a 6-partition topic while a stream flows; one is
/// killed with SIGKILL at a random (seeded) point of the stream, and every record must be
/// answered.
///
/// With `replace = false` the survivor alone must take over all 6 partitions (once the dead
/// member's session times out). With `replace = true` a replacement replica is started right
/// after the kill, as an orchestrator restarting the crashed pod would, and the survivor and
/// the replacement must own all 6 partitions between them: Tansu 0.6 never hands the partitions
/// of a member that it evicted for missed heartbeats over to the survivor (it answers the
/// survivor's rejoin with the same generation and its old assignment), so only a new member's
/// join, after the eviction, reassigns them there; on the mock cluster (`BrokerKind::Mock`)
/// the survivor alone takes over, as with Kafka.
pub async fn rebalance_by_kill(
    broker: BrokerKind,
    records: usize,
    feed_seconds: f64,
    seed: u64,
    replace: bool,
) -> Outcome<Figures> {
    let started = Instant::now();
    let logs = log_dir("rebalance-kill")?;
    let mut broker_process = ScenarioBroker::start(broker, &logs)?;
    let bootstrap = broker_process.bootstrap();
    let topics = Topics::unique("rebalance-kill");
    broker_process.create_topics(&topics).await?;
    let inputs = inputs(records)?;
    let expected: Vec<String> = inputs.iter().map(key_of).collect();
    let collector = Collector::start(&bootstrap, &topics).await?;

    let mut victim = WorkerProcess::start(&bootstrap, &topics, "worker-a", &logs)?;
    let mut survivor = WorkerProcess::start(&bootstrap, &topics, "worker-b", &logs)?;
    let feeding = start_feeding(
        &bootstrap,
        &topics.input,
        inputs,
        Some(records as f64 / feed_seconds),
    );
    // Both replicas own partitions and are scoring.
    let mut waited = Instant::now();
    loop {
        victim.check_alive()?;
        survivor.check_alive()?;
        let a = victim.assigned_partitions().unwrap_or(0);
        let b = survivor.assigned_partitions().unwrap_or(0);
        let consuming = victim.consumed().unwrap_or(0) > 0 && survivor.consumed().unwrap_or(0) > 0;
        if a > 0 && b > 0 && a + b == i64::from(PARTITIONS) && consuming {
            break;
        }
        ensure!(
            waited.elapsed() < STALL,
            "the two replicas did not share the partitions within {STALL:?}: a owns {a}, b \
             owns {b} (logs {})",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shared = (
        victim.assigned_partitions().unwrap_or(0),
        survivor.assigned_partitions().unwrap_or(0),
    );
    // A random moment in the stream's first half.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let target = rng.gen_range(records / 10..=records / 2);
    waited = Instant::now();
    let mut last = 0;
    loop {
        victim.check_alive()?;
        survivor.check_alive()?;
        let answered = collector.answered();
        if answered >= target {
            break;
        }
        if answered > last {
            last = answered;
            waited = Instant::now();
        }
        ensure!(
            waited.elapsed() < STALL,
            "no progress for {STALL:?} at {answered} answered (logs {})",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim_consumed = victim.consumed().unwrap_or(0);
    let answered_at_kill = collector.answered();
    victim.kill9()?;
    let takeover_started = Instant::now();
    let mut replacement = if replace {
        // The replacement joins after the dead member's session has expired (an orchestrator's
        // restart back-off): Tansu 0.6 counts a member that joins earlier into a generation
        // that still includes the dead one, and then never rebalances when it evicts it.
        tokio::time::sleep(Duration::from_millis(u64::from(SESSION_TIMEOUT_MS) * 2)).await;
        Some(WorkerProcess::start(
            &bootstrap,
            &topics,
            "worker-c (replacement)",
            &logs,
        )?)
    } else {
        None
    };
    loop {
        survivor.check_alive()?;
        let b = survivor.assigned_partitions().unwrap_or(0);
        let c = match &mut replacement {
            Some(replacement) => {
                replacement.check_alive()?;
                replacement.assigned_partitions().unwrap_or(0)
            }
            None => 0,
        };
        if b + c == i64::from(PARTITIONS) && (!replace || (b > 0 && c > 0)) {
            break;
        }
        ensure!(
            takeover_started.elapsed() < STALL,
            "after the kill of worker-a, worker-b owns {b} partitions{} and the other {} are \
             not reassigned after {STALL:?} (logs {})",
            if replace {
                format!(" and the replacement {c}")
            } else {
                String::new()
            },
            i64::from(PARTITIONS) - b - c,
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = takeover_started.elapsed();
    let split_after = (
        survivor.assigned_partitions().unwrap_or(0),
        replacement
            .as_ref()
            .and_then(WorkerProcess::assigned_partitions)
            .unwrap_or(0),
    );
    collector
        .wait_all_answered(&expected, || {
            survivor.check_alive()?;
            if let Some(replacement) = &mut replacement {
                replacement.check_alive()?;
            }
            broker_process.check_alive()
        })
        .await?;
    let fed = finish_feeding(feeding).await?;
    wait_fully_committed(&bootstrap, &topics, &fed).await?;
    if let Some(replacement) = replacement {
        replacement.stop_gracefully()?;
    }
    survivor.stop_gracefully()?;
    let outputs = collector.finish(Duration::from_millis(500)).await;
    let mut figures = verdict(
        if replace {
            "rebalance by kill (one of two replicas, kill -9, replaced)"
        } else {
            "rebalance by kill (one of two replicas, kill -9, survivor alone)"
        },
        &bootstrap,
        &topics,
        &expected,
        &fed,
        outputs,
        started,
        logs,
    )
    .await?;
    figures.kills = 1;
    figures.note("seed", seed);
    figures.note(
        "split",
        format!("a owned {}, b owned {}", shared.0, shared.1),
    );
    figures.note(
        "at the kill",
        format!("a had consumed {victim_consumed}; {answered_at_kill} answered overall"),
    );
    figures.note(
        "takeover",
        format!(
            "{PARTITIONS} partitions owned again {:.1} s after the kill (b {}, replacement {}; \
             session timeout {} ms)",
            takeover.as_secs_f64(),
            split_after.0,
            split_after.1,
            SESSION_TIMEOUT_MS
        ),
    );
    Ok(figures)
}

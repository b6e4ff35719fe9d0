//! Worker throughput, latency and memory against ONNX Runtime alone.
//!
//! ```text
//! ORT_DYLIB_PATH=$PWD/.onnxruntime/libonnxruntime.so cargo bench --bench worker -- --records 1000000
//! ```
//!
//! (a) ORT alone: the shipped model (`models/`), one session with the worker's intra-op
//!     threads (`model.inference_threads`), scoring preprocessed batches of `max_batch` rows
//!     (the worker's defaults from `config/default.toml`).
//! (b) Decode + preprocess alone: JSON bytes → `Applicant` through the worker's own
//!     `pipeline::decode::decode`, then `Preprocessor::transform_into`, one thread.
//! (c) End to end: `--records` applicants (the data set's 1,000 rows repeated, unique keys)
//!     are produced into the input topic of the embedded broker (librdkafka's mock cluster)
//!     *before* the worker starts; the worker (`pipeline::run`, the same code the `worker`
//!     binary runs, with the default configuration) then drains that backlog. Timed from the
//!     first record consumed until every output is acknowledged. (a), (b) and (c) run in
//!     `--repeat` rounds (default 2), back to back within each round. The machine's speed
//!     drifts between runs, and a ratio of one lucky run to one unlucky one would say more
//!     about that than the worker: the verdict on (c)/(a) is the median of the rounds'
//!     ratios, each pairing measurements taken under the same conditions; the table shows
//!     the best run of each.
//! (d) End-to-end latency, input Kafka timestamp → produce acknowledgement (the definition of
//!     `credit_risk_end_to_end_latency_seconds`), recorded exactly for every record by the
//!     worker's delivery callback (`Metrics::with_latency_observer`): at full load (the backlog of
//!     (c), so it includes the time records waited in the backlog) and at half of (c)'s
//!     best throughput (records fed at that rate while the worker runs, `--half-seconds`;
//!     `--repeat` runs, the verdict on the median of their p99s, as one run's p99 is set by
//!     its worst 1% of records and a single burst of time taken by the host lands on it).
//!     Beside it, the worker's share (`credit_risk_worker_latency_seconds`): from the intake
//!     thread taking the record from the consumer to the acknowledgement. The difference is
//!     the feeder's linger, the broker, the fetch, and any wait in the consumer's queue.
//! (e) Peak RSS (VmHWM) of each measurement's process.
//! (f) Beside each worker run: the broker process's CPU per record, and the share of the whole
//!     machine (both cores, every process) that was busy, and that the host stole, meanwhile
//!     (`/proc/stat`). A tail measured with the machine near saturation, or while the host
//!     took the cores, is queueing for the CPU rather than a wait in the worker.
//! (g) For (c) and (d), the worker's threads by role: CPU per record, how long they were
//!     ready to run but waited for a core, and how many times per 1,000 records they were put
//!     on a core (`/proc/self/task/*/stat` and `schedstat`). The inference thread's wait is
//!     throughput lost to the worker's other threads and to other processes;
//!     `CREDIT_RISK__MODEL__RESERVE_INFERENCE_CORE=true` gives it a core of its own. Each time
//!     a thread is put on a core is a context switch, which on this virtual machine costs
//!     CPU of its own.
//!
//! (e) With `--reasons`: beside each (c), the same backlog through a worker that gives every
//!     `bad` decision its reasons (`reasons.mode = "declines"`; the plain runs have reasons
//!     off), and its throughput as a share of that round's (c); the verdict is the median share.
//!     (f) Then (d) for that worker, at half of its best (e).
//!
//! Every measurement runs in a process of its own (this binary again, `--child ...`), so each
//! peak RSS is that measurement's alone. The broker runs in a separate process too, and so does
//! the feeder: the worker process's RSS is the worker's (ONNX Runtime and the model, librdkafka's
//! consumer prefetch queue and producer queue, tokio, the batches) plus the exact latency log
//! (8 bytes a record) and this bench's few polling tasks. On a 2-core machine the broker and
//! the feeder compete with the worker for the CPU, as they would on a shared host.
//!
//! The worker reads `CREDIT_RISK__...` environment overrides as the `worker` binary does, e.g.
//! `CREDIT_RISK__BATCHING__MAX_WAIT_MS=5`, to compare settings without a rebuild.
//!
//! `--paced-rates 5000,10000,...` adds one paced run per rate after (d), the same way, to show
//! up to which load the latency stays low (`BENCH_WORKER_LATENCY_DUMP=PATH` writes each run's
//! end-to-end and in-worker latencies in acknowledgement order, to see whether a queue builds
//! up during a run and where).
//!
//! Figures are printed as a table and written to `target/bench-worker.json`.
//! Targets on the 2-core reference machine: (c) ≥ 80% of (a); p99 at half load ≤ 25 ms; peak
//! RSS ≤ 200 MiB.

use credit_testkit::proc_stats;

use credit_core::dataset::{self, LabelledApplicant};
use credit_core::decode::decode;
use credit_core::explain::ReasonsMode;
use credit_core::schema::Schema;
use credit_kafka::mock::EmbeddedCluster;
use credit_testkit::latency::LatencyLog;
use credit_worker::config::Config;
use credit_worker::pipeline;
use credit_worker::service::model;
use credit_worker::telemetry::health::Health;
use credit_worker::telemetry::metrics::{LatencyObserver, Metrics};
use proc_stats::peak_rss_mib;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The mock brokers keep at most 5 MiB per partition and drop older records beyond it: spread
/// the input over enough partitions that nothing is dropped before the worker reads it.
const PARTITION_BUDGET_BYTES: usize = 3 * 1024 * 1024;
/// Output partitions: outputs are not read back (latencies are recorded at acknowledgement),
/// so the mock's retention may drop old ones; a realistic count keeps producer batches real.
const OUTPUT_PARTITIONS: i32 = 12;
/// Input partitions of the half-load run (see there).
const HALF_LOAD_PARTITIONS: i32 = 6;
/// Records answered before the half-load measurement starts.
const HALF_LOAD_WARMUP: u64 = 2000;
/// How long a paced feeder waits after connecting before its clock starts.
const FEEDER_SETTLE: Duration = Duration::from_millis(1000);
/// The consumer's `fetch.wait.max.ms` against the mock: how long a record arriving in an empty
/// partition can wait before a fetch brings it. A real broker answers a waiting fetch as soon
/// as data arrives; the mock re-polled every 2 ms comes closest, at the cost of CPU that the
/// worker pays for on its own cores.
const MOCK_FETCH_WAIT_MS: &str = "2";
/// Mock brokers, as in embedded mode.
const BROKERS: i32 = 3;
/// How often the worker child checks its progress (see there).
const WATCH_TICK: Duration = Duration::from_millis(10);
/// Give up on an end-to-end run after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);
/// Give up when no output has been acknowledged for this long once records flow: the mock
/// keeps at most 5 MiB per partition, so a worker that falls that far behind a paced feed
/// never sees the records the mock dropped, and would otherwise wait out `RUN_TIMEOUT`.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Args {
    records: u64,
    half_seconds: f64,
    repeat: usize,
    child: Option<String>,
    bootstrap: String,
    prefix: String,
    rate: Option<f64>,
    first: u64,
    batch: Option<usize>,
    /// Records (fed before the measured ones) whose outputs are awaited before the worker
    /// reports `READY`, and left out of its latencies.
    warmup: u64,
    /// Extra paced runs, records per second.
    paced_rates: Vec<f64>,
    /// The broker process, whose CPU time a worker child reports for its run.
    broker_pid: Option<u32>,
    /// Which decisions a worker child explains (the plain runs: none).
    reasons: ReasonsMode,
    /// The bundle measured (`--models DIR`, a German Credit bundle; default `models/`).
    models: Option<PathBuf>,
    /// Also measure the worker with reasons on every decline, beside each plain run (`--reasons`).
    with_reasons: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        records: 1_000_000,
        half_seconds: 25.0,
        repeat: 2,
        child: None,
        bootstrap: String::new(),
        prefix: String::new(),
        rate: None,
        first: 0,
        batch: None,
        warmup: 0,
        paced_rates: Vec::new(),
        broker_pid: None,
        reasons: ReasonsMode::Off,
        with_reasons: false,
        models: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| iter.next().ok_or(format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(text: String, name: &str) -> Result<T, String> {
            text.parse()
                .map_err(|_| format!("{name}: not a number: {text}"))
        }
        match arg.as_str() {
            "--records" => args.records = num(value("--records")?, "--records")?,
            "--half-seconds" => {
                args.half_seconds = num(value("--half-seconds")?, "--half-seconds")?
            }
            "--repeat" => args.repeat = num(value("--repeat")?, "--repeat")?,
            "--batch" => args.batch = Some(num(value("--batch")?, "--batch")?),
            "--child" => args.child = Some(value("--child")?),
            "--bootstrap" => args.bootstrap = value("--bootstrap")?,
            "--prefix" => args.prefix = value("--prefix")?,
            "--rate" => args.rate = Some(num(value("--rate")?, "--rate")?),
            "--first" => args.first = num(value("--first")?, "--first")?,
            "--warmup" => args.warmup = num(value("--warmup")?, "--warmup")?,
            "--broker-pid" => args.broker_pid = Some(num(value("--broker-pid")?, "--broker-pid")?),
            "--reasons-mode" => args.reasons = value("--reasons-mode")?.parse()?,
            "--reasons" => args.with_reasons = true,
            "--models" => args.models = Some(value("--models")?.into()),
            "--paced-rates" => {
                args.paced_rates = value("--paced-rates")?
                    .split(',')
                    .map(|rate| num(rate.trim().to_owned(), "--paced-rates"))
                    .collect::<Result<_, _>>()?
            }
            // `cargo bench` passes `--bench`; other harness flags are ignored too.
            _ => {}
        }
    }
    Ok(args)
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// CPU seconds (user + system) used so far by process `pid` (`self`: this one); NaN if it
/// cannot be read.
fn process_cpu_seconds(pid: &str) -> f64 {
    proc_stats::process_cpu_seconds(pid).unwrap_or(f64::NAN)
}

/// CPU seconds (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

/// What this process's threads have used so far, summed by role: `[CPU seconds, seconds
/// waiting for a core, times put on a core]`. Roles: the pipeline's own threads by name
/// (`intake`, `inference`, `publishing`), librdkafka's (`rdk:...`) as `librdkafka`,
/// rust-rdkafka's delivery-report poller as `delivery reports`, tokio's workers as `tokio`,
/// anything else as `other`. CPU (user + system, from `stat`) says where a live feed's extra
/// CPU per record goes; the wait (ready to run but not running, the second field of
/// `schedstat`; NaN where the kernel does not keep it) says which threads the cores were too
/// few for; the count (the third field) is how often they woke or were preempted and came
/// back, each a context switch. The threads are listed as the worker's thread placement lists
/// them ([`pipeline::placement::thread_ids`]).
fn thread_usage() -> BTreeMap<&'static str, [f64; 3]> {
    let mut by_role = BTreeMap::new();
    let Ok(tids) = pipeline::placement::thread_ids() else {
        return by_role;
    };
    for tid in tids {
        let task = PathBuf::from(format!("/proc/self/task/{tid}"));
        let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("", |(name, _)| name);
        let role = match name {
            "intake" => "intake",
            "inference" => "inference",
            "publishing" => "publishing",
            _ if name.starts_with("rdk:") => "librdkafka",
            // rust-rdkafka's ThreadedProducer thread, "producer polling thread" cut to 15 bytes.
            "producer pollin" => "delivery reports",
            _ if name.starts_with("tokio") => "tokio",
            _ => "other",
        };
        let schedstat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
        let schedstat_field = |n: usize| {
            schedstat
                .split_whitespace()
                .nth(n)
                .and_then(|field| field.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let usage = by_role.entry(role).or_insert([0.0; 3]);
        usage[0] += proc_stats::stat_cpu_seconds(&stat).unwrap_or(0.0);
        usage[1] += schedstat_field(1) / 1e9;
        usage[2] += schedstat_field(2);
    }
    by_role
}

/// The whole machine's CPU time so far, in clock ticks summed over its cores, from the first
/// line of /proc/stat: `(busy, stolen, total)`. Busy counts user, nice, system, irq and softirq
/// time (guest time is inside user); stolen is time the hypervisor gave the cores to others.
fn machine_ticks() -> (f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).copied().unwrap_or(f64::NAN);
    // user nice system idle iowait irq softirq steal
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    let total = busy + field(3) + field(4) + field(7);
    (busy, field(7), total)
}

/// The worker's configuration: the shipped defaults with any `CREDIT_RISK__...` environment
/// overrides (as the worker binary reads them, so settings can be compared without a rebuild),
/// the shipped model, and the mock broker's one quirk handled: it answers an empty fetch only
/// after the full `fetch.wait.max.ms` rather than as soon as data arrives, as real brokers do.
fn worker_config(args: &Args) -> Result<Config, String> {
    let mut config = Config::load(None).map_err(|e| e.to_string())?;
    config.model.dir = models_dir(args);
    if let Some(batch) = args.batch {
        config.batching.max_batch = batch;
    }
    config.kafka.brokers = args.bootstrap.clone();
    config.kafka.input_topic = format!("{}-in", args.prefix);
    config.kafka.output_topic = format!("{}-out", args.prefix);
    config.kafka.dead_letter_topic = format!("{}-dlq", args.prefix);
    config.kafka.group_id = format!("{}-group", args.prefix);
    config.reasons.mode = args.reasons;
    config
        .kafka
        .client
        .entry("consumer.fetch.wait.max.ms".to_owned())
        .or_insert_with(|| MOCK_FETCH_WAIT_MS.to_owned());
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The bundle measured.
fn models_dir(args: &Args) -> PathBuf {
    args.models
        .clone()
        .unwrap_or_else(|| manifest().join("models"))
}

/// The shipped bundle's schema.
fn shipped_schema() -> Result<Schema, String> {
    Schema::load(&manifest().join("models/schema.toml")).map_err(|e| e.to_string())
}

/// The data set's applicants, read with the shipped schema.
fn shipped_rows(schema: &Schema) -> Result<Vec<LabelledApplicant>, String> {
    dataset::load_labelled(schema, &manifest().join("data/german_credit.csv"))
        .map_err(|e| e.to_string())
}

/// The data set's applicants as JSON payloads (the feed cycles through them).
fn payloads() -> Result<Vec<Vec<u8>>, String> {
    let schema = shipped_schema()?;
    let rows = shipped_rows(&schema)?;
    Ok(rows
        .iter()
        .map(|row| row.applicant.to_json(&schema))
        .collect())
}

fn key_of(index: u64) -> String {
    format!("app-{:08}", index + 1)
}

/// Input partitions needed for `records` records under the mock's retention.
fn input_partitions(records: u64, payloads: &[Vec<u8>]) -> i32 {
    let average = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len().max(1);
    let bytes = (records as usize).saturating_mul(average + 100);
    i32::try_from(bytes.div_ceil(PARTITION_BUDGET_BYTES))
        .unwrap_or(i32::MAX)
        .max(3)
}

// ---------------------------------------------------------------------------------------------
// (a) ORT alone

fn child_ort(args: &Args) -> Result<String, String> {
    let config = worker_config(args)?;
    let loaded = model::load(&config.model, config.reasons).map_err(|e| e.to_string())?;
    let mut scorer = loaded.scorer;
    let preprocessor = loaded.preprocessor;
    let width = preprocessor.width;
    let batch = config.batching.max_batch;
    let rows = shipped_rows(&loaded.schema)?;
    // 16 distinct preprocessed batches, cycled.
    let batches: Vec<Vec<f32>> = (0..16)
        .map(|b| {
            let mut features = vec![0.0; batch * width];
            for (i, out) in features.chunks_exact_mut(width).enumerate() {
                let row = &rows[(b * batch + i) % rows.len()];
                let _ = preprocessor.transform_into(&row.applicant, out);
            }
            features
        })
        .collect();
    let mut out = Vec::with_capacity(batch);
    // Warm-up, as the worker's first batch would be.
    scorer
        .score_into(&batches[0], batch, &mut out)
        .map_err(|e| e.to_string())?;
    let total = args.records.div_ceil(batch as u64);
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    for n in 0..total {
        let features = &batches[(n % batches.len() as u64) as usize];
        scorer
            .score_into(features, batch, &mut out)
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let scored = total * batch as u64;
    Ok(format!(
        "{{\"records_per_s\":{},\"records\":{scored},\"batch\":{batch},\"intra_threads\":{},\"peak_rss_mib\":{},\"cpu_s\":{}}}",
        scored as f64 / seconds,
        config.model.inference_threads,
        peak_rss_mib(),
        // JSON has no NaN: an unreadable CPU time is null.
        serde_json::json!(cpu_seconds() - cpu_started)
    ))
}

// ---------------------------------------------------------------------------------------------
// (b) decode + preprocess alone

fn child_decode(args: &Args) -> Result<String, String> {
    let config = worker_config(args)?;
    let loaded = model::load(&config.model, config.reasons).map_err(|e| e.to_string())?;
    let schema = loaded.schema;
    let preprocessor = loaded.preprocessor;
    let width = preprocessor.width;
    let batch = config.batching.max_batch;
    let payloads = payloads()?;
    let keys: Vec<String> = (0..payloads.len() as u64).map(key_of).collect();
    let mut features = vec![0.0f32; batch * width];
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let mut rejected = 0u64;
    for n in 0..args.records {
        let i = (n % payloads.len() as u64) as usize;
        let row = (n % batch as u64) as usize;
        match decode(&schema, Some(keys[i].as_bytes()), Some(&payloads[i])) {
            Ok((id, applicant)) => {
                let out = &mut features[row * width..(row + 1) * width];
                if preprocessor.transform_into(&applicant, out).is_err() {
                    rejected += 1;
                }
                std::hint::black_box(id);
            }
            Err(_) => rejected += 1,
        }
        std::hint::black_box(&features);
    }
    let seconds = started.elapsed().as_secs_f64();
    if rejected > 0 {
        return Err(format!("{rejected} records rejected"));
    }
    Ok(format!(
        "{{\"records_per_s\":{},\"records\":{},\"peak_rss_mib\":{},\"cpu_s\":{}}}",
        args.records as f64 / seconds,
        args.records,
        peak_rss_mib(),
        // JSON has no NaN: an unreadable CPU time is null.
        serde_json::json!(cpu_seconds() - cpu_started)
    ))
}

// ---------------------------------------------------------------------------------------------
// The broker and the feeder (processes of their own)

/// Runs the mock cluster; reads `topic NAME PARTITIONS` lines on stdin, answers `ok`, and
/// stops at end of input.
fn child_broker() -> Result<String, String> {
    let cluster = EmbeddedCluster::start(BROKERS).map_err(|e| e.to_string())?;
    println!("BOOTSTRAP {}", cluster.bootstrap_servers());
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["topic", name, partitions] = parts[..] {
            let partitions = partitions.parse().map_err(|_| "bad partitions")?;
            cluster
                .create_topic(name, partitions)
                .map_err(|e| e.to_string())?;
            println!("ok");
        }
    }
    Ok(format!("{{\"peak_rss_mib\":{}}}", peak_rss_mib()))
}

struct FeedContext {
    failed: AtomicU64,
}

impl ClientContext for FeedContext {}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces `--records` applicants (keys from `--first`) into `<prefix>-in`, at `--rate` per
/// second if given; the records' Kafka timestamps are their produce times.
fn child_feed(args: &Args) -> Result<String, String> {
    let payloads = payloads()?;
    // A backlog is written in full producer batches (up to batch.size, 1 MB): the mock broker
    // answers a fetch with one stored batch per partition, where a real broker returns up to
    // max.partition.fetch.bytes (1 MiB) of them. Fed at full speed into ~200 partitions with
    // a 5 ms linger, batches held ~7 records, and the worker paid a fetch round per 7 records
    // and partition, an artefact of the mock, not a property of the worker. A paced feed
    // keeps the 5 ms linger of an ordinary producer: its records' latency includes it.
    let (linger_ms, queued) = match args.rate {
        None => ("1000", "1000000"),
        Some(_) => ("5", "200000"),
    };
    let producer: ThreadedProducer<FeedContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", linger_ms)
        .set("queue.buffering.max.messages", queued)
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(FeedContext {
            failed: AtomicU64::new(0),
        })
        .map_err(|e| e.to_string())?;
    let topic = format!("{}-in", args.prefix);
    if args.rate.is_some() {
        // A paced feed measures latency from each record's creation: the producer must be
        // ready (metadata known, producer id acquired) before the clock starts, or the first
        // records' latency is the feeder's start-up, not the worker's.
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        std::thread::sleep(FEEDER_SETTLE);
    }
    let started = Instant::now();
    let mut key = String::new();
    for n in 0..args.records {
        if let Some(rate) = args.rate.filter(|rate| *rate > 0.0) {
            // Records due within the next millisecond go now: a sleep per record would cost
            // the feeder (which shares the worker's cores) a wake-up per record.
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                if wait > Duration::from_millis(1) {
                    std::thread::sleep(wait);
                }
            }
        }
        key.clear();
        use std::fmt::Write as _;
        let _ = write!(key, "app-{:08}", args.first + n + 1);
        let payload = &payloads[(n % payloads.len() as u64) as usize];
        let mut record: BaseRecord<'_, str, [u8], ()> =
            BaseRecord::to(&topic).key(key.as_str()).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => return Err(error.to_string()),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} records not delivered"));
    }
    Ok(format!(
        "{{\"records\":{},\"seconds\":{},\"peak_rss_mib\":{}}}",
        args.records,
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    ))
}

// ---------------------------------------------------------------------------------------------
// (c), (d), (e): the worker

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// The clocks a worker run is measured with, read at its start and at its end.
struct Mark {
    at: Instant,
    /// This process's CPU seconds.
    cpu: f64,
    /// The whole machine's ticks (see [`machine_ticks`]).
    machine: (f64, f64, f64),
    /// The broker process's CPU seconds (NaN if unknown).
    broker_cpu: f64,
    /// This process's CPU and core-wait seconds and times on a core, by thread role (see
    /// [`thread_usage`]).
    threads: BTreeMap<&'static str, [f64; 3]>,
}

impl Mark {
    fn now(broker_pid: Option<&str>) -> Self {
        Self {
            at: Instant::now(),
            cpu: cpu_seconds(),
            machine: machine_ticks(),
            broker_cpu: broker_pid.map_or(f64::NAN, process_cpu_seconds),
            threads: thread_usage(),
        }
    }

    /// Stands in for the start of a run that never consumed a measured record.
    fn unmeasured(started: Instant) -> Self {
        Self {
            at: started,
            cpu: 0.0,
            machine: (f64::NAN, f64::NAN, f64::NAN),
            broker_cpu: f64::NAN,
            threads: BTreeMap::new(),
        }
    }
}

/// Runs the worker until `--records` outputs are acknowledged. Prints `READY` once it has its
/// partitions (the orchestrator starts a paced feed then).
fn child_worker(args: &Args) -> Result<String, String> {
    let config = worker_config(args)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,ort=error".to_owned()))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(measure_worker(args, config))
}

/// Starts the pipeline, watches it until every output is acknowledged, stops it, and returns
/// the run's figures as JSON.
async fn measure_worker(args: &Args, config: Config) -> Result<String, String> {
    let expected = args.records;
    let (model_config, reasons) = (config.model.clone(), config.reasons);
    let loaded = tokio::task::spawn_blocking(move || model::load(&model_config, reasons))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let log = Arc::new(LatencyLog::with_capacity(expected as usize));
    let metrics = Metrics::new()
        .map_err(|e| e.to_string())?
        .with_latency_observer(Arc::clone(&log) as Arc<dyn LatencyObserver>);
    let health = Arc::new(Health::new());
    health.set_model_loaded(true);
    let stop = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let worker = spawn_pipeline(config, loaded, &metrics, &health, &stop);
    let watched = watch_worker(args, &log, &metrics, &health, &worker, started).await;
    let rss_before_shutdown = peak_rss_mib();
    stop.notify_one();
    let report = worker.await.map_err(|e| e.to_string())?;
    let report = report.map_err(|e| e.to_string())?;
    let Some((end, acked)) = watched.finished else {
        return Err(format!(
            "worker stopped or timed out: {} of {expected} acknowledged",
            report.decided + report.dead_lettered
        ));
    };
    let run = WorkerRun {
        start: watched.first_consumed.unwrap_or(Mark::unmeasured(started)),
        end,
        started,
        acked,
        dead_lettered: report.dead_lettered,
        rss_before_shutdown,
    };
    let latencies = Latencies::measured(&log, args);
    Ok(worker_figures(args, &run, &latencies))
}

/// Runs the pipeline on a task of its own until `stop` is notified.
fn spawn_pipeline(
    config: Config,
    loaded: pipeline::ServedModel,
    metrics: &Metrics,
    health: &Arc<Health>,
    stop: &Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<Result<pipeline::RunReport, pipeline::PipelineError>> {
    let (metrics, health, stop) = (metrics.clone(), Arc::clone(health), Arc::clone(stop));
    tokio::spawn(async move {
        let bootstrap = config.kafka.brokers.clone();
        // The benchmark serves one model: no reloads.
        let (_, no_reloads) = tokio::sync::mpsc::channel(1);
        pipeline::run(
            &config,
            &bootstrap,
            loaded,
            no_reloads,
            metrics,
            health,
            async move { stop.notified().await },
        )
        .await
    })
}

/// What the bench's watch over a worker run saw.
struct Watched {
    /// Taken when the first record past the warm-up was consumed.
    first_consumed: Option<Mark>,
    /// Taken when every output was acknowledged, with their count; `None` if the run stalled,
    /// the worker stopped, or the run timed out.
    finished: Option<(Mark, u64)>,
}

/// Watches the worker until every output is acknowledged, it stalls, stops or times out;
/// prints `READY` once it has its partitions and the warm-up's outputs.
async fn watch_worker<T>(
    args: &Args,
    log: &LatencyLog,
    metrics: &Metrics,
    health: &Health,
    worker: &tokio::task::JoinHandle<T>,
    started: Instant,
) -> Watched {
    let expected = args.records;
    let mut ready_reported = false;
    let mut first_consumed: Option<Mark> = None;
    // The broker's CPU over the same window: it serves only this run meanwhile (in a paced
    // run, the feeder's produce requests too, part of the run's cost).
    let broker_pid = args.broker_pid.map(|pid| pid.to_string());
    // The bench's own watch over the worker, in the worker's process: every tick is a
    // wake-up charged to the worker's CPU and cores. 10 ms puts the start and end of a run
    // within 0.1% of a 10-second measurement; a 1 ms tick cost about 4% of a core.
    let mut ticker = tokio::time::interval(WATCH_TICK);
    let (mut last_outputs, mut last_progress) = (0, Instant::now());
    let finished = loop {
        ticker.tick().await;
        // The exact log counts every acknowledged output (all inputs carry timestamps):
        // one atomic load per tick; the labelled totals confirm it.
        let outputs = log.len();
        if !ready_reported && health.ready() && outputs as u64 >= args.warmup {
            println!("READY");
            let _ = std::io::stdout().flush();
            ready_reported = true;
        }
        if first_consumed.is_none() && metrics.records_consumed.get() > args.warmup {
            first_consumed = Some(Mark::now(broker_pid.as_deref()));
            // The stall window starts with the measured records, not with start-up.
            last_progress = Instant::now();
        }
        let acked = acknowledged(outputs, expected, metrics);
        if acked >= expected {
            break Some((Mark::now(broker_pid.as_deref()), acked));
        }
        if outputs != last_outputs {
            (last_outputs, last_progress) = (outputs, Instant::now());
        }
        let stalled = first_consumed.is_some() && last_progress.elapsed() > STALL_TIMEOUT;
        if stalled {
            eprintln!(
                "no output for {} s at {outputs} of {expected}: were records dropped by \
                 the mock's retention (5 MiB per partition) before the worker read them?",
                STALL_TIMEOUT.as_secs()
            );
        }
        if stalled || worker.is_finished() || started.elapsed() > RUN_TIMEOUT {
            break None;
        }
    };
    Watched {
        first_consumed,
        finished,
    }
}

/// Outputs acknowledged by the labelled totals, read only once the exact log has `expected`.
fn acknowledged(outputs: usize, expected: u64, metrics: &Metrics) -> u64 {
    if outputs as u64 >= expected {
        metrics.decisions_total() + metrics.dead_lettered_total()
    } else {
        0
    }
}

/// A worker run that acknowledged every output.
struct WorkerRun {
    /// When the first measured record was consumed.
    start: Mark,
    /// When the last output was acknowledged.
    end: Mark,
    /// When the pipeline was started.
    started: Instant,
    acked: u64,
    dead_lettered: u64,
    rss_before_shutdown: f64,
}

/// The measured records' latencies in microseconds, sorted.
struct Latencies {
    end_to_end: Vec<u32>,
    in_worker: Vec<u32>,
}

impl Latencies {
    /// Reads the exact log, writes it to `BENCH_WORKER_LATENCY_DUMP` if set, and leaves out the
    /// warm-up's outputs.
    fn measured(log: &LatencyLog, args: &Args) -> Self {
        let (mut micros, mut in_worker) = (log.end_to_end_micros(), log.in_worker_micros());
        if let Ok(path) = std::env::var("BENCH_WORKER_LATENCY_DUMP") {
            // Acknowledgement order, one output a line: end-to-end and in-worker latency in
            // microseconds (for plots).
            let text: String = micros
                .iter()
                .zip(&in_worker)
                .map(|(end_to_end, worker)| format!("{end_to_end} {worker}\n"))
                .collect();
            let _ = std::fs::write(format!("{path}.{}", args.prefix), text);
        }
        // Warm-up outputs were all acknowledged before the measured records were fed.
        let warmup = (args.warmup as usize).min(micros.len());
        let mut micros = micros.split_off(warmup);
        let mut in_worker = in_worker.split_off(warmup);
        micros.sort_unstable();
        in_worker.sort_unstable();
        Self {
            end_to_end: micros,
            in_worker,
        }
    }
}

/// Each thread role's change in one field of [`thread_usage`] between the marks, for the
/// roles seen at both (the worker's threads live through the run).
fn thread_deltas(start: &Mark, end: &Mark, field: usize) -> BTreeMap<&'static str, f64> {
    end.threads
        .iter()
        .filter_map(|(role, end)| Some((*role, end[field] - start.threads.get(role)?[field])))
        .collect()
}

/// A worker run's figures as a JSON object; the peak RSS after shutdown is read here.
fn worker_figures(args: &Args, run: &WorkerRun, latencies: &Latencies) -> String {
    let (start, end, acked) = (&run.start, &run.end, run.acked);
    // The share of all cores that was busy (every process) or stolen during the run.
    let machine_total = end.machine.2 - start.machine.2;
    let machine_busy = (end.machine.0 - start.machine.0) / machine_total;
    let machine_steal = (end.machine.1 - start.machine.1) / machine_total;
    let seconds = end.at.duration_since(start.at).as_secs_f64();
    let (thread_cpu, thread_wait, thread_on_core) = (
        thread_deltas(start, end, 0),
        thread_deltas(start, end, 1),
        thread_deltas(start, end, 2),
    );
    let (micros, in_worker) = (&latencies.end_to_end, &latencies.in_worker);
    let rss_before_shutdown = run.rss_before_shutdown;
    format!(
        "{{\"records_per_s\":{},\"records\":{acked},\"measured\":{},\"seconds\":{seconds},\"dead_lettered\":{},\"latency_p50_ms\":{},\"latency_p99_ms\":{},\"latency_max_ms\":{},\"worker_latency_p50_ms\":{},\"worker_latency_p99_ms\":{},\"latencies\":{},\"peak_rss_mib\":{rss_before_shutdown},\"peak_rss_after_shutdown_mib\":{},\"cpu_s\":{},\"broker_cpu_s\":{},\"machine_busy\":{},\"machine_steal\":{},\"thread_cpu_s\":{},\"thread_wait_s\":{},\"thread_on_core\":{},\"start_to_first_consumed_s\":{}}}",
        acked.saturating_sub(args.warmup) as f64 / seconds,
        acked.saturating_sub(args.warmup),
        run.dead_lettered,
        percentile_ms(micros, 0.50),
        percentile_ms(micros, 0.99),
        micros.last().map_or(f64::NAN, |m| f64::from(*m) / 1000.0),
        percentile_ms(in_worker, 0.50),
        percentile_ms(in_worker, 0.99),
        micros.len(),
        peak_rss_mib(),
        // JSON has no NaN: an unknown figure is null.
        serde_json::json!(end.cpu - start.cpu),
        serde_json::json!(end.broker_cpu - start.broker_cpu),
        serde_json::json!(machine_busy),
        serde_json::json!(machine_steal),
        serde_json::json!(thread_cpu),
        serde_json::json!(thread_wait),
        serde_json::json!(thread_on_core),
        start.at.duration_since(run.started).as_secs_f64()
    )
}

// ---------------------------------------------------------------------------------------------
// The orchestrator

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| e.to_string())
}

fn child_command(role: &str, args: &Args) -> Result<Command, String> {
    let mut command = Command::new(exe()?);
    command
        .args(["--child", role])
        .args(["--records", &args.records.to_string()])
        .args(["--first", &args.first.to_string()])
        .args(["--warmup", &args.warmup.to_string()]);
    if !args.bootstrap.is_empty() {
        command.args(["--bootstrap", &args.bootstrap]);
    }
    if !args.prefix.is_empty() {
        command.args(["--prefix", &args.prefix]);
    }
    if let Some(rate) = args.rate {
        command.args(["--rate", &rate.to_string()]);
    }
    if let Some(batch) = args.batch {
        command.args(["--batch", &batch.to_string()]);
    }
    if let Some(pid) = args.broker_pid {
        command.args(["--broker-pid", &pid.to_string()]);
    }
    command.args(["--reasons-mode", args.reasons.as_str()]);
    if let Some(models) = &args.models {
        command.arg("--models").arg(models);
    }
    Ok(command)
}

fn parse_result(stdout: &str, role: &str, stderr: &str) -> Result<serde_json::Value, String> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("child {role} failed: {stderr}"))?;
    serde_json::from_str(line).map_err(|e| format!("child {role} printed `{line}`: {e}"))
}

/// Runs a child to completion and returns its result.
fn run_child(role: &str, args: &Args) -> Result<serde_json::Value, String> {
    let output = child_command(role, args)?
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    parse_result(&String::from_utf8_lossy(&output.stdout), role, "see above")
}

/// The broker process and its command pipe.
struct Broker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    bootstrap: String,
}

impl Broker {
    fn start(args: &Args) -> Result<Self, String> {
        let mut child = child_command("broker", args)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no broker stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let bootstrap = line
            .trim()
            .strip_prefix("BOOTSTRAP ")
            .ok_or_else(|| format!("broker printed `{line}`"))?
            .to_owned();
        Ok(Self {
            child,
            stdin,
            stdout,
            bootstrap,
        })
    }

    fn create_topic(&mut self, name: &str, partitions: i32) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("broker stdin closed")?;
        writeln!(stdin, "topic {name} {partitions}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() == "ok" {
            Ok(())
        } else {
            Err(format!("creating {name}: broker printed `{line}`"))
        }
    }

    fn create_topics(&mut self, prefix: &str, input_partitions: i32) -> Result<(), String> {
        self.create_topic(&format!("{prefix}-in"), input_partitions)?;
        self.create_topic(&format!("{prefix}-out"), OUTPUT_PARTITIONS)?;
        self.create_topic(&format!("{prefix}-dlq"), 1)
    }

    fn stop(mut self) -> Result<serde_json::Value, String> {
        drop(self.stdin.take());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let _ = self.child.wait();
        parse_result(&rest, "broker", "")
    }
}

/// Runs the worker child; once it is ready, starts `feed` (if any) and waits for both.
fn run_worker(
    args: &Args,
    feed: Option<&Args>,
) -> Result<(serde_json::Value, Option<serde_json::Value>), String> {
    let mut child = child_command("worker", args)?
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no worker stdout")?);
    let mut line = String::new();
    let mut feeder: Option<std::thread::JoinHandle<Result<serde_json::Value, String>>> = None;
    let mut result = None;
    loop {
        line.clear();
        if stdout.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            break;
        }
        if line.trim() == "READY" {
            if let Some(feed) = feed {
                let feed = feed.clone();
                feeder = Some(std::thread::spawn(move || run_child("feed", &feed)));
            }
        } else if let Some(json) = line.trim().strip_prefix("RESULT ") {
            result = Some(serde_json::from_str(json).map_err(|e| e.to_string())?);
        }
    }
    let _ = child.wait();
    let fed = match feeder {
        Some(handle) => Some(handle.join().map_err(|_| "feeder panicked")??),
        None => None,
    };
    Ok((result.ok_or("worker child failed (see above)")?, fed))
}

fn number(value: &serde_json::Value, key: &str) -> f64 {
    value.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
}

/// The median of sorted values (the mean of the middle two for an even count); NaN if any
/// value is, so that a round without a figure makes a verdict unknown rather than sorting
/// to an end.
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        _ if sorted.iter().any(|value| value.is_nan()) => f64::NAN,
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn best(runs: &[serde_json::Value]) -> serde_json::Value {
    runs.iter()
        .max_by(|a, b| number(a, "records_per_s").total_cmp(&number(b, "records_per_s")))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// (a), (b) and (c) of every full-load round, and the feed that made each round's backlog.
struct FullLoad {
    ort_runs: Vec<serde_json::Value>,
    decode_runs: Vec<serde_json::Value>,
    full_runs: Vec<serde_json::Value>,
    /// With `--reasons`: (e), the worker with reasons on every decline, beside each (c).
    reasons_runs: Vec<serde_json::Value>,
    feeds: Vec<serde_json::Value>,
}

/// (c)/(a): each round's ratio, their median (the verdict) and best (c) over best (a).
struct Ratios {
    /// The rounds' ratios in round order, as percentages.
    rounds_text: String,
    sorted: Vec<f64>,
    median: f64,
    best: f64,
}

/// The (d) runs at half of (c)'s best throughput, each with its feeder's result.
struct HalfLoad {
    rate: f64,
    runs: Vec<(serde_json::Value, Option<serde_json::Value>)>,
}

/// Every measurement, and the run of each kind that the figures quote.
struct Results {
    full_load: FullLoad,
    /// The best (a), (b) and (c).
    ort: serde_json::Value,
    decoding: serde_json::Value,
    full: serde_json::Value,
    ratios: Ratios,
    half_load: HalfLoad,
    /// The (d) run of median p99, and its feeder's result.
    half: serde_json::Value,
    half_fed: Option<serde_json::Value>,
    paced: Vec<(f64, serde_json::Value)>,
    /// With `--reasons`: (e)/(c) per round, and (f) half load in reasons mode.
    reasons: Option<ReasonsResults>,
    broker: serde_json::Value,
}

/// The worker with reasons on every decline, against the plain worker of the same rounds.
struct ReasonsResults {
    /// (e)/(c) per round, sorted; the verdict is their median.
    ratios: Vec<f64>,
    half_load: HalfLoad,
    half: serde_json::Value,
}

fn orchestrate(args: &Args) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let settings = print_settings(args, cores)?;
    let payloads = payloads()?;
    let broker = Broker::start(args)?;
    let args = &Args {
        broker_pid: Some(broker.child.id()),
        ..args.clone()
    };
    let results = measure(broker, args, &payloads)?;
    println!();
    print_table(args, &results);
    println!();
    print_verdicts(args, &results);
    print_thread_costs(&results);
    write_figures(cores, &settings, args, results)
}

/// The worker's settings (defaults and `CREDIT_RISK__` overrides), printed first since every
/// figure depends on them.
fn print_settings(args: &Args, cores: usize) -> Result<Config, String> {
    let settings = worker_config(&Args {
        bootstrap: "unused:9092".into(),
        prefix: "unused".into(),
        ..args.clone()
    })?;
    println!(
        "{cores} cores; worker settings (defaults and CREDIT_RISK__ overrides): max_batch {}, max_wait {} ms, inference_threads {}, reserve_inference_core {}; {} records",
        settings.batching.max_batch,
        settings.batching.max_wait_ms,
        settings.model.inference_threads,
        settings.model.reserve_inference_core,
        args.records
    );
    Ok(settings)
}

/// Runs every measurement against `broker`, then stops it.
fn measure(mut broker: Broker, args: &Args, payloads: &[Vec<u8>]) -> Result<Results, String> {
    let run_id = std::process::id();
    let full_load = full_load_rounds(&mut broker, args, run_id, payloads)?;
    let (ort, decoding) = (best(&full_load.ort_runs), best(&full_load.decode_runs));
    let full = best(&full_load.full_runs);
    let ratios = Ratios::of(&full_load, &ort, &full);
    let half_load = half_load_runs(&mut broker, args, run_id, &full)?;
    let (half, half_fed) = half_load.median_p99_run();
    let paced = paced_runs(&mut broker, args, run_id)?;
    let reasons = reasons_results(&mut broker, args, run_id, &full_load)?;
    let broker = broker.stop().unwrap_or(serde_json::Value::Null);
    Ok(Results {
        full_load,
        ort,
        decoding,
        full,
        ratios,
        half_load,
        half,
        half_fed,
        paced,
        reasons,
        broker,
    })
}

/// With `--reasons`: each round's (e)/(c), and (f) the p99 at half of the best (e), in reasons
/// mode, in `--repeat` runs.
fn reasons_results(
    broker: &mut Broker,
    args: &Args,
    run_id: u32,
    full_load: &FullLoad,
) -> Result<Option<ReasonsResults>, String> {
    if !args.with_reasons {
        return Ok(None);
    }
    let mut ratios: Vec<f64> = full_load
        .reasons_runs
        .iter()
        .zip(&full_load.full_runs)
        .map(|(explained, plain)| {
            number(explained, "records_per_s") / number(plain, "records_per_s")
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let best_explained = best(&full_load.reasons_runs);
    let reasons_args = Args {
        reasons: ReasonsMode::Declines,
        ..args.clone()
    };
    println!("(f) half load with reasons on every decline, at half of the best (e):");
    let half_load = half_load_runs(
        broker,
        &reasons_args,
        run_id.wrapping_add(1_000_000),
        &best_explained,
    )?;
    let (half, _) = half_load.median_p99_run();
    Ok(Some(ReasonsResults {
        ratios,
        half_load,
        half,
    }))
}

/// `--repeat` rounds of (a), (b) and (c) at full load (a pre-produced backlog), each round's
/// three measurements back to back. This machine's speed drifts by 10-30% over minutes, so
/// a ratio of (c) to an (a) measured minutes earlier says as much about the drift as about
/// the worker: each round's (c)/(a) pairs measurements taken under the same conditions,
/// and the verdict is the median of those ratios. The table shows the best of each.
fn full_load_rounds(
    broker: &mut Broker,
    args: &Args,
    run_id: u32,
    payloads: &[Vec<u8>],
) -> Result<FullLoad, String> {
    let partitions = input_partitions(args.records, payloads);
    let mut rounds = FullLoad {
        ort_runs: Vec::new(),
        decode_runs: Vec::new(),
        full_runs: Vec::new(),
        reasons_runs: Vec::new(),
        feeds: Vec::new(),
    };
    for round in 0..args.repeat.max(1) {
        let ort_round = run_child("ort", args)?;
        let decode_round = run_child("decode", args)?;
        println!(
            "round {}: (a) ORT alone {:.0} rec/s; (b) decode + preprocess {:.0} rec/s",
            round + 1,
            number(&ort_round, "records_per_s"),
            number(&decode_round, "records_per_s"),
        );
        rounds.ort_runs.push(ort_round);
        rounds.decode_runs.push(decode_round);
        let full_args = Args {
            bootstrap: broker.bootstrap.clone(),
            prefix: format!("bench-{run_id}-full{round}"),
            ..args.clone()
        };
        broker.create_topics(&full_args.prefix, partitions)?;
        let fed = run_child("feed", &full_args)?;
        println!(
            "pre-produced {} records into {partitions} partitions in {:.1} s",
            args.records,
            number(&fed, "seconds")
        );
        rounds.feeds.push(fed);
        let (full, _) = run_worker(&full_args, None)?;
        println!(
            "(c) end to end {:.0} rec/s over {:.2} s; p50 {:.1} ms p99 {:.1} ms (backlog); peak RSS {:.1} MiB",
            number(&full, "records_per_s"),
            number(&full, "seconds"),
            number(&full, "latency_p50_ms"),
            number(&full, "latency_p99_ms"),
            number(&full, "peak_rss_mib")
        );
        rounds.full_runs.push(full);
        if args.with_reasons {
            let reasons_args = Args {
                prefix: format!("bench-{run_id}-reasons{round}"),
                reasons: ReasonsMode::Declines,
                ..full_args.clone()
            };
            broker.create_topics(&reasons_args.prefix, partitions)?;
            run_child("feed", &reasons_args)?;
            let (explained, _) = run_worker(&reasons_args, None)?;
            println!(
                "(e) end to end with reasons on every decline {:.0} rec/s = {:.1}% of (c); p99 {:.1} ms (backlog); peak RSS {:.1} MiB",
                number(&explained, "records_per_s"),
                100.0 * number(&explained, "records_per_s")
                    / number(rounds.full_runs.last().unwrap_or(&explained), "records_per_s"),
                number(&explained, "latency_p99_ms"),
                number(&explained, "peak_rss_mib")
            );
            rounds.reasons_runs.push(explained);
        }
    }
    Ok(rounds)
}

impl Ratios {
    fn of(rounds: &FullLoad, ort: &serde_json::Value, full: &serde_json::Value) -> Self {
        let mut sorted: Vec<f64> = rounds
            .ort_runs
            .iter()
            .zip(&rounds.full_runs)
            .map(|(ort, full)| number(full, "records_per_s") / number(ort, "records_per_s"))
            .collect();
        let rounds_text = sorted
            .iter()
            .map(|ratio| format!("{:.1}%", ratio * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        sorted.sort_by(f64::total_cmp);
        Self {
            rounds_text,
            median: median(&sorted),
            best: number(full, "records_per_s") / number(ort, "records_per_s"),
            sorted,
        }
    }
}

/// (d) at half of the measured throughput, fed while the worker runs, in `--repeat` runs.
/// One run's p99 is decided by its worst 1% of records, and a single burst of time taken
/// by the host lands on that: the verdict is the median of the runs' p99s (the higher of
/// the middle two for an even count), and the table shows that run.
fn half_load_runs(
    broker: &mut Broker,
    args: &Args,
    run_id: u32,
    full: &serde_json::Value,
) -> Result<HalfLoad, String> {
    let half_rate = (number(full, "records_per_s") / 2.0).max(1.0);
    let mut runs = Vec::new();
    for round in 0..args.repeat.max(1) {
        let (half, fed) = paced_run(
            broker,
            args,
            &format!("bench-{run_id}-half{round}"),
            half_rate,
        )?;
        println!(
            "(d) half load {half_rate:.0} rec/s, run {}: p50 {:.1} ms p99 {:.1} ms (in the worker {:.1} / {:.1} ms)",
            round + 1,
            number(&half, "latency_p50_ms"),
            number(&half, "latency_p99_ms"),
            number(&half, "worker_latency_p50_ms"),
            number(&half, "worker_latency_p99_ms"),
        );
        runs.push((half, fed));
    }
    Ok(HalfLoad {
        rate: half_rate,
        runs,
    })
}

impl HalfLoad {
    /// The run of median p99 (the higher of the middle two for an even count), with its feed.
    fn median_p99_run(&self) -> (serde_json::Value, Option<serde_json::Value>) {
        let mut by_p99: Vec<&(serde_json::Value, Option<serde_json::Value>)> =
            self.runs.iter().collect();
        by_p99.sort_by(|a, b| {
            number(&a.0, "latency_p99_ms").total_cmp(&number(&b.0, "latency_p99_ms"))
        });
        by_p99[by_p99.len() / 2].clone()
    }

    fn p99s_text(&self) -> String {
        self.runs
            .iter()
            .map(|(half, _)| format!("{:.1}", number(half, "latency_p99_ms")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One run per `--paced-rates` rate, after (d).
fn paced_runs(
    broker: &mut Broker,
    args: &Args,
    run_id: u32,
) -> Result<Vec<(f64, serde_json::Value)>, String> {
    let mut paced = Vec::new();
    for (index, &rate) in args.paced_rates.iter().enumerate() {
        let (result, _) = paced_run(broker, args, &format!("bench-{run_id}-r{index}"), rate)?;
        paced.push((rate, result));
    }
    Ok(paced)
}

/// CPU time of the measurement's process per record: the worker's own cost, whatever the
/// machine's speed at the time; a light load that costs more per record than a full one
/// shows polling or spinning, not work.
/// A worker's CPU is counted from its first record after the warm-up (`measured`).
fn cpu_per_record_us(result: &serde_json::Value, cpu_s: f64) -> f64 {
    let records = result
        .get("measured")
        .map_or_else(|| number(result, "records"), |_| number(result, "measured"));
    if records > 0.0 {
        cpu_s / records * 1e6
    } else {
        f64::NAN
    }
}

fn per_record_us(result: &serde_json::Value, cpu_key: &str) -> f64 {
    cpu_per_record_us(result, number(result, cpu_key))
}

fn cpu_us(result: &serde_json::Value) -> f64 {
    per_record_us(result, "cpu_s")
}

/// The broker's CPU per record over a worker run, and the whole machine's (every process,
/// both cores): how close to saturation the run was, and how much the host took. A tail
/// with the machine near 100% is queueing for the CPU, not a wait in the worker.
fn broker_and_machine(result: &serde_json::Value) -> String {
    format!(
        "{:.1} | {:.0} ({:.1})",
        per_record_us(result, "broker_cpu_s"),
        number(result, "machine_busy") * 100.0,
        number(result, "machine_steal") * 100.0
    )
}

/// The worker's own share of the latency: from taking a record from the consumer to the
/// acknowledgement of its output. The rest of the end-to-end figure is the feeder's
/// linger, the broker and the fetch.
fn in_worker(result: &serde_json::Value) -> String {
    format!(
        "{:.1} / {:.1}",
        number(result, "worker_latency_p50_ms"),
        number(result, "worker_latency_p99_ms")
    )
}

fn print_table(args: &Args, results: &Results) {
    let (ort, decoding) = (&results.ort, &results.decoding);
    println!(
        "| measurement | records/s | p50 ms | p99 ms | in worker p50 / p99 ms | CPU-µs/record | broker CPU-µs/record | machine busy % (stolen) | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| (a) ORT alone, batch {}, {} intra thread(s) (best of {}) | {:.0} | | | | {:.1} | | | {:.1} |",
        number(ort, "batch"),
        number(ort, "intra_threads"),
        args.repeat.max(1),
        number(ort, "records_per_s"),
        cpu_us(ort),
        number(ort, "peak_rss_mib")
    );
    println!(
        "| (b) decode + preprocess, 1 thread (best of {}) | {:.0} | | | | {:.1} | | | {:.1} |",
        args.repeat.max(1),
        number(decoding, "records_per_s"),
        cpu_us(decoding),
        number(decoding, "peak_rss_mib")
    );
    print_worker_row(
        &format!(
            "(c) worker end to end, {} records backlog (best of {})",
            args.records,
            args.repeat.max(1)
        ),
        &results.full,
    );
    let half_rate = results.half_load.rate;
    print_worker_row(
        &format!(
            "(d) worker at half load, {half_rate:.0} rec/s fed for {:.0} s (median p99 of {})",
            args.half_seconds,
            results.half_load.runs.len()
        ),
        &results.half,
    );
    for (rate, result) in &results.paced {
        print_worker_row(
            &format!(
                "(d') worker fed {rate:.0} rec/s for {:.0} s",
                args.half_seconds
            ),
            result,
        );
    }
}

/// The worker runs' rows differ only in their label.
fn print_worker_row(label: &str, result: &serde_json::Value) {
    println!(
        "| {label} | {:.0} | {:.1} | {:.1} | {} | {:.1} | {} | {:.1} |",
        number(result, "records_per_s"),
        number(result, "latency_p50_ms"),
        number(result, "latency_p99_ms"),
        in_worker(result),
        cpu_us(result),
        broker_and_machine(result),
        number(result, "peak_rss_mib")
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn print_verdicts(args: &Args, results: &Results) {
    let (ort, full, ratios) = (&results.ort, &results.full, &results.ratios);
    let rounds_text = &ratios.rounds_text;
    let half_p99s_text = results.half_load.p99s_text();
    let half_p99 = number(&results.half, "latency_p99_ms");
    let rss = worker_peak_rss(results);
    println!(
        "(c)/(a) = {:.1}%, the median of the rounds' ratios ({rounds_text}) (target >= 80%): {}; best (c) / best (a) = {:.1}%",
        ratios.median * 100.0,
        verdict(ratios.median >= 0.8),
        ratios.best * 100.0
    );
    println!(
        "p99 at half load {:.1} ms, the median of the runs' p99s ({half_p99s_text} ms) (target <= 25 ms): {}",
        half_p99,
        verdict(half_p99 <= 25.0)
    );
    println!(
        "worker peak RSS {:.1} MiB (target <= 200 MiB): {}",
        rss,
        verdict(rss <= 200.0)
    );
    if let Some(reasons) = &results.reasons {
        let median_ratio = median(&reasons.ratios);
        let p99 = number(&reasons.half, "latency_p99_ms");
        println!(
            "reasons on every decline: (e)/(c) = {:.1}%, the median of the rounds' ratios (target >= 15%): {}",
            median_ratio * 100.0,
            verdict(median_ratio >= 0.15)
        );
        println!(
            "reasons on every decline: p99 at half load {p99:.1} ms, the median of the runs' p99s ({} ms) (target <= 50 ms): {}",
            reasons.half_load.p99s_text(),
            verdict(p99 <= 50.0)
        );
    }
    println!(
        "worker CPU: {:.2} CPU-s for {} records at full load ({:.0} rec/CPU-s); ORT alone {:.0} rec/CPU-s",
        number(full, "cpu_s"),
        args.records,
        number(full, "records") / number(full, "cpu_s"),
        number(ort, "records") / number(ort, "cpu_s")
    );
}

/// The highest peak RSS of the worker runs, (c) and (d).
fn worker_peak_rss(results: &Results) -> f64 {
    results
        .full_load
        .full_runs
        .iter()
        .map(|run| number(run, "peak_rss_mib"))
        .chain(
            results
                .half_load
                .runs
                .iter()
                .map(|(half, _)| number(half, "peak_rss_mib")),
        )
        .fold(f64::NAN, f64::max)
}

/// Where the worker's CPU goes, by thread: a live feed costs more per record than a
/// backlog, and this says which threads pay for it. Beside it, how long those threads were
/// ready to run but waited for a core (the inference thread's wait is throughput lost), and
/// how often they were put on a core (context switches, per 1,000 records).
fn print_thread_costs(results: &Results) {
    println!(
        "worker by thread, CPU µs per record (waiting for a core, µs per record; times on a core per 1,000 records), (c): {}",
        by_thread(&results.full)
    );
    println!(
        "worker by thread, CPU µs per record (waiting for a core, µs per record; times on a core per 1,000 records), (d): {}",
        by_thread(&results.half)
    );
}

fn by_thread(result: &serde_json::Value) -> String {
    let per_role = |key: &str, role: &str| {
        result
            .get(key)
            .and_then(|by_role| by_role.get(role)?.as_f64())
            .unwrap_or(f64::NAN)
    };
    result
        .get("thread_cpu_s")
        .and_then(serde_json::Value::as_object)
        .map(|threads| {
            threads
                .keys()
                .map(|role| {
                    format!(
                        "{role} {:.1} (waited {:.1}; on a core {:.0})",
                        cpu_per_record_us(result, per_role("thread_cpu_s", role)),
                        cpu_per_record_us(result, per_role("thread_wait_s", role)),
                        cpu_per_record_us(result, per_role("thread_on_core", role)) / 1000.0
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Writes the figures to `target/bench-worker.json`.
fn write_figures(
    cores: usize,
    settings: &Config,
    args: &Args,
    results: Results,
) -> Result<(), String> {
    let json = figures_json(cores, settings, args, results);
    let path = manifest().join("target/bench-worker.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    println!("figures written to {}", path.display());
    Ok(())
}

fn figures_json(
    cores: usize,
    settings: &Config,
    args: &Args,
    results: Results,
) -> BTreeMap<&'static str, serde_json::Value> {
    let Results {
        full_load,
        ort,
        decoding,
        full,
        ratios,
        half_load,
        half,
        half_fed,
        paced,
        reasons,
        broker,
    } = results;
    let mut json = BTreeMap::new();
    if let Some(reasons) = reasons {
        json.insert(
            "reasons",
            serde_json::json!({
                "mode": "declines",
                "full_load_runs": full_load.reasons_runs,
                "ratio_to_plain_rounds": reasons.ratios,
                "ratio_to_plain_median": median(&reasons.ratios),
                "half_load_rate": reasons.half_load.rate,
                "half_load_p99_ms": reasons.half_load.runs.iter().map(|(run, _)| number(run, "latency_p99_ms")).collect::<Vec<_>>(),
                "half_load_median_p99_run": reasons.half,
            }),
        );
    }
    json.insert("cores", serde_json::json!(cores));
    json.insert(
        "reserve_inference_core",
        serde_json::json!(settings.model.reserve_inference_core),
    );
    json.insert("records", serde_json::json!(args.records));
    json.insert("ort_alone", ort);
    json.insert("ort_alone_runs", serde_json::json!(full_load.ort_runs));
    json.insert("decode_preprocess", decoding);
    json.insert(
        "decode_preprocess_runs",
        serde_json::json!(full_load.decode_runs),
    );
    // One per full-load round, in the order of `end_to_end_full_load_runs`.
    json.insert("feeds", serde_json::json!(full_load.feeds));
    json.insert("end_to_end_full_load", full);
    json.insert(
        "end_to_end_full_load_runs",
        serde_json::json!(full_load.full_runs),
    );
    json.insert("half_load", half);
    json.insert(
        "half_load_runs",
        serde_json::json!(half_load
            .runs
            .iter()
            .map(|(half, _)| half)
            .collect::<Vec<_>>()),
    );
    json.insert(
        "half_load_feed",
        half_fed.unwrap_or(serde_json::Value::Null),
    );
    json.insert(
        "paced",
        serde_json::json!(paced
            .iter()
            .map(|(rate, result)| serde_json::json!({"rate": rate, "result": result}))
            .collect::<Vec<_>>()),
    );
    json.insert("broker", broker);
    json.insert("ratio_e2e_over_ort", serde_json::json!(ratios.median));
    json.insert(
        "ratio_e2e_over_ort_rounds_sorted",
        serde_json::json!(ratios.sorted),
    );
    json.insert(
        "ratio_best_e2e_over_best_ort",
        serde_json::json!(ratios.best),
    );
    json
}

fn main() {
    if let Err(message) = real_main() {
        eprintln!("bench failed: {message}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let Some(role) = args.child.clone() else {
        return orchestrate(&args);
    };
    let result = match role.as_str() {
        "ort" => child_ort(&args)?,
        "decode" => child_decode(&args)?,
        "broker" => child_broker()?,
        "feed" => child_feed(&args)?,
        "worker" => child_worker(&args)?,
        other => return Err(format!("unknown child {other}")),
    };
    println!("RESULT {result}");
    Ok(())
}

/// One run of the worker fed at `rate` records per second for `--half-seconds`, after a
/// warm-up, on topics named `prefix`: (d) at half of (c), and each `--paced-rates` run.
/// Returns the worker's result and the feeder's.
fn paced_run(
    broker: &mut Broker,
    args: &Args,
    prefix: &str,
    rate: f64,
) -> Result<(serde_json::Value, Option<serde_json::Value>), String> {
    let records = (rate * args.half_seconds).round().max(1.0) as u64;
    let run_args = Args {
        bootstrap: broker.bootstrap.clone(),
        prefix: prefix.to_owned(),
        records: HALF_LOAD_WARMUP + records,
        warmup: HALF_LOAD_WARMUP,
        ..args.clone()
    };
    // The worker keeps up at these rates, so the mock's retention only needs a few seconds of
    // records per partition. Six partitions, two per broker: the mock finds a fetch's offset
    // by scanning the partition's stored batches from the oldest (no index), once per
    // partition and fetch, and with paced 5 ms batches that cost grows with the partition
    // count; at 24 partitions the mock took 0.43 of the two cores at 5,000 records/s, CPU
    // the worker then lacked. A real broker looks offsets up in an index.
    broker.create_topics(prefix, HALF_LOAD_PARTITIONS)?;
    // Warm-up records, fed first: the worker reports READY once it has answered them (group
    // joined, fetching, model warm), and only then are the measured records fed.
    run_child(
        "feed",
        &Args {
            records: HALF_LOAD_WARMUP,
            warmup: 0,
            ..run_args.clone()
        },
    )?;
    let feed_args = Args {
        rate: Some(rate),
        records,
        first: HALF_LOAD_WARMUP,
        warmup: 0,
        ..run_args.clone()
    };
    run_worker(&run_args, Some(&feed_args))
}

//! Backfill throughput against ONNX Runtime alone.
//!
//! ```text
//! cargo bench --bench backfill -- --rows 2000000
//! ```
//!
//! 1. Generates `--rows` synthetic applicants into a Parquet file (not timed).
//! 2. ORT alone: the same number of rows, preprocessed up front into batches of
//!    `--batch-size`, scored on every core, both ways: one session per core with one intra-op
//!    thread each, and one session with one intra-op thread per core. The faster counts.
//! 3. The full backfill, Parquet in → Parquet out, exactly as `backfill score` runs it.
//!
//! Each measurement runs in a child process (this binary again, with `--child`), so that the
//! peak RSS reported (VmHWM from /proc/self/status) is that of the measurement alone. The
//! measurements are repeated `--repeat` times, interleaved, and the best of each is compared:
//! on a machine shared with other jobs, the best run is the one least disturbed. Rows per
//! CPU-second (user + system time of the child, from /proc/self/stat) are printed too, as a
//! measure of efficiency that other jobs' load does not distort.
//! Targets on the 2-core reference machine: backfill ≥ 90% of ORT alone, peak RSS ≤ 500 MiB.
//!
//! With `--kill-resume`, it then runs the `backfill` binary on the same input, `kill -9`s it
//! once `--kill-at` of the rows are committed, reruns the same command to the end, and reads
//! the whole output back: every input row must be there exactly once (losses and duplicates
//! are counted and printed). `--repeat 0` skips the throughput rounds.

use credit_testkit::proc_stats;

use credit_backfill::synthetic_files;
use credit_backfill::{BackfillModel, Format, ScoreOptions};
use credit_core::dataset;
use credit_core::schema::Schema;
use credit_synthetic::Generator;
use proc_stats::peak_rss_mib;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    rows: u64,
    batch_size: usize,
    workers: usize,
    intra_threads: usize,
    child: Option<String>,
    dir: Option<PathBuf>,
    ort_mode: String,
    repeat: usize,
    kill_resume: bool,
    /// Fraction of the rows committed when the run is killed.
    kill_at: f64,
}

fn parse_args() -> Result<Args, String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut args = Args {
        rows: 10_000_000,
        batch_size: 4096,
        workers: cores,
        intra_threads: 1,
        child: None,
        dir: None,
        ort_mode: "sessions".into(),
        repeat: 3,
        kill_resume: false,
        kill_at: 0.4,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| iter.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--rows" => args.rows = value("--rows")?.parse().map_err(|e| format!("{e}"))?,
            "--batch-size" => {
                args.batch_size = value("--batch-size")?.parse().map_err(|e| format!("{e}"))?
            }
            "--workers" => {
                args.workers = value("--workers")?.parse().map_err(|e| format!("{e}"))?
            }
            "--intra-threads" => {
                args.intra_threads = value("--intra-threads")?
                    .parse()
                    .map_err(|e| format!("{e}"))?
            }
            "--child" => args.child = Some(value("--child")?),
            "--kill-resume" => args.kill_resume = true,
            "--kill-at" => {
                args.kill_at = value("--kill-at")?.parse().map_err(|e| format!("{e}"))?
            }
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            "--ort-mode" => args.ort_mode = value("--ort-mode")?,
            "--repeat" => args.repeat = value("--repeat")?.parse().map_err(|e| format!("{e}"))?,
            // `cargo bench` passes `--bench`; other harness flags are ignored too.
            _ => {}
        }
    }
    Ok(args)
}

fn manifest() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// CPU seconds (user + system) used by this process so far (0 if unreadable).
fn cpu_seconds() -> f64 {
    proc_stats::process_cpu_seconds("self").unwrap_or(0.0)
}

fn load_model() -> Result<BackfillModel, String> {
    BackfillModel::load(&manifest().join("models"), None, None).map_err(|e| e.to_string())
}

/// A generator of applicants of `schema` resembling the shipped data set.
fn generator(schema: &Schema, seed: u64) -> Result<Generator, String> {
    let rows = dataset::load_labelled(schema, &manifest().join("data/german_credit.csv"))
        .map_err(|e| e.to_string())?;
    Generator::new(schema, rows, seed).map_err(|e| e.to_string())
}

/// Child: ORT alone on preprocessed batches.
fn ort_alone(args: &Args) -> Result<(f64, u64), String> {
    let model = load_model()?;
    let generator = generator(&model.schema, 1)?;
    // A pool of distinct preprocessed batches, cycled; 16 batches keep memory small.
    let pool_batches = 16;
    let mut generated = Vec::new();
    generator
        .generate(0, (pool_batches * args.batch_size) as u64, &mut generated)
        .map_err(|e| e.to_string())?;
    let width = model.preprocessor.width;
    let batches: Vec<Vec<f32>> = generated
        .chunks(args.batch_size)
        .map(|chunk| {
            let mut features = vec![0.0; chunk.len() * width];
            for (row, out) in chunk.iter().zip(features.chunks_exact_mut(width)) {
                let _ = model.preprocessor.transform_into(&row.applicant, out);
            }
            features
        })
        .collect();
    let total_batches = args.rows.div_ceil(args.batch_size as u64);
    let (sessions, intra) = match args.ort_mode.as_str() {
        "intra" => (1, args.workers),
        _ => (args.workers, 1),
    };
    let mut scorers = Vec::new();
    for _ in 0..sessions {
        scorers.push(model.scorer(intra).map_err(|e| e.to_string())?);
    }
    let next = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    let scored: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = scorers
            .into_iter()
            .map(|mut scorer| {
                let (next, batches) = (&next, &batches);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut rows = 0u64;
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= total_batches {
                            break;
                        }
                        let features = &batches[(n % batches.len() as u64) as usize];
                        let batch = features.len() / width;
                        if scorer.score_into(features, batch, &mut out).is_err() {
                            break;
                        }
                        rows += batch as u64;
                    }
                    rows
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let seconds = started.elapsed().as_secs_f64();
    Ok((scored as f64 / seconds, scored))
}

/// Child: the full backfill, Parquet in → Parquet out.
fn full_backfill(args: &Args, dir: &Path) -> Result<(f64, u64), String> {
    let model = load_model()?;
    let output = dir.join("scored.parquet");
    let _ = std::fs::remove_dir_all(&output);
    for side in [".checkpoint.json", ".rejects.jsonl", ".summary.json"] {
        let mut name = output.as_os_str().to_owned();
        name.push(side);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    let options = ScoreOptions {
        input: dir.join("input.parquet"),
        output,
        batch_size: args.batch_size,
        workers: args.workers,
        intra_threads: args.intra_threads,
        reference: Some(manifest().join("data/german_credit.csv")),
        ..ScoreOptions::default()
    };
    let started = Instant::now();
    let summary = credit_backfill::run(&options, &model, &|_| {}).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    Ok((summary.rows as f64 / seconds, summary.rows))
}

/// One child's result.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    rows_per_second: f64,
    rows: u64,
    peak_rss_mib: f64,
    cpu_seconds: f64,
}

impl Measurement {
    fn rows_per_cpu_second(&self) -> f64 {
        self.rows as f64 / self.cpu_seconds.max(1e-9)
    }
}

fn run_child(args: &Args, dir: &Path, which: &str, ort_mode: &str) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["--child", which, "--ort-mode", ort_mode])
        .args(["--rows", &args.rows.to_string()])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args(["--workers", &args.workers.to_string()])
        .args(["--intra-threads", &args.intra_threads.to_string()])
        .arg("--dir")
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            format!(
                "child {which} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [rate, rows, rss, cpu] => Ok(Measurement {
            rows_per_second: rate,
            rows: rows as u64,
            peak_rss_mib: rss,
            cpu_seconds: cpu,
        }),
        _ => Err(format!("child {which} printed `{line}`")),
    }
}

fn main() {
    if let Err(message) = real_main() {
        eprintln!("bench failed: {message}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    if let Some(which) = &args.child {
        let dir = args.dir.clone().ok_or("--dir is required")?;
        let (rate, rows) = match which.as_str() {
            "ort" => ort_alone(&args)?,
            "backfill" => full_backfill(&args, &dir)?,
            other => return Err(format!("unknown child {other}")),
        };
        println!("RESULT {rate} {rows} {} {}", peak_rss_mib(), cpu_seconds());
        return Ok(());
    }

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = dir.path().join("input.parquet");
    let started = Instant::now();
    // The bundle's own schema, read without loading ONNX Runtime in this parent process.
    let schema = Schema::load(&manifest().join("models/schema.toml")).map_err(|e| e.to_string())?;
    let generator = generator(&schema, 2024)?;
    synthetic_files::generate_to_file(
        &generator,
        &input,
        Format::Parquet,
        args.rows,
        false,
        &|_| {},
    )
    .map_err(|e| e.to_string())?;
    println!(
        "generated {} rows of Parquet input ({:.1} MiB) in {:.1} s",
        args.rows,
        std::fs::metadata(&input).map_or(0, |m| m.len()) as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "{cores} cores; batch {}; backfill with {} workers x {} intra threads",
        args.batch_size, args.workers, args.intra_threads
    );

    if args.repeat > 0 {
        throughput(&args, dir.path())?;
    }
    if args.kill_resume {
        kill_and_resume(&args, &input, dir.path())?;
    }
    Ok(())
}

/// The throughput rounds: ORT alone both ways and the full backfill, best of `--repeat`.
fn throughput(args: &Args, dir: &Path) -> Result<(), String> {
    let best = |runs: &[Measurement]| {
        runs.iter()
            .copied()
            .max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))
    };
    let (mut sessions, mut intra, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.repeat.max(1) {
        sessions.push(run_child(args, dir, "ort", "sessions")?);
        intra.push(run_child(args, dir, "ort", "intra")?);
        full.push(run_child(args, dir, "backfill", "sessions")?);
        let rates = |runs: &[Measurement]| runs.last().map_or(0.0, |m| m.rows_per_second);
        println!(
            "round {round}: ORT {} sessions {:.0}, ORT 1 session x {} intra {:.0}, backfill {:.0} rows/s",
            args.workers,
            rates(&sessions),
            args.workers,
            rates(&intra),
            rates(&full)
        );
    }
    let (Some(sessions), Some(intra), Some(full)) = (best(&sessions), best(&intra), best(&full))
    else {
        return Err("no measurement".into());
    };
    let report = |name: &str, m: &Measurement| {
        println!(
            "{name:<40}: {:>9.0} rows/s  {:>9.0} rows/CPU-s  peak RSS {:>6.1} MiB",
            m.rows_per_second,
            m.rows_per_cpu_second(),
            m.peak_rss_mib
        );
    };
    println!("best of {} rounds:", args.repeat.max(1));
    report(
        &format!("ORT alone, {} sessions x 1 intra thread", args.workers),
        &sessions,
    );
    report(
        &format!("ORT alone, 1 session x {} intra threads", args.workers),
        &intra,
    );
    report("backfill, Parquet in -> Parquet out", &full);
    let ort = if sessions.rows_per_second >= intra.rows_per_second {
        sessions
    } else {
        intra
    };
    let ratio = full.rows_per_second / ort.rows_per_second;
    println!(
        "backfill / best ORT alone = {:.1}% of rows/s (target >= 90%): {}; {:.1}% of rows/CPU-s",
        ratio * 100.0,
        if ratio >= 0.9 { "met" } else { "NOT met" },
        full.rows_per_cpu_second() / ort.rows_per_cpu_second() * 100.0
    );
    println!(
        "backfill peak RSS {:.1} MiB (target <= 500 MiB): {}",
        full.peak_rss_mib,
        if full.peak_rss_mib <= 500.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// `kill -9` of the `backfill` binary once `--kill-at` of the rows are committed, a rerun of
/// the same command, and a check of the whole output: each input row exactly once.
fn kill_and_resume(args: &Args, input: &Path, dir: &Path) -> Result<(), String> {
    let output = dir.join("resumed.parquet");
    let checkpoint = credit_backfill::OutputPaths::for_output(&output).checkpoint;
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_backfill"));
        command
            .current_dir(manifest())
            .args(["score", "--quiet", "--part-rows", "500000"])
            .args(["--batch-size", &args.batch_size.to_string()])
            .args(["--workers", &args.workers.to_string()])
            .arg(input)
            .arg(&output);
        command
    };
    let committed = || {
        credit_backfill::checkpoint::Checkpoint::load(&checkpoint)
            .ok()
            .flatten()
            .map_or(0, |c| c.input.rows)
    };
    let target = (args.rows as f64 * args.kill_at) as u64;
    let started = Instant::now();
    let mut child = command().spawn().map_err(|e| e.to_string())?;
    while committed() < target {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the run ended ({status}) before it could be killed"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().map_err(|e| e.to_string())?; // SIGKILL
    let _ = child.wait();
    let at_kill = committed();
    println!(
        "kill -9 after {:.1} s with {at_kill} of {} rows committed ({:.1}%)",
        started.elapsed().as_secs_f64(),
        args.rows,
        at_kill as f64 / args.rows as f64 * 100.0
    );
    let resumed = Instant::now();
    let status = command().status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the resumed run failed: {status}"));
    }
    println!(
        "resumed run finished in {:.1} s",
        resumed.elapsed().as_secs_f64()
    );

    // Every id is `gen-<row number>`: one bit per row.
    let mut seen = vec![false; args.rows as usize];
    let (mut read, mut duplicates, mut foreign) = (0u64, 0u64, 0u64);
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&output)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    parts.sort();
    for part in &parts {
        use arrow_array::cast::AsArray;
        let file = std::fs::File::open(part).map_err(|e| e.to_string())?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .map_err(|e| format!("{}: {e}", part.display()))?;
        for batch in reader {
            let batch = batch.map_err(|e| e.to_string())?;
            let ids = batch.column(0).as_string::<i32>();
            for id in ids.iter().flatten() {
                read += 1;
                let slot = id
                    .strip_prefix("gen-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| seen.get_mut(n));
                match slot {
                    Some(slot) if *slot => duplicates += 1,
                    Some(slot) => *slot = true,
                    None => foreign += 1,
                }
            }
        }
    }
    let losses = seen.iter().filter(|present| !**present).count();
    println!(
        "output: {} part files, {read} rows read back: {losses} losses, {duplicates} duplicates, \
         {foreign} unknown ids (target: 0 and 0): {}",
        parts.len(),
        if losses == 0 && duplicates == 0 && foreign == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

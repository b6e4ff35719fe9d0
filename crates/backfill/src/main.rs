//! The nightly backfill: score historical loans from files, or generate synthetic ones.
//!
//! ```text
//! backfill score loans.csv scored.parquet --include-fields
//! backfill score loans.jsonl scored.csv --shard 2/4          # this machine's quarter
//! backfill score kafka://kafka:9092/loan-applications kafka://kafka:9092/rescored \
//!     --from time:2026-11-01T00:00:00Z --state /var/lib/backfill/november
//! backfill generate --rows 10000000 --output synthetic.parquet --with-outcomes --seed 7
//! ```
//!
//! `score` is resumable: it keeps `<output>.checkpoint.json` up to date, and rerunning the same
//! command after a crash or a kill continues from the last commit, so that the output ends up
//! with every input row exactly once. Rows that cannot be scored go to
//! `<output>.rejects.jsonl`; the summary is printed and written to `<output>.summary.json`.
//!
//! A Kafka input (`kafka://HOST:PORT[,...]/TOPIC`) is read over the range `--from`..`--until`,
//! fixed when the run starts; a Kafka output receives decisions in the worker's format. With
//! a Kafka output, `--state PATH` says where the checkpoint, rejects and summary go.
//!
//! Sharding: `--shard K/N` scores the rows whose 0-based position in the input is `K mod N`
//! (for a Kafka input: the partitions `p` with `p mod N = K`).
//! Run the same command with `--shard 0/N` ... `--shard N-1/N` on N machines (each with its own
//! output) and the outputs together hold every row exactly once.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use credit_backfill::synthetic_files;
use credit_backfill::topic::{self, RangeEnd, RangeStart};
use credit_backfill::{BackfillModel, Format, KafkaOptions, Progress, ScoreOptions, Shard};
use credit_core::dataset;
use credit_core::explain::{ReasonsMode, DEFAULT_TOP};
use credit_core::logging;
use credit_core::logging::LogFormat;
use credit_core::redact;
use credit_core::schema::Schema;
use credit_synthetic::Generator;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Backfill: score historical loans from files or Kafka, resumably"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score every loan of a file (CSV, JSON Lines, Parquet) or Kafka topic into a file or topic.
    Score(Box<ScoreArgs>),
    /// Write synthetic applicants that resemble a labelled data set (German Credit by default).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct ScoreArgs {
    /// Input file (.csv, .jsonl, .parquet, or a directory of .parquet files), or
    /// kafka://HOST:PORT[,HOST:PORT...]/TOPIC.
    input: PathBuf,
    /// Output file (.csv, .jsonl), Parquet output directory (.parquet), or
    /// kafka://HOST:PORT[,HOST:PORT...]/TOPIC.
    output: PathBuf,
    /// Base path of the checkpoint, reject file and summary (default: the output path);
    /// required with a Kafka output.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Kafka input: where the range starts in every partition.
    #[arg(
        long,
        default_value = "earliest",
        value_name = "earliest|offset:N|time:RFC3339"
    )]
    from: RangeStart,
    /// Kafka input: where the range ends (exclusive); `end` is the high watermark at start.
    #[arg(long, default_value = "end", value_name = "end|time:RFC3339")]
    until: RangeEnd,
    /// Kafka input: the consumer group that is shown the run's progress.
    #[arg(long, default_value = "credit-risk-backfill", value_name = "GROUP")]
    kafka_group: String,
    /// A librdkafka setting for the Kafka clients (security.protocol, sasl.*, ssl.*, ...);
    /// repeatable.
    // Parsed after clap, whose errors would quote the whole argument, a password with it.
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    kafka_config: Vec<String>,
    /// Input format, if the extension does not tell.
    #[arg(long, value_name = "csv|jsonl|parquet")]
    input_format: Option<Format>,
    /// Output format, if the extension does not tell.
    #[arg(long, value_name = "csv|jsonl|parquet")]
    output_format: Option<Format>,
    /// Also write each loan's fields (by the model's schema) and its outcome (if known).
    #[arg(long)]
    include_fields: bool,
    /// Score only rows whose 0-based position is K mod N (Kafka: partitions p mod N = K).
    #[arg(long, value_name = "K/N", default_value = "0/1")]
    shard: Shard,
    /// Rows per inference.
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,
    /// Worker threads, each with its own ONNX Runtime session (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// ONNX Runtime threads inside each session.
    #[arg(long, default_value_t = 1)]
    intra_threads: usize,
    /// Fail when more than N rows are rejected.
    #[arg(long, value_name = "N")]
    max_rejects: Option<u64>,
    /// Rows per Parquet part file (the unit of commit for Parquet output).
    #[arg(long, default_value_t = 1 << 20)]
    part_rows: usize,
    /// Do not fsync at commits (a killed process still resumes; a power cut may not).
    #[arg(long)]
    no_fsync: bool,
    /// Directory of the model artifacts.
    #[arg(long, default_value = "models", value_name = "DIR")]
    models: PathBuf,
    /// Override the model's decision threshold.
    #[arg(long)]
    threshold: Option<f32>,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, then .onnxruntime/).
    #[arg(long, value_name = "FILE")]
    ort_dylib: Option<PathBuf>,
    /// Training data (read with the model's schema), scored as the reference distribution of
    /// the PSI; without it, no PSI.
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Which rows get adverse-action reasons: `declines` (every `bad` decision), `all` or
    /// `off`. Needs a bundle with a reference applicant (`reference.json`) unless `off`.
    #[arg(long, default_value = "declines", value_name = "WHICH")]
    reasons: ReasonsMode,
    /// Reasons per row, largest contribution first.
    #[arg(long = "reasons-top", default_value_t = DEFAULT_TOP as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=16))]
    reasons_top: u64,
    /// Age-style bands of a protected numeric field in the fairness report, replacing the
    /// schema's `bands` (repeatable): `age=25,35,50,65` gives <25, 25-34, ..., >=65.
    #[arg(long = "fairness-bands", value_name = "FIELD=EDGE,...", value_parser = parse_bands)]
    fairness_bands: Vec<(String, Vec<f64>)>,
    /// Overwrite an existing output that has no checkpoint.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Test hook: stop like a crash after writing this many rows.
    #[arg(long, hide = true, value_name = "N")]
    stop_after_rows: Option<u64>,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of applicants.
    #[arg(long, default_value_t = 1000)]
    rows: u64,
    /// Output file (.csv, .jsonl, .parquet).
    #[arg(long)]
    output: PathBuf,
    /// Output format, if the extension does not tell.
    #[arg(long, value_name = "csv|jsonl|parquet")]
    format: Option<Format>,
    /// Random seed: the same seed gives the same applicants.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Include the outcome (the schema's label field) of each applicant.
    #[arg(long)]
    with_outcomes: bool,
    /// The data set the applicants are drawn to resemble (with its outcomes).
    #[arg(long, default_value = "data/german_credit.csv", value_name = "FILE")]
    data: PathBuf,
    /// The schema the data set is read, and the applicants written, with.
    #[arg(
        long,
        default_value = "schemas/german-credit.toml",
        value_name = "FILE"
    )]
    schema: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    redact::install_panic_hook();
    // Nothing to log to if this fails; the run does not depend on it.
    let _ = logging::install(
        LogFormat::Text,
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    );
    let result = match Cli::parse().command {
        Command::Score(args) => score(*args),
        Command::Generate(args) => generate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", redact::error_report(error.chain()));
            ExitCode::FAILURE
        }
    }
}

fn bar(quiet: bool, length: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `FIELD=25,35,50` as a field name and its band edges (checked against the schema later).
fn parse_bands(text: &str) -> Result<(String, Vec<f64>), String> {
    let (field, edges) = text
        .split_once('=')
        .ok_or_else(|| format!("expected FIELD=EDGE,EDGE,..., got `{text}`"))?;
    let edges = edges
        .split(',')
        .map(|edge| {
            edge.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{edge}` in `{text}` is not a number"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((field.trim().to_string(), edges))
}

fn score(args: ScoreArgs) -> anyhow::Result<()> {
    // A key given twice: the last value counts, as librdkafka would take it.
    let settings = args
        .kafka_config
        .iter()
        .map(|setting| topic::parse_setting(setting))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    redact::register_secrets(&settings);
    let model = BackfillModel::load(&args.models, args.ort_dylib.as_deref(), args.threshold)
        .with_context(|| format!("cannot load the model from {}", args.models.display()))?;
    let options = ScoreOptions {
        input: args.input,
        input_format: args.input_format,
        output: args.output,
        state: args.state,
        kafka: KafkaOptions {
            group: args.kafka_group,
            from: args.from,
            until: args.until,
            settings,
        },
        output_format: args.output_format,
        include_fields: args.include_fields,
        shard: args.shard,
        batch_size: args.batch_size,
        workers: args.workers,
        intra_threads: args.intra_threads,
        max_rejects: args.max_rejects,
        durable: !args.no_fsync,
        part_rows: args.part_rows,
        reference: args.reference,
        force: args.force,
        fairness_bands: args.fairness_bands,
        reasons: args.reasons,
        reasons_top: args.reasons_top as usize,
        stop_after_rows: args.stop_after_rows,
    };
    let progress = bar(
        args.quiet,
        0,
        "[{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta} {msg}",
    );
    let report = |update: &Progress| {
        let total = match update.extent {
            credit_backfill::source::Extent::Bytes(n)
            | credit_backfill::source::Extent::Rows(n) => n,
        };
        progress.set_length(total);
        progress.set_position(update.position);
        let seconds = update.elapsed.as_secs_f64().max(1e-9);
        progress.set_message(format!(
            "{} rows, {:.0} rows/s, {} rejects",
            update.rows,
            update.rows_this_attempt as f64 / seconds,
            update.rejects
        ));
    };
    let result = credit_backfill::run(&options, &model, &report);
    progress.finish_and_clear();
    let summary = result.context("backfill failed")?;
    print!("{summary}");
    if !summary.already_complete {
        println!(
            "  summary written to {}",
            credit_backfill::OutputPaths::for_output(
                options.state.as_ref().unwrap_or(&options.output)
            )
            .summary
            .display()
        );
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let format = Format::resolve(args.format, &args.output)?;
    let schema = Schema::load(&args.schema)?;
    let rows = dataset::load_labelled(&schema, &args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    let generator =
        Generator::new(&schema, rows, args.seed).context("cannot prepare the generator")?;
    let progress = bar(
        args.quiet,
        args.rows,
        "[{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta}",
    );
    synthetic_files::generate_to_file(
        &generator,
        &args.output,
        format,
        args.rows,
        args.with_outcomes,
        &|written| progress.set_position(written),
    )
    .with_context(|| format!("cannot generate {}", args.output.display()))?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "generated {} applicants (seed {}{}) into {} in {:.2} s ({:.0} rows/s)",
        args.rows,
        args.seed,
        if args.with_outcomes {
            ", with outcomes"
        } else {
            ""
        },
        args.output.display(),
        seconds,
        args.rows as f64 / seconds.max(1e-9)
    );
    Ok(())
}

//! The scoring worker.
//!
//! With `kafka.brokers` set (in the config file or `CREDIT_RISK__KAFKA__BROKERS`) it consumes
//! applications from Kafka and publishes decisions until SIGTERM/SIGINT; SIGHUP reloads the
//! model from `model.dir` (kept only if it loads and passes its self-check). With no brokers it
//! runs the embedded demonstration: an in-process Kafka cluster, the German Credit applicants
//! streamed through the same code path, and a summary. See `config/default.toml` for every
//! setting.
//!
//! `worker produce` is the load generator: it streams synthetic applicants into the input topic
//! of a real cluster (docker-compose's `loadgen` service runs it). `worker json-schema` prints
//! the JSON Schema of the records the configured model accepts.

use anyhow::Context;
use clap::{Parser, Subcommand};
use credit_core::artifacts::SCHEMA_FILE;
use credit_core::logging::{self, LogFormat};
use credit_core::redact;
use credit_kafka::feed::create_topics;
use credit_worker::config::Config;
use credit_worker::loadgen::{self, LoadOptions};
use credit_worker::service::{self, embedded::EmbeddedOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(version, about = "Kafka scoring worker of the credit-risk service")]
struct Args {
    /// Configuration file (TOML), layered over the built-in defaults; environment variables
    /// `CREDIT_RISK__SECTION__KEY` override both.
    #[arg(long, value_name = "FILE", env = "CREDIT_RISK_CONFIG")]
    config: Option<PathBuf>,
    /// Log format, overriding `logging.format`.
    #[arg(long, value_name = "text|json")]
    log_format: Option<LogFormat>,
    /// Embedded mode: records to stream (the 1,000 applicants, repeated as needed).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    records: usize,
    /// Embedded mode: feed at most this many records per second (default: unthrottled).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Embedded mode and load generator: the labelled CSV whose applicants are streamed (read
    /// with the schema of the model in `model.dir`).
    #[arg(long, default_value = "data/german_credit.csv", value_name = "FILE")]
    data: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load generator: stream synthetic applicants into a topic of a real cluster, using the
    /// configuration's `kafka.client` settings (TLS, SASL).
    Produce(ProduceArgs),
    /// Print the JSON Schema (draft 2020-12) of the records the configured model accepts, for
    /// producers to validate against; the worker serves the same document at `/schema`.
    JsonSchema,
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    /// Bootstrap servers (default: `kafka.brokers` of the configuration).
    #[arg(long, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// Topic to produce to (default: `kafka.input_topic`).
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// Records per second (default: as fast as the broker accepts).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Records to produce; 0 runs until SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    records: u64,
    /// Make every N-th record invalid (a number out of range, an unknown category, not JSON) to exercise
    /// the dead-letter path; 0 for none.
    #[arg(long, default_value_t = 0, value_name = "N")]
    invalid_every: u64,
    /// Seed of the synthetic applicants.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Create the topic with this many partitions first, if it does not exist.
    #[arg(long, value_name = "N")]
    partitions: Option<i32>,
}

fn main() -> ExitCode {
    redact::install_panic_hook();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", redact::error_report(error.chain()));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref()).context("configuration")?;
    redact::register_secrets(&config.kafka.client);
    if let Some(format) = args.log_format {
        config.logging.format = format;
    }
    logging::init(&config.logging).context("logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            Some(Command::Produce(produce)) => {
                return run_load_generator(config, produce, args.data).await
            }
            Some(Command::JsonSchema) => return print_json_schema(&config),
            None => {}
        }
        if config.kafka.embedded() {
            let options = EmbeddedOptions {
                records: args.records,
                rate: args.rate,
                data: args.data,
                ..EmbeddedOptions::default()
            };
            let summary = service::embedded::run(config, options, service::shutdown_signal())
                .await
                .context("embedded run failed")?;
            println!("{summary}");
        } else {
            service::run(config, service::shutdown_signal())
                .await
                .context("worker failed")?;
        }
        Ok(())
    })
}

/// `worker json-schema`: the JSON Schema of the bundle in `model.dir`, verified as the worker
/// would load it (manifest, hashes), on standard output.
fn print_json_schema(config: &Config) -> anyhow::Result<()> {
    let dir = service::embedded::resolve_path(&config.model.dir);
    let bundle = credit_core::bundle::open(&dir).context("model bundle")?;
    let document = credit_core::schema::json_schema::generate(&bundle.schema);
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

/// `worker produce`: runs the load generator on a blocking thread until it has sent its
/// records or a shutdown signal arrives, then prints what was delivered.
async fn run_load_generator(
    mut config: Config,
    args: ProduceArgs,
    data: PathBuf,
) -> anyhow::Result<()> {
    if let Some(brokers) = args.brokers {
        config.kafka.brokers = brokers;
    }
    anyhow::ensure!(
        !config.kafka.brokers.is_empty(),
        "`produce` needs a cluster: pass --brokers or set kafka.brokers"
    );
    let options = LoadOptions {
        topic: args
            .topic
            .unwrap_or_else(|| config.kafka.input_topic.clone()),
        rate: args.rate,
        records: args.records,
        invalid_every: args.invalid_every,
        seed: args.seed,
        schema: service::embedded::resolve_path(&config.model.dir.join(SCHEMA_FILE)),
        data: service::embedded::resolve_path(&data),
        progress_every: Duration::from_secs(10),
    };
    // One signal listener for the whole run: a SIGTERM while the topic is being created
    // must stop it too.
    let shutdown = service::shutdown_signal();
    tokio::pin!(shutdown);
    if let Some(partitions) = args.partitions {
        let topics = [(options.topic.as_str(), partitions)];
        tokio::select! {
            created = create_topics(&config.kafka.brokers, &topics) => {
                created.with_context(|| format!("cannot create topic `{}`", options.topic))?;
            }
            () = &mut shutdown => anyhow::bail!("stopped before the topic was created"),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut producing = tokio::task::spawn_blocking({
        let stop = Arc::clone(&stop);
        move || loadgen::run_blocking(&config.kafka, &options, &stop)
    });
    let finished = tokio::select! {
        finished = &mut producing => finished,
        () = &mut shutdown => {
            stop.store(true, Ordering::Relaxed);
            producing.await
        }
    };
    let summary = finished
        .context("the load generator panicked")?
        .context("load generator failed")?;
    println!("{summary}");
    anyhow::ensure!(
        summary.failed == 0,
        "{} records were not delivered (see the warnings above)",
        summary.failed
    );
    Ok(())
}

//! The scoring worker.
//!
//! With `kafka.brokers` set (in the config file or `CREDIT_RISK__KAFKA__BROKERS`) it consumes
//! applications from Kafka and publishes decisions until SIGTERM/SIGINT. With no brokers it
//! runs the embedded demonstration: an in-process Kafka cluster, the German Credit applicants
//! streamed through the same code path, and a summary. See `config/default.toml` for every
//! setting.

use anyhow::Context;
use clap::Parser;
use credit_risk::config::{Config, LogFormat};
use credit_risk::service::{self, embedded::EmbeddedOptions, logging};
use std::path::PathBuf;

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
    /// Embedded mode: the German Credit CSV.
    #[arg(long, default_value = "data/german_credit.csv", value_name = "FILE")]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::load(args.config.as_deref()).context("configuration")?;
    if let Some(format) = args.log_format {
        config.logging.format = format;
    }
    logging::init(&config.logging).context("logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
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

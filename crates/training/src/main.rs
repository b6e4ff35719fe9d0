//! `trainer`: reads a lender's data file with its applicant schema (German Credit by default),
//! fits the preprocessor and the stacked LSTM, checks the ONNX export against ONNX Runtime and
//! writes the bundle (model, preprocessor, schema, JSON Schema, report and the manifest of them
//! all) into `models/`. `trainer manifest` writes only the manifest, for an existing bundle.

use anyhow::Context;
use clap::{Parser, Subcommand};
use credit_training::network::NetworkConfig;
use credit_training::trainer::balance::Balancing;
use credit_training::trainer::cross_validation::FoldSummary;
use credit_training::trainer::data::OutcomeChoice;
use credit_training::trainer::fit::FitOptions;
use credit_training::trainer::report::render_table;
use credit_training::trainer::{run, seal, TrainerOptions, TrainingObserver};
use credit_training::training::{EpochStats, TrainingConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Train the credit-risk model and write it to the models directory.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The data file (CSV with a header row): one column per schema field, and the outcome.
    #[arg(long, default_value = "data/german_credit.csv")]
    data: PathBuf,
    /// The applicant schema (TOML, see docs/schema.md); copied into the bundle.
    #[arg(long, default_value = "schemas/german-credit.toml")]
    schema: PathBuf,
    /// The outcome column (default: the schema's `label` field).
    #[arg(long, value_name = "COLUMN")]
    label: Option<String>,
    /// The outcome value that means a bad risk (default: the schema's label field's `bad`).
    #[arg(long, value_name = "V")]
    bad_value: Option<String>,
    /// Train on the rows that fit the schema, counting the others in the report, instead of
    /// refusing to train when any row does not fit.
    #[arg(long)]
    skip_bad_rows: bool,
    /// A column of each row's true probability of the bad outcome (a number in [0, 1]), known
    /// when the data was drawn from them: the report sets the AUC of these probabilities, the
    /// best any model can reach on the same rows, next to the model's.
    #[arg(long, value_name = "COLUMN")]
    true_probability_column: Option<String>,
    /// Where the bundle (ONNX model, preprocessor, schema, metrics, plots, manifest) is written.
    #[arg(long, alias = "output", default_value = "models")]
    out: PathBuf,
    /// Also run stratified K-fold cross-validation of the same procedure.
    #[arg(long, value_name = "K")]
    cv: Option<usize>,
    /// With --cv: also cross-validate the other balancing methods and report the comparison.
    #[arg(long, requires = "cv")]
    compare_balancing: bool,
    /// With --cv: repeat the cross-validation (and the balancing comparison) with N seeds,
    /// --seed and the N - 1 after it, and report figures over every fold of every seed.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "cv", value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// How the training split's class imbalance is handled.
    #[arg(long, value_enum, default_value_t = FitOptions::default().balancing)]
    balance: Balancing,
    /// Random seed for splits, SMOTE-NC, initial weights, batch order and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = TrainingConfig::default().learning_rate)]
    learning_rate: f64,
    /// Decoupled (AdamW) weight decay.
    #[arg(long, default_value_t = TrainingConfig::default().weight_decay)]
    weight_decay: f64,
    /// Maximum number of epochs.
    #[arg(long, default_value_t = TrainingConfig::default().max_epochs)]
    epochs: usize,
    /// Epochs without validation improvement before early stopping.
    #[arg(long, default_value_t = TrainingConfig::default().patience)]
    patience: usize,
    /// Epochs without validation improvement before the learning rate is halved (0: never).
    #[arg(long, default_value_t = TrainingConfig::default().lr_decay_patience)]
    lr_decay_patience: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = TrainingConfig::default().batch_size)]
    batch_size: usize,
    /// Hidden size of each LSTM layer.
    #[arg(long, default_value_t = NetworkConfig::default().hidden_size)]
    hidden: usize,
    /// Number of stacked LSTM layers.
    #[arg(long, default_value_t = NetworkConfig::default().lstm_layers)]
    layers: usize,
    /// Width of each attribute token.
    #[arg(long, default_value_t = NetworkConfig::default().token_width)]
    token_width: usize,
    /// Dropout probability.
    #[arg(long, default_value_t = NetworkConfig::default().dropout)]
    dropout: f32,
    /// Fraction of applicants held out for validation (early stopping, threshold).
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    /// Fraction of applicants held out for the final test.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// The ONNX Runtime shared library (default: $ORT_DYLIB_PATH or .onnxruntime/).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_dylib: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write manifest.json (size and SHA-256 of each artifact) for a bundle trained before
    /// manifests existed, without retraining; refuses a model whose version is not the hash of
    /// its weights.
    Manifest {
        /// The bundle directory.
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

/// Draws an epoch bar for the shipped model and a fold bar for cross-validation.
struct Progress {
    epochs: ProgressBar,
    folds: Option<ProgressBar>,
}

impl TrainingObserver for Progress {
    fn stage(&mut self, message: &str) {
        // `suspend` rather than `println`: indicatif drops `println` output when stderr is not a
        // terminal, and CI logs should still show the stages.
        self.epochs.suspend(|| eprintln!("==> {message}"));
    }
    fn epoch(&mut self, stats: &EpochStats) {
        self.epochs.set_position(stats.epoch as u64);
        self.epochs.set_message(format!(
            "loss {:.4}/{:.4}  AUC {:.3}/{:.3}  best epoch {}",
            stats.train_loss,
            stats.validation_loss,
            stats.train_auc,
            stats.validation_auc,
            stats.best_epoch
        ));
    }
    fn fold(&mut self, summary: &FoldSummary, total: usize) {
        self.epochs.finish_and_clear();
        let bar = self.folds.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "folds {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        // A new cross-validation (another balancing method or schema variant) restarts the bar.
        if bar.position() >= total as u64 {
            bar.reset();
        }
        bar.inc(1);
        let line = format!(
            "seed {} fold {:>2}: lstm AUC {} cost {:.3} ECE {:.3} threshold {:.3} | logistic AUC {} cost {:.3} | best epoch {} ({:.1}s)",
            summary.seed,
            summary.fold,
            summary.lstm_auc.map_or("n/a".into(), |v| format!("{v:.3}")),
            summary.lstm_cost,
            summary.lstm_ece,
            summary.lstm_threshold,
            summary.logistic_auc.map_or("n/a".into(), |v| format!("{v:.3}")),
            summary.logistic_cost,
            summary.lstm_best_epoch,
            summary.seconds
        );
        bar.suspend(|| eprintln!("{line}"));
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(Command::Manifest { dir }) = &args.command {
        let manifest =
            seal(dir).with_context(|| format!("cannot write the manifest of {}", dir.display()))?;
        println!(
            "wrote {} for model {} ({} files)",
            dir.join(credit_core::artifacts::MANIFEST_FILE).display(),
            manifest.model_version,
            manifest.files.len()
        );
        return Ok(());
    }
    let training = TrainingConfig {
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        batch_size: args.batch_size,
        max_epochs: args.epochs,
        patience: args.patience,
        lr_decay_patience: args.lr_decay_patience,
        seed: args.seed,
        ..TrainingConfig::default()
    };
    let network = NetworkConfig {
        token_width: args.token_width,
        hidden_size: args.hidden,
        lstm_layers: args.layers,
        head_hidden: NetworkConfig::default().head_hidden,
        dropout: args.dropout,
    };
    anyhow::ensure!(
        args.layers >= 2,
        "--layers must be at least 2 for a stacked LSTM, got {}",
        args.layers
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&args.dropout),
        "--dropout must be in [0, 1), got {}",
        args.dropout
    );
    let defaults = FitOptions::default();
    let options = TrainerOptions {
        data_path: args.data.clone(),
        schema_path: args.schema.clone(),
        outcome: OutcomeChoice {
            column: args.label.clone(),
            bad: args.bad_value.clone(),
        },
        skip_bad_rows: args.skip_bad_rows,
        true_probability_column: args.true_probability_column.clone(),
        output_dir: args.out.clone(),
        validation_fraction: args.validation_fraction,
        test_fraction: args.test_fraction,
        cv_folds: args.cv,
        compare_balancing: args.compare_balancing,
        seeds: usize::try_from(args.seeds).unwrap_or(usize::MAX),
        fit: FitOptions {
            balancing: args.balance,
            network,
            training,
            baseline_training: TrainingConfig {
                seed: args.seed,
                ..defaults.baseline_training
            },
            ..defaults
        },
        ort_dylib: args.ort_dylib.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };

    let epochs = ProgressBar::new(args.epochs as u64);
    epochs.set_style(
        ProgressStyle::with_template("epoch {bar:30} {pos:>3}/{len} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = Progress {
        epochs,
        folds: None,
    };
    let report = run(&options, &mut progress).context("training failed")?;
    progress.epochs.finish_and_clear();
    if let Some(folds) = &progress.folds {
        folds.finish_and_clear();
    }
    println!("{}", render_table(&report));
    println!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_train_german_credit_with_its_schema_label_into_models() {
        let args = Args::try_parse_from(["trainer"]).unwrap();
        assert_eq!(args.data, PathBuf::from("data/german_credit.csv"));
        assert_eq!(args.schema, PathBuf::from("schemas/german-credit.toml"));
        assert_eq!(args.out, PathBuf::from("models"));
        assert_eq!((args.label, args.bad_value), (None, None));
        assert!(!args.skip_bad_rows);
        assert_eq!(args.true_probability_column, None);
    }

    #[test]
    fn any_lender_names_its_data_schema_outcome_and_bad_row_policy() {
        let args = Args::try_parse_from([
            "trainer",
            "--data",
            "book.csv",
            "--schema",
            "retail.toml",
            "--label",
            "defaulted",
            "--bad-value",
            "yes",
            "--skip-bad-rows",
            "--true-probability-column",
            "true_pd",
            "--output",
            "bundle",
        ])
        .unwrap();
        assert_eq!(args.data, PathBuf::from("book.csv"));
        assert_eq!(args.schema, PathBuf::from("retail.toml"));
        assert_eq!(args.label.as_deref(), Some("defaulted"));
        assert_eq!(args.bad_value.as_deref(), Some("yes"));
        assert!(args.skip_bad_rows);
        assert_eq!(args.true_probability_column.as_deref(), Some("true_pd"));
        assert_eq!(args.out, PathBuf::from("bundle"));
    }
}

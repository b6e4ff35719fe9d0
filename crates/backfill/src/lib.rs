//! The nightly backfill: scores historical loans from files, resumably, at full machine speed.
//!
//! `backfill score` reads CSV, JSON Lines, Parquet or a Kafka topic over an offset or time
//! range ([`source`], [`topic`]), scores every row with a model bundle and writes one row per
//! loan (application id, decision, probability of bad, threshold, model version, and with
//! `--include-fields` the loan's own fields) as CSV, JSON Lines, Parquet part files or
//! decisions on a Kafka topic ([`sink`]). Every input is read, and every output written, by
//! the bundle's schema ([`model`]): any lender's applicants, not one data set's. Around that:
//!
//! - [`run`]: the threads (reader → workers, each with its own ONNX session → ordered writer)
//!   and the commit protocol;
//! - [`checkpoint`]: `<output>.checkpoint.json`, so that a killed run resumes where its last
//!   commit ended and the output holds every input row exactly once;
//! - [`rejects`]: `<output>.rejects.jsonl`, the rows that could not be scored and why;
//! - [`shard`]: `--shard K/N`, rows `i mod N == K`, for splitting one file over N machines;
//! - [`stats`], [`psi`], [`summary`]: the backtest (ROC AUC, 5:1 cost) when outcomes are
//!   known, the score distribution's PSI against the training data, `<output>.summary.json`.
//!
//! The synthetic applicants of `backfill generate` are in [`credit_synthetic`].

pub mod checkpoint;
mod columns;
mod fields;
mod format;
pub mod model;
mod psi;
pub mod rejects;
pub mod row;
pub mod run;
mod shard;
mod sink;
pub mod source;
mod stats;
mod summary;
pub mod synthetic_files;
pub mod topic;

pub use format::Format;
pub use model::BackfillModel;
pub use run::{run, KafkaOptions, Progress, ScoreOptions};
pub use shard::Shard;
pub use summary::Summary;

use std::path::{Path, PathBuf};

/// The files a run keeps next to its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    /// `<output>.checkpoint.json`
    pub checkpoint: PathBuf,
    /// `<output>.rejects.jsonl`
    pub rejects: PathBuf,
    /// `<output>.summary.json`
    pub summary: PathBuf,
}

impl OutputPaths {
    /// The side files of `output` (a file, or a Parquet output directory).
    pub fn for_output(output: &Path) -> Self {
        let with = |suffix: &str| {
            let mut name = output.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            checkpoint: with(".checkpoint.json"),
            rejects: with(".rejects.jsonl"),
            summary: with(".summary.json"),
        }
    }
}

/// Why a backfill failed. Row-level problems are rejections, not errors.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Model(#[from] credit_core::loader::ModelError),
    #[error(transparent)]
    Topic(#[from] topic::TopicError),
    #[error("fairness groups: {0}")]
    Fairness(#[from] credit_core::fairness::FairnessError),
    #[error("{0}")]
    KafkaOutput(String),
    #[error("reasons: {0}")]
    Explain(#[from] credit_core::explain::ExplainError),
    #[error(
        "cannot score the PSI reference {}: row {row}: field `{field}`: {reason}",
        path.display()
    )]
    Reference {
        path: PathBuf,
        row: u64,
        field: String,
        reason: String,
    },
    #[error("cannot read input {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write reject file {path}: {source}")]
    Rejects {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write summary {path}: {source}")]
    Summary {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint {} belongs to a different run ({}); rerun with the original input, model, \
         shard and output options to resume it, or delete the checkpoint and the output to \
         start over",
        checkpoint.display(),
        differences.join("; ")
    )]
    Fingerprint {
        checkpoint: PathBuf,
        differences: Vec<String>,
    },
    #[error(
        "output {} already exists and has no checkpoint to resume from; pass --force to \
         overwrite it",
        path.display()
    )]
    OutputExists { path: PathBuf },
    #[error(
        "{count} rows rejected, more than --max-rejects {limit}; see {} for the rows and the \
         reasons",
        path.display()
    )]
    TooManyRejects {
        count: u64,
        limit: u64,
        path: PathBuf,
    },
    #[error("stopped after {rows} rows as asked by --stop-after-rows (simulated crash)")]
    SimulatedCrash { rows: u64 },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_sit_next_to_the_output() {
        let paths = OutputPaths::for_output(Path::new("/out/scored.parquet"));
        assert_eq!(
            paths.checkpoint,
            Path::new("/out/scored.parquet.checkpoint.json")
        );
        assert_eq!(
            paths.rejects,
            Path::new("/out/scored.parquet.rejects.jsonl")
        );
        assert_eq!(paths.summary, Path::new("/out/scored.parquet.summary.json"));
    }
}

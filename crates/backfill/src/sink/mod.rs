//! Scored output: CSV, JSON Lines or a directory of Parquet part files, written so that a
//! resumed run can cut the output back to its last commit.
//!
//! A sink separates *writing* a chunk from *committing*: a commit makes everything written so
//! far durable and returns the [`OutputState`] that the checkpoint records. Line formats can
//! commit after every chunk (the state is the byte length, and a resumed run truncates the
//! file to it). A Parquet file is only readable once its footer is written, so the Parquet
//! sink commits whole part files (`part-00000.parquet`, ...), each written under a temporary
//! name and renamed when complete; a resumed run deletes any part at or after the committed
//! count.

pub(crate) mod csv;
pub(crate) mod jsonl;
pub(crate) mod kafka;
pub(crate) mod parquet;

use super::fields::Layout;
use super::format::Format;
use super::row::ScoredRow;
use credit_core::decision::PublishedReasons;
use credit_core::explain::Reference;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What every output row carries besides the score.
#[derive(Debug, Clone)]
pub(crate) struct OutputSpec {
    /// The model's schema: the fields written with `include_fields`, and the outcome column.
    pub layout: Arc<Layout>,
    /// The decision threshold on the probability of `bad`.
    pub threshold: f32,
    pub model_version: String,
    /// Whether to append the applicant's wire fields (by schema name, wire value) and the
    /// outcome column.
    pub include_fields: bool,
    /// The applicant reasons are measured against; `None` when reasons are off (no column).
    pub reference: Option<Arc<Reference>>,
    /// Whether a commit also `fsync`s the data (survives power loss, not only a killed
    /// process).
    pub durable: bool,
    /// Rows per Parquet part file (a part is the unit of commit for Parquet).
    pub part_rows: usize,
}

impl OutputSpec {
    /// The reasons of `scored` in their published form, when reasons are on.
    pub(crate) fn reasons_of<'a>(&'a self, scored: &'a ScoredRow) -> Option<PublishedReasons<'a>> {
        self.reference.as_ref().map(|reference| PublishedReasons {
            schema: self.layout.schema(),
            applicant: &scored.row.applicant,
            reference: reference.applicant(),
            reasons: &scored.reasons,
        })
    }
}

/// How much of the output is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputState {
    /// Byte length of a CSV or JSON Lines output.
    pub bytes: u64,
    /// Number of complete Parquet part files.
    pub parts: u64,
    /// Records acknowledged by the brokers, for a Kafka output (informational: a topic
    /// cannot be cut back, so a resumed run may publish the uncommitted rows again).
    #[serde(default)]
    pub messages: u64,
}

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write output {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write Parquet output {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: ::parquet::errors::ParquetError,
    },
    #[error("cannot encode output row for {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("cannot publish to {address}: {message}")]
    Kafka { address: String, message: String },
    #[error("output {path} is {actual} bytes, shorter than the {committed} bytes the checkpoint says were committed; it was changed since, so the run cannot resume")]
    Shrunk {
        path: PathBuf,
        committed: u64,
        actual: u64,
    },
}

/// A writer of scored rows.
pub(crate) trait Sink: Send {
    /// Writes rows (not yet committed).
    fn write(&mut self, rows: &[ScoredRow]) -> Result<(), SinkError>;
    /// Whether the sink wants to commit now (line formats: after every write; Parquet: when
    /// the current part is full).
    fn commit_due(&self) -> bool;
    /// Makes everything written so far durable.
    fn commit(&mut self) -> Result<OutputState, SinkError>;
    /// Pushes written but uncommitted data to the file, as a crash would leave it (test hook).
    fn flush_uncommitted(&mut self) -> Result<(), SinkError>;
    /// Commits what is left and closes the output.
    fn finish(self: Box<Self>) -> Result<OutputState, SinkError>;
}

/// Opens the output, cut back to `resume` when resuming, else created afresh.
pub(crate) fn open(
    path: &Path,
    format: Format,
    spec: OutputSpec,
    resume: Option<OutputState>,
) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match format {
        Format::Csv => Box::new(csv::CsvSink::open(path, spec, resume)?),
        Format::Jsonl => Box::new(jsonl::JsonlSink::open(path, spec, resume)?),
        Format::Parquet => Box::new(parquet::ParquetSink::open(path, spec, resume)?),
    })
}

/// Column names of the scored output, before the optional field columns.
/// The column of a row's reasons (the decision record's JSON array) when reasons are on.
pub(crate) const REASONS_COLUMN: &str = "reasons";

pub(crate) const SCORE_COLUMNS: [&str; 5] = [
    "application_id",
    "decision",
    "probability_bad",
    "threshold",
    "model_version",
];

pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens a line-format output: truncated to the committed length when resuming, created empty
/// otherwise. Returns the file positioned at its end and its length.
pub(crate) fn open_truncated(
    path: &Path,
    resume: Option<OutputState>,
) -> Result<(std::fs::File, u64), SinkError> {
    use std::io::{Seek, SeekFrom};
    let io = io_error(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(&io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(resume.is_none())
        .open(path)
        .map_err(&io)?;
    let committed = resume.map_or(0, |state| state.bytes);
    let actual = file.metadata().map_err(&io)?.len();
    if actual < committed {
        return Err(SinkError::Shrunk {
            path: path.to_path_buf(),
            committed,
            actual,
        });
    }
    file.set_len(committed).map_err(&io)?;
    file.seek(SeekFrom::End(0)).map_err(&io)?;
    Ok((file, committed))
}

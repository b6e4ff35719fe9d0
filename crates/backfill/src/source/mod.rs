//! Input sources: a reader thread pulls raw chunks off the file, worker threads decode them.
//!
//! Splitting "find the rows" (sequential by nature: a CSV record or a JSON line ends where the
//! next begins) from "decode the rows" (independent per row, the expensive part for JSON) lets
//! the decoding run on every core. A [`Source`] therefore hands out [`RawChunk`]s that hold
//! undecoded rows and the input position after them; a [`Decoder`], shared by the workers,
//! turns a chunk into applicants and rejections.
//!
//! Every source can start at an [`InputPosition`] taken from a checkpoint: line formats seek
//! to the byte offset, Parquet skips whole files and then rows.

pub mod csv;
pub mod jsonl;
pub mod kafka;
pub mod parquet;

use super::fields::Layout;
use super::format::Format;
use super::row::{InputPosition, InputRow, RejectedRow};
use super::shard::Shard;
use credit_core::dataset::{self, DatasetError};
use credit_core::schema::Schema;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Undecoded rows, in the form their source produced them.
pub enum Payload {
    /// CSV records, one per row.
    Csv(Vec<::csv::ByteRecord>),
    /// JSON Lines: the lines' bytes back to back, and where each line ends in them.
    Lines { text: Vec<u8>, ends: Vec<usize> },
    /// A Parquet record batch.
    Parquet(arrow_array::RecordBatch),
    /// Kafka records of one partition.
    Messages(kafka::Records),
}

/// A run of consecutive input rows.
pub struct RawChunk {
    /// Order of the chunk in the input; the writer restores it.
    pub sequence: u64,
    /// 0-based index of the chunk's first row.
    pub first_index: u64,
    pub payload: Payload,
    /// The input position after the chunk.
    pub end: InputPosition,
}

impl RawChunk {
    /// Number of input rows in the chunk.
    pub fn len(&self) -> usize {
        match &self.payload {
            Payload::Csv(records) => records.len(),
            Payload::Lines { ends, .. } => ends.len(),
            Payload::Parquet(batch) => batch.num_rows(),
            Payload::Messages(records) => records.spans.len(),
        }
    }

    /// Whether the chunk holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How far through the input a run is, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Progress is measured in bytes of the input file.
    Bytes(u64),
    /// Progress is measured in rows (Parquet knows its row count up front).
    Rows(u64),
}

/// Why the input cannot be read. Row-level problems are [`RejectedRow`]s, not this.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read input {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input {path} is not valid CSV: {source}")]
    Csv { path: PathBuf, source: ::csv::Error },
    #[error("input {path} is not readable Parquet: {source}")]
    Parquet {
        path: PathBuf,
        source: ::parquet::errors::ParquetError,
    },
    #[error("input {path} has no column for field `{field}` (looked for `{column}` or `{field}`)")]
    MissingColumn {
        path: PathBuf,
        field: String,
        column: String,
    },
    #[error("input {path}: column `{column}` has type {found}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("input {path} has no Parquet files")]
    NoParquetFiles { path: PathBuf },
    #[error("internal error: a chunk reached the decoder of another format")]
    DecoderMismatch,
    #[error("cannot read {address} partition {partition} at offset {offset}: {source}")]
    Kafka {
        address: String,
        partition: i32,
        offset: i64,
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "no record of {address} partition {partition} arrived for {waited:?} at offset {offset} \
         (the range ends at {end}); is the broker reachable? Rerun the command to resume"
    )]
    KafkaStalled {
        address: String,
        partition: i32,
        offset: i64,
        end: i64,
        waited: std::time::Duration,
    },
    #[error("the checkpoint's position is in partition {partition}, which is not in the range of {address}")]
    KafkaPosition { address: String, partition: i32 },
    #[error("resume position {rows} is past the end of input {path} ({total} rows)")]
    PastEnd {
        path: PathBuf,
        rows: u64,
        total: u64,
    },
}

/// A reader of raw chunks, run on its own thread.
pub trait Source: Send {
    /// The next chunk of at most `max_rows` rows, or `None` at the end of the input.
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, SourceError>;
    /// The input's size, for the progress bar.
    fn extent(&self) -> Extent;
}

/// Decodes raw chunks into rows; shared by the worker threads.
pub enum Decoder {
    Csv(csv::CsvDecoder),
    Jsonl(jsonl::JsonlDecoder),
    Parquet(parquet::ParquetDecoder),
    Kafka(kafka::KafkaDecoder),
}

impl Decoder {
    /// Decodes the rows of `chunk` that belong to `shard` into `rows` and `rejections`
    /// (appending, in input order).
    pub fn decode(
        &self,
        chunk: &RawChunk,
        shard: Shard,
        rows: &mut Vec<InputRow>,
        rejections: &mut Vec<RejectedRow>,
    ) -> Result<(), SourceError> {
        match (self, &chunk.payload) {
            (Decoder::Csv(decoder), Payload::Csv(records)) => {
                decoder.decode(records, chunk.first_index, shard, rows, rejections);
                Ok(())
            }
            (Decoder::Jsonl(decoder), Payload::Lines { text, ends }) => {
                decoder.decode(text, ends, chunk.first_index, shard, rows, rejections);
                Ok(())
            }
            (Decoder::Parquet(decoder), Payload::Parquet(batch)) => {
                decoder.decode(batch, chunk.first_index, shard, rows, rejections)
            }
            (Decoder::Kafka(decoder), Payload::Messages(records)) => {
                decoder.decode(records, chunk.first_index, rows, rejections);
                Ok(())
            }
            // A source and its decoder are created together by `open`, so this is a bug; it
            // must not pass silently, since the chunk's rows would be lost.
            _ => Err(SourceError::DecoderMismatch),
        }
    }
}

/// Opens `path` as `format`, positioned at `start`, to be read with `schema`.
pub fn open(
    schema: Arc<Schema>,
    path: &Path,
    format: Format,
    start: InputPosition,
) -> Result<(Box<dyn Source>, Decoder), SourceError> {
    let layout = Arc::new(Layout::new(schema));
    match format {
        Format::Csv => {
            let (source, decoder) = csv::CsvSource::open(layout, path, start)?;
            Ok((Box::new(source), Decoder::Csv(decoder)))
        }
        Format::Jsonl => {
            let source = jsonl::JsonlSource::open(path, start)?;
            Ok((
                Box::new(source),
                Decoder::Jsonl(jsonl::JsonlDecoder::new(layout)),
            ))
        }
        Format::Parquet => {
            let source = parquet::ParquetSource::open(&layout, path, start)?;
            let decoder = parquet::ParquetDecoder::new(layout, path);
            Ok((Box::new(source), Decoder::Parquet(decoder)))
        }
    }
}

/// Where each schema field's column is among `header` (see [`dataset::columns`]); a required
/// field without one is an error naming the input.
pub(crate) fn field_columns(
    schema: &Schema,
    header: &[&str],
    path: &Path,
) -> Result<Vec<Option<usize>>, SourceError> {
    dataset::columns(schema, header).map_err(|error| match error {
        DatasetError::MissingColumn { field, column } => SourceError::MissingColumn {
            path: path.to_path_buf(),
            field,
            column,
        },
        other => SourceError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Maps an I/O error to a [`SourceError`] naming the input.
pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

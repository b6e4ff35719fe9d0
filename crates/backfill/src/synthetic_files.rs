//! Streaming synthetic applicants to a file in any of the backfill's input formats.
//!
//! - CSV: the German Credit file's own layout (its column names and code-book labels), with
//!   `application_id` first, so the file looks like the historical extracts it stands in for
//!   (and, with outcomes, loads with [`credit_core::german_credit::load`]).
//! - JSON Lines: the schema's JSON form, the worker's wire format, plus `application_id`.
//! - Parquet: one file, `application_id`, the schema's field names (wire values, 32-bit
//!   integers), row groups of [`crate::sink::parquet::ROW_GROUP_ROWS`] rows.
//!
//! Rows are produced and written block by block, so memory does not grow with the row count.

use crate::columns::{applicant_fields, ApplicantColumns};
use crate::fields::{dataset_fields, outcome_text, FieldValue, ID_COLUMN, OUTCOME_COLUMN};
use crate::sink::parquet::writer_properties;
use crate::Format;
use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use credit_core::applicant::{Applicant, ATTRIBUTES};
use credit_synthetic::generator::{GeneratedRow, Generator, GeneratorError, BLOCK_ROWS};
use parquet::arrow::ArrowWriter;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the synthetic file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write CSV {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("cannot write Parquet {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot encode a row for {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error(transparent)]
    Generator(#[from] GeneratorError),
}

/// A streaming writer of generated rows.
pub trait RowWriter {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError>;
    fn finish(self: Box<Self>) -> Result<(), WriteError>;
}

/// Writes `count` rows of `generator` to `path` as `format`; `progress` gets the rows written.
pub fn generate_to_file(
    generator: &Generator,
    path: &Path,
    format: Format,
    count: u64,
    with_outcomes: bool,
    progress: &dyn Fn(u64),
) -> Result<(), WriteError> {
    let mut writer = open(path, format, with_outcomes)?;
    let mut rows = Vec::with_capacity(BLOCK_ROWS as usize);
    let mut written = 0;
    while written < count {
        let block = BLOCK_ROWS.min(count - written);
        rows.clear();
        generator.generate(written, block, &mut rows)?;
        writer.write(&rows)?;
        written += block;
        progress(written);
    }
    writer.finish()
}

/// Opens a writer for `format`.
pub fn open(
    path: &Path,
    format: Format,
    with_outcomes: bool,
) -> Result<Box<dyn RowWriter>, WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = File::create(path).map_err(io)?;
    Ok(match format {
        Format::Csv => Box::new(CsvRows::new(path, file, with_outcomes)?),
        Format::Jsonl => Box::new(JsonlRows {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            with_outcomes,
        }),
        Format::Parquet => Box::new(ParquetRows::new(path, file, with_outcomes)?),
    })
}

struct CsvRows {
    path: PathBuf,
    writer: csv::Writer<File>,
    with_outcomes: bool,
}

impl CsvRows {
    fn new(path: &Path, file: File, with_outcomes: bool) -> Result<Self, WriteError> {
        let mut writer = csv::WriterBuilder::new()
            .buffer_capacity(1 << 20)
            .from_writer(file);
        let mut header = vec![ID_COLUMN];
        header.extend(ATTRIBUTES.iter().map(|spec| spec.dataset_column));
        if with_outcomes {
            header.push(OUTCOME_COLUMN);
        }
        writer
            .write_record(&header)
            .map_err(|source| WriteError::Csv {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            with_outcomes,
        })
    }
}

impl RowWriter for CsvRows {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError> {
        for row in rows {
            let written = (|| -> csv::Result<()> {
                self.writer.write_field(&row.application_id)?;
                for value in dataset_fields(&row.applicant) {
                    match value {
                        FieldValue::Text(text) => self.writer.write_field(text)?,
                        FieldValue::Number(n) => self.writer.write_field(n.to_string())?,
                    }
                }
                if self.with_outcomes {
                    self.writer.write_field(outcome_text(row.bad))?;
                }
                self.writer.write_record(None::<&[u8]>)
            })();
            written.map_err(|source| WriteError::Csv {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), WriteError> {
        self.writer.flush().map_err(|source| WriteError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    application_id: &'a str,
    #[serde(flatten)]
    applicant: &'a Applicant,
    #[serde(skip_serializing_if = "Option::is_none")]
    creditability: Option<&'static str>,
}

struct JsonlRows {
    path: PathBuf,
    out: BufWriter<File>,
    with_outcomes: bool,
}

impl RowWriter for JsonlRows {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError> {
        for row in rows {
            let line = JsonLine {
                application_id: &row.application_id,
                applicant: &row.applicant,
                creditability: self.with_outcomes.then(|| outcome_text(row.bad)),
            };
            serde_json::to_writer(&mut self.out, &line).map_err(|e| WriteError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            self.out.write_all(b"\n").map_err(|source| WriteError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), WriteError> {
        self.out.flush().map_err(|source| WriteError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

struct ParquetRows {
    path: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    with_outcomes: bool,
}

impl ParquetRows {
    fn new(path: &Path, file: File, with_outcomes: bool) -> Result<Self, WriteError> {
        let mut fields = vec![Field::new(ID_COLUMN, DataType::Utf8, false)];
        fields.extend(applicant_fields());
        if with_outcomes {
            fields.push(Field::new(OUTCOME_COLUMN, DataType::Utf8, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let properties = writer_properties(&[ID_COLUMN]);
        let writer =
            ArrowWriter::try_new(file, schema.clone(), Some(properties)).map_err(|source| {
                WriteError::Parquet {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            schema,
            with_outcomes,
        })
    }
}

impl RowWriter for ParquetRows {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError> {
        let mut ids = StringBuilder::with_capacity(rows.len(), rows.len() * 13);
        let mut applicants = ApplicantColumns::with_capacity(rows.len());
        let mut outcomes = StringBuilder::with_capacity(rows.len(), rows.len() * 4);
        for row in rows {
            ids.append_value(&row.application_id);
            applicants.append(&row.applicant);
            outcomes.append_value(outcome_text(row.bad));
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(ids.finish())];
        columns.extend(applicants.finish());
        if self.with_outcomes {
            columns.push(Arc::new(outcomes.finish()));
        }
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| WriteError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        self.writer
            .write(&batch)
            .map_err(|source| WriteError::Parquet {
                path: self.path.clone(),
                source,
            })
    }

    fn finish(self: Box<Self>) -> Result<(), WriteError> {
        let path = self.path.clone();
        self.writer
            .close()
            .map(|_| ())
            .map_err(|source| WriteError::Parquet { path, source })
    }
}

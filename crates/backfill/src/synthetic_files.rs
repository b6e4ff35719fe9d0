//! Streaming synthetic applicants to a file in any of the backfill's input formats, laid out
//! by the generator's schema.
//!
//! - CSV: the lender's data-set layout (each field's `column`, categories in their `data`
//!   spelling), with the id column first, so the file looks like the historical extracts it
//!   stands in for (and, with outcomes, loads with [`credit_core::dataset::load_labelled`]).
//! - JSON Lines: the schema's JSON form, the worker's wire format, plus the id.
//! - Parquet: one file, the id, the schema's field names (wire values; see
//!   [`crate::columns`]), row groups of [`crate::sink::parquet::ROW_GROUP_ROWS`] rows.
//!
//! The id column is the schema's key field's, else `application_id`; the outcome column is the
//! schema's label field's (a schema without one gets no outcome column).
//!
//! Rows are produced and written block by block, so memory does not grow with the row count.

use crate::columns::{applicant_fields, ApplicantColumns};
use crate::fields::{data_spelling, write_csv_field, write_json_key, write_json_value, Layout};
use crate::sink::parquet::writer_properties;
use crate::Format;
use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use credit_core::applicant::wire;
use credit_synthetic::generator::{GeneratedRow, Generator, GeneratorError, BLOCK_ROWS};
use parquet::arrow::ArrowWriter;
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
    let schema = Arc::new(generator.schema().clone());
    let mut writer = open(schema, path, format, with_outcomes)?;
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

/// Opens a writer for `format` of rows of `schema`; `with_outcomes` adds the outcome column
/// when the schema has a label field.
pub fn open(
    schema: Arc<credit_core::schema::Schema>,
    path: &Path,
    format: Format,
    with_outcomes: bool,
) -> Result<Box<dyn RowWriter>, WriteError> {
    let layout = Layout::new(schema);
    let with_outcomes = with_outcomes && layout.outcome().is_some();
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = File::create(path).map_err(io)?;
    Ok(match format {
        Format::Csv => Box::new(CsvRows::new(layout, path, file, with_outcomes)?),
        Format::Jsonl => Box::new(JsonlRows {
            layout,
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            line: Vec::with_capacity(1024),
            with_outcomes,
        }),
        Format::Parquet => Box::new(ParquetRows::new(layout, path, file, with_outcomes)?),
    })
}

struct CsvRows {
    layout: Layout,
    path: PathBuf,
    writer: csv::Writer<File>,
    with_outcomes: bool,
    scratch: String,
}

impl CsvRows {
    fn new(
        layout: Layout,
        path: &Path,
        file: File,
        with_outcomes: bool,
    ) -> Result<Self, WriteError> {
        let mut writer = csv::WriterBuilder::new()
            .buffer_capacity(1 << 20)
            .from_writer(file);
        let mut header = vec![layout.id_column()];
        header.extend(layout.wire_fields().map(|(_, field)| field.column.as_str()));
        if with_outcomes {
            header.extend(
                layout
                    .schema()
                    .label_field()
                    .map(|(_, field)| field.column.as_str()),
            );
        }
        writer
            .write_record(&header)
            .map_err(|source| WriteError::Csv {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            layout,
            path: path.to_path_buf(),
            writer,
            with_outcomes,
            scratch: String::new(),
        })
    }
}

impl RowWriter for CsvRows {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError> {
        let Self {
            layout,
            writer,
            scratch,
            with_outcomes,
            ..
        } = self;
        for row in rows {
            let written = (|| -> csv::Result<()> {
                writer.write_field(&row.application_id)?;
                let values = row.applicant.values();
                for (position, field) in layout.wire_fields() {
                    let value = values.get(position).and_then(|v| data_spelling(field, *v));
                    write_csv_field(writer, value, scratch)?;
                }
                if let (true, Some(outcome)) = (*with_outcomes, layout.outcome()) {
                    writer.write_field(outcome.text(row.bad))?;
                }
                writer.write_record(None::<&[u8]>)
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

struct JsonlRows {
    layout: Layout,
    path: PathBuf,
    out: BufWriter<File>,
    /// One line, built before it is written.
    line: Vec<u8>,
    with_outcomes: bool,
}

impl RowWriter for JsonlRows {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError> {
        let layout = &self.layout;
        for row in rows {
            let line = &mut self.line;
            line.clear();
            line.push(b'{');
            // Writing strings into a vector cannot fail.
            let _ = serde_json::to_writer(&mut *line, layout.id_column());
            line.push(b':');
            let _ = serde_json::to_writer(&mut *line, &row.application_id);
            let values = row.applicant.values();
            for (position, field) in layout.wire_fields() {
                let value = values.get(position).and_then(|v| wire(field, *v));
                // A missing optional value is left out, as producers may send it.
                if value.is_some() {
                    write_json_key(line, &field.name);
                    write_json_value(line, value);
                }
            }
            if let (true, Some(outcome)) = (self.with_outcomes, layout.outcome()) {
                write_json_key(line, outcome.name());
                let _ = serde_json::to_writer(&mut *line, outcome.text(row.bad));
            }
            line.extend_from_slice(b"}\n");
            self.out.write_all(line).map_err(|source| WriteError::Io {
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
    layout: Layout,
    path: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    with_outcomes: bool,
}

impl ParquetRows {
    fn new(
        layout: Layout,
        path: &Path,
        file: File,
        with_outcomes: bool,
    ) -> Result<Self, WriteError> {
        let mut fields = vec![Field::new(layout.id_column(), DataType::Utf8, false)];
        fields.extend(applicant_fields(layout.schema()));
        if let (true, Some(outcome)) = (with_outcomes, layout.outcome()) {
            fields.push(Field::new(outcome.name(), DataType::Utf8, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let properties = writer_properties(&[layout.id_column()]);
        let writer =
            ArrowWriter::try_new(file, schema.clone(), Some(properties)).map_err(|source| {
                WriteError::Parquet {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Ok(Self {
            layout,
            path: path.to_path_buf(),
            writer,
            schema,
            with_outcomes,
        })
    }
}

impl RowWriter for ParquetRows {
    fn write(&mut self, rows: &[GeneratedRow]) -> Result<(), WriteError> {
        let layout = &self.layout;
        let mut ids = StringBuilder::with_capacity(rows.len(), rows.len() * 13);
        let mut applicants =
            ApplicantColumns::with_capacity(Arc::clone(layout.schema_arc()), rows.len());
        let mut outcomes = StringBuilder::with_capacity(rows.len(), rows.len() * 4);
        for row in rows {
            ids.append_value(&row.application_id);
            applicants.append(&row.applicant);
            if let Some(outcome) = layout.outcome() {
                outcomes.append_value(outcome.text(row.bad));
            }
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

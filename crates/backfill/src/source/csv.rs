//! CSV input: the lender's data-file layout (each field's schema `column`, categories in their
//! `data` spelling) or the schema's field names and wire values, in any column order, with
//! optional id and outcome columns (see [`crate::fields`]). An empty cell is a missing value.
//!
//! The reader is `flexible` so that a row with a missing or extra field becomes a rejection
//! naming the row instead of an error that stops the run.

use super::{field_columns, io_error, InputPosition, RawChunk, Source, SourceError};
use crate::fields::Layout;
use crate::row::{InputRow, RejectedRow};
use crate::shard::Shard;
use credit_core::applicant::{RecordError, RecordErrorKind};
use credit_core::dataset::parse_row;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const READ_BUFFER: usize = 1 << 20;

/// Reads CSV records in chunks.
pub struct CsvSource {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    /// Byte offset in the file at which `reader` started (its positions are relative to it).
    base_offset: u64,
    next_index: u64,
    sequence: u64,
    size: u64,
}

/// Where each column is, worked out from the header.
#[derive(Debug, Clone)]
pub struct CsvDecoder {
    layout: Arc<Layout>,
    /// The column of each schema field (`None` for a non-wire field, or an optional field the
    /// file lacks).
    fields: Vec<Option<usize>>,
    /// The id column, with its header.
    id: Option<(usize, String)>,
    outcome: Option<usize>,
    /// Number of header columns; a row with another count is rejected as a whole.
    columns: usize,
}

impl CsvSource {
    /// Opens `path`, reads its header, and seeks to `start`.
    pub(crate) fn open(
        layout: Arc<Layout>,
        path: &Path,
        start: InputPosition,
    ) -> Result<(Self, CsvDecoder), SourceError> {
        let io = io_error(path);
        let csv_error = |source| SourceError::Csv {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(&io)?;
        let size = file.metadata().map_err(&io)?.len();
        let mut reader = builder(true).from_reader(BufReader::with_capacity(READ_BUFFER, file));
        let headers = reader.headers().map_err(csv_error)?.clone();
        let names: Vec<&str> = headers.iter().collect();
        let mut fields = field_columns(layout.schema(), &names, path)?;
        for (column, field) in fields.iter_mut().zip(layout.schema().fields()) {
            if !field.is_wire() {
                *column = None;
            }
        }
        let id = layout
            .id_position(&names)
            .map(|at| (at, names[at].trim().to_owned()));
        let outcome = layout
            .outcome()
            .and_then(|outcome| outcome.position(&names));
        let decoder = CsvDecoder {
            fields,
            id,
            outcome,
            columns: names.len(),
            layout,
        };
        let mut base_offset = 0;
        if start.byte_offset > 0 {
            let mut file = File::open(path).map_err(&io)?;
            file.seek(SeekFrom::Start(start.byte_offset)).map_err(&io)?;
            reader = builder(false).from_reader(BufReader::with_capacity(READ_BUFFER, file));
            base_offset = start.byte_offset;
        }
        Ok((
            Self {
                path: path.to_path_buf(),
                reader,
                base_offset,
                next_index: start.rows,
                sequence: 0,
                size,
            },
            decoder,
        ))
    }
}

fn builder(has_headers: bool) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder.has_headers(has_headers).flexible(true);
    builder
}

impl Source for CsvSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, SourceError> {
        let mut records = Vec::with_capacity(max_rows);
        while records.len() < max_rows {
            let mut record = csv::ByteRecord::new();
            let more = self
                .reader
                .read_byte_record(&mut record)
                .map_err(|source| SourceError::Csv {
                    path: self.path.clone(),
                    source,
                })?;
            if !more {
                break;
            }
            records.push(record);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let first_index = self.next_index;
        self.next_index += records.len() as u64;
        let sequence = self.sequence;
        self.sequence += 1;
        Ok(Some(RawChunk {
            sequence,
            first_index,
            payload: super::Payload::Csv(records),
            end: InputPosition {
                rows: self.next_index,
                byte_offset: self.base_offset + self.reader.position().byte(),
                kafka: None,
            },
        }))
    }

    fn extent(&self) -> super::Extent {
        super::Extent::Bytes(self.size)
    }
}

impl CsvDecoder {
    /// Decodes the records of this shard.
    pub fn decode(
        &self,
        records: &[csv::ByteRecord],
        first_index: u64,
        shard: Shard,
        rows: &mut Vec<InputRow>,
        rejections: &mut Vec<RejectedRow>,
    ) {
        let mut texts = Vec::with_capacity(self.fields.len());
        for (offset, record) in records.iter().enumerate() {
            let index = first_index + offset as u64;
            if !shard.contains(index) {
                continue;
            }
            match self.decode_record(record, index, &mut texts) {
                Ok(row) => rows.push(row),
                Err(error) => rejections.push(RejectedRow::new(index, raw_text(record), &error)),
            }
        }
    }

    /// Decodes one record; `texts` is scratch space for its fields' cells.
    fn decode_record<'r>(
        &self,
        record: &'r csv::ByteRecord,
        index: u64,
        texts: &mut Vec<Option<&'r str>>,
    ) -> Result<InputRow, RecordError> {
        if record.len() != self.columns {
            return Err(RecordError::new(
                RecordErrorKind::Malformed,
                "record",
                format!(
                    "row has {} fields, the header has {}",
                    record.len(),
                    self.columns
                ),
            ));
        }
        let text = |position: usize| -> Result<&'r str, RecordError> {
            let bytes = record.get(position).unwrap_or(b"");
            std::str::from_utf8(bytes).map_err(|_| {
                RecordError::new(
                    RecordErrorKind::NotUtf8,
                    "record",
                    format!("column {} is not valid UTF-8", position + 1),
                )
            })
        };
        texts.clear();
        for column in &self.fields {
            texts.push(column.map(text).transpose()?);
        }
        let applicant = parse_row(self.layout.schema(), |field| texts[field])?;
        let application_id = match &self.id {
            Some((position, column)) => match text(*position)?.trim() {
                "" => (index + 1).to_string(),
                id => {
                    self.layout.check_id(column, id)?;
                    id.to_string()
                }
            },
            None => (index + 1).to_string(),
        };
        let bad = match (self.outcome, self.layout.outcome()) {
            (Some(position), Some(outcome)) => outcome.parse(text(position)?)?,
            _ => None,
        };
        Ok(InputRow {
            index,
            application_id,
            applicant,
            bad,
        })
    }
}

/// The record as a CSV line, for the reject file.
fn raw_text(record: &csv::ByteRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if writer.write_byte_record(record).is_err() {
        return String::new();
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

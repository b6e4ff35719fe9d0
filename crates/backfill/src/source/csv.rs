//! CSV input: the German Credit layout (code-book labels, data-set column names) or the
//! schema's JSON field names and wire values, in any column order, with optional
//! `application_id` and `creditability` columns.
//!
//! The reader is `flexible` so that a row with a missing or extra field becomes a rejection
//! naming the row instead of an error that stops the run.

use super::{io_error, InputPosition, RawChunk, Source, SourceError};
use crate::fields::{self, ID_COLUMN, OUTCOME_COLUMN};
use crate::row::{InputRow, RejectedRow};
use crate::shard::Shard;
use credit_core::applicant::ATTRIBUTES;
use credit_core::applicant::{RecordError, RecordErrorKind};
use credit_core::german_credit::parse_row;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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
    attributes: [usize; 20],
    id: Option<usize>,
    outcome: Option<usize>,
    /// Number of header columns; a row with another count is rejected as a whole.
    columns: usize,
}

impl CsvSource {
    /// Opens `path`, reads its header, and seeks to `start`.
    pub fn open(path: &Path, start: InputPosition) -> Result<(Self, CsvDecoder), SourceError> {
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
        let mut attributes = [0usize; 20];
        for (attribute, slot) in attributes.iter_mut().enumerate() {
            *slot =
                fields::attribute_column(names.iter().copied(), attribute).ok_or_else(|| {
                    SourceError::MissingColumn {
                        path: path.to_path_buf(),
                        attribute: ATTRIBUTES[attribute].name,
                        dataset_column: ATTRIBUTES[attribute].dataset_column,
                    }
                })?;
        }
        let column = |name: &str| names.iter().position(|header| header.trim() == name);
        let decoder = CsvDecoder {
            attributes,
            id: column(ID_COLUMN),
            outcome: column(OUTCOME_COLUMN),
            columns: names.len(),
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
        for (offset, record) in records.iter().enumerate() {
            let index = first_index + offset as u64;
            if !shard.contains(index) {
                continue;
            }
            match self.decode_record(record, index) {
                Ok(row) => rows.push(row),
                Err(error) => rejections.push(RejectedRow::new(index, raw_text(record), &error)),
            }
        }
    }

    fn decode_record(&self, record: &csv::ByteRecord, index: u64) -> Result<InputRow, RecordError> {
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
        let text = |position: usize| -> Result<&str, RecordError> {
            let bytes = record.get(position).unwrap_or(b"");
            std::str::from_utf8(bytes).map_err(|_| {
                RecordError::new(
                    RecordErrorKind::NotUtf8,
                    "record",
                    format!("column {} is not valid UTF-8", position + 1),
                )
            })
        };
        let mut values = [""; 20];
        for (value, &position) in values.iter_mut().zip(&self.attributes) {
            *value = text(position)?;
        }
        let applicant = parse_row(|attribute| values[attribute])?;
        let application_id = match self.id.map(text).transpose()?.map(str::trim) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => (index + 1).to_string(),
        };
        let bad = match self.outcome {
            Some(position) => fields::outcome(text(position)?)?,
            None => None,
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

//! CSV output: a header, then one line per scored row; the fields (with `--include-fields`)
//! use the schema's names and wire values, a missing value an empty cell, so the file can be
//! scored again as input.

use super::{
    io_error, open_truncated, OutputSpec, OutputState, Sink, SinkError, REASONS_COLUMN,
    SCORE_COLUMNS,
};
use crate::fields::write_csv_field;
use crate::row::{decision_text, ScoredRow};
use credit_core::applicant::wire;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes scored rows as CSV.
pub(crate) struct CsvSink {
    path: PathBuf,
    file: File,
    spec: OutputSpec,
    bytes: u64,
    buffer: Vec<u8>,
}

impl CsvSink {
    /// Opens `path`; a fresh file gets the header.
    pub(crate) fn open(
        path: &Path,
        spec: OutputSpec,
        resume: Option<OutputState>,
    ) -> Result<Self, SinkError> {
        let (file, bytes) = open_truncated(path, resume)?;
        let mut sink = Self {
            path: path.to_path_buf(),
            file,
            spec,
            bytes,
            buffer: Vec::with_capacity(1 << 20),
        };
        if bytes == 0 {
            sink.write_header()?;
        }
        Ok(sink)
    }

    fn encode_error(&self, error: csv::Error) -> SinkError {
        SinkError::Encode {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }

    fn write_header(&mut self) -> Result<(), SinkError> {
        let layout = &self.spec.layout;
        let mut header: Vec<&str> = SCORE_COLUMNS.to_vec();
        if self.spec.reference.is_some() {
            header.push(REASONS_COLUMN);
        }
        if self.spec.include_fields {
            header.extend(layout.wire_fields().map(|(_, field)| field.name.as_str()));
            header.extend(layout.outcome().map(|outcome| outcome.name()));
        }
        let mut writer = csv::Writer::from_writer(&mut self.buffer);
        let written = writer.write_record(&header).and_then(|()| {
            writer.flush()?;
            Ok(())
        });
        drop(writer);
        written.map_err(|e| self.encode_error(e))?;
        self.drain_buffer()
    }

    fn drain_buffer(&mut self) -> Result<(), SinkError> {
        self.file
            .write_all(&self.buffer)
            .map_err(io_error(&self.path))?;
        self.bytes += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

impl Sink for CsvSink {
    fn write(&mut self, rows: &[ScoredRow]) -> Result<(), SinkError> {
        let threshold = self.spec.threshold.to_string();
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut self.buffer);
        let layout = &self.spec.layout;
        let mut number = String::new();
        let mut scratch = String::new();
        let mut result = Ok(());
        for scored in rows {
            let decision = decision_text(scored.is_bad(self.spec.threshold));
            number.clear();
            number.push_str(&scored.probability_bad.to_string());
            let written = (|| -> csv::Result<()> {
                writer.write_field(&scored.row.application_id)?;
                writer.write_field(decision)?;
                writer.write_field(&number)?;
                writer.write_field(&threshold)?;
                writer.write_field(&self.spec.model_version)?;
                if let Some(reasons) = self.spec.reasons_of(scored) {
                    // The reasons as their JSON array, the decision record's form, in one cell.
                    let json = serde_json::to_string(&reasons).map_err(std::io::Error::from)?;
                    writer.write_field(json)?;
                }
                if self.spec.include_fields {
                    let values = scored.row.applicant.values();
                    for (position, field) in layout.wire_fields() {
                        let value = values.get(position).and_then(|v| wire(field, *v));
                        write_csv_field(&mut writer, value, &mut scratch)?;
                    }
                    if let Some(outcome) = layout.outcome() {
                        writer.write_field(scored.row.bad.map_or("", |bad| outcome.text(bad)))?;
                    }
                }
                writer.write_record(None::<&[u8]>)
            })();
            if let Err(error) = written {
                result = Err(error);
                break;
            }
        }
        let flushed = writer.flush();
        drop(writer);
        result.map_err(|e| self.encode_error(e))?;
        flushed.map_err(io_error(&self.path))?;
        self.drain_buffer()
    }

    fn commit_due(&self) -> bool {
        true
    }

    fn commit(&mut self) -> Result<OutputState, SinkError> {
        if self.spec.durable {
            self.file.sync_data().map_err(io_error(&self.path))?;
        }
        Ok(OutputState {
            bytes: self.bytes,
            parts: 0,
            messages: 0,
        })
    }

    fn flush_uncommitted(&mut self) -> Result<(), SinkError> {
        // Every write goes straight to the file; nothing is held back.
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<OutputState, SinkError> {
        self.commit()
    }
}

//! JSON Lines output: one object per scored row, with the fields (with `--include-fields`) in
//! the schema's JSON form, a missing value `null`, so the file can be scored again as input.

use super::{io_error, open_truncated, OutputSpec, OutputState, Sink, SinkError};
use crate::fields::{write_json_key, write_json_value};
use crate::row::{decision_text, ScoredRow};
use credit_core::applicant::wire;
use credit_core::decision::PublishedReasons;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    application_id: &'a str,
    decision: &'static str,
    probability_bad: f32,
    threshold: f32,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<PublishedReasons<'a>>,
}

/// Writes scored rows as JSON Lines.
pub(crate) struct JsonlSink {
    path: PathBuf,
    file: File,
    spec: OutputSpec,
    bytes: u64,
    buffer: Vec<u8>,
}

impl JsonlSink {
    pub(crate) fn open(
        path: &Path,
        spec: OutputSpec,
        resume: Option<OutputState>,
    ) -> Result<Self, SinkError> {
        let (file, bytes) = open_truncated(path, resume)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            spec,
            bytes,
            buffer: Vec::with_capacity(1 << 20),
        })
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, rows: &[ScoredRow]) -> Result<(), SinkError> {
        self.buffer.clear();
        let layout = &self.spec.layout;
        for scored in rows {
            let line = Line {
                application_id: &scored.row.application_id,
                decision: decision_text(scored.is_bad(self.spec.threshold)),
                probability_bad: scored.probability_bad,
                threshold: self.spec.threshold,
                model_version: &self.spec.model_version,
                reasons: self.spec.reasons_of(scored),
            };
            serde_json::to_writer(&mut self.buffer, &line).map_err(|e| SinkError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            if self.spec.include_fields {
                // Reopens the object to append the fields, in schema order.
                self.buffer.pop();
                let values = scored.row.applicant.values();
                for (position, field) in layout.wire_fields() {
                    write_json_key(&mut self.buffer, &field.name);
                    let value = values.get(position).and_then(|v| wire(field, *v));
                    write_json_value(&mut self.buffer, value);
                }
                if let (Some(outcome), Some(bad)) = (layout.outcome(), scored.row.bad) {
                    write_json_key(&mut self.buffer, outcome.name());
                    let _ = serde_json::to_writer(&mut self.buffer, outcome.text(bad));
                }
                self.buffer.push(b'}');
            }
            self.buffer.push(b'\n');
        }
        self.file
            .write_all(&self.buffer)
            .map_err(io_error(&self.path))?;
        self.bytes += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
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
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<OutputState, SinkError> {
        self.commit()
    }
}

//! JSON Lines output: one object per scored row, with the attributes (with
//! `--include-fields`) in the schema's JSON form, so the file can be scored again as input.

use super::{io_error, open_truncated, OutputSpec, OutputState, Sink, SinkError};
use crate::fields::outcome_text;
use crate::row::{decision_text, ScoredRow};
use credit_core::applicant::Applicant;
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
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Applicant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creditability: Option<&'static str>,
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
        for scored in rows {
            let include = self.spec.include_fields;
            let line = Line {
                application_id: &scored.row.application_id,
                decision: decision_text(scored.is_bad(self.spec.threshold)),
                probability_bad: scored.probability_bad,
                threshold: self.spec.threshold,
                model_version: &self.spec.model_version,
                fields: include.then_some(&scored.row.applicant),
                creditability: if include {
                    scored.row.bad.map(outcome_text)
                } else {
                    None
                },
            };
            serde_json::to_writer(&mut self.buffer, &line).map_err(|e| SinkError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
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

//! JSON Lines input: one applicant per line in the schema's JSON form (see
//! [`credit_core::applicant`]), with optional `application_id` (string or number) and
//! `creditability` (`good`/`bad`). Blank lines are skipped but keep their number, so row
//! numbers in rejections are line numbers.

use super::{io_error, InputPosition, Payload, RawChunk, Source, SourceError};
use crate::fields::{self, OUTCOME_COLUMN};
use crate::row::{InputRow, RejectedRow};
use crate::shard::Shard;
use credit_core::applicant::{Applicant, RecordError, RecordErrorKind};
use serde::Deserialize;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const READ_BUFFER: usize = 1 << 20;

/// Reads lines in chunks.
pub struct JsonlSource {
    path: PathBuf,
    reader: BufReader<File>,
    offset: u64,
    next_index: u64,
    sequence: u64,
    size: u64,
}

impl JsonlSource {
    /// Opens `path` at `start`.
    pub fn open(path: &Path, start: InputPosition) -> Result<Self, SourceError> {
        let io = io_error(path);
        let mut file = File::open(path).map_err(&io)?;
        let size = file.metadata().map_err(&io)?.len();
        file.seek(SeekFrom::Start(start.byte_offset)).map_err(&io)?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(READ_BUFFER, file),
            offset: start.byte_offset,
            next_index: start.rows,
            sequence: 0,
            size,
        })
    }
}

impl Source for JsonlSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, SourceError> {
        let mut text = Vec::with_capacity(max_rows * 640);
        let mut ends = Vec::with_capacity(max_rows);
        while ends.len() < max_rows {
            let read = self
                .reader
                .read_until(b'\n', &mut text)
                .map_err(io_error(&self.path))?;
            if read == 0 {
                break;
            }
            self.offset += read as u64;
            ends.push(text.len());
        }
        if ends.is_empty() {
            return Ok(None);
        }
        let first_index = self.next_index;
        self.next_index += ends.len() as u64;
        let sequence = self.sequence;
        self.sequence += 1;
        Ok(Some(RawChunk {
            sequence,
            first_index,
            payload: Payload::Lines { text, ends },
            end: InputPosition {
                rows: self.next_index,
                byte_offset: self.offset,
                kafka: None,
            },
        }))
    }

    fn extent(&self) -> super::Extent {
        super::Extent::Bytes(self.size)
    }
}

/// The fields of a line besides the applicant's.
#[derive(Deserialize)]
struct Extras {
    #[serde(default)]
    application_id: Option<serde_json::Value>,
    #[serde(default)]
    creditability: Option<serde_json::Value>,
}

/// Decodes JSON lines (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonlDecoder;

impl JsonlDecoder {
    /// Decodes the lines of this shard.
    pub fn decode(
        &self,
        text: &[u8],
        ends: &[usize],
        first_index: u64,
        shard: Shard,
        rows: &mut Vec<InputRow>,
        rejections: &mut Vec<RejectedRow>,
    ) {
        let mut start = 0;
        for (offset, &end) in ends.iter().enumerate() {
            let line = trim(&text[start..end]);
            start = end;
            let index = first_index + offset as u64;
            if line.is_empty() || !shard.contains(index) {
                continue;
            }
            match decode_line(line, index) {
                Ok(row) => rows.push(row),
                Err(error) => rejections.push(RejectedRow::new(
                    index,
                    String::from_utf8_lossy(line).into_owned(),
                    &error,
                )),
            }
        }
    }
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., last] = line {
        if last.is_ascii_whitespace() {
            line = rest;
        } else {
            break;
        }
    }
    while let [first, rest @ ..] = line {
        if first.is_ascii_whitespace() {
            line = rest;
        } else {
            break;
        }
    }
    line
}

fn decode_line(line: &[u8], index: u64) -> Result<InputRow, RecordError> {
    // The applicant first: its errors name the field, and a line that is not JSON at all is
    // reported once, by it.
    let applicant = Applicant::from_json(line)?;
    let extras: Extras = serde_json::from_slice(line).map_err(|error| {
        RecordError::new(RecordErrorKind::Malformed, "record", error.to_string())
    })?;
    let application_id = match extras.application_id {
        None | Some(serde_json::Value::Null) => (index + 1).to_string(),
        Some(serde_json::Value::String(id)) if !id.trim().is_empty() => id,
        Some(serde_json::Value::Number(id)) => id.to_string(),
        Some(other) => {
            return Err(RecordError::new(
                RecordErrorKind::Identifier,
                "application_id",
                format!("`{other}` is not an identifier, expected a non-empty string or a number"),
            ))
        }
    };
    let bad = match extras.creditability {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => fields::outcome(&text)?,
        Some(serde_json::Value::Bool(bad)) => Some(bad),
        Some(other) => {
            return Err(RecordError::new(
                RecordErrorKind::WrongType,
                OUTCOME_COLUMN,
                format!("`{other}` is not an outcome, expected `good` or `bad`"),
            ))
        }
    };
    Ok(InputRow {
        index,
        application_id,
        applicant,
        bad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_both_ends() {
        assert_eq!(trim(b" \t{}\r\n"), b"{}");
        assert_eq!(trim(b"\n"), b"");
    }
}

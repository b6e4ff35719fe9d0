//! JSON Lines input: one applicant per line in the schema's JSON form (see
//! [`credit_core::applicant`]), with an optional id (string or number; under the key field's
//! name or `application_id`) and outcome (under the label field's name). Blank lines are
//! skipped but keep their number, so row numbers in rejections are line numbers.

use super::{io_error, InputPosition, Payload, RawChunk, Source, SourceError};
use crate::fields::Layout;
use crate::row::{InputRow, RejectedRow};
use crate::shard::Shard;
use credit_core::applicant::{Applicant, RecordError, RecordErrorKind};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Decodes JSON lines with the schema's decoder.
#[derive(Debug, Clone)]
pub struct JsonlDecoder {
    layout: Arc<Layout>,
}

impl JsonlDecoder {
    pub(crate) fn new(layout: Arc<Layout>) -> Self {
        Self { layout }
    }

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
            match decode_line(&self.layout, line, index) {
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

fn decode_line(layout: &Layout, line: &[u8], index: u64) -> Result<InputRow, RecordError> {
    // The applicant first: its errors name the field, and a line that is not JSON at all is
    // reported once, by it.
    let applicant = Applicant::from_json(layout.schema(), line)?;
    let extras = Extras::read(layout, line)?;
    let application_id = match extras.id {
        None | Some((_, serde_json::Value::Null)) => (index + 1).to_string(),
        Some((name, serde_json::Value::String(id))) if !id.trim().is_empty() => {
            layout.check_id(name, &id)?;
            id
        }
        Some((_, serde_json::Value::Number(id))) => id.to_string(),
        Some((name, other)) => {
            return Err(RecordError::new(
                RecordErrorKind::Identifier,
                name,
                format!("`{other}` is not an identifier, expected a non-empty string or a number"),
            ))
        }
    };
    let bad = match layout.outcome() {
        Some(outcome) => outcome.parse_json(extras.outcome.as_ref())?,
        None => None,
    };
    Ok(InputRow {
        index,
        application_id,
        applicant,
        bad,
    })
}

/// The members of a JSON record besides the applicant's fields: the id and the outcome.
#[derive(Debug, Default)]
pub(crate) struct Extras<'a> {
    /// The id, with the name it was found under (the most preferred one present).
    pub(crate) id: Option<(&'a str, serde_json::Value)>,
    pub(crate) outcome: Option<serde_json::Value>,
}

impl<'a> Extras<'a> {
    /// Reads them from a record, skipping everything else.
    pub(crate) fn read(layout: &'a Layout, record: &[u8]) -> Result<Self, RecordError> {
        let mut deserializer = serde_json::Deserializer::from_slice(record);
        serde::Deserializer::deserialize_map(&mut deserializer, ExtrasVisitor { layout }).map_err(
            |error| RecordError::new(RecordErrorKind::Malformed, "record", error.to_string()),
        )
    }
}

struct ExtrasVisitor<'a> {
    layout: &'a Layout,
}

/// What a member's name is to [`Extras`].
enum Member {
    /// The id, under the name of this rank among [`Layout::id_names`].
    Id(usize),
    Outcome,
    Other,
}

impl<'de, 'a> Visitor<'de> for ExtrasVisitor<'a> {
    type Value = Extras<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let names = self.layout.id_names();
        let mut extras = Extras::default();
        let mut id_rank = usize::MAX;
        while let Some(member) = map.next_key_seed(MemberName {
            layout: self.layout,
        })? {
            match member {
                Member::Id(rank) => {
                    let value: serde_json::Value = map.next_value()?;
                    if rank < id_rank {
                        id_rank = rank;
                        extras.id = Some((names[rank].as_str(), value));
                    }
                }
                Member::Outcome => extras.outcome = Some(map.next_value()?),
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(extras)
    }
}

struct MemberName<'a> {
    layout: &'a Layout,
}

impl<'de> DeserializeSeed<'de> for MemberName<'_> {
    type Value = Member;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Member, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for MemberName<'_> {
    type Value = Member;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
        if let Some(rank) = self.layout.id_names().iter().position(|id| id == name) {
            return Ok(Member::Id(rank));
        }
        if self
            .layout
            .outcome()
            .is_some_and(|outcome| outcome.is_key(name))
        {
            return Ok(Member::Outcome);
        }
        Ok(Member::Other)
    }
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

//! The units that flow through the backfill: decoded rows, rejected rows and scored rows, and
//! the chunks that carry them between threads.

use super::topic::KafkaPosition;
use credit_core::applicant::{Applicant, RecordError};
use credit_core::explain::Reason;
use serde::{Deserialize, Serialize};

/// One input row that decoded into an applicant.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    /// 0-based position in the input (header excluded); shards and resume are defined on it.
    pub index: u64,
    pub application_id: String,
    pub applicant: Applicant,
    /// The realised outcome, when the input carries it (`true` = bad).
    pub bad: Option<bool>,
}

/// One input row that could not be scored, as written to the reject file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// 1-based row number in the input (the data row, header excluded; for JSON Lines the
    /// line number).
    pub row: u64,
    /// The row as it was read (for Parquet, its values rendered as JSON).
    pub raw: String,
    /// The offending field, or `record` for the whole row.
    pub field: String,
    /// What was wrong and what was expected.
    pub reason: String,
    /// Where the record is, for a Kafka input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaPosition>,
}

impl RejectedRow {
    /// A rejection of the row at 0-based `index`.
    pub fn new(index: u64, raw: impl Into<String>, error: &RecordError) -> Self {
        Self {
            row: index + 1,
            raw: raw.into(),
            field: error.field.clone(),
            reason: error.problem.clone(),
            kafka: None,
        }
    }
}

/// An input row with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRow {
    pub row: InputRow,
    /// Probability that the applicant is a bad risk.
    pub probability_bad: f32,
    /// The principal reasons for the score, largest first (empty when not explained).
    pub reasons: Vec<Reason>,
}

impl ScoredRow {
    /// The decision at `threshold`: scores at or above it are `bad` (the convention of
    /// [`credit_core::evaluation`]).
    pub(crate) fn is_bad(&self, threshold: f32) -> bool {
        self.probability_bad >= threshold
    }
}

/// The text form of a decision.
pub(crate) fn decision_text(bad: bool) -> &'static str {
    if bad {
        "bad"
    } else {
        "good"
    }
}

/// Where a chunk ends in the input, so that a resumed run can start right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputPosition {
    /// Rows of the input consumed so far (every row, whether scored, rejected, blank or
    /// another shard's).
    pub rows: u64,
    /// Byte offset just after the last consumed row (CSV and JSON Lines; 0 otherwise).
    pub byte_offset: u64,
    /// The next record to read, for a Kafka input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaPosition>,
}

/// A chunk after the workers: scored rows and rejections, in input order.
#[derive(Debug, Default)]
pub struct ScoredChunk {
    /// Position of the chunk in the input; the writer restores this order.
    pub sequence: u64,
    pub rows: Vec<ScoredRow>,
    pub rejections: Vec<RejectedRow>,
    /// The input position after this chunk.
    pub end: InputPosition,
}

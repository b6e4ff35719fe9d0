//! The decision record published for every scored applicant, and how it is encoded.
//!
//! ```json
//! {"application_id":"app-000001","decision":"bad","probability_bad":0.61,
//!  "threshold":0.35,"model_version":"lstm-3f2a...","scored_at":"2024-05-01T12:00:00.123Z"}
//! ```
//!
//! Encoding writes into a caller-owned buffer, so the publishing thread reuses one allocation
//! for every record it publishes.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The decision on one applicant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Good,
    Bad,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::Good, Class::Bad];

    /// `bad` when `probability_bad >= threshold`: the same `>=` rule the trainer used to choose
    /// the threshold (see `evaluation::metrics`), so served decisions match the report.
    pub fn from_probability(probability_bad: f32, threshold: f32) -> Self {
        if probability_bad >= threshold {
            Self::Bad
        } else {
            Self::Good
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
        }
    }
}

/// The JSON payload of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord<'a> {
    pub application_id: &'a str,
    pub decision: Class,
    pub probability_bad: f32,
    pub threshold: f32,
    pub model_version: &'a str,
    /// RFC 3339, UTC, milliseconds.
    pub scored_at: &'a str,
}

impl DecisionRecord<'_> {
    /// Replaces the contents of `buffer` with the JSON form of this record.
    pub fn encode_into(&self, buffer: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        buffer.clear();
        serde_json::to_writer(&mut *buffer, self)
    }
}

/// A decoded decision, owning its strings (for consumers of the output topic and tests).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OwnedDecision {
    pub application_id: String,
    pub decision: Class,
    pub probability_bad: f32,
    pub threshold: f32,
    pub model_version: String,
    pub scored_at: String,
}

impl OwnedDecision {
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Writes the current time as RFC 3339 (UTC, milliseconds) into `buffer`, replacing its
/// contents; the publishing thread stamps each batch once.
pub fn write_timestamp(now: chrono::DateTime<chrono::Utc>, buffer: &mut String) {
    buffer.clear();
    // Writing into a String cannot fail.
    let _ = write!(buffer, "{}", now.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    #[test]
    fn threshold_is_inclusive_for_bad() {
        assert_eq!(Class::from_probability(0.35, 0.35), Class::Bad);
        assert_eq!(Class::from_probability(0.349_999, 0.35), Class::Good);
        assert_eq!(Class::from_probability(1.0, 1.0), Class::Bad);
        assert_eq!(Class::from_probability(0.0, 0.0), Class::Bad);
        assert_eq!(Class::from_probability(0.99, 1.0), Class::Good);
    }

    #[test]
    fn decision_encodes_to_the_documented_json() {
        let record = DecisionRecord {
            application_id: "app-000001",
            decision: Class::Bad,
            probability_bad: 0.625,
            threshold: 0.35,
            model_version: "lstm-abc",
            scored_at: "2024-05-01T12:00:00.123Z",
        };
        let mut buffer = b"stale".to_vec();
        record.encode_into(&mut buffer).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&buffer).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "application_id": "app-000001",
                "decision": "bad",
                "probability_bad": 0.625,
                "threshold": 0.35,
                "model_version": "lstm-abc",
                "scored_at": "2024-05-01T12:00:00.123Z",
            })
        );
        let owned = OwnedDecision::from_json(&buffer).unwrap();
        assert_eq!(owned.decision, Class::Bad);
        assert_eq!(owned.threshold, 0.35);
    }

    #[test]
    fn application_ids_are_escaped() {
        let record = DecisionRecord {
            application_id: "quote\"and\\slash",
            decision: Class::Good,
            probability_bad: 0.1,
            threshold: 0.5,
            model_version: "v",
            scored_at: "t",
        };
        let mut buffer = Vec::new();
        record.encode_into(&mut buffer).unwrap();
        let owned = OwnedDecision::from_json(&buffer).unwrap();
        assert_eq!(owned.application_id, "quote\"and\\slash");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let now =
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(7);
        let mut text = String::from("stale");
        write_timestamp(now, &mut text);
        assert_eq!(text, "2024-05-01T12:00:00.007Z");
        assert_eq!(DateTime::parse_from_rfc3339(&text).unwrap(), now);
    }
}

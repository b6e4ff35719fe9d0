//! The decision record published for every scored applicant, and how it is encoded.
//!
//! ```json
//! {"application_id":"app-000001","decision":"bad","probability_bad":0.61,
//!  "threshold":0.35,"model_version":"lstm-3f2a...","scored_at":"2024-05-01T12:00:00.123Z",
//!  "reasons":[{"code":"DURATION_MONTHS","statement":"Duration in months",
//!              "field":"duration_months","label":"Duration in months",
//!              "value":48,"reference":18,"contribution":0.74}, ...]}
//! ```
//!
//! `reasons` (see [`crate::explain`]) is there when the service publishes reasons: the fields
//! that raised the probability of `bad` most, largest first, each with the lender's reason code
//! and adverse-action statement from the schema, the applicant's value (and a category's
//! label), the reference applicant's value and the rise in log-odds.
//!
//! Encoding writes into a caller-owned buffer, so the publishing thread reuses one allocation
//! for every record it publishes.

use crate::applicant::{wire, Applicant, AttributeValue};
use crate::explain::Reason;
use crate::schema::{FieldKind, Schema};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord<'a> {
    pub application_id: &'a str,
    pub decision: Class,
    pub probability_bad: f32,
    pub threshold: f32,
    pub model_version: &'a str,
    /// RFC 3339, UTC, milliseconds.
    pub scored_at: &'a str,
    /// Absent when reasons are off; empty for a decision that needs none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<PublishedReasons<'a>>,
}

/// One decision's reasons, borrowed from the model's schema and reference and the applicant, in
/// the published form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublishedReasons<'a> {
    pub schema: &'a Schema,
    pub applicant: &'a Applicant,
    pub reference: &'a Applicant,
    pub reasons: &'a [Reason],
}

impl Serialize for PublishedReasons<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.reasons.len()))?;
        for reason in self.reasons {
            seq.serialize_element(&PublishedReason {
                schema: self.schema,
                applicant: self.applicant,
                reference: self.reference,
                reason: *reason,
            })?;
        }
        seq.end()
    }
}

/// One reason in the published form.
struct PublishedReason<'a> {
    schema: &'a Schema,
    applicant: &'a Applicant,
    reference: &'a Applicant,
    reason: Reason,
}

impl Serialize for PublishedReason<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let field = &self.schema.fields()[self.reason.field];
        let value_of = |applicant: &Applicant| {
            applicant
                .values()
                .get(self.reason.field)
                .copied()
                .unwrap_or(AttributeValue::Missing)
        };
        let value = value_of(self.applicant);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("code", &field.reason_code)?;
        map.serialize_entry("statement", &field.reason_statement)?;
        map.serialize_entry("field", &field.name)?;
        map.serialize_entry("label", &field.label)?;
        map.serialize_entry("value", &wire(field, value))?;
        if let (FieldKind::Category { categories }, AttributeValue::Categorical(index)) =
            (&field.kind, value)
        {
            if let Some(category) = categories.get(index) {
                map.serialize_entry("value_label", &category.label)?;
            }
        }
        map.serialize_entry("reference", &wire(field, value_of(self.reference)))?;
        map.serialize_entry("contribution", &self.reason.contribution)?;
        map.end()
    }
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
    #[serde(default)]
    pub reasons: Option<Vec<OwnedReason>>,
}

/// A decoded reason.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OwnedReason {
    /// The lender's reason code (the schema's `reason_code`, by default the field in capitals).
    pub code: String,
    /// The adverse-action statement (the schema's `reason`, by default the field's label).
    pub statement: String,
    pub field: String,
    pub label: String,
    /// The applicant's value as on the wire (`null` when missing).
    pub value: serde_json::Value,
    /// A category's label.
    #[serde(default)]
    pub value_label: Option<String>,
    /// The reference applicant's value (`null` when missing).
    pub reference: serde_json::Value,
    pub contribution: f32,
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
            reasons: None,
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
            reasons: None,
        };
        let mut buffer = Vec::new();
        record.encode_into(&mut buffer).unwrap();
        let owned = OwnedDecision::from_json(&buffer).unwrap();
        assert_eq!(owned.application_id, "quote\"and\\slash");
    }

    #[test]
    fn reasons_name_the_field_its_label_both_values_and_the_contribution() {
        let schema = crate::schema::german_credit();
        let rows: Vec<Applicant> = crate::dataset::shipped_german_credit()
            .into_iter()
            .map(|row| row.applicant)
            .collect();
        let reference = crate::explain::Reference::typical(&schema, &rows).unwrap();
        let (checking, duration) = (
            schema.position("checking_account").unwrap(),
            schema.position("duration_months").unwrap(),
        );
        let reasons = [
            Reason {
                field: duration,
                contribution: 0.5,
            },
            Reason {
                field: checking,
                contribution: 0.25,
            },
        ];
        let record = DecisionRecord {
            application_id: "a",
            decision: Class::Bad,
            probability_bad: 0.5,
            threshold: 0.3,
            model_version: "v",
            scored_at: "t",
            reasons: Some(PublishedReasons {
                schema: &schema,
                applicant: &rows[0],
                reference: reference.applicant(),
                reasons: &reasons,
            }),
        };
        let mut buffer = Vec::new();
        record.encode_into(&mut buffer).unwrap();
        let owned = OwnedDecision::from_json(&buffer).unwrap();
        let got = owned.reasons.unwrap();
        let field = |name: &str| &schema.fields()[schema.position(name).unwrap()];
        let reference_json: serde_json::Value =
            serde_json::from_slice(&reference.to_json(&schema)).unwrap();
        let applicant_json: serde_json::Value =
            serde_json::from_slice(&rows[0].to_json(&schema)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].code, field("duration_months").reason_code);
        assert_eq!(got[0].statement, field("duration_months").reason_statement);
        assert_eq!(got[0].field, "duration_months");
        assert_eq!(got[0].label, field("duration_months").label);
        assert_eq!(got[0].value, applicant_json["duration_months"]);
        assert_eq!(got[0].value_label, None);
        assert_eq!(got[0].reference, reference_json["duration_months"]);
        assert_eq!(got[0].contribution, 0.5);
        assert_eq!(got[1].code, field("checking_account").reason_code);
        let value = applicant_json["checking_account"].as_str().unwrap();
        let FieldKind::Category { categories } = &field("checking_account").kind else {
            panic!("checking_account is a category");
        };
        let label = &categories.iter().find(|c| c.value == value).unwrap().label;
        assert_eq!(got[1].value_label.as_ref(), Some(label));
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

//! Turning a consumed record into an applicant, or into a reason to dead-letter it.
//!
//! Every way a record can be unusable maps to one [`RejectReason`], a short stable code used as
//! the metric label and the `error-reason` header; the [`Rejection`] also carries the field and
//! a human explanation (from [`Applicant::from_json`]) for the team that produced the record.

use crate::applicant::{Applicant, RecordError, MAX_RECORD_BYTES};
use std::fmt;

/// Longest accepted application id (record key), in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Why a record cannot be scored. The codes are stable: they are metric labels and header
/// values that dashboards and other teams' tooling match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No key: decisions are keyed by application id, so there is nothing to key it by.
    MissingKey,
    /// A key that is not a usable application id (not UTF-8, blank, or too long).
    InvalidKey,
    /// No payload (a tombstone) or an empty one.
    EmptyPayload,
    /// Larger than [`crate::applicant::MAX_RECORD_BYTES`].
    Oversize,
    /// Not valid UTF-8.
    NotUtf8,
    /// Not a JSON object of the expected shape (syntax errors, trailing data...).
    InvalidJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (a string where a number belongs...).
    WrongType,
    /// A number outside its documented range.
    OutOfRange,
    /// A categorical value that is not one of the field's categories.
    UnknownCategory,
    /// The preprocessor refused the applicant (an artifact problem, not the record's).
    Preprocessing,
    /// Its decision or dead letter was refused by the broker for a reason of that record alone
    /// (an invalid record, say); a dead letter without it answers the record instead.
    Undeliverable,
}

impl RejectReason {
    /// Every reason, for pre-initialised metric labels.
    pub const ALL: [RejectReason; 12] = [
        Self::MissingKey,
        Self::InvalidKey,
        Self::EmptyPayload,
        Self::Oversize,
        Self::NotUtf8,
        Self::InvalidJson,
        Self::MissingField,
        Self::WrongType,
        Self::OutOfRange,
        Self::UnknownCategory,
        Self::Preprocessing,
        Self::Undeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingKey => "missing_key",
            Self::InvalidKey => "invalid_key",
            Self::EmptyPayload => "empty_payload",
            Self::Oversize => "oversize",
            Self::NotUtf8 => "not_utf8",
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::OutOfRange => "out_of_range",
            Self::UnknownCategory => "unknown_category",
            Self::Preprocessing => "preprocessing",
            Self::Undeliverable => "undeliverable",
        }
    }

    /// Classifies a schema error by its message. [`RecordError`] carries text, not a kind; the
    /// phrases matched here are serde_json's and [`Applicant::validate`]'s, and the tests below
    /// pin each of them to a real decoding failure so a wording change is caught.
    pub fn of_record_error(error: &RecordError) -> Self {
        let problem = error.problem.as_str();
        if problem.contains("-byte limit") {
            Self::Oversize
        } else if problem.starts_with("not valid UTF-8") {
            Self::NotUtf8
        } else if problem.starts_with("missing field") {
            Self::MissingField
        } else if problem.starts_with("unknown variant") {
            Self::UnknownCategory
        } else if problem.contains("out of range") || problem.starts_with("invalid value") {
            Self::OutOfRange
        } else if problem.starts_with("invalid type") {
            Self::WrongType
        } else {
            Self::InvalidJson
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that cannot be scored: why, which field, and an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    /// The offending field (`duration_months`), `record` for the whole payload, `key`.
    pub field: String,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<RecordError> for Rejection {
    fn from(error: RecordError) -> Self {
        // serde_path_to_error reports `?` when a syntax error leaves no path: that is about
        // the record as a whole.
        let field = match error.field.as_str() {
            "" | "?" | "." => "record".to_owned(),
            _ => error.field.clone(),
        };
        Self {
            reason: RejectReason::of_record_error(&error),
            field,
            message: error.problem,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (field `{}`): {}",
            self.reason, self.field, self.message
        )
    }
}

/// Checks the key (the application id) of a record.
pub fn application_id(key: Option<&[u8]>) -> Result<&str, Rejection> {
    let key = key.ok_or_else(|| {
        Rejection::new(
            RejectReason::MissingKey,
            "key",
            "the record has no key; the key must be the application id",
        )
    })?;
    if key.len() > MAX_KEY_BYTES {
        return Err(Rejection::new(
            RejectReason::InvalidKey,
            "key",
            format!(
                "the key is {} bytes, longer than the {MAX_KEY_BYTES}-byte limit",
                key.len()
            ),
        ));
    }
    let id = std::str::from_utf8(key).map_err(|error| {
        Rejection::new(
            RejectReason::InvalidKey,
            "key",
            format!(
                "the key is not valid UTF-8 (invalid byte at offset {})",
                error.valid_up_to()
            ),
        )
    })?;
    if id.trim().is_empty() {
        return Err(Rejection::new(
            RejectReason::MissingKey,
            "key",
            "the key is empty; the key must be the application id",
        ));
    }
    Ok(id)
}

/// Decodes and validates a record: its key as the application id, its payload as an
/// [`Applicant`]. The key is checked first: a record without an id cannot even be answered.
pub fn decode(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Result<(String, Applicant), Rejection> {
    let id = application_id(key)?;
    let payload = match payload {
        Some(payload) if !payload.is_empty() => payload,
        _ => {
            return Err(Rejection::new(
                RejectReason::EmptyPayload,
                "record",
                "the record has no payload; expected an applicant JSON object",
            ))
        }
    };
    let applicant = match fast_path(payload) {
        Some(applicant) => applicant,
        // Anything the fast path does not accept goes through the full decoder, whose error
        // names the field: its verdict (and explanation) is the one that counts.
        None => Applicant::from_json(payload)?,
    };
    Ok((id.to_owned(), applicant))
}

/// Decodes a well-formed record without the per-field path tracking that
/// [`Applicant::from_json`] does for its error messages (which roughly halves the cost of a
/// valid record). Accepts exactly what `from_json` accepts: the same size limit, UTF-8 check,
/// deserializer (with its check for trailing data), object check and validation; `None`
/// means "ask `from_json`", never "invalid". A check added to `from_json` must be added here
/// too: `the_fast_path_agrees_with_the_full_decoder` pins the two together.
fn fast_path(payload: &[u8]) -> Option<Applicant> {
    if payload.len() > MAX_RECORD_BYTES {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    // serde would also read a JSON array as the struct's fields in order; `from_json` wants an
    // object.
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return None;
    }
    let applicant: Applicant = serde_json::from_str(text).ok()?;
    applicant.validate().ok()?;
    Some(applicant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::german_credit;
    use std::path::Path;

    fn valid_json() -> serde_json::Value {
        let rows = german_credit::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/german_credit.csv"),
        )
        .unwrap();
        serde_json::from_slice(&rows[0].applicant.to_json()).unwrap()
    }

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut json = valid_json();
        json[field] = value;
        serde_json::to_vec(&json).unwrap()
    }

    fn without(field: &str) -> Vec<u8> {
        let mut json = valid_json();
        json.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&json).unwrap()
    }

    fn reject(key: Option<&[u8]>, payload: Option<&[u8]>) -> Rejection {
        decode(key, payload).unwrap_err()
    }

    #[test]
    fn a_valid_record_decodes_with_its_application_id() {
        let payload = serde_json::to_vec(&valid_json()).unwrap();
        let (id, applicant) = decode(Some(b"app-000001"), Some(&payload)).unwrap();
        assert_eq!(id, "app-000001");
        assert_eq!(applicant.duration_months, 6);
    }

    #[test]
    fn every_kind_of_bad_record_gets_its_reason_and_field() {
        let ok = serde_json::to_vec(&valid_json()).unwrap();
        let key = Some(&b"app-1"[..]);
        let cases: Vec<(Rejection, RejectReason, &str)> = vec![
            (reject(None, Some(&ok)), RejectReason::MissingKey, "key"),
            (
                reject(Some(b""), Some(&ok)),
                RejectReason::MissingKey,
                "key",
            ),
            (
                reject(Some(b"\xff\xfe"), Some(&ok)),
                RejectReason::InvalidKey,
                "key",
            ),
            (
                reject(Some(&[b'k'; MAX_KEY_BYTES + 1]), Some(&ok)),
                RejectReason::InvalidKey,
                "key",
            ),
            (reject(key, None), RejectReason::EmptyPayload, "record"),
            (reject(key, Some(b"")), RejectReason::EmptyPayload, "record"),
            (
                reject(key, Some(&vec![b' '; MAX_RECORD_BYTES + 1])),
                RejectReason::Oversize,
                "record",
            ),
            (
                reject(key, Some(b"{\"a\": \"\xff\"}")),
                RejectReason::NotUtf8,
                "record",
            ),
            (
                reject(key, Some(b"{not json")),
                RejectReason::InvalidJson,
                "record",
            ),
            (reject(key, Some(b"42")), RejectReason::WrongType, "record"),
            (
                reject(key, Some(&[ok.clone(), b"{}".to_vec()].concat())),
                RejectReason::InvalidJson,
                "record",
            ),
            (
                reject(key, Some(&without("age_years"))),
                RejectReason::MissingField,
                "age_years",
            ),
            (
                reject(key, Some(&with("age_years", 900.into()))),
                RejectReason::OutOfRange,
                "age_years",
            ),
            (
                reject(key, Some(&with("duration_months", (-3).into()))),
                RejectReason::OutOfRange,
                "duration_months",
            ),
            (
                reject(key, Some(&with("duration_months", "six".into()))),
                RejectReason::WrongType,
                "duration_months",
            ),
            (
                reject(key, Some(&with("purpose", "yacht".into()))),
                RejectReason::UnknownCategory,
                "purpose",
            ),
        ];
        for (index, (rejection, reason, field)) in cases.into_iter().enumerate() {
            assert_eq!(
                (rejection.reason, rejection.field.as_str()),
                (reason, field),
                "case {index}: {rejection}"
            );
            assert!(!rejection.message.is_empty());
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_decoder() {
        let rows = german_credit::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/german_credit.csv"),
        )
        .unwrap();
        for row in &rows {
            let json = row.applicant.to_json();
            assert_eq!(fast_path(&json), Some(Applicant::from_json(&json).unwrap()));
        }
        let ok = serde_json::to_vec(&valid_json()).unwrap();
        let mut unknown_field_with_bad_utf8 = ok.clone();
        unknown_field_with_bad_utf8.pop();
        unknown_field_with_bad_utf8.extend_from_slice(b",\"note\":\"\xff\"}");
        for bad in [
            b"{not json".to_vec(),
            b"42".to_vec(),
            [ok.clone(), b"{}".to_vec()].concat(),
            with("age_years", 900.into()),
            with("purpose", "yacht".into()),
            without("age_years"),
            unknown_field_with_bad_utf8,
            serde_json::to_vec(
                &valid_json()
                    .as_object()
                    .unwrap()
                    .values()
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            vec![b' '; MAX_RECORD_BYTES + 1],
        ] {
            assert_eq!(fast_path(&bad), None);
            assert!(Applicant::from_json(&bad).is_err());
        }
    }

    #[test]
    fn reason_codes_are_unique_snake_case() {
        let mut codes: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert!(codes.iter().all(|c| c
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RejectReason::ALL.len());
    }

    #[test]
    fn rejection_display_names_reason_field_and_problem() {
        let text = reject(Some(b"k"), Some(&with("purpose", "yacht".into()))).to_string();
        assert!(
            text.starts_with("unknown_category (field `purpose`): "),
            "{text}"
        );
        assert!(text.contains("yacht"), "{text}");
    }
}

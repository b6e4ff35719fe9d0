//! Turning a consumed record into an applicant, or into a reason to dead-letter it.
//!
//! Every way a record can be unusable maps to one [`RejectReason`], a short stable code used as
//! the metric label and the `error-reason` header; the [`Rejection`] also carries the field and
//! a human explanation (from [`Applicant::from_json`]) for the team that produced the record.

use crate::applicant::{
    same, Applicant, AttributeValue, FieldKey, RecordError, RecordErrorKind, MAX_RECORD_BYTES,
};
use crate::schema::{Field, FieldKind, Schema, MAX_FIELDS};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
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
}

impl From<RecordErrorKind> for RejectReason {
    fn from(kind: RecordErrorKind) -> Self {
        match kind {
            RecordErrorKind::Empty => Self::EmptyPayload,
            RecordErrorKind::TooLarge => Self::Oversize,
            RecordErrorKind::NotUtf8 => Self::NotUtf8,
            RecordErrorKind::Malformed => Self::InvalidJson,
            RecordErrorKind::MissingField => Self::MissingField,
            RecordErrorKind::WrongType => Self::WrongType,
            RecordErrorKind::OutOfRange => Self::OutOfRange,
            RecordErrorKind::UnknownCategory => Self::UnknownCategory,
            RecordErrorKind::Identifier => Self::InvalidKey,
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
        Self {
            reason: error.kind.into(),
            field: error.field,
            message: error.problem,
        }
    }
}

impl From<Rejection> for RecordError {
    fn from(rejection: Rejection) -> Self {
        let kind = match rejection.reason {
            RejectReason::MissingKey | RejectReason::InvalidKey => RecordErrorKind::Identifier,
            RejectReason::EmptyPayload => RecordErrorKind::Empty,
            RejectReason::Oversize => RecordErrorKind::TooLarge,
            RejectReason::NotUtf8 => RecordErrorKind::NotUtf8,
            RejectReason::MissingField => RecordErrorKind::MissingField,
            RejectReason::WrongType => RecordErrorKind::WrongType,
            RejectReason::OutOfRange => RecordErrorKind::OutOfRange,
            RejectReason::UnknownCategory => RecordErrorKind::UnknownCategory,
            RejectReason::InvalidJson => RecordErrorKind::Malformed,
            // `decode` never gives these reasons; were one given, the record's shape was unusable.
            RejectReason::Preprocessing | RejectReason::Undeliverable => RecordErrorKind::Malformed,
        };
        RecordError::new(kind, rejection.field, rejection.message)
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

/// Decodes and validates a record against `schema`: its key as the application id, its payload
/// as an [`Applicant`]. The key is checked first: a record without an id cannot even be
/// answered.
pub fn decode(
    schema: &Schema,
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
    let applicant = match fast_path(schema, payload) {
        Some(applicant) => applicant,
        // Anything the fast path does not accept goes through the full decoder, whose error
        // names the field: its verdict (and explanation) is the one that counts.
        None => Applicant::from_json(schema, payload)?,
    };
    Ok((id.to_owned(), applicant))
}

/// Decodes a well-formed record in one pass that gives up at the first problem, where
/// [`Applicant::from_json`] reads every value's text on to classify the problem (cheaper on a
/// valid record). Accepts exactly what `from_json` accepts, with the same result: the same size
/// limit, UTF-8 check, object check, string-only categories, integers and numbers in their
/// ranges, null only for optional fields, and refusal of duplicate fields and trailing data;
/// `None` means "ask `from_json`", never "invalid". A check added to `from_json` must hold here
/// too: `the_fast_path_agrees_with_the_full_decoder` and the generated corpora below pin the two
/// together.
fn fast_path(schema: &Schema, payload: &[u8]) -> Option<Applicant> {
    if payload.len() > MAX_RECORD_BYTES {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let values =
        de::Deserializer::deserialize_map(&mut deserializer, FastRecord { schema }).ok()?;
    deserializer.end().ok()?;
    Some(Applicant::from_checked(values))
}

/// The fast path's view of a record: a map of field values, any problem an error.
struct FastRecord<'a> {
    schema: &'a Schema,
}

impl<'de> Visitor<'de> for FastRecord<'_> {
    type Value = Vec<AttributeValue>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of applicant fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fields = self.schema.fields();
        let mut values = vec![AttributeValue::Missing; fields.len()];
        // A bit per field (the schema has at most `MAX_FIELDS`): no second allocation per record.
        let mut seen = [0u64; MAX_FIELDS / 64];
        let mut next = 0;
        while let Some(key) = map.next_key_seed(FieldKey {
            schema: self.schema,
            next,
        })? {
            let Some(position) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let (word, bit) = (position / 64, 1u64 << (position % 64));
            if seen[word] & bit != 0 {
                return Err(de::Error::custom("duplicate field"));
            }
            seen[word] |= bit;
            values[position] = map.next_value_seed(FastValue(&fields[position]))?;
            next = position + 1;
        }
        let required = self.schema.required_bits();
        let complete = seen
            .iter()
            .zip(required)
            .all(|(seen, required)| seen & required == *required);
        if !complete {
            return Err(de::Error::custom("missing field"));
        }
        Ok(values)
    }
}

/// One field's value, of the field's type and in its range, or an error.
struct FastValue<'a>(&'a Field);

impl<'de> DeserializeSeed<'de> for FastValue<'_> {
    type Value = AttributeValue;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        if !self.0.required {
            return deserializer.deserialize_option(self);
        }
        match self.0.kind {
            FieldKind::Category { .. } => deserializer.deserialize_str(self),
            FieldKind::Boolean => deserializer.deserialize_bool(self),
            // A number of any form: the visitor gets it as parsed (u64, i64 or f64).
            _ => deserializer.deserialize_f64(self),
        }
    }
}

impl<'de> Visitor<'de> for FastValue<'_> {
    type Value = AttributeValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(&self.0.expected())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(AttributeValue::Missing)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom("null"))
    }

    fn visit_some<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let required = FastValue(self.0);
        match self.0.kind {
            FieldKind::Category { .. } => deserializer.deserialize_str(required),
            FieldKind::Boolean => deserializer.deserialize_bool(required),
            _ => deserializer.deserialize_f64(required),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        self.0
            .categories()
            .and_then(|categories| categories.iter().position(|c| same(&c.value, value)))
            .map(AttributeValue::Categorical)
            .ok_or_else(|| E::custom("not a category"))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        match self.0.kind {
            FieldKind::Boolean => Ok(AttributeValue::Categorical(usize::from(value))),
            _ => Err(E::custom("a boolean")),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        self.number(value as f64, true)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        self.number(value as f64, true)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        self.number(value, false)
    }
}

impl FastValue<'_> {
    /// A number read as `value` (`whole` when its text had no fraction or exponent).
    fn number<E: de::Error>(self, value: f64, whole: bool) -> Result<AttributeValue, E> {
        let fits = match self.0.kind {
            FieldKind::Integer { min, max } => {
                (whole || value.fract() == 0.0) && value >= min as f64 && value <= max as f64
            }
            FieldKind::Number { min, max } => value.is_finite() && value >= min && value <= max,
            _ => false,
        };
        if fits {
            Ok(AttributeValue::Numeric(value))
        } else {
            Err(E::custom("out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::shipped_german_credit;
    use crate::schema::german_credit;
    use std::sync::LazyLock;

    static SCHEMA: LazyLock<Schema> = LazyLock::new(german_credit);

    fn valid_json() -> serde_json::Value {
        let rows = shipped_german_credit();
        serde_json::from_slice(&rows[0].applicant.to_json(&SCHEMA)).unwrap()
    }

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut json = valid_json();
        json[field] = value;
        serde_json::to_vec(&json).unwrap()
    }

    /// The valid record with `field` set to the JSON text `value`, which may be anything.
    fn with_raw(field: &str, value: &str) -> Vec<u8> {
        let text = String::from_utf8(with(field, "\u{0}placeholder".into())).unwrap();
        text.replace("\"\\u0000placeholder\"", value).into_bytes()
    }

    fn without(field: &str) -> Vec<u8> {
        let mut json = valid_json();
        json.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&json).unwrap()
    }

    fn reject(key: Option<&[u8]>, payload: Option<&[u8]>) -> Rejection {
        decode(&SCHEMA, key, payload).unwrap_err()
    }

    #[test]
    fn a_valid_record_decodes_with_its_application_id() {
        let payload = serde_json::to_vec(&valid_json()).unwrap();
        let (id, applicant) = decode(&SCHEMA, Some(b"app-000001"), Some(&payload)).unwrap();
        assert_eq!(id, "app-000001");
        assert_eq!(
            applicant.value(&SCHEMA, "duration_months"),
            Some(AttributeValue::Numeric(6.0))
        );
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
            (
                reject(
                    key,
                    Some(&with("job", serde_json::json!({"skilled": null}))),
                ),
                RejectReason::WrongType,
                "job",
            ),
            (
                reject(key, Some(&with_raw("housing", "\"o\u{1}wn\""))),
                RejectReason::InvalidJson,
                "record",
            ),
            (
                reject(key, Some(&ok[..ok.len() - 3])),
                RejectReason::InvalidJson,
                "record",
            ),
            (
                reject(key, Some(&with_raw("credit_amount_dm", "1e400"))),
                RejectReason::WrongType,
                "credit_amount_dm",
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
        let rows = shipped_german_credit();
        for row in &rows {
            let json = row.applicant.to_json(&SCHEMA);
            assert_eq!(
                fast_path(&SCHEMA, &json),
                Some(Applicant::from_json(&SCHEMA, &json).unwrap())
            );
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
            assert_eq!(fast_path(&SCHEMA, &bad), None);
            assert!(Applicant::from_json(&SCHEMA, &bad).is_err());
        }
    }

    /// The verdict on `payload`, after checking that the fast path and the full decoder agree
    /// on it.
    fn verdict(payload: &[u8]) -> Result<Applicant, Rejection> {
        let full = Applicant::from_json(&SCHEMA, payload);
        assert_eq!(
            fast_path(&SCHEMA, payload),
            full.as_ref().ok().cloned(),
            "the fast path and the full decoder disagree on {}",
            String::from_utf8_lossy(payload)
        );
        let decoded =
            decode(&SCHEMA, Some(b"app-1"), Some(payload)).map(|(_, applicant)| applicant);
        assert_eq!(decoded, full.map_err(Rejection::from));
        decoded
    }

    /// Checks that every payload gets `reason` on `field`; returns how many were checked.
    fn assert_all_rejected(
        payloads: impl IntoIterator<Item = (String, Vec<u8>)>,
        reason: RejectReason,
        field: impl Fn(&str) -> String,
    ) -> usize {
        let mut failures = Vec::new();
        let mut count = 0;
        for (case, payload) in payloads {
            count += 1;
            let expected = field(&case);
            match verdict(&payload) {
                Ok(_) => failures.push(format!("{case}: accepted")),
                Err(rejection) if (rejection.reason, &rejection.field) != (reason, &expected) => {
                    failures.push(format!("{case}: {rejection}"))
                }
                Err(rejection) => assert!(!rejection.message.is_empty(), "{case}"),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {count} cases not rejected as {reason} on the expected field:\n{}",
            failures.len(),
            failures.join("\n")
        );
        count
    }

    fn attribute_names(categorical: bool) -> impl Iterator<Item = (&'static str, &'static Field)> {
        SCHEMA
            .fields()
            .iter()
            .filter(|field| field.is_wire())
            .filter(move |field| matches!(field.kind, FieldKind::Category { .. }) == categorical)
            .map(|field| (field.name.as_str(), field))
    }

    #[test]
    fn a_category_given_as_anything_but_a_string_is_the_wrong_type() {
        let mut cases = Vec::new();
        for (field, spec) in attribute_names(true) {
            let values: Vec<&str> = spec
                .categories()
                .unwrap_or_default()
                .iter()
                .map(|category| category.value.as_str())
                .collect();
            let mut raw_values: Vec<String> = [
                "null",
                "true",
                "false",
                "0",
                "1",
                "-1",
                "2.5",
                "1e400",
                "-1e400",
                "[]",
                "{}",
                "[[]]",
                "{\"\": null}",
            ]
            .map(str::to_owned)
            .to_vec();
            for value in values {
                // The shapes serde gives an externally tagged enum, and their neighbours.
                for inner in ["null", "true", "{}", "[]", "\"x\"", "0"] {
                    raw_values.push(format!("{{\"{value}\": {inner}}}"));
                }
                raw_values.push(format!("{{\"{value}\": null, \"{value}\": null}}"));
                raw_values.push(format!("[\"{value}\"]"));
                raw_values.push(format!("[\"{value}\", null]"));
            }
            cases.extend(
                raw_values
                    .into_iter()
                    .map(|raw| (format!("{field}: {raw}"), with_raw(field, &raw))),
            );
        }
        let checked = assert_all_rejected(cases, RejectReason::WrongType, |case| {
            case.split(':').next().unwrap_or_default().to_owned()
        });
        assert!(checked > 13 * 40, "{checked}");
    }

    #[test]
    fn a_number_given_as_anything_but_an_integer_in_range_is_rejected_on_its_field() {
        let wrong = [
            "null",
            "true",
            "\"6\"",
            "\"\"",
            "6.5",
            "1.5e0",
            "1E400",
            "-1e400",
            "[6]",
            "{\"6\": null}",
            "{}",
        ];
        let out_of_range = [
            "0",
            "-0",
            "-1",
            "4294967296",
            "123456789012345678901234567890",
        ];
        for (raw_values, reason) in [
            (&wrong[..], RejectReason::WrongType),
            (&out_of_range[..], RejectReason::OutOfRange),
        ] {
            let cases = attribute_names(false).flat_map(|(field, _)| {
                raw_values
                    .iter()
                    .map(move |raw| (format!("{field}: {raw}"), with_raw(field, raw)))
            });
            assert_all_rejected(cases, reason, |case| {
                case.split(':').next().unwrap_or_default().to_owned()
            });
        }
    }

    /// Some rows of the data set, compact and pretty-printed.
    fn valid_records() -> Vec<Vec<u8>> {
        let rows = shipped_german_credit();
        rows.iter()
            .step_by(50)
            .flat_map(|row| {
                let json: serde_json::Value =
                    serde_json::from_slice(&row.applicant.to_json(&SCHEMA)).unwrap();
                [
                    serde_json::to_vec(&json).unwrap(),
                    serde_json::to_vec_pretty(&json).unwrap(),
                ]
            })
            .collect()
    }

    #[test]
    fn a_valid_record_cut_off_at_any_byte_is_invalid_json() {
        let mut cases = Vec::new();
        for record in valid_records() {
            assert!(verdict(&record).is_ok());
            for end in 1..record.len() {
                let cut = &record[..end];
                cases.push((String::from_utf8_lossy(cut).into_owned(), cut.to_vec()));
            }
        }
        let checked =
            assert_all_rejected(cases, RejectReason::InvalidJson, |_| "record".to_owned());
        assert!(checked > 20_000, "{checked}");
    }

    #[test]
    fn a_raw_control_character_or_a_lone_surrogate_in_any_string_is_invalid_json() {
        let mut inserts: Vec<String> = (0u8..0x20)
            .map(|byte| char::from(byte).to_string())
            .collect();
        inserts.extend(
            [
                "\\ud800",
                "\\udbff",
                "\\udc00",
                "\\udfff",
                "\\ud800\\u0041",
                "\\ud800x",
                "\\udc00\\ud800",
                "\\ud800\\n",
            ]
            .map(str::to_owned),
        );
        let mut cases = Vec::new();
        for record in valid_records().into_iter().take(4) {
            let text = String::from_utf8(record).unwrap();
            // The record has no escapes: every quote opens or closes a string (a key or a value).
            let quotes: Vec<usize> = text.match_indices('"').map(|(at, _)| at).collect();
            assert_eq!(quotes.len(), 2 * (20 + 13));
            for string in quotes.chunks(2) {
                let (open, close) = (string[0], string[1]);
                for at in [open + 1, (open + close).div_ceil(2), close] {
                    for insert in &inserts {
                        let payload = format!("{}{insert}{}", &text[..at], &text[at..]);
                        cases.push((format!("{insert:?} at {at}"), payload.into_bytes()));
                    }
                }
            }
            // A field the schema does not have is skipped, but it must still be JSON.
            for byte in 0u8..0x20 {
                let payload =
                    text.replacen('{', &format!("{{\"note\": \"a{}b\", ", char::from(byte)), 1);
                cases.push((
                    format!("{byte:#04x} in an extra field"),
                    payload.into_bytes(),
                ));
            }
        }
        let checked =
            assert_all_rejected(cases, RejectReason::InvalidJson, |_| "record".to_owned());
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn escaped_categories_and_field_names_are_read_as_their_text_by_both_decoders() {
        let plain = verdict(&with_raw("job", "\"skilled\"")).unwrap();
        let escaped = String::from_utf8(with_raw("job", "\"sk\\u0069lled\""))
            .unwrap()
            .replacen("\"job\"", "\"j\\u006fb\"", 1);
        assert_eq!(verdict(escaped.as_bytes()).unwrap(), plain);
        let paired_surrogates = with_raw("job", "\"\\ud83d\\ude00\"");
        assert_eq!(
            verdict(&paired_surrogates).unwrap_err().reason,
            RejectReason::UnknownCategory
        );
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

    #[test]
    fn an_integer_written_with_a_zero_fraction_or_an_exponent_is_that_integer() {
        let plain = verdict(&with_raw("duration_months", "10")).unwrap();
        for same in ["10.0", "1e1", "1.0E+1", "100e-1"] {
            assert_eq!(
                verdict(&with_raw("duration_months", same)).unwrap(),
                plain,
                "{same}"
            );
        }
    }

    #[test]
    fn an_integer_beyond_i64_gets_the_same_verdict_from_both_decoders() {
        let schema = Schema::parse(
            r#"
            name = "wide"
            [[field]]
            name = "exposure"
            label = "Exposure"
            type = "number"
            min = -1e30
            max = 1e30
            [[field]]
            name = "count"
            label = "Count"
            type = "integer"
            min = 0
            max = 9_000_000_000_000_000_000
            "#,
            "test.toml",
        )
        .unwrap();
        for (exposure, count, accepted) in [
            ("123456789012345678901234567890", "1", true),
            ("-123456789012345678901234567890", "1", true),
            ("1e31", "1", false),
            ("1", "8999999999999999999", true),
            ("1", "9223372036854775808", false),
        ] {
            let payload = format!(r#"{{"exposure": {exposure}, "count": {count}}}"#);
            let full = Applicant::from_json(&schema, payload.as_bytes());
            assert_eq!(full.is_ok(), accepted, "{payload}: {full:?}");
            assert_eq!(
                fast_path(&schema, payload.as_bytes()),
                full.ok(),
                "{payload}"
            );
        }
    }
}

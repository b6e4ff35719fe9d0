//! An applicant: the values of one record, one per field of its [`Schema`], and the decoder
//! that reads them from the JSON wire form.
//!
//! The wire form is one JSON object, keys the schema's field names: a category is a string, one
//! of the field's values; an integer a JSON number with no fractional part; a number any finite
//! JSON number; a boolean `true` or `false`; an optional field may be absent or `null`. A record
//! that does not fit is rejected with a [`RecordError`] naming the field, the value and what was
//! expected, because a model asked to score a 900-year-old applicant returns a confident,
//! meaningless number. Unknown fields are skipped, checked for JSON syntax only.

use crate::schema::{quoted_list, Field, FieldKind, Schema};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// What kind of problem a [`RecordError`] is, decided where the problem is found: the worker's
/// dead-letter reason is derived from it, never from the wording of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordErrorKind {
    /// Nothing to decode: the input is empty.
    Empty,
    /// Larger than [`MAX_RECORD_BYTES`].
    TooLarge,
    /// Not valid UTF-8.
    NotUtf8,
    /// Not well-formed in its format: a JSON syntax error, a record cut short, trailing data, a
    /// string that cannot be decoded (a lone surrogate escape), a field given twice; a CSV row
    /// of the wrong width.
    Malformed,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong type: an object, array, boolean, null or number where a category
    /// belongs, anything but an integer where an integer belongs.
    WrongType,
    /// A number outside its field's range (negative and oversized ones included).
    OutOfRange,
    /// A text value that is none of the field's categories (or outcomes).
    UnknownCategory,
    /// The record's identifier (Kafka key, application id column) is missing or unusable.
    Identifier,
}

/// A record that does not fit the schema: which field, and what is wrong with it.
///
/// The worker puts this text in the dead-letter header, so it must be enough for the team that
/// produced the record to fix it without reading our code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct RecordError {
    /// What kind of problem it is.
    pub kind: RecordErrorKind,
    /// The offending field (`duration_months`), or `record` for the whole input.
    pub field: String,
    /// What was wrong and what was expected.
    pub problem: String,
}

impl RecordError {
    pub fn new(
        kind: RecordErrorKind,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The value of one field, in a form the preprocessor, SMOTE-NC and the generators handle
/// generically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeValue {
    /// Index into the field's categories (a boolean: 0 for `false`, 1 for `true`).
    Categorical(usize),
    Numeric(f64),
    /// An optional field not given; also the slot of a field producers do not send (the key,
    /// the label).
    Missing,
}

/// One applicant: a value per field of the schema it was read with, in the schema's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Applicant {
    values: Box<[AttributeValue]>,
}

/// Upper bound on an accepted JSON record, in bytes. A real record is ~600 bytes; anything much
/// larger is garbage or an attack, and parsing it would only waste the worker's time.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

impl Applicant {
    /// The values, in the order of the schema's fields.
    pub fn values(&self) -> &[AttributeValue] {
        &self.values
    }

    /// The value of the field named `name`.
    pub fn value(&self, schema: &Schema, name: &str) -> Option<AttributeValue> {
        schema
            .position(name)
            .and_then(|at| self.values.get(at).copied())
    }

    /// Builds an applicant from values in the schema's order (SMOTE-NC, the generators and the
    /// file readers produce these): integer values are rounded, and every value must fit its
    /// field.
    pub fn from_values(
        schema: &Schema,
        mut values: Vec<AttributeValue>,
    ) -> Result<Self, RecordError> {
        if values.len() != schema.fields().len() {
            return Err(RecordError::new(
                RecordErrorKind::Malformed,
                "record",
                format!(
                    "{} values for the {} fields of schema `{}`",
                    values.len(),
                    schema.fields().len(),
                    schema.name()
                ),
            ));
        }
        for (field, value) in schema.fields().iter().zip(values.iter_mut()) {
            *value = checked(field, *value)?;
        }
        Ok(Self {
            values: values.into_boxed_slice(),
        })
    }

    /// Wraps values a decoder has already checked against the schema.
    pub(crate) fn from_checked(values: Vec<AttributeValue>) -> Self {
        Self {
            values: values.into_boxed_slice(),
        }
    }

    /// Decodes and validates one JSON record against `schema`.
    ///
    /// Errors name the field and say what kind of problem it is ([`RecordErrorKind`]). An input
    /// that is not JSON (cut short, a raw control character in a string, a lone surrogate
    /// escape in a value that is read) is [`RecordErrorKind::Malformed`] whatever else is wrong
    /// with it.
    pub fn from_json(schema: &Schema, bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.is_empty() {
            return Err(RecordError::new(
                RecordErrorKind::Empty,
                "record",
                "the record is empty; expected a JSON object of applicant fields",
            ));
        }
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::new(
                RecordErrorKind::TooLarge,
                "record",
                format!(
                    "record is {} bytes, larger than the {MAX_RECORD_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            RecordError::new(
                RecordErrorKind::NotUtf8,
                "record",
                format!(
                    "not valid UTF-8 (invalid byte at offset {})",
                    error.valid_up_to()
                ),
            )
        })?;
        let first = text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .as_bytes()
            .first()
            .copied();
        if first != Some(b'{') {
            return Err(not_an_object(text, first));
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let reading = Cell::new(None);
        let visitor = ApplicantVisitor {
            schema,
            reading: &reading,
        };
        let decoded = de::Deserializer::deserialize_map(&mut deserializer, visitor)
            .and_then(|decoded| deserializer.end().map(|()| decoded));
        match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                let mut problem = describe_json_error(&error);
                if let Some(field) = reading.get() {
                    let name = &schema.fields()[field].name;
                    problem.push_str(&format!(", in the value of `{name}`"));
                }
                Err(RecordError::new(json_error_kind(&error), "record", problem))
            }
        }
    }

    /// Encodes as the JSON wire form, fields in schema order; a missing optional value is left
    /// out.
    pub fn to_json(&self, schema: &Schema) -> Vec<u8> {
        // Written by hand to keep the schema's order (a `serde_json::Map` sorts its keys).
        let mut out = vec![b'{'];
        for (field, value) in schema.fields().iter().zip(self.values.iter()) {
            let Some(json) = wire(field, *value) else {
                continue;
            };
            if out.len() > 1 {
                out.push(b',');
            }
            // Writing strings, numbers and booleans into a vector cannot fail.
            let _ = serde_json::to_writer(&mut out, &field.name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut out, &json);
        }
        out.push(b'}');
        out
    }
}

/// A field's value as the wire form has it, borrowed from the schema: what [`Applicant::to_json`]
/// writes and the backfill's sinks write, without building a JSON value per field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire<'a> {
    Text(&'a str),
    Integer(i64),
    Number(f64),
    Boolean(bool),
}

impl serde::Serialize for Wire<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Wire::Text(text) => serializer.serialize_str(text),
            Wire::Integer(number) => serializer.serialize_i64(number),
            Wire::Number(number) => serializer.serialize_f64(number),
            Wire::Boolean(flag) => serializer.serialize_bool(flag),
        }
    }
}

impl fmt::Display for Wire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wire::Text(text) => f.write_str(text),
            Wire::Integer(number) => write!(f, "{number}"),
            Wire::Number(number) => write!(f, "{number}"),
            Wire::Boolean(flag) => write!(f, "{flag}"),
        }
    }
}

/// `value` of `field` in its wire form; `None` when missing or not a wire field.
pub fn wire(field: &Field, value: AttributeValue) -> Option<Wire<'_>> {
    if !field.is_wire() {
        return None;
    }
    match (&field.kind, value) {
        (FieldKind::Category { categories }, AttributeValue::Categorical(index)) => categories
            .get(index)
            .map(|category| Wire::Text(&category.value)),
        (FieldKind::Boolean, AttributeValue::Categorical(index)) => Some(Wire::Boolean(index == 1)),
        (FieldKind::Integer { .. }, AttributeValue::Numeric(number)) => {
            Some(Wire::Integer(number as i64))
        }
        (FieldKind::Number { .. }, AttributeValue::Numeric(number)) => Some(Wire::Number(number)),
        _ => None,
    }
}

/// `value` checked against `field` (integers rounded first).
fn checked(field: &Field, value: AttributeValue) -> Result<AttributeValue, RecordError> {
    let name = field.name.as_str();
    match (&field.kind, value) {
        (_, AttributeValue::Missing) if !field.required || !field.is_wire() => Ok(value),
        (_, AttributeValue::Missing) => Err(missing(name)),
        (FieldKind::Category { categories }, AttributeValue::Categorical(index))
            if index < categories.len() =>
        {
            Ok(value)
        }
        (FieldKind::Boolean, AttributeValue::Categorical(index)) if index < 2 => Ok(value),
        (FieldKind::Category { .. } | FieldKind::Boolean, AttributeValue::Categorical(index)) => {
            Err(RecordError::new(
                RecordErrorKind::UnknownCategory,
                name,
                format!("category index {index} is out of range"),
            ))
        }
        (FieldKind::Integer { min, max }, AttributeValue::Numeric(number)) => {
            let rounded = number.round();
            if rounded.is_finite() && rounded >= *min as f64 && rounded <= *max as f64 {
                Ok(AttributeValue::Numeric(rounded))
            } else {
                Err(out_of_range(name, &number.to_string(), field))
            }
        }
        (FieldKind::Number { min, max }, AttributeValue::Numeric(number)) => {
            if number.is_finite() && number >= *min && number <= *max {
                Ok(value)
            } else {
                Err(out_of_range(name, &number.to_string(), field))
            }
        }
        _ => Err(RecordError::new(
            RecordErrorKind::WrongType,
            name,
            format!("expected {}", field.expected()),
        )),
    }
}

/// The applicant as a JSON object; its value is the verdict on the record's content, its
/// error one on the JSON itself.
struct ApplicantVisitor<'a> {
    schema: &'a Schema,
    /// The position of the field whose value is being read.
    reading: &'a Cell<Option<usize>>,
}

impl<'de> Visitor<'de> for ApplicantVisitor<'_> {
    type Value = Result<Applicant, RecordError>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of applicant fields")
    }

    /// Every value is read to the end of the object even after a problem is found, so that a
    /// record that is not even JSON (cut short, say) is reported as such whatever else is wrong
    /// with it; then the first problem in the record, a malformed one before any other, then a
    /// missing field.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fields = self.schema.fields();
        let mut values: Vec<Option<AttributeValue>> = vec![None; fields.len()];
        let mut problem: Option<RecordError> = None;
        let mut next = 0;
        while let Some(key) = map.next_key_seed(FieldKey {
            schema: self.schema,
            next,
        })? {
            let Some(position) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            next = position + 1;
            self.reading.set(Some(position));
            let raw: &RawValue = map.next_value()?;
            self.reading.set(None);
            let field = &fields[position];
            if values[position].is_some() {
                note(&mut problem, duplicate(&field.name));
            }
            match read_value(field, raw.get()) {
                Ok(value) => values[position] = Some(value),
                Err(error) => note(&mut problem, error),
            }
        }
        if let Some(problem) = problem {
            return Ok(Err(problem));
        }
        let mut decoded = Vec::with_capacity(fields.len());
        for (field, value) in fields.iter().zip(values) {
            match value {
                Some(value) => decoded.push(value),
                None if field.required && field.is_wire() => return Ok(Err(missing(&field.name))),
                None => decoded.push(AttributeValue::Missing),
            }
        }
        Ok(Ok(Applicant::from_checked(decoded)))
    }
}

/// An object key: the position of the wire field it names, or `None` for any other key.
///
/// Producers mostly send fields in schema order: the field after the last one read (`next`) is
/// compared first, and the name index consulted only when that guess is wrong.
pub(crate) struct FieldKey<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) next: usize,
}

impl<'de> DeserializeSeed<'de> for FieldKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        let position = match self.schema.fields().get(self.next) {
            Some(field) if same(&field.name, name) => Some(self.next),
            _ => self.schema.position(name),
        };
        let wire = self.schema.wire_bits();
        Ok(position.filter(|&at| wire[at / 64] & (1 << (at % 64)) != 0))
    }
}

/// Whether two short strings (field names, category values) are equal: compared eight bytes
/// at a time in line, which on a record's twenty-odd lookups beats a call to `memcmp` each.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut words_a, mut words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in words_a.by_ref().zip(words_b.by_ref()) {
        if x != y {
            return false;
        }
    }
    words_a
        .remainder()
        .iter()
        .zip(words_b.remainder())
        .all(|(x, y)| x == y)
}

/// Keeps the first problem found, unless a later one says the record is malformed: that is
/// the one to fix first.
fn note(first: &mut Option<RecordError>, problem: RecordError) {
    match first {
        Some(kept)
            if kept.kind == RecordErrorKind::Malformed
                || problem.kind != RecordErrorKind::Malformed => {}
        _ => *first = Some(problem),
    }
}

fn duplicate(field: &str) -> RecordError {
    RecordError::new(
        RecordErrorKind::Malformed,
        "record",
        format!("duplicate field `{field}`"),
    )
}

fn missing(field: &str) -> RecordError {
    RecordError::new(
        RecordErrorKind::MissingField,
        field,
        format!("missing field `{field}`"),
    )
}

fn out_of_range(field: &str, text: &str, spec: &Field) -> RecordError {
    RecordError::new(
        RecordErrorKind::OutOfRange,
        field,
        format!(
            "value {} is out of range, expected {}",
            shorten(text),
            spec.expected()
        ),
    )
}

/// One field's value from its raw JSON text.
fn read_value(field: &Field, raw: &str) -> Result<AttributeValue, RecordError> {
    let name = field.name.as_str();
    if raw == "null" && !field.required {
        return Ok(AttributeValue::Missing);
    }
    let expected = || field.expected();
    match &field.kind {
        FieldKind::Category { categories } => {
            if !raw.starts_with('"') {
                return Err(wrong_type(name, raw, format_args!("{}", expected())));
            }
            let value = json_string(name, raw)?;
            categories
                .iter()
                .position(|category| category.value == *value)
                .map(AttributeValue::Categorical)
                .ok_or_else(|| {
                    RecordError::new(
                        RecordErrorKind::UnknownCategory,
                        name,
                        format!(
                            "unknown variant {}, expected one of {}",
                            quote(&value),
                            quoted_list(categories.iter().map(|c| c.value.as_str()))
                        ),
                    )
                })
        }
        FieldKind::Integer { min, max } => {
            let Some(number) = json_number(raw) else {
                return Err(wrong_type(name, raw, format_args!("{}", expected())));
            };
            let integer = match number {
                JsonNumber::Integer(integer) => integer as f64,
                JsonNumber::Float(float) if float.is_finite() && float.fract() == 0.0 => float,
                JsonNumber::Float(_) => {
                    return Err(wrong_type(name, raw, format_args!("{}", expected())))
                }
            };
            if integer >= *min as f64 && integer <= *max as f64 {
                Ok(AttributeValue::Numeric(integer))
            } else {
                Err(out_of_range(name, raw, field))
            }
        }
        FieldKind::Number { min, max } => {
            let number = match json_number(raw) {
                Some(JsonNumber::Float(float)) if float.is_finite() => float,
                Some(JsonNumber::Integer(integer)) => integer as f64,
                _ => return Err(wrong_type(name, raw, format_args!("{}", expected()))),
            };
            if number >= *min && number <= *max {
                Ok(AttributeValue::Numeric(number))
            } else {
                Err(out_of_range(name, raw, field))
            }
        }
        FieldKind::Boolean => match raw {
            "false" => Ok(AttributeValue::Categorical(0)),
            "true" => Ok(AttributeValue::Categorical(1)),
            _ => Err(wrong_type(name, raw, format_args!("{}", expected()))),
        },
        // Not a wire field: `FieldKey` never yields it.
        FieldKind::Text { .. } => Ok(AttributeValue::Missing),
    }
}

/// A JSON number's text, read: an integer, or a float (with a fraction or an exponent, or
/// beyond `i64`; infinite beyond `f64`).
enum JsonNumber {
    Integer(i64),
    Float(f64),
}

/// The number `raw` is, if it is one (the parser has checked the grammar). An integer beyond
/// `i64` is read as the float serde_json makes of it, so both decoders see the same value.
fn json_number(raw: &str) -> Option<JsonNumber> {
    if !raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return None;
    }
    if !raw.contains(['.', 'e', 'E']) {
        if let Ok(integer) = raw.parse::<i64>() {
            return Some(JsonNumber::Integer(integer));
        }
    }
    raw.parse::<f64>().ok().map(JsonNumber::Float)
}

/// `field` holds `raw`, a JSON value that is not of the `expected` type.
fn wrong_type(field: &str, raw: &str, expected: fmt::Arguments<'_>) -> RecordError {
    let found = match raw.as_bytes().first() {
        Some(b'"') => match json_string(field, raw) {
            Ok(value) => format!("the string {}", quote(&value)),
            Err(malformed) => return malformed,
        },
        Some(b'{') => "an object".to_owned(),
        Some(b'[') => "an array".to_owned(),
        Some(b'n') => "null".to_owned(),
        Some(b't' | b'f') => format!("the boolean {raw}"),
        _ => format!("the number {}", shorten(raw)),
    };
    RecordError::new(
        RecordErrorKind::WrongType,
        field,
        format!("invalid type: {found}, expected {expected}"),
    )
}

/// The text of the raw JSON string `raw` (quotes included), borrowed unless it has escapes.
///
/// The parser has checked its syntax but not its escapes' meaning: a lone surrogate (`\ud800`)
/// is no character, so the record is not valid JSON text.
fn json_string<'a>(field: &str, raw: &'a str) -> Result<Cow<'a, str>, RecordError> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'));
    if let Some(inner) = inner.filter(|inner| !inner.contains('\\')) {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw)
        .map(Cow::Owned)
        .map_err(|error| {
            RecordError::new(
                RecordErrorKind::Malformed,
                "record",
                format!(
                    "the value of `{field}` is not a valid JSON string: {}",
                    describe_json_error(&error)
                ),
            )
        })
}

/// The error for an input whose first character (`first`) does not open a JSON object.
fn not_an_object(text: &str, first: Option<u8>) -> RecordError {
    let Some(kind) = json_kind(first) else {
        return RecordError::new(
            RecordErrorKind::Malformed,
            "record",
            "not JSON: expected a JSON object of applicant fields",
        );
    };
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => RecordError::new(
            RecordErrorKind::WrongType,
            "record",
            format!("invalid type: {kind}, expected a JSON object of applicant fields"),
        ),
        Err(error) => RecordError::new(
            RecordErrorKind::Malformed,
            "record",
            describe_json_error(&error),
        ),
    }
}

/// The kind of problem a serde_json error is.
fn json_error_kind(error: &serde_json::Error) -> RecordErrorKind {
    match error.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => RecordErrorKind::Malformed,
        // The visitors report every problem with the content themselves; the parser's only
        // data error is a top level that is not an object, which `from_json` rules out first.
        serde_json::error::Category::Data => RecordErrorKind::WrongType,
    }
}

/// What kind of JSON value starts with `first`, for error messages; `None` if none does.
fn json_kind(first: Option<u8>) -> Option<&'static str> {
    match first? {
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'n' => Some("null"),
        b't' | b'f' => Some("a boolean"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// Longest offending value quoted back in an error message: a dead-letter header and a log
/// line must stay small whatever the producer sent.
const MAX_QUOTED_VALUE: usize = 64;

/// serde_json's message without its ` at line 1 column 57` suffix, which means nothing to the
/// producer of a Kafka message.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(position) => message[..position].to_string(),
        None => message,
    }
}

/// `` `value` ``, shortened and with control characters escaped.
fn quote(value: &str) -> String {
    format!("`{}`", shorten(value))
}

/// `value` cut to [`MAX_QUOTED_VALUE`] characters, control characters escaped: it goes into
/// headers and log lines.
fn shorten(value: &str) -> String {
    let mut out = String::new();
    for character in value.chars().take(MAX_QUOTED_VALUE) {
        if character.is_control() {
            out.extend(character.escape_default());
        } else {
            out.push(character);
        }
    }
    let length = value.chars().count();
    if length > MAX_QUOTED_VALUE {
        out.push_str(&format!("… ({length} characters)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::shipped_german_credit;
    use crate::schema::german_credit;
    use std::sync::LazyLock;

    static SCHEMA: LazyLock<Schema> = LazyLock::new(german_credit);

    fn example() -> Applicant {
        shipped_german_credit().swap_remove(0).applicant
    }

    fn decode(bytes: &[u8]) -> Result<Applicant, RecordError> {
        Applicant::from_json(&SCHEMA, bytes)
    }

    fn with_field(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut json: serde_json::Value =
            serde_json::from_slice(&example().to_json(&SCHEMA)).unwrap();
        json[field] = value;
        serde_json::to_vec(&json).unwrap()
    }

    /// A schema with one optional field of each kind.
    fn optional_schema() -> Schema {
        Schema::parse(
            r#"
            name = "optional"
            [[field]]
            name = "income"
            label = "Income"
            type = "number"
            min = 0
            max = 1e6
            [[field]]
            name = "months_employed"
            label = "Months employed"
            type = "integer"
            min = 0
            max = 600
            required = false
            [[field]]
            name = "owner"
            label = "Home owner"
            type = "boolean"
            required = false
            [[field]]
            name = "purpose"
            label = "Purpose"
            type = "category"
            required = false
            categories = [{ value = "car", label = "Car" }]
            "#,
            "test.toml",
        )
        .unwrap()
    }

    #[test]
    fn json_round_trip_keeps_every_value() {
        let applicant = example();
        assert_eq!(decode(&applicant.to_json(&SCHEMA)).unwrap(), applicant);
    }

    #[test]
    fn wire_values_are_the_schemas_names_not_the_data_files_spellings() {
        let json: serde_json::Value = serde_json::from_slice(&example().to_json(&SCHEMA)).unwrap();
        assert_eq!(json["checking_account"], "below_0_dm");
        assert_eq!(json["telephone"], "registered");
        assert_eq!(json["job"], "skilled");
        assert!(json.get("creditability").is_none());
        let error = decode(&with_field("checking_account", "... < 0 DM".into())).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::UnknownCategory, "checking_account")
        );
    }

    #[test]
    fn out_of_range_number_names_field_value_and_range() {
        let error = decode(&with_field("age_years", 900.into())).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::OutOfRange);
        assert_eq!(error.field, "age_years");
        assert!(error.problem.contains("900"), "{error}");
        assert!(error.problem.contains("18 to 120"), "{error}");
    }

    #[test]
    fn unknown_category_names_field_and_expected_values() {
        let error = decode(&with_field("purpose", "yacht".into())).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::UnknownCategory);
        assert_eq!(error.field, "purpose");
        assert!(error.problem.contains("yacht"), "{error}");
        assert!(error.problem.contains("car_new"), "{error}");
    }

    #[test]
    fn missing_field_is_named() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&example().to_json(&SCHEMA)).unwrap();
        json.as_object_mut().unwrap().remove("housing");
        let error = decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::MissingField);
        assert_eq!(error.field, "housing");
        assert!(error.problem.contains("missing"), "{error}");
    }

    #[test]
    fn wrong_type_names_field() {
        use RecordErrorKind::{OutOfRange, WrongType};
        for (field, value, kind) in [
            ("duration_months", "twelve".into(), WrongType),
            ("credit_amount_dm", 12.5.into(), WrongType),
            ("age_years", (-3).into(), OutOfRange),
            ("dependents", serde_json::Value::Null, WrongType),
            ("job", serde_json::json!({"skilled": null}), WrongType),
            ("telephone", serde_json::json!(["none"]), WrongType),
        ] {
            let error = decode(&with_field(field, value)).unwrap_err();
            assert_eq!((error.kind, error.field.as_str()), (kind, field), "{error}");
        }
    }

    #[test]
    fn a_record_cut_short_is_malformed_whatever_came_before_the_cut() {
        let text = String::from_utf8(example().to_json(&SCHEMA))
            .unwrap()
            .replace("\"job\":\"skilled\"", "\"job\":{\"skilled\":null}")
            .replace("\"age_years\":67", "\"age_years\":900");
        // The last field is a category: the cut falls inside its string.
        let cut = &text[..text.len() - 3];
        let error = decode(cut.as_bytes()).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::Malformed, "record")
        );
        assert!(error.problem.contains("`foreign_worker`"), "{error}");
    }

    #[test]
    fn a_duplicate_field_is_malformed_even_after_a_wrong_type() {
        let text = String::from_utf8(with_field("job", serde_json::Value::Null)).unwrap();
        let twice = format!("{},\"age_years\":30}}", text.trim_end_matches('}'));
        let error = decode(twice.as_bytes()).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::Malformed, "record")
        );
        assert!(error.problem.contains("age_years"), "{error}");
    }

    #[test]
    fn a_value_quoted_in_a_message_is_short_and_has_no_control_characters() {
        let value = format!("\u{1b}[31m\n{}", "x".repeat(10_000));
        let error = decode(&with_field("purpose", value.into())).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::UnknownCategory);
        assert!(!error.problem.chars().any(char::is_control), "{error}");
        assert!(error.problem.len() < 1_000, "{}", error.problem.len());
    }

    #[test]
    fn malformed_input_is_a_record_error() {
        use RecordErrorKind::{Empty, Malformed, WrongType};
        for (bad, kind) in [
            (&b"{\"checking_account\": "[..], Malformed),
            (b"not json", Malformed),
            (b"", Empty),
            (b" \n", Malformed),
            (b"[]", WrongType),
            (b"null", WrongType),
            (b"[1, 2", Malformed),
        ] {
            let error = decode(bad).unwrap_err();
            assert_eq!(
                (error.kind, error.field.as_str()),
                (kind, "record"),
                "{error}"
            );
        }
        let error = decode(&[0xff, 0xfe, b'{']).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::NotUtf8);
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert_eq!(decode(&huge).unwrap_err().kind, RecordErrorKind::TooLarge);
    }

    #[test]
    fn an_optional_field_may_be_absent_or_null_and_is_then_missing() {
        let schema = optional_schema();
        let absent = Applicant::from_json(&schema, br#"{"income": 52000.5}"#).unwrap();
        let nulls = Applicant::from_json(
            &schema,
            br#"{"income": 52000.5, "months_employed": null, "owner": null, "purpose": null}"#,
        )
        .unwrap();
        assert_eq!(absent, nulls);
        assert_eq!(
            absent.values(),
            [
                AttributeValue::Numeric(52000.5),
                AttributeValue::Missing,
                AttributeValue::Missing,
                AttributeValue::Missing
            ]
        );
        let given = Applicant::from_json(
            &schema,
            br#"{"income": 0, "months_employed": 12, "owner": true, "purpose": "car"}"#,
        )
        .unwrap();
        assert_eq!(given.values()[2], AttributeValue::Categorical(1));
        assert_eq!(
            Applicant::from_json(&schema, &given.to_json(&schema)).unwrap(),
            given
        );
        let error = Applicant::from_json(&schema, br#"{"income": null}"#).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::WrongType, "income")
        );
        let error = Applicant::from_json(&schema, br#"{"income": 1, "owner": "yes"}"#).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::WrongType, "owner")
        );
    }

    #[test]
    fn values_from_a_generator_are_rounded_and_checked_against_the_schema() {
        let mut values = example().values().to_vec();
        values[1] = AttributeValue::Numeric(6.4);
        let applicant = Applicant::from_values(&SCHEMA, values.clone()).unwrap();
        assert_eq!(applicant.values()[1], AttributeValue::Numeric(6.0));
        values[1] = AttributeValue::Numeric(121.0);
        let error = Applicant::from_values(&SCHEMA, values.clone()).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::OutOfRange, "duration_months")
        );
        values[1] = AttributeValue::Missing;
        let error = Applicant::from_values(&SCHEMA, values).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::MissingField);
    }
}

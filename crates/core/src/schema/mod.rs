//! The applicant schema as data: which fields a lender's records have, their types and bounds,
//! what missing means, how the model sees each one, and a human label for every field and
//! category (the words an explanation or a dead letter uses).
//!
//! A schema is a TOML file (`schemas/german-credit.toml` is the shipped example, documented in
//! docs/schema.md). Everything downstream is driven by it: the decoder, the preprocessor, the
//! data-file readers, the generated JSON Schema and the reload compatibility check. A bad file
//! is refused with every problem found, each naming its field.

mod compat;
pub mod json_schema;

pub use compat::incompatibilities;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Longest field name, in bytes: names go into headers and log lines.
const MAX_NAME_BYTES: usize = 64;
/// Longest `reason_code` and `reason` a schema may give a field.
const MAX_REASON_CODE_BYTES: usize = 32;
const MAX_REASON_BYTES: usize = 200;
/// Most fields a schema may have (the decoder keeps a bit per field).
pub const MAX_FIELDS: usize = 256;

/// A validated schema.
#[derive(Debug, Clone)]
pub struct Schema {
    name: String,
    description: String,
    fields: Vec<Field>,
    /// Field position by wire name.
    by_name: HashMap<String, usize>,
    /// A bit per field producers send, and one per field they must send: the fast decoder's
    /// lookups, computed once.
    wire: FieldBits,
    required: FieldBits,
    /// The file's text: written into a bundle as it was read, and hashed for the fingerprint.
    source: String,
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A bit per field position.
pub(crate) type FieldBits = [u64; MAX_FIELDS / 64];

/// The bits of the fields for which `keep` holds.
fn bits(fields: &[Field], keep: impl Fn(&Field) -> bool) -> FieldBits {
    let mut out = [0u64; MAX_FIELDS / 64];
    for (position, field) in fields.iter().enumerate().take(MAX_FIELDS) {
        if keep(field) {
            out[position / 64] |= 1 << (position % 64);
        }
    }
    out
}

/// One field of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The JSON key on the wire; a lowercase identifier.
    pub name: String,
    /// What the field is, in words a declined applicant can read.
    pub label: String,
    /// The column that holds it in training and backfill files (the name unless given).
    pub column: String,
    pub kind: FieldKind,
    /// A required field must be present and not null; a missing optional one gets its own
    /// indicator column, never a silent fill.
    pub required: bool,
    pub role: Role,
    pub transform: Transform,
    /// Band edges that group a protected numeric field in fairness reports (empty: one group).
    pub bands: Vec<f64>,
    /// The lowest adverse-impact ratio the lender accepts for any group of this protected
    /// field: the trainer raises the common threshold until every group meets it.
    pub min_impact_ratio: Option<f64>,
    /// The lender's code for this field as a principal reason of a decline (`reason_code`;
    /// default: the name in capitals).
    pub reason_code: String,
    /// The adverse-action statement for this field as a principal reason (`reason`, such as
    /// "Excessive obligations in relation to income"; default: the label).
    pub reason_statement: String,
}

/// A field's type, with its allowed values.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// A string, one of the categories (in file order: the one-hot encoding relies on it).
    Category { categories: Vec<Category> },
    /// A whole number from `min` to `max`.
    Integer { min: i64, max: i64 },
    /// Any finite number from `min` to `max`.
    Number { min: f64, max: f64 },
    /// `true` or `false`.
    Boolean,
    /// A string of at most `max_length` characters: identifiers only (role `key`).
    Text { max_length: usize },
}

/// One value of a categorical field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The wire value.
    pub value: String,
    pub label: String,
    /// How training and backfill files spell it, when not as the wire value.
    pub data: Option<String>,
}

/// What a field is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A model input.
    Input,
    /// A protected attribute (sex, marital status, national origin, age...): accepted and
    /// validated for monitoring, a model input only when `model_input` says so explicitly.
    Protected { model_input: bool },
    /// The application's identifier in data files (on Kafka, the message key is).
    Key,
    /// The realised outcome in training and backfill files; `bad` is its bad-risk value.
    Label { bad: String },
    /// Validated and carried, never a model input.
    PassThrough,
}

impl Role {
    /// Whether the model reads a field of this role.
    pub fn is_model_input(&self) -> bool {
        match *self {
            Role::Input => true,
            Role::Protected { model_input } => model_input,
            Role::Key | Role::Label { .. } | Role::PassThrough => false,
        }
    }
}

/// What the preprocessor does to a numeric value before standardising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transform {
    #[default]
    None,
    /// `ln(1 + x)`, for right-skewed amounts.
    Log1p,
}

impl Field {
    /// Whether producers send this field in the record (the key and the label are not).
    pub fn is_wire(&self) -> bool {
        !matches!(self.role, Role::Key | Role::Label { .. })
    }

    /// Whether the model reads this field.
    pub fn is_model_input(&self) -> bool {
        self.role.is_model_input()
    }

    /// The categories of a categorical field; booleans read as `false`, `true`.
    pub fn categories(&self) -> Option<&[Category]> {
        match &self.kind {
            FieldKind::Category { categories } => Some(categories),
            _ => None,
        }
    }

    /// The position of the category spelled `text`, as on the wire or as in data files.
    pub fn category_index(&self, text: &str) -> Option<usize> {
        let categories = self.categories()?;
        categories
            .iter()
            .position(|category| category.value == text)
            .or_else(|| {
                categories
                    .iter()
                    .position(|category| category.data.as_deref() == Some(text))
            })
    }

    /// The kind as the error messages say it: `an integer from 1 to 120`.
    pub fn expected(&self) -> String {
        match &self.kind {
            FieldKind::Category { categories } => format!(
                "a string, one of {}",
                quoted_list(categories.iter().map(|c| c.value.as_str()))
            ),
            FieldKind::Integer { min, max } => format!("an integer from {min} to {max}"),
            FieldKind::Number { min, max } => format!("a number from {min} to {max}"),
            FieldKind::Boolean => "true or false".to_owned(),
            FieldKind::Text { max_length } => {
                format!("a string of at most {max_length} characters")
            }
        }
    }
}

/// `` `a`, `b`, `c` ``.
pub(crate) fn quoted_list<'a>(values: impl Iterator<Item = &'a str>) -> String {
    values
        .map(|value| format!("`{value}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One problem with a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// The field's name, or `schema` for the file as a whole.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.problem)
    }
}

/// Why a schema could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("schema {path} is not valid TOML for a schema: {message}")]
    Syntax { path: String, message: String },
    #[error("schema {path} has {} problem(s): {}", problems.len(), join(problems))]
    Invalid {
        path: String,
        problems: Vec<SchemaProblem>,
    },
}

fn join(problems: &[SchemaProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Schema {
    /// Reads and validates a schema file.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a schema's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SchemaError> {
        let raw: RawSchema = toml::from_str(text).map_err(|error| SchemaError::Syntax {
            path: origin.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        let mut problems = Vec::new();
        let fields: Vec<Field> = raw
            .field
            .into_iter()
            .enumerate()
            .filter_map(|(position, field)| field.validate(position, &mut problems))
            .collect();
        let mut by_name = HashMap::new();
        for (position, field) in fields.iter().enumerate() {
            if by_name.insert(field.name.clone(), position).is_some() {
                problems.push(problem(&field.name, "is declared twice"));
            }
        }
        check_roles(&fields, &mut problems);
        if fields.len() > MAX_FIELDS {
            problems.push(problem(
                "schema",
                format!(
                    "{} fields, more than the {MAX_FIELDS} a schema may have",
                    fields.len()
                ),
            ));
        }
        if raw.name.trim().is_empty() {
            problems.push(problem("schema", "`name` is empty"));
        }
        if !problems.is_empty() {
            return Err(SchemaError::Invalid {
                path: origin.to_owned(),
                problems,
            });
        }
        Ok(Self {
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            wire: bits(&fields, Field::is_wire),
            required: bits(&fields, |field| field.is_wire() && field.required),
            fields,
            by_name,
            source: text.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Every field, in file order (the order of an [`crate::applicant::Applicant`]'s values).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The position of the field named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The field whose role is `label`, if any.
    pub fn label_field(&self) -> Option<(usize, &Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, field)| matches!(field.role, Role::Label { .. }))
    }

    /// The field whose role is `key`, if any.
    pub fn key_field(&self) -> Option<(usize, &Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, field)| field.role == Role::Key)
    }

    /// A bit per field producers send.
    pub(crate) fn wire_bits(&self) -> &FieldBits {
        &self.wire
    }

    /// A bit per field producers must send.
    pub(crate) fn required_bits(&self) -> &FieldBits {
        &self.required
    }

    /// The file's text, as read.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// SHA-256 of the file's text.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.source.as_bytes()))
    }

    /// This schema with every protected field a model input, for measuring what keeping them
    /// out costs; never written, and its source names the change so its fingerprint differs.
    pub fn with_protected_inputs(&self) -> Self {
        let mut variant = self.clone();
        for field in &mut variant.fields {
            if let Role::Protected { model_input } = &mut field.role {
                *model_input = true;
            }
        }
        variant
            .source
            .push_str("\n# In memory only: every protected field is a model input.\n");
        variant
    }
}

/// Band edges must be non-empty, strictly increasing, inside the field's bounds and, for an
/// integer field, whole numbers, so that every value falls in exactly one band.
pub(crate) fn check_bands(kind: &FieldKind, bands: &[f64]) -> Result<(), String> {
    let (min, max, integer) = match kind {
        FieldKind::Integer { min, max } => (*min as f64, *max as f64, true),
        FieldKind::Number { min, max } => (*min, *max, false),
        _ => return Err("`bands` is only for protected fields of type integer or number".into()),
    };
    if bands.is_empty() {
        return Err("`bands` is empty; leave it out for a single group".into());
    }
    if bands.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(format!("`bands` {bands:?} must be strictly increasing"));
    }
    if bands.iter().any(|&edge| !(min..=max).contains(&edge)) {
        return Err(format!("`bands` {bands:?} must lie within {min}..{max}"));
    }
    if integer && bands.iter().any(|edge| edge.fract() != 0.0) {
        return Err(format!(
            "`bands` {bands:?} of an integer field must be whole numbers"
        ));
    }
    Ok(())
}

/// Every role constraint that spans fields: at most one key and one label, at least one input.
fn check_roles(fields: &[Field], problems: &mut Vec<SchemaProblem>) {
    for (role, what) in [
        ("key", Role::Key),
        ("label", Role::Label { bad: String::new() }),
    ] {
        let named: Vec<&str> = fields
            .iter()
            .filter(|field| std::mem::discriminant(&field.role) == std::mem::discriminant(&what))
            .map(|field| field.name.as_str())
            .collect();
        if named.len() > 1 {
            problems.push(problem(
                "schema",
                format!(
                    "more than one field has role `{role}`: {}",
                    named.join(", ")
                ),
            ));
        }
    }
    if !fields.iter().any(Field::is_model_input) {
        problems.push(problem("schema", "no field is a model input"));
    }
}

fn problem(field: &str, problem: impl Into<String>) -> SchemaProblem {
    SchemaProblem {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    name: String,
    description: Option<String>,
    #[serde(default)]
    field: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    label: Option<String>,
    column: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    categories: Option<Vec<RawCategory>>,
    min: Option<Bound>,
    max: Option<Bound>,
    max_length: Option<usize>,
    required: Option<bool>,
    transform: Option<String>,
    role: Option<String>,
    model_input: Option<bool>,
    bad: Option<String>,
    bands: Option<Vec<Bound>>,
    min_impact_ratio: Option<f64>,
    reason_code: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    value: String,
    label: Option<String>,
    data: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Bound {
    Integer(i64),
    Float(f64),
}

impl Bound {
    fn as_f64(self) -> f64 {
        match self {
            Bound::Integer(value) => value as f64,
            Bound::Float(value) => value,
        }
    }
}

impl RawField {
    /// The field, or `None` with its problems noted.
    fn validate(self, position: usize, problems: &mut Vec<SchemaProblem>) -> Option<Field> {
        let before = problems.len();
        let name = if self.name.is_empty() {
            format!("#{}", position + 1)
        } else {
            self.name.clone()
        };
        let mut note = |text: String| problems.push(problem(&name, text));
        if !is_identifier(&self.name) {
            note(format!(
                "the name must be a lowercase identifier (a-z, 0-9, _; starting with a letter; \
                 at most {MAX_NAME_BYTES} bytes), got `{}`",
                self.name
            ));
        }
        if self.name == "record" || self.name == "key" {
            note("`record` and `key` name the whole record and the message key in errors".into());
        }
        let label = self.label.clone().unwrap_or_default();
        if label.trim().is_empty() {
            note("`label` is missing or empty: every field needs words for explanations".into());
        }
        let role = match self.role.as_deref().unwrap_or("input") {
            "input" => Role::Input,
            "protected" => Role::Protected {
                model_input: self.model_input.unwrap_or(false),
            },
            "key" => Role::Key,
            "label" => match &self.bad {
                Some(bad) => Role::Label { bad: bad.clone() },
                None => {
                    note("a `label` field needs `bad`, its bad-risk value".into());
                    Role::Label { bad: String::new() }
                }
            },
            "pass_through" => Role::PassThrough,
            other => {
                note(format!(
                    "unknown role `{other}`, expected one of input, protected, key, label, \
                     pass_through"
                ));
                Role::Input
            }
        };
        if self.model_input.is_some() && !matches!(role, Role::Protected { .. }) {
            note("`model_input` is only for protected fields (other roles decide it)".into());
        }
        if self.bad.is_some() && !matches!(role, Role::Label { .. }) {
            note("`bad` is only for the `label` field".into());
        }
        let kind = self.kind(&mut note);
        if let (Role::Label { bad }, Some(FieldKind::Category { categories })) = (&role, &kind) {
            if !bad.is_empty() && !categories.iter().any(|c| &c.value == bad) {
                note(format!("`bad = \"{bad}\"` is not one of its categories"));
            }
        }
        match (&kind, &role) {
            (Some(FieldKind::Text { .. }), Role::Key) | (Some(_), Role::Label { .. }) => {}
            (Some(FieldKind::Text { .. }), _) => {
                note("type `text` is only for the `key` field".into())
            }
            (Some(_), Role::Key) => note("the `key` field must be of type `text`".into()),
            _ => {}
        }
        let transform = match self.transform.as_deref() {
            None | Some("none") => Transform::None,
            Some("log1p") => Transform::Log1p,
            Some(other) => {
                note(format!(
                    "unknown transform `{other}`, expected none or log1p"
                ));
                Transform::None
            }
        };
        if transform == Transform::Log1p {
            match kind {
                Some(FieldKind::Integer { min, .. }) if min >= 0 => {}
                Some(FieldKind::Number { min, .. }) if min >= 0.0 => {}
                _ => note("`log1p` needs a numeric field whose `min` is at least 0".into()),
            }
        }
        let bands: Vec<f64> = self.bands.iter().flatten().map(|b| b.as_f64()).collect();
        if self.bands.is_some() {
            match (&kind, &role) {
                (Some(kind), Role::Protected { .. }) => {
                    if let Err(text) = check_bands(kind, &bands) {
                        note(text);
                    }
                }
                _ => note("`bands` is only for protected fields of type integer or number".into()),
            }
        }
        if let Some(ratio) = self.min_impact_ratio {
            if !matches!(role, Role::Protected { .. }) {
                note("`min_impact_ratio` is only for protected fields".into());
            } else if !(ratio > 0.0 && ratio <= 1.0) {
                note(format!(
                    "`min_impact_ratio = {ratio}` must lie in (0, 1]: it is a share of the best \
                     group's approval rate"
                ));
            }
        }
        let reads = role.is_model_input();
        if let Some(code) = &self.reason_code {
            if !reads {
                note(
                    "`reason_code` is only for fields the model reads: others are never a reason"
                        .into(),
                );
            } else if !is_reason_code(code) {
                note(format!(
                    "`reason_code = \"{code}\"` must be 1 to {MAX_REASON_CODE_BYTES} letters, \
                     digits, `_`, `-` or `.`"
                ));
            }
        }
        if let Some(statement) = &self.reason {
            if !reads {
                note(
                    "`reason` is only for fields the model reads: others are never a reason".into(),
                );
            } else if statement.trim().is_empty() || statement.len() > MAX_REASON_BYTES {
                note(format!(
                    "`reason` must be a statement of 1 to {MAX_REASON_BYTES} bytes"
                ));
            }
        }
        if problems.len() > before {
            return None;
        }
        Some(Field {
            bands,
            min_impact_ratio: self.min_impact_ratio,
            reason_code: self
                .reason_code
                .unwrap_or_else(|| self.name.to_ascii_uppercase()),
            reason_statement: self.reason.unwrap_or_else(|| label.clone()),
            column: self.column.unwrap_or_else(|| self.name.clone()),
            name: self.name,
            label,
            kind: kind?,
            required: self.required.unwrap_or(true),
            role,
            transform,
        })
    }

    /// The type with its values or bounds, each problem noted.
    fn kind(&self, note: &mut impl FnMut(String)) -> Option<FieldKind> {
        let numeric = matches!(self.kind.as_str(), "integer" | "number");
        if self.categories.is_some() && self.kind != "category" {
            note("`categories` is only for type `category`".into());
        }
        if (self.min.is_some() || self.max.is_some()) && !numeric {
            note("`min` and `max` are only for types `integer` and `number`".into());
        }
        if self.max_length.is_some() && self.kind != "text" {
            note("`max_length` is only for type `text`".into());
        }
        match self.kind.as_str() {
            "category" => {
                let raw = self.categories.as_deref().unwrap_or_default();
                if raw.is_empty() {
                    note("a category field needs a non-empty `categories` list".into());
                    return None;
                }
                let mut categories: Vec<Category> = Vec::with_capacity(raw.len());
                for category in raw {
                    if category.value.is_empty() {
                        note("a category's `value` is empty".into());
                    }
                    let spellings = [Some(&category.value), category.data.as_ref()];
                    for spelling in spellings.into_iter().flatten() {
                        if categories
                            .iter()
                            .any(|c| &c.value == spelling || c.data.as_ref() == Some(spelling))
                        {
                            note(format!("category `{spelling}` is listed twice"));
                        }
                    }
                    let label = category.label.clone().unwrap_or_default();
                    if label.trim().is_empty() {
                        note(format!("category `{}` has no `label`", category.value));
                    }
                    categories.push(Category {
                        value: category.value.clone(),
                        label,
                        data: category.data.clone(),
                    });
                }
                Some(FieldKind::Category { categories })
            }
            "integer" => match (self.min, self.max) {
                (Some(Bound::Integer(min)), Some(Bound::Integer(max))) if min <= max => {
                    Some(FieldKind::Integer { min, max })
                }
                (Some(Bound::Integer(min)), Some(Bound::Integer(max))) => {
                    note(format!("`min` ({min}) is greater than `max` ({max})"));
                    None
                }
                _ => {
                    note("an integer field needs integer `min` and `max`".into());
                    None
                }
            },
            "number" => match (self.min, self.max) {
                (Some(min), Some(max)) => {
                    let (min, max) = (min.as_f64(), max.as_f64());
                    if !(min.is_finite() && max.is_finite() && min <= max) {
                        note(format!(
                            "`min` ({min}) and `max` ({max}) must be finite, min <= max"
                        ));
                        return None;
                    }
                    Some(FieldKind::Number { min, max })
                }
                _ => {
                    note("a number field needs `min` and `max`".into());
                    None
                }
            },
            "boolean" => Some(FieldKind::Boolean),
            "text" => Some(FieldKind::Text {
                max_length: self.max_length.unwrap_or(256),
            }),
            other => {
                note(format!(
                    "unknown type `{other}`, expected category, integer, number, boolean or text"
                ));
                None
            }
        }
    }
}

/// A lender's reason code: short, printable, no spaces (it is matched, not read).
fn is_reason_code(code: &str) -> bool {
    (1..=MAX_REASON_CODE_BYTES).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= MAX_NAME_BYTES
}

/// The shipped German Credit schema, for tests across the workspace.
#[doc(hidden)]
pub fn german_credit() -> Schema {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/german-credit.toml"
    ));
    match Schema::load(path) {
        Ok(schema) => schema,
        Err(error) => panic!("the shipped schema must load: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<SchemaProblem> {
        match Schema::parse(text, "test.toml") {
            Err(SchemaError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    /// Asserts that `text` is refused with a problem of `field` that says `words`.
    fn assert_refused(text: &str, field: &str, words: &str) {
        let found = problems(text);
        assert!(
            found
                .iter()
                .any(|p| p.field == field && p.problem.contains(words)),
            "{field}: {words}\n{text}\n{found:?}"
        );
    }

    #[test]
    fn the_shipped_schema_loads_with_twenty_wire_fields_and_a_label() {
        let schema = german_credit();
        let wire = schema.fields().iter().filter(|f| f.is_wire()).count();
        assert_eq!(wire, 20);
        let (_, label) = schema.label_field().unwrap();
        assert_eq!(label.role, Role::Label { bad: "bad".into() });
        assert_eq!(schema.position("purpose"), Some(3));
    }

    #[test]
    fn every_problem_of_a_bad_schema_is_reported_with_its_field() {
        let found = problems(
            r#"
            name = "x"
            [[field]]
            name = "Amount"
            label = "Amount"
            type = "integer"
            min = 10
            max = 1
            [[field]]
            name = "colour"
            type = "category"
            categories = [{ value = "red", label = "Red" }, { value = "red", label = "Also red" }]
            [[field]]
            name = "ratio"
            label = "Ratio"
            type = "number"
            transform = "sqrt"
            min = 0
            max = 1
            "#,
        );
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        let has = |field: &str, words: &str| {
            found
                .iter()
                .any(|p| p.field == field && p.problem.contains(words))
        };
        assert!(has("Amount", "lowercase identifier"), "{text:?}");
        assert!(has("Amount", "greater than"), "{text:?}");
        assert!(has("colour", "`label` is missing"), "{text:?}");
        assert!(has("colour", "listed twice"), "{text:?}");
        assert!(has("ratio", "unknown transform `sqrt`"), "{text:?}");
    }

    #[test]
    fn an_unknown_key_is_a_syntax_error_that_names_it() {
        let error = Schema::parse(
            "name = \"x\"\n[[field]]\nname = \"a\"\nlabel = \"A\"\ntype = \"boolean\"\nrequird = false\n",
            "test.toml",
        )
        .unwrap_err();
        assert!(error.to_string().contains("requird"), "{error}");
    }

    #[test]
    fn a_protected_field_is_no_model_input_unless_allowed_explicitly() {
        let schema = Schema::parse(
            r#"
            name = "x"
            [[field]]
            name = "income"
            label = "Income"
            type = "number"
            min = 0
            max = 1e7
            [[field]]
            name = "age"
            label = "Age"
            type = "integer"
            min = 18
            max = 120
            role = "protected"
            "#,
            "test.toml",
        )
        .unwrap();
        let inputs: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| f.is_model_input())
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(inputs, ["income"]);
    }

    #[test]
    fn the_protected_inputs_variant_reads_every_protected_field_and_says_so() {
        let schema = german_credit();
        let variant = schema.with_protected_inputs();
        let protected = |s: &Schema| -> Vec<(String, bool)> {
            s.fields()
                .iter()
                .filter(|f| matches!(f.role, Role::Protected { .. }))
                .map(|f| (f.name.clone(), f.is_model_input()))
                .collect()
        };
        assert!(protected(&schema).iter().all(|(_, input)| !input));
        assert!(protected(&variant).iter().all(|(_, input)| *input));
        assert_eq!(protected(&variant).len(), 3);
        assert_ne!(variant.fingerprint(), schema.fingerprint());
    }

    #[test]
    fn a_reason_code_and_statement_are_the_lenders_or_default_to_the_name_and_label() {
        let base = |income: &str, sex: &str| {
            format!(
                "name = \"x\"\n[[field]]\nname = \"income\"\nlabel = \"Income\"\ntype = \"number\"\n\
                 min = 0\nmax = 1e7\n{income}\n[[field]]\nname = \"debt_ratio\"\n\
                 label = \"Debt ratio\"\ntype = \"number\"\nmin = 0\nmax = 1\n[[field]]\n\
                 name = \"sex\"\nlabel = \"Sex\"\ntype = \"category\"\n\
                 categories = [{{ value = \"f\", label = \"F\" }}, {{ value = \"m\", label = \"M\" }}]\n\
                 role = \"protected\"\n{sex}\n"
            )
        };
        let schema = Schema::parse(
            &base(
                "reason_code = \"R22\"\nreason = \"Insufficient income\"",
                "",
            ),
            "test.toml",
        )
        .unwrap();
        let income = &schema.fields()[0];
        assert_eq!(income.reason_code, "R22");
        assert_eq!(income.reason_statement, "Insufficient income");
        let debt = &schema.fields()[1];
        assert_eq!(debt.reason_code, "DEBT_RATIO");
        assert_eq!(debt.reason_statement, "Debt ratio");
        for (income, sex, field, words) in [
            ("reason_code = \"R 22\"", "", "income", "letters, digits"),
            ("reason_code = \"\"", "", "income", "letters, digits"),
            ("reason = \" \"", "", "income", "a statement of 1 to"),
            (
                "",
                "reason_code = \"S1\"",
                "sex",
                "only for fields the model reads",
            ),
            (
                "",
                "reason = \"Sex\"",
                "sex",
                "only for fields the model reads",
            ),
        ] {
            assert_refused(&base(income, sex), field, words);
        }
        // A protected field the schema lets the model read may be a reason.
        let allowed = base("", "model_input = true\nreason_code = \"S1\"");
        let schema = Schema::parse(&allowed, "test.toml").unwrap();
        assert_eq!(schema.fields()[2].reason_code, "S1");
    }

    #[test]
    fn an_impact_ratio_floor_belongs_to_a_protected_field_and_is_a_share() {
        let base = |sex: &str, income: &str| {
            format!(
                "name = \"x\"\n[[field]]\nname = \"income\"\nlabel = \"Income\"\ntype = \"number\"\n\
                 min = 0\nmax = 1e7\n{income}\n[[field]]\nname = \"sex\"\nlabel = \"Sex\"\n\
                 type = \"category\"\ncategories = [{{ value = \"f\", label = \"F\" }}, {{ value = \"m\", label = \"M\" }}]\n\
                 role = \"protected\"\n{sex}\n"
            )
        };
        let schema = Schema::parse(&base("min_impact_ratio = 0.8", ""), "test.toml").unwrap();
        let sex = &schema.fields()[schema.position("sex").unwrap()];
        assert_eq!(sex.min_impact_ratio, Some(0.8));
        assert_eq!(schema.fields()[0].min_impact_ratio, None);
        for (sex, income, field, words) in [
            ("min_impact_ratio = 0", "", "sex", "must lie in (0, 1]"),
            ("min_impact_ratio = 1.2", "", "sex", "must lie in (0, 1]"),
            ("", "min_impact_ratio = 0.8", "income", "only for protected"),
        ] {
            assert_refused(&base(sex, income), field, words);
        }
    }

    #[test]
    fn bands_group_a_protected_number_and_bad_bands_are_refused_by_field() {
        let base = |age_bands: &str, income_bands: &str| {
            format!(
                "name = \"x\"\n[[field]]\nname = \"income\"\nlabel = \"Income\"\ntype = \"number\"\n\
                 min = 0\nmax = 1e7\n{income_bands}\n[[field]]\nname = \"age\"\nlabel = \"Age\"\n\
                 type = \"integer\"\nmin = 18\nmax = 120\nrole = \"protected\"\n{age_bands}\n"
            )
        };
        let schema = Schema::parse(&base("bands = [25, 35, 50, 65]", ""), "test.toml").unwrap();
        let age = &schema.fields()[schema.position("age").unwrap()];
        assert_eq!(age.bands, vec![25.0, 35.0, 50.0, 65.0]);
        assert!(schema.fields()[0].bands.is_empty());
        for (age_bands, income_bands, field, words) in [
            ("bands = [35, 25]", "", "age", "strictly increasing"),
            ("bands = [10, 25]", "", "age", "within 18..120"),
            ("bands = [25.5]", "", "age", "whole numbers"),
            ("bands = []", "", "age", "empty"),
            ("", "bands = [1000]", "income", "only for protected"),
        ] {
            assert_refused(&base(age_bands, income_bands), field, words);
        }
    }

    #[test]
    fn a_schema_without_model_inputs_or_with_two_labels_is_refused() {
        let found = problems(
            r#"
            name = "x"
            [[field]]
            name = "a"
            label = "A"
            type = "category"
            role = "label"
            bad = "y"
            categories = [{ value = "y", label = "Y" }]
            [[field]]
            name = "b"
            label = "B"
            type = "category"
            role = "label"
            bad = "y"
            categories = [{ value = "y", label = "Y" }]
            [[field]]
            name = "c"
            label = "C"
            type = "category"
            role = "label"
            bad = "z"
            categories = [{ value = "y", label = "Y" }]
            "#,
        );
        assert!(found
            .iter()
            .any(|p| p.problem.contains("no field is a model input")));
        assert!(found
            .iter()
            .any(|p| p.problem.contains("more than one field has role `label`")));
        assert!(found
            .iter()
            .any(|p| p.field == "c" && p.problem.contains("`bad = \"z\"`")));
    }
}

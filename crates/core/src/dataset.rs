//! Reading a labelled data file (CSV) by its schema: the trainer's input, and the backfill's
//! reference data.
//!
//! Each field is read from its `column`; a category may be spelled as on the wire or as the
//! schema's `data` spelling (so the 1994 German Credit file is read as published), an empty cell
//! is a missing value. The label column's bad-risk value marks a row `bad`.

use crate::applicant::{Applicant, AttributeValue, RecordError, RecordErrorKind};
use crate::schema::{quoted_list, Field, FieldKind, Role, Schema};
use std::io::Read;
use std::path::Path;

/// An applicant with the realised outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledApplicant {
    pub applicant: Applicant,
    /// `true` when the applicant turned out a bad credit risk.
    pub bad: bool,
}

/// Which column holds the outcome, and which of its values means a bad risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub column: String,
    pub bad: String,
}

impl Outcome {
    /// The schema's `label` field, if it has one.
    pub fn of(schema: &Schema) -> Option<Self> {
        let (_, field) = schema.label_field()?;
        match &field.role {
            Role::Label { bad } => Some(Self {
                column: field.column.clone(),
                bad: bad.clone(),
            }),
            _ => None,
        }
    }
}

/// Why the data set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot open data set {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("data set CSV is malformed: {0}")]
    Csv(#[from] csv::Error),
    #[error("data set header lacks column `{column}` (field `{field}`)")]
    MissingColumn { field: String, column: String },
    #[error("data set row {row}: {source}")]
    Row { row: usize, source: RecordError },
    #[error("data set has no rows")]
    Empty,
    #[error("the schema declares no label field; name the outcome column and its bad value")]
    NoOutcome,
}

/// Reads a labelled data set from a file.
pub fn load(
    schema: &Schema,
    outcome: &Outcome,
    path: &Path,
) -> Result<Vec<LabelledApplicant>, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Open {
        path: path.display().to_string(),
        source,
    })?;
    read(schema, outcome, file)
}

/// Reads a data set whose outcome is the schema's label field.
pub fn load_labelled(schema: &Schema, path: &Path) -> Result<Vec<LabelledApplicant>, DatasetError> {
    let outcome = Outcome::of(schema).ok_or(DatasetError::NoOutcome)?;
    load(schema, &outcome, path)
}

/// Where each field's column is in a file's header: `None` for a field without one (which must
/// then be optional, the key, or the label).
pub fn columns(schema: &Schema, header: &[&str]) -> Result<Vec<Option<usize>>, DatasetError> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let found = header
                .iter()
                .position(|name| name.trim() == field.column)
                .or_else(|| header.iter().position(|name| name.trim() == field.name));
            match found {
                None if field.required && field.is_wire() => Err(DatasetError::MissingColumn {
                    field: field.name.clone(),
                    column: field.column.clone(),
                }),
                found => Ok(found),
            }
        })
        .collect()
}

/// Reads a data set from any reader (header row first).
pub fn read(
    schema: &Schema,
    outcome: &Outcome,
    reader: impl Read,
) -> Result<Vec<LabelledApplicant>, DatasetError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers = csv.headers()?.clone();
    let names: Vec<&str> = headers.iter().collect();
    let positions = columns(schema, &names)?;
    let label_position = names
        .iter()
        .position(|name| name.trim() == outcome.column)
        .ok_or_else(|| DatasetError::MissingColumn {
            field: "label".to_owned(),
            column: outcome.column.clone(),
        })?;
    let mut rows = Vec::new();
    for (index, record) in csv.records().enumerate() {
        let record = record?;
        // Row numbers as a spreadsheet shows them: the header is row 1.
        let row = index + 2;
        let applicant = parse_row(schema, |field| {
            positions[field].map(|at| record.get(at).unwrap_or(""))
        })
        .map_err(|source| DatasetError::Row { row, source })?;
        let bad = record.get(label_position).unwrap_or("").trim() == outcome.bad;
        rows.push(LabelledApplicant { applicant, bad });
    }
    if rows.is_empty() {
        return Err(DatasetError::Empty);
    }
    Ok(rows)
}

/// Parses one row given the text of each field's cell (`None`: the file has no such column).
pub fn parse_row<'a>(
    schema: &Schema,
    text_of: impl Fn(usize) -> Option<&'a str>,
) -> Result<Applicant, RecordError> {
    let values = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(position, field)| match text_of(position) {
            Some(text) if field.is_wire() => parse_cell(field, text),
            _ => Ok(AttributeValue::Missing),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Applicant::from_values(schema, values)
}

/// One cell's text as `field`'s value: an empty cell is a missing value.
pub fn parse_cell(field: &Field, text: &str) -> Result<AttributeValue, RecordError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(AttributeValue::Missing);
    }
    let wrong = || {
        RecordError::new(
            RecordErrorKind::WrongType,
            field.name.as_str(),
            format!("`{text}` is not {}", field.expected()),
        )
    };
    match &field.kind {
        FieldKind::Category { categories } => field
            .category_index(text)
            .map(AttributeValue::Categorical)
            .ok_or_else(|| {
                RecordError::new(
                    RecordErrorKind::UnknownCategory,
                    field.name.as_str(),
                    format!(
                        "unknown value `{text}`, expected one of: {}",
                        quoted_list(categories.iter().map(|c| c.value.as_str()))
                    ),
                )
            }),
        FieldKind::Boolean => match text {
            "true" => Ok(AttributeValue::Categorical(1)),
            "false" => Ok(AttributeValue::Categorical(0)),
            _ => Err(wrong()),
        },
        FieldKind::Integer { .. } => match text.parse::<i64>() {
            Ok(integer) => Ok(AttributeValue::Numeric(integer as f64)),
            Err(_) => match text.parse::<f64>() {
                Ok(float) if float.is_finite() && float.fract() == 0.0 => {
                    Ok(AttributeValue::Numeric(float))
                }
                _ => Err(wrong()),
            },
        },
        FieldKind::Number { .. } => match text.parse::<f64>() {
            Ok(float) if float.is_finite() => Ok(AttributeValue::Numeric(float)),
            _ => Err(wrong()),
        },
        FieldKind::Text { .. } => Ok(AttributeValue::Missing),
    }
}

/// The applicants of the German Credit data set shipped in `data/`, for tests across the
/// workspace.
#[doc(hidden)]
pub fn shipped_german_credit() -> Vec<LabelledApplicant> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let schema = crate::schema::german_credit();
    match load_labelled(&schema, &root.join("data/german_credit.csv")) {
        Ok(rows) => rows,
        Err(error) => panic!("the shipped data set must load: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::german_credit;

    #[test]
    fn shipped_data_set_has_700_good_and_300_bad() {
        let rows = shipped_german_credit();
        assert_eq!(rows.len(), 1000);
        assert_eq!(rows.iter().filter(|row| row.bad).count(), 300);
    }

    #[test]
    fn first_row_maps_code_book_labels_to_schema_values() {
        let schema = german_credit();
        let first = &shipped_german_credit()[0];
        assert!(!first.bad);
        let value = |name| first.applicant.value(&schema, name).unwrap();
        assert_eq!(value("checking_account"), AttributeValue::Categorical(0));
        assert_eq!(value("purpose"), AttributeValue::Categorical(3));
        assert_eq!(value("telephone"), AttributeValue::Categorical(1));
        assert_eq!(value("credit_amount_dm"), AttributeValue::Numeric(1169.0));
        assert_eq!(value("age_years"), AttributeValue::Numeric(67.0));
    }

    #[test]
    fn bad_row_error_names_row_and_field() {
        let schema = german_credit();
        let text = std::fs::read_to_string(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("data/german_credit.csv"),
        )
        .unwrap();
        // Data row 3 (spreadsheet row 4) is the first applicant borrowing for education.
        let mut lines: Vec<String> = text.lines().take(4).map(str::to_string).collect();
        assert!(lines[3].contains("education"));
        lines[3] = lines[3].replacen("education", "yachting", 1);
        let outcome = Outcome::of(&schema).unwrap();
        let error = read(&schema, &outcome, lines.join("\n").as_bytes()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("row 4"), "{message}");
        assert!(message.contains("purpose"), "{message}");
        assert!(message.contains("yachting"), "{message}");
    }

    #[test]
    fn missing_column_is_named() {
        let schema = german_credit();
        let outcome = Outcome::of(&schema).unwrap();
        let error = read(&schema, &outcome, "a,b\n1,2\n".as_bytes()).unwrap_err();
        assert!(error
            .to_string()
            .contains("status_of_existing_checking_account"));
    }
}

//! The training data, read row by row against the schema: every row that does not fit is
//! reported with its row number, field and reason, and the run is refused unless the user asked
//! to skip such rows (then the report says how many were skipped).
//!
//! A data file is CSV with a header row, or Parquet (a `.parquet` file) with a column per field
//! of text, integer, floating-point or boolean type (text may be dictionary-encoded). Cells are
//! read as [`credit_core::dataset`] reads CSV cells: each field from its `column`, categories as
//! on the wire or in the schema's `data` spelling, an empty cell or a null missing. CSV row
//! numbers are as a spreadsheet shows them (the header is row 1); Parquet rows count from 1.
//!
//! A file whose rows were drawn from known probabilities (a synthetic book) may name the column
//! that holds them; each row's true probability of the bad outcome is then read with it, and a
//! cell that is not a number in [0, 1] makes a bad row like any other.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::Array;
use arrow_schema::DataType;
use credit_core::applicant::{AttributeValue, RecordError};
use credit_core::dataset::{self, DatasetError, LabelledApplicant, Outcome};
use credit_core::schema::{Field, FieldKind, Schema};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// How many bad rows an error or a report lists before it only counts the rest.
pub const LISTED_BAD_ROWS: usize = 20;

/// The outcome column and its bad value as the user named them; what is not named comes from
/// the schema's `label` field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeChoice {
    /// The column (or the schema's label field's name).
    pub column: Option<String>,
    pub bad: Option<String>,
}

impl OutcomeChoice {
    /// The outcome to train on: the named column and value, the schema's label field otherwise.
    pub fn resolve(&self, schema: &Schema) -> Result<Outcome, DataError> {
        let declared = Outcome::of(schema);
        let no_outcome = || DataError::NoOutcome {
            schema: schema.name().to_owned(),
        };
        // The label field may be named by its field name as well as by its column.
        let column_of = |named: &str| match schema.label_field() {
            Some((_, field)) if field.name == named => field.column.clone(),
            _ => named.to_owned(),
        };
        match (&self.column, &self.bad, declared) {
            (None, None, declared) => declared.ok_or_else(no_outcome),
            (Some(column), Some(bad), _) => Ok(Outcome {
                column: column_of(column),
                bad: bad.clone(),
            }),
            (Some(column), None, Some(declared)) if column_of(column) == declared.column => {
                Ok(declared)
            }
            (Some(column), None, _) => Err(DataError::NoBadValue {
                column: column.clone(),
            }),
            (None, Some(bad), Some(declared)) => Ok(Outcome {
                bad: bad.clone(),
                ..declared
            }),
            (None, Some(_), None) => Err(no_outcome()),
        }
    }
}

/// A row that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    pub row: usize,
    /// The schema field (`record` for the row as a whole; the outcome column's name when the
    /// schema has no field for it).
    pub field: String,
    /// The file's column, when it is not named as the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}, field `{}`", self.row, self.field)?;
        if let Some(column) = &self.column {
            write!(f, " (column `{column}`)")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The rows a training run learns from, and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingData {
    pub rows: Vec<LabelledApplicant>,
    /// Data rows in the file.
    pub read: usize,
    /// Rows left out because they do not fit the schema (only with `skip_bad_rows`).
    pub skipped: usize,
    /// The first [`LISTED_BAD_ROWS`] of them.
    pub skipped_rows: Vec<BadRow>,
    /// Each row's true probability of the bad outcome, in the order of `rows`, when the file
    /// has a column of them and the run named it.
    pub true_probabilities: Option<Vec<f64>>,
}

/// Why the training data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot open data file {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("data file {path} is not readable CSV: {source}")]
    Csv { path: String, source: csv::Error },
    #[error("data file {path} is not readable Parquet: {message}")]
    Parquet { path: String, message: String },
    #[error(
        "data file {path}: column `{column}` is of Parquet type {data_type}; expected text, an \
         integer, a floating-point number or a boolean"
    )]
    ParquetType {
        path: String,
        column: String,
        data_type: String,
    },
    #[error("data file {path}: {source}")]
    Columns { path: String, source: DatasetError },
    #[error(
        "schema `{schema}` declares no label field: name the outcome column with --label and its \
         bad-risk value with --bad-value"
    )]
    NoOutcome { schema: String },
    #[error(
        "--label `{column}` is not the schema's label field: name its bad-risk value with \
         --bad-value"
    )]
    NoBadValue { column: String },
    #[error("data file {path} has no outcome column `{column}`")]
    NoOutcomeColumn { path: String, column: String },
    #[error("data file {path} has no true-probability column `{column}`")]
    NoTrueProbabilityColumn { path: String, column: String },
    #[error(
        "the true-probability column `{column}` is {what}: the comparison needs a column the \
         model neither reads nor learns"
    )]
    TrueProbabilityIsUsed { column: String, what: String },
    #[error(
        "the outcome column `{column}` is the column of field `{field}`, which producers send: \
         the model would learn the outcome from itself"
    )]
    OutcomeIsInput { column: String, field: String },
    #[error("bad-risk value `{bad}` is not a value of the outcome field `{field}`: {problem}")]
    BadValue {
        field: String,
        bad: String,
        problem: String,
    },
    #[error(
        "{total} of the {read} rows of {path} do not fit schema `{schema}` (fix them, or pass \
         --skip-bad-rows to train without them):\n{}",
        list(listed, *total)
    )]
    BadRows {
        path: String,
        schema: String,
        read: usize,
        total: usize,
        listed: Vec<BadRow>,
    },
    #[error("data file {path} has no usable rows ({read} read, {skipped} skipped)")]
    NoRows {
        path: String,
        read: usize,
        skipped: usize,
    },
    #[error(
        "data file {path} has {bad} rows whose outcome `{column}` is `{value}` and {good} \
         others: a model needs both outcomes (is the bad-risk value right?)"
    )]
    OneOutcome {
        path: String,
        column: String,
        value: String,
        bad: usize,
        good: usize,
    },
}

/// One bad row a line, the rest counted.
fn list(listed: &[BadRow], total: usize) -> String {
    let mut lines: Vec<String> = listed.iter().map(|row| format!("  {row}")).collect();
    if total > listed.len() {
        lines.push(format!("  ... and {} more", total - listed.len()));
    }
    lines.join("\n")
}

/// Reads a data file for training: Parquet when its name ends in `.parquet`, CSV otherwise;
/// with `true_probability`, that column's true probabilities too.
pub fn load(
    schema: &Schema,
    outcome: &Outcome,
    true_probability: Option<&str>,
    path: &Path,
    skip_bad_rows: bool,
) -> Result<TrainingData, DataError> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| DataError::Open {
        path: origin.clone(),
        source,
    })?;
    if path.extension().and_then(|e| e.to_str()) == Some("parquet") {
        read_parquet(
            schema,
            outcome,
            true_probability,
            file,
            &origin,
            skip_bad_rows,
        )
    } else {
        read_csv(
            schema,
            outcome,
            true_probability,
            file,
            &origin,
            skip_bad_rows,
        )
    }
}

/// Reads a Parquet file; `origin` names it in errors.
pub fn read_parquet(
    schema: &Schema,
    outcome: &Outcome,
    true_probability: Option<&str>,
    file: std::fs::File,
    origin: &str,
    skip_bad_rows: bool,
) -> Result<TrainingData, DataError> {
    let parquet_error = |message: String| DataError::Parquet {
        path: origin.to_owned(),
        message,
    };
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|error| parquet_error(error.to_string()))?;
    let header: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let names: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut rows = RowReader::new(schema, outcome, true_probability, &names, origin)?;
    let reader = builder
        .build()
        .map_err(|error| parquet_error(error.to_string()))?;
    let mut row = 0;
    for batch in reader {
        let batch = batch.map_err(|error| parquet_error(error.to_string()))?;
        let columns = batch
            .columns()
            .iter()
            .zip(&header)
            .map(|(array, name)| column_text(array.as_ref(), name, origin))
            .collect::<Result<Vec<_>, _>>()?;
        for index in 0..batch.num_rows() {
            row += 1;
            rows.push(row, columns.len(), |at| {
                columns.get(at).and_then(|column| column[index].as_deref())
            });
        }
    }
    rows.finish(skip_bad_rows)
}

/// A Parquet column's cells as a CSV file would spell them; a null is `None`.
fn column_text(
    array: &dyn Array,
    name: &str,
    origin: &str,
) -> Result<Vec<Option<String>>, DataError> {
    fn all<T: ToString>(values: impl Iterator<Item = Option<T>>) -> Vec<Option<String>> {
        values.map(|value| value.map(|v| v.to_string())).collect()
    }
    Ok(match array.data_type() {
        DataType::Utf8 => all(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => all(array.as_string::<i64>().iter()),
        DataType::Utf8View => all(array.as_string_view().iter()),
        DataType::Boolean => all(array.as_boolean().iter()),
        DataType::Int8 => all(array.as_primitive::<Int8Type>().iter()),
        DataType::Int16 => all(array.as_primitive::<Int16Type>().iter()),
        DataType::Int32 => all(array.as_primitive::<Int32Type>().iter()),
        DataType::Int64 => all(array.as_primitive::<Int64Type>().iter()),
        DataType::UInt8 => all(array.as_primitive::<UInt8Type>().iter()),
        DataType::UInt16 => all(array.as_primitive::<UInt16Type>().iter()),
        DataType::UInt32 => all(array.as_primitive::<UInt32Type>().iter()),
        DataType::UInt64 => all(array.as_primitive::<UInt64Type>().iter()),
        DataType::Float32 => all(array.as_primitive::<Float32Type>().iter()),
        DataType::Float64 => all(array.as_primitive::<Float64Type>().iter()),
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_any_dictionary();
            let values = column_text(dictionary.values().as_ref(), name, origin)?;
            let keys = dictionary.normalized_keys();
            (0..array.len())
                .map(|index| {
                    if array.is_null(index) {
                        None
                    } else {
                        keys.get(index)
                            .and_then(|&key| values.get(key).cloned().flatten())
                    }
                })
                .collect()
        }
        other => {
            return Err(DataError::ParquetType {
                path: origin.to_owned(),
                column: name.to_owned(),
                data_type: other.to_string(),
            })
        }
    })
}

/// Reads CSV data (header row first); `origin` names it in errors.
pub fn read_csv(
    schema: &Schema,
    outcome: &Outcome,
    true_probability: Option<&str>,
    reader: impl Read,
    origin: &str,
    skip_bad_rows: bool,
) -> Result<TrainingData, DataError> {
    let csv_error = |source| DataError::Csv {
        path: origin.to_owned(),
        source,
    };
    // Flexible, so that a row of the wrong width is one bad row rather than the end of the read.
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header = csv.headers().map_err(csv_error)?.clone();
    let names: Vec<&str> = header.iter().collect();
    let mut rows = RowReader::new(schema, outcome, true_probability, &names, origin)?;
    for (index, record) in csv.records().enumerate() {
        let record = record.map_err(csv_error)?;
        // Row numbers as a spreadsheet shows them: the header is row 1.
        rows.push(index + 2, record.len(), |at| record.get(at));
    }
    rows.finish(skip_bad_rows)
}

/// Checks rows one by one against the schema and the outcome column.
struct RowReader<'a> {
    schema: &'a Schema,
    origin: &'a str,
    /// Each schema field's column in the file.
    positions: Vec<Option<usize>>,
    outcome: OutcomeReader<'a>,
    truth: Option<TrueProbabilityReader>,
    width: usize,
    rows: Vec<LabelledApplicant>,
    true_probabilities: Vec<f64>,
    read: usize,
    bad: usize,
    listed: Vec<BadRow>,
}

impl<'a> RowReader<'a> {
    fn new(
        schema: &'a Schema,
        outcome: &'a Outcome,
        true_probability: Option<&str>,
        header: &[&str],
        origin: &'a str,
    ) -> Result<Self, DataError> {
        let positions = dataset::columns(schema, header).map_err(|source| DataError::Columns {
            path: origin.to_owned(),
            source,
        })?;
        let truth = true_probability
            .map(|column| TrueProbabilityReader::new(schema, outcome, column, header, origin))
            .transpose()?;
        Ok(Self {
            schema,
            origin,
            positions,
            outcome: OutcomeReader::new(schema, outcome, header, origin)?,
            truth,
            width: header.len(),
            rows: Vec::new(),
            true_probabilities: Vec::new(),
            read: 0,
            bad: 0,
            listed: Vec::new(),
        })
    }

    /// Reads row number `row`, `cells` wide, whose cell at a column is `cell(column)`.
    fn push<'c>(&mut self, row: usize, cells: usize, cell: impl Fn(usize) -> Option<&'c str>) {
        self.read += 1;
        match self.parse(cells, &cell) {
            Ok((labelled, truth)) => {
                self.rows.push(labelled);
                self.true_probabilities.extend(truth);
            }
            Err((field, reason)) => {
                self.bad += 1;
                if self.listed.len() < LISTED_BAD_ROWS {
                    let column = self
                        .schema
                        .position(&field)
                        .map(|at| &self.schema.fields()[at])
                        .filter(|found| found.column != found.name)
                        .map(|found| found.column.clone());
                    self.listed.push(BadRow {
                        row,
                        field,
                        column,
                        reason,
                    });
                }
            }
        }
    }

    /// The row and its true probability (when read), or the field that does not fit and why.
    fn parse<'c>(
        &self,
        cells: usize,
        cell: &impl Fn(usize) -> Option<&'c str>,
    ) -> Result<(LabelledApplicant, Option<f64>), (String, String)> {
        if cells != self.width {
            return Err((
                "record".to_owned(),
                format!("has {cells} cells, the header has {}", self.width),
            ));
        }
        let applicant = dataset::parse_row(self.schema, |field| {
            self.positions[field].map(|at| cell(at).unwrap_or(""))
        })
        .map_err(|error: RecordError| (error.field, error.problem))?;
        let bad = self
            .outcome
            .is_bad(cell(self.outcome.position).unwrap_or(""))?;
        let truth = self
            .truth
            .as_ref()
            .map(|truth| truth.read(cell(truth.position).unwrap_or("")))
            .transpose()?;
        Ok((LabelledApplicant { applicant, bad }, truth))
    }

    fn finish(self, skip_bad_rows: bool) -> Result<TrainingData, DataError> {
        if self.bad > 0 && !skip_bad_rows {
            return Err(DataError::BadRows {
                path: self.origin.to_owned(),
                schema: self.schema.name().to_owned(),
                read: self.read,
                total: self.bad,
                listed: self.listed,
            });
        }
        if self.rows.is_empty() {
            return Err(DataError::NoRows {
                path: self.origin.to_owned(),
                read: self.read,
                skipped: self.bad,
            });
        }
        let bad = self.rows.iter().filter(|row| row.bad).count();
        if bad == 0 || bad == self.rows.len() {
            return Err(DataError::OneOutcome {
                path: self.origin.to_owned(),
                column: self.outcome.column.to_owned(),
                value: self.outcome.bad_text.to_owned(),
                bad,
                good: self.rows.len() - bad,
            });
        }
        Ok(TrainingData {
            rows: self.rows,
            read: self.read,
            skipped: self.bad,
            skipped_rows: self.listed,
            true_probabilities: self.truth.map(|_| self.true_probabilities),
        })
    }
}

/// Reads the column of true probabilities of the bad outcome.
struct TrueProbabilityReader {
    position: usize,
    column: String,
}

impl TrueProbabilityReader {
    fn new(
        schema: &Schema,
        outcome: &Outcome,
        column: &str,
        header: &[&str],
        origin: &str,
    ) -> Result<Self, DataError> {
        let used = |what: String| DataError::TrueProbabilityIsUsed {
            column: column.to_owned(),
            what,
        };
        if column == outcome.column {
            return Err(used("the outcome column".to_owned()));
        }
        if let Some(field) = schema
            .fields()
            .iter()
            .find(|field| field.column == column && field.is_wire())
        {
            return Err(used(format!("the column of field `{}`", field.name)));
        }
        let position = header
            .iter()
            .position(|cell| cell.trim() == column)
            .ok_or_else(|| DataError::NoTrueProbabilityColumn {
                path: origin.to_owned(),
                column: column.to_owned(),
            })?;
        Ok(Self {
            position,
            column: column.to_owned(),
        })
    }

    /// The cell as a probability; anything else is the row's problem.
    fn read(&self, text: &str) -> Result<f64, (String, String)> {
        let problem = |reason: String| (self.column.clone(), reason);
        let text = text.trim();
        if text.is_empty() {
            return Err(problem("the true probability is missing".to_owned()));
        }
        match text.parse::<f64>() {
            Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
            _ => Err(problem(format!(
                "`{text}` is not a probability (a number in [0, 1])"
            ))),
        }
    }
}

/// Reads the outcome column: typed by the schema's field when it has one for that column.
struct OutcomeReader<'a> {
    position: usize,
    column: &'a str,
    /// The field that names the column in bad-row reports.
    name: String,
    /// The schema's (non-wire) field for the column, and its bad value parsed.
    typed: Option<(&'a Field, AttributeValue)>,
    bad_text: &'a str,
}

impl<'a> OutcomeReader<'a> {
    fn new(
        schema: &'a Schema,
        outcome: &'a Outcome,
        header: &[&str],
        origin: &str,
    ) -> Result<Self, DataError> {
        let field = schema
            .fields()
            .iter()
            .find(|field| field.column == outcome.column);
        if let Some(field) = field.filter(|field| field.is_wire()) {
            return Err(DataError::OutcomeIsInput {
                column: outcome.column.clone(),
                field: field.name.clone(),
            });
        }
        let find = |name: &str| header.iter().position(|cell| cell.trim() == name);
        let position = find(&outcome.column)
            .or_else(|| field.and_then(|field| find(&field.name)))
            .ok_or_else(|| DataError::NoOutcomeColumn {
                path: origin.to_owned(),
                column: outcome.column.clone(),
            })?;
        let typed = match field {
            Some(field) if !matches!(field.kind, FieldKind::Text { .. }) => {
                let bad_value = |problem: String| DataError::BadValue {
                    field: field.name.clone(),
                    bad: outcome.bad.clone(),
                    problem,
                };
                match dataset::parse_cell(field, &outcome.bad) {
                    Ok(AttributeValue::Missing) => return Err(bad_value("it is empty".to_owned())),
                    Ok(value) => Some((field, value)),
                    Err(error) => return Err(bad_value(error.problem)),
                }
            }
            _ => None,
        };
        Ok(Self {
            position,
            column: &outcome.column,
            name: field.map_or_else(|| outcome.column.clone(), |field| field.name.clone()),
            typed,
            bad_text: &outcome.bad,
        })
    }

    /// Whether the cell says bad risk; a missing or unknown outcome is the row's problem.
    fn is_bad(&self, text: &str) -> Result<bool, (String, String)> {
        let missing = || (self.name.clone(), "the outcome is missing".to_owned());
        match self.typed {
            Some((field, bad)) => match dataset::parse_cell(field, text) {
                Ok(AttributeValue::Missing) => Err(missing()),
                Ok(value) => Ok(value == bad),
                Err(error) => Err((error.field, error.problem)),
            },
            None if text.trim().is_empty() => Err(missing()),
            None => Ok(text.trim() == self.bad_text.trim()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::schema::german_credit;

    fn shipped_csv() -> String {
        let path =
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("data/german_credit.csv");
        std::fs::read_to_string(path).unwrap()
    }

    /// The header and the first `rows` data rows of the shipped file, `edit` applied to each
    /// data row by its spreadsheet row number.
    fn edited(rows: usize, edit: impl Fn(usize, &str) -> String) -> String {
        let text = shipped_csv();
        let mut lines = text.lines();
        let mut out = vec![lines.next().unwrap().to_owned()];
        for (index, line) in lines.take(rows).enumerate() {
            out.push(edit(index + 2, line));
        }
        out.join("\n") + "\n"
    }

    fn read(text: &str, skip: bool) -> Result<TrainingData, DataError> {
        let schema = german_credit();
        let outcome = OutcomeChoice::default().resolve(&schema).unwrap();
        read_csv(&schema, &outcome, None, text.as_bytes(), "test.csv", skip)
    }

    /// Row 4 borrows for education, row 6 is 53 years old, row 9 is a good risk.
    fn three_bad_rows(row: usize, line: &str) -> String {
        match row {
            4 => line.replacen("education", "yachting", 1),
            6 => line.replacen(",53,", ",530,", 1),
            9 => line.replacen(",good", ",unsure", 1),
            _ => line.to_owned(),
        }
    }

    #[test]
    fn the_shipped_file_reads_as_the_core_reader_reads_it() {
        let data = read(&shipped_csv(), false).unwrap();
        assert_eq!(data.rows, dataset::shipped_german_credit());
        assert_eq!((data.read, data.skipped), (1000, 0));
    }

    #[test]
    fn every_bad_row_is_reported_with_its_row_number_field_and_reason() {
        let text = edited(30, three_bad_rows);
        let error = read(&text, false).unwrap_err();
        let DataError::BadRows {
            read,
            total,
            listed,
            ..
        } = &error
        else {
            panic!("expected bad rows, got {error}");
        };
        assert_eq!((*read, *total), (30, 3));
        let found: Vec<(usize, &str)> = listed.iter().map(|b| (b.row, b.field.as_str())).collect();
        assert_eq!(
            found,
            [(4, "purpose"), (6, "age_years"), (9, "creditability")]
        );
        assert!(listed[0].reason.contains("yachting"), "{:?}", listed[0]);
        assert!(listed[1].reason.contains("530"), "{:?}", listed[1]);
        assert!(listed[2].reason.contains("unsure"), "{:?}", listed[2]);
        let message = error.to_string();
        assert!(message.contains("3 of the 30 rows"), "{message}");
        assert!(
            message.contains("row 6, field `age_years` (column `age_in_years`)"),
            "{message}"
        );
        assert!(message.contains("--skip-bad-rows"), "{message}");
    }

    #[test]
    fn skip_bad_rows_trains_on_the_others_and_counts_the_skipped() {
        let data = read(&edited(30, three_bad_rows), true).unwrap();
        assert_eq!((data.read, data.skipped, data.rows.len()), (30, 3, 27));
        assert_eq!(data.skipped_rows.len(), 3);
        let shipped = dataset::shipped_german_credit();
        let kept: Vec<&LabelledApplicant> = shipped[..30]
            .iter()
            .enumerate()
            .filter(|(index, _)| ![2, 4, 7].contains(index))
            .map(|(_, row)| row)
            .collect();
        assert_eq!(data.rows.iter().collect::<Vec<_>>(), kept);
    }

    #[test]
    fn past_twenty_bad_rows_the_rest_are_counted() {
        let text = edited(50, |_, line| {
            line.replacen(",good", ",", 1).replacen(",bad", ",", 1)
        });
        let error = read(&text, false).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("50 of the 50 rows"), "{message}");
        assert_eq!(
            message.matches("the outcome is missing").count(),
            20,
            "{message}"
        );
        assert!(message.contains("... and 30 more"), "{message}");
    }

    #[test]
    fn a_row_of_the_wrong_width_is_one_bad_row() {
        let text = edited(5, |row, line| {
            if row == 3 {
                line.rsplit_once(',').unwrap().0.to_owned()
            } else {
                line.to_owned()
            }
        });
        let error = read(&text, false).unwrap_err().to_string();
        assert!(
            error.contains("row 3, field `record`: has 20 cells, the header has 21"),
            "{error}"
        );
    }

    #[test]
    fn label_and_bad_value_override_the_schema_and_default_to_it() {
        let schema = german_credit();
        let choice = |column: Option<&str>, bad: Option<&str>| OutcomeChoice {
            column: column.map(str::to_owned),
            bad: bad.map(str::to_owned),
        };
        let declared = Outcome {
            column: "creditability".into(),
            bad: "bad".into(),
        };
        assert_eq!(choice(None, None).resolve(&schema).unwrap(), declared);
        assert_eq!(
            choice(Some("creditability"), None)
                .resolve(&schema)
                .unwrap(),
            declared
        );
        let good = choice(None, Some("good")).resolve(&schema).unwrap();
        assert_eq!(good.bad, "good");
        // With the outcome flipped, the good rows become the bad ones.
        let data = read_csv(
            &schema,
            &good,
            None,
            shipped_csv().as_bytes(),
            "x.csv",
            false,
        )
        .unwrap();
        assert_eq!(data.rows.iter().filter(|row| row.bad).count(), 700);
        assert!(matches!(
            choice(Some("default"), None).resolve(&schema),
            Err(DataError::NoBadValue { .. })
        ));
        let error = read_csv(
            &schema,
            &choice(Some("creditability"), Some("awful"))
                .resolve(&schema)
                .unwrap(),
            None,
            shipped_csv().as_bytes(),
            "x.csv",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("awful"), "{error}");
    }

    /// The shipped schema without its label field.
    fn unlabelled_schema() -> Schema {
        let source = german_credit().source().to_owned();
        let cut = source.find("# The realised outcome").unwrap();
        Schema::parse(&source[..cut], "no-label.toml").unwrap()
    }

    #[test]
    fn a_schema_without_a_label_needs_label_and_bad_value() {
        let schema = unlabelled_schema();
        let error = OutcomeChoice::default().resolve(&schema).unwrap_err();
        assert!(error.to_string().contains("--label"), "{error}");
        let outcome = OutcomeChoice {
            column: Some("creditability".into()),
            bad: Some("bad".into()),
        }
        .resolve(&schema)
        .unwrap();
        let data = read_csv(
            &schema,
            &outcome,
            None,
            shipped_csv().as_bytes(),
            "x.csv",
            false,
        )
        .unwrap();
        assert_eq!(data.rows.iter().filter(|row| row.bad).count(), 300);
    }

    #[test]
    fn an_input_column_cannot_be_the_outcome() {
        let schema = german_credit();
        let outcome = Outcome {
            column: "telephone".into(),
            bad: "none".into(),
        };
        let error = read_csv(
            &schema,
            &outcome,
            None,
            shipped_csv().as_bytes(),
            "x.csv",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("field `telephone`"), "{error}");
    }

    #[test]
    fn a_bad_value_that_matches_no_row_is_refused() {
        let outcome = Outcome {
            column: "creditability".into(),
            bad: "Bad".into(),
        };
        let error = read_csv(
            &unlabelled_schema(),
            &outcome,
            None,
            shipped_csv().as_bytes(),
            "x.csv",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("0 rows whose outcome"), "{error}");
    }

    /// The shipped file as Parquet: `purpose` dictionary-encoded, whole-number columns as
    /// integers, the rest as text; `null_at` (data row, column) holds a null instead.
    fn shipped_parquet(path: &Path, null_at: Option<(usize, &str)>) {
        use arrow_array::{ArrayRef, DictionaryArray, Int64Array, RecordBatch, StringArray};
        let mut csv = csv::Reader::from_reader(std::io::Cursor::new(shipped_csv()));
        let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
        let records: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        let columns = header.iter().enumerate().map(|(at, name)| {
            let cells: Vec<Option<&str>> = records
                .iter()
                .enumerate()
                .map(|(row, record)| match null_at {
                    Some((null_row, column)) if null_row == row && column == name => None,
                    _ => record.get(at),
                })
                .collect();
            let array: ArrayRef = if name == "purpose" {
                std::sync::Arc::new(cells.into_iter().collect::<DictionaryArray<Int32Type>>())
            } else if cells
                .iter()
                .flatten()
                .all(|cell| cell.parse::<i64>().is_ok())
            {
                std::sync::Arc::new(
                    cells
                        .into_iter()
                        .map(|cell| cell.map(|c| c.parse::<i64>().unwrap()))
                        .collect::<Int64Array>(),
                )
            } else {
                std::sync::Arc::new(cells.into_iter().collect::<StringArray>())
            };
            (name.clone(), array)
        });
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_parquet_file_reads_as_the_csv_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("german.parquet");
        shipped_parquet(&path, None);
        let schema = german_credit();
        let outcome = Outcome::of(&schema).unwrap();
        let data = load(&schema, &outcome, None, &path, false).unwrap();
        assert_eq!(data.rows, dataset::shipped_german_credit());
        assert_eq!((data.read, data.skipped), (1000, 0));
    }

    #[test]
    fn a_null_in_a_required_parquet_column_is_a_bad_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("german.parquet");
        // The fifth data row.
        shipped_parquet(&path, Some((4, "age_in_years")));
        let schema = german_credit();
        let outcome = Outcome::of(&schema).unwrap();
        let error = load(&schema, &outcome, None, &path, false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("row 5, field `age_years` (column `age_in_years`)"),
            "{error}"
        );
        let data = load(&schema, &outcome, None, &path, true).unwrap();
        assert_eq!((data.read, data.skipped, data.rows.len()), (1000, 1, 999));
    }

    fn retail_schema() -> Schema {
        Schema::load(
            &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("schemas/retail-loan.toml"),
        )
        .unwrap()
    }

    /// The header and the first `rows` rows of the synthetic retail loan book, with its
    /// `true_pd` column, `edit` applied to each data row by its spreadsheet row number.
    fn retail_book(rows: usize, edit: impl Fn(usize, &str) -> String) -> String {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("data/retail_loan_book.csv");
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let mut out = vec![lines.next().unwrap().to_owned()];
        for (index, line) in lines.take(rows).enumerate() {
            out.push(edit(index + 2, line));
        }
        out.join("\n") + "\n"
    }

    fn read_retail(text: &str, column: &str, skip: bool) -> Result<TrainingData, DataError> {
        let schema = retail_schema();
        let outcome = Outcome::of(&schema).unwrap();
        read_csv(
            &schema,
            &outcome,
            Some(column),
            text.as_bytes(),
            "book.csv",
            skip,
        )
    }

    /// The last cell of each data row, as written.
    fn last_cells(text: &str) -> Vec<f64> {
        text.lines()
            .skip(1)
            .map(|line| line.rsplit(',').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn the_true_probability_of_each_row_is_read_in_row_order() {
        let text = retail_book(40, |_, line| line.to_owned());
        let data = read_retail(&text, "true_pd", false).unwrap();
        assert_eq!(data.rows.len(), 40);
        assert_eq!(data.true_probabilities, Some(last_cells(&text)));
        let without = read_csv(
            &retail_schema(),
            &Outcome::of(&retail_schema()).unwrap(),
            None,
            text.as_bytes(),
            "book.csv",
            false,
        )
        .unwrap();
        assert_eq!(
            (without.rows, without.true_probabilities),
            (data.rows, None)
        );
    }

    /// Row 3's true probability is above one, row 5's is text, row 8's is empty.
    fn three_bad_probabilities(row: usize, line: &str) -> String {
        let (rest, _) = line.rsplit_once(',').unwrap();
        match row {
            3 => format!("{rest},1.5"),
            5 => format!("{rest},high"),
            8 => format!("{rest},"),
            _ => line.to_owned(),
        }
    }

    #[test]
    fn a_true_probability_that_is_not_in_zero_to_one_is_a_bad_row() {
        let text = retail_book(20, three_bad_probabilities);
        let error = read_retail(&text, "true_pd", false).unwrap_err();
        let DataError::BadRows { total, listed, .. } = &error else {
            panic!("expected bad rows, got {error}");
        };
        assert_eq!(*total, 3);
        let found: Vec<(usize, &str, &str)> = listed
            .iter()
            .map(|b| (b.row, b.field.as_str(), b.reason.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    3,
                    "true_pd",
                    "`1.5` is not a probability (a number in [0, 1])"
                ),
                (
                    5,
                    "true_pd",
                    "`high` is not a probability (a number in [0, 1])"
                ),
                (8, "true_pd", "the true probability is missing"),
            ]
        );
    }

    #[test]
    fn skipped_rows_take_their_true_probabilities_with_them() {
        let text = retail_book(20, three_bad_probabilities);
        let data = read_retail(&text, "true_pd", true).unwrap();
        assert_eq!((data.read, data.skipped, data.rows.len()), (20, 3, 17));
        let kept: Vec<f64> = last_cells(&retail_book(20, |_, line| line.to_owned()))
            .into_iter()
            .enumerate()
            .filter(|(index, _)| ![1, 3, 6].contains(index))
            .map(|(_, value)| value)
            .collect();
        assert_eq!(data.true_probabilities, Some(kept));
    }

    #[test]
    fn the_true_probability_column_must_exist_and_be_no_input_or_outcome() {
        let text = retail_book(5, |_, line| line.to_owned());
        let error = read_retail(&text, "pd", false).unwrap_err().to_string();
        assert_eq!(
            error,
            "data file book.csv has no true-probability column `pd`"
        );
        let error = read_retail(&text, "debt_to_income", false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the column of field `debt_to_income`"),
            "{error}"
        );
        let error = read_retail(&text, "defaulted", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is the outcome column"), "{error}");
    }
}

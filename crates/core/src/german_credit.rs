//! Loading the German Credit CSV (data/german_credit.csv, CC BY 4.0, see data/README.md).
//!
//! The file spells categorical values with the code book's labels (`... < 0 DM`); this is the
//! only place that knows them. Rows become [`Applicant`]s plus a `bad` label, so everything
//! downstream sees the same schema the worker receives over Kafka.

use crate::applicant::{
    Applicant, AttributeKind, AttributeValue, RecordError, RecordErrorKind, ATTRIBUTES,
};
use std::io::Read;
use std::path::Path;

/// Name of the label column, whose values are `good` and `bad`.
pub const LABEL_COLUMN: &str = "creditability";

/// An applicant with the realised outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelledApplicant {
    pub applicant: Applicant,
    /// `true` when the applicant turned out a bad credit risk.
    pub bad: bool,
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
    #[error("data set header lacks column `{0}`")]
    MissingColumn(String),
    #[error("data set row {row}: {source}")]
    Row { row: usize, source: RecordError },
    #[error("data set has no rows")]
    Empty,
}

/// Reads the data set from a file.
pub fn load(path: &Path) -> Result<Vec<LabelledApplicant>, DatasetError> {
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Open {
        path: path.display().to_string(),
        source,
    })?;
    read(file)
}

/// Reads the data set from any reader (header row first).
pub fn read(reader: impl Read) -> Result<Vec<LabelledApplicant>, DatasetError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers = csv.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .ok_or_else(|| DatasetError::MissingColumn(name.to_string()))
    };
    let mut positions = [0usize; 20];
    for (position, spec) in positions.iter_mut().zip(ATTRIBUTES.iter()) {
        *position = column(spec.dataset_column)?;
    }
    let label_position = column(LABEL_COLUMN)?;

    let mut rows = Vec::new();
    for (index, record) in csv.records().enumerate() {
        let record = record?;
        // Row numbers as a spreadsheet shows them: the header is row 1.
        let row = index + 2;
        let field = |position: usize| record.get(position).unwrap_or("");
        let applicant = parse_row(|i| field(positions[i]))
            .map_err(|source| DatasetError::Row { row, source })?;
        let bad = match field(label_position) {
            "bad" => true,
            "good" => false,
            other => {
                return Err(DatasetError::Row {
                    row,
                    source: RecordError::new(
                        RecordErrorKind::UnknownCategory,
                        LABEL_COLUMN,
                        format!("`{other}` is not a label, expected `good` or `bad`"),
                    ),
                })
            }
        };
        rows.push(LabelledApplicant { applicant, bad });
    }
    if rows.is_empty() {
        return Err(DatasetError::Empty);
    }
    Ok(rows)
}

/// Parses one row given the raw text of each attribute, in [`ATTRIBUTES`] order.
///
/// Categorical columns accept the code book's label or the JSON wire name, so the same loader
/// reads both the original file and files written with the schema's names.
pub fn parse_row<'a>(text_of: impl Fn(usize) -> &'a str) -> Result<Applicant, RecordError> {
    let mut values = [AttributeValue::Numeric(0.0); 20];
    for (index, spec) in ATTRIBUTES.iter().enumerate() {
        let text = text_of(index).trim();
        values[index] = match spec.kind {
            AttributeKind::Numeric { min, max } => {
                let number: u32 = text.parse().map_err(|_| {
                    RecordError::new(
                        RecordErrorKind::WrongType,
                        spec.name,
                        format!("`{text}` is not an integer from {min} to {max}"),
                    )
                })?;
                AttributeValue::Numeric(f64::from(number))
            }
            AttributeKind::Categorical { values } => {
                let position = values
                    .iter()
                    .position(|wire| *wire == text)
                    .or_else(|| dataset_label_index(index, text))
                    .ok_or_else(|| {
                        RecordError::new(
                            RecordErrorKind::UnknownCategory,
                            spec.name,
                            format!(
                                "unknown value `{text}`, expected one of: {}",
                                values.join(", ")
                            ),
                        )
                    })?;
                AttributeValue::Categorical(position)
            }
        };
    }
    Applicant::from_attribute_values(&values)
}

/// Index of the categorical value whose code-book label is `label`, for attribute `attribute`.
fn dataset_label_index(attribute: usize, label: &str) -> Option<usize> {
    use crate::applicant::*;
    fn find<T: Categorical>(label: &str) -> Option<usize> {
        T::from_dataset_label(label).map(Categorical::index)
    }
    match ATTRIBUTES[attribute].name {
        "checking_account" => find::<CheckingAccount>(label),
        "credit_history" => find::<CreditHistory>(label),
        "purpose" => find::<Purpose>(label),
        "savings" => find::<Savings>(label),
        "employment_since" => find::<EmploymentSince>(label),
        "personal_status_sex" => find::<PersonalStatusSex>(label),
        "other_debtors" => find::<OtherDebtors>(label),
        "property" => find::<Property>(label),
        "other_installment_plans" => find::<OtherInstallmentPlans>(label),
        "housing" => find::<Housing>(label),
        "job" => find::<Job>(label),
        "telephone" => find::<Telephone>(label),
        "foreign_worker" => find::<ForeignWorker>(label),
        _ => None,
    }
}

/// The applicants of the data set shipped in `data/`, for unit tests across the crate.
#[cfg(test)]
pub fn shipped_applicants() -> Vec<Applicant> {
    load(&Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("data/german_credit.csv"))
        .expect("the shipped data set loads")
        .into_iter()
        .map(|row| row.applicant)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applicant::{CheckingAccount, Purpose, Telephone};

    fn shipped() -> Vec<LabelledApplicant> {
        load(
            &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("data/german_credit.csv"),
        )
        .unwrap()
    }

    #[test]
    fn shipped_data_set_has_700_good_and_300_bad() {
        let rows = shipped();
        assert_eq!(rows.len(), 1000);
        assert_eq!(rows.iter().filter(|row| row.bad).count(), 300);
    }

    #[test]
    fn first_row_maps_code_book_labels_to_schema_values() {
        let first = shipped()[0];
        assert!(!first.bad);
        assert_eq!(first.applicant.checking_account, CheckingAccount::Below0Dm);
        assert_eq!(first.applicant.purpose, Purpose::RadioTelevision);
        assert_eq!(first.applicant.telephone, Telephone::Registered);
        assert_eq!(first.applicant.credit_amount_dm, 1169);
        assert_eq!(first.applicant.age_years, 67);
    }

    #[test]
    fn bad_row_error_names_row_and_field() {
        let text = std::fs::read_to_string(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("data/german_credit.csv"),
        )
        .unwrap();
        // Data row 3 (spreadsheet row 4) is the first applicant borrowing for education.
        let mut lines: Vec<String> = text.lines().take(4).map(str::to_string).collect();
        assert!(lines[3].contains("education"));
        lines[3] = lines[3].replacen("education", "yachting", 1);
        let error = read(lines.join("\n").as_bytes()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("row 4"), "{message}");
        assert!(message.contains("purpose"), "{message}");
        assert!(message.contains("yachting"), "{message}");
    }

    #[test]
    fn missing_column_is_named() {
        let error = read("a,b\n1,2\n".as_bytes()).unwrap_err();
        assert!(error
            .to_string()
            .contains("status_of_existing_checking_account"));
    }
}

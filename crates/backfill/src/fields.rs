//! The applicant's 20 attributes as the backfill's files spell them.
//!
//! Input files may use either the schema's JSON field names and wire values (`checking_account`,
//! `below_0_dm`) or the German Credit file's column names and code-book labels
//! (`status_of_existing_checking_account`, `... < 0 DM`), so that historical extracts in either
//! layout can be replayed. Output always uses the schema's names and wire values, the form the
//! worker publishes. The optional columns `application_id` and `creditability` (`good`/`bad`,
//! the realised outcome) are handled here too.

use credit_core::applicant::{
    Applicant, AttributeKind, AttributeValue, Categorical, CheckingAccount, CreditHistory,
    EmploymentSince, ForeignWorker, Housing, Job, OtherDebtors, OtherInstallmentPlans,
    PersonalStatusSex, Property, Purpose, RecordError, RecordErrorKind, Savings, Telephone,
    ATTRIBUTES,
};
use credit_core::german_credit::LABEL_COLUMN;

/// Column holding the application's identifier.
pub(crate) const ID_COLUMN: &str = "application_id";
/// Column holding the realised outcome (`good` or `bad`).
pub(crate) const OUTCOME_COLUMN: &str = LABEL_COLUMN;

/// One attribute's value, ready to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValue {
    /// A categorical value's wire name or code-book label.
    Text(&'static str),
    /// A numeric value.
    Number(u32),
}

/// The applicant's attributes with wire names for categoricals, in schema order.
pub(crate) fn wire_fields(applicant: &Applicant) -> [FieldValue; 20] {
    fields(applicant, |_, values, index| values[index])
}

/// The applicant's attributes with code-book labels for categoricals, in schema order (the
/// German Credit file's own spelling).
pub(crate) fn dataset_fields(applicant: &Applicant) -> [FieldValue; 20] {
    fields(applicant, |attribute, _, index| {
        dataset_label(attribute, index).unwrap_or("")
    })
}

fn fields(
    applicant: &Applicant,
    text: impl Fn(usize, &'static [&'static str], usize) -> &'static str,
) -> [FieldValue; 20] {
    let values = applicant.attribute_values();
    let mut out = [FieldValue::Number(0); 20];
    for (attribute, (slot, value)) in out.iter_mut().zip(values).enumerate() {
        *slot = match (ATTRIBUTES[attribute].kind, value) {
            (AttributeKind::Categorical { values }, AttributeValue::Categorical(index)) => {
                FieldValue::Text(text(attribute, values, index))
            }
            (_, AttributeValue::Numeric(number)) => FieldValue::Number(number as u32),
            // The table and the struct are generated from one list; this cannot happen.
            (_, AttributeValue::Categorical(index)) => FieldValue::Number(index as u32),
        };
    }
    out
}

/// The code-book label of category `index` of attribute `attribute`.
pub(crate) fn dataset_label(attribute: usize, index: usize) -> Option<&'static str> {
    fn label<T: Categorical>(index: usize) -> Option<&'static str> {
        T::from_index(index).map(Categorical::dataset_label)
    }
    match ATTRIBUTES.get(attribute)?.name {
        "checking_account" => label::<CheckingAccount>(index),
        "credit_history" => label::<CreditHistory>(index),
        "purpose" => label::<Purpose>(index),
        "savings" => label::<Savings>(index),
        "employment_since" => label::<EmploymentSince>(index),
        "personal_status_sex" => label::<PersonalStatusSex>(index),
        "other_debtors" => label::<OtherDebtors>(index),
        "property" => label::<Property>(index),
        "other_installment_plans" => label::<OtherInstallmentPlans>(index),
        "housing" => label::<Housing>(index),
        "job" => label::<Job>(index),
        "telephone" => label::<Telephone>(index),
        "foreign_worker" => label::<ForeignWorker>(index),
        _ => None,
    }
}

/// Parses one categorical attribute from its wire name or code-book label.
pub(crate) fn category(attribute: usize, text: &str) -> Result<AttributeValue, RecordError> {
    let spec = &ATTRIBUTES[attribute];
    let AttributeKind::Categorical { values } = spec.kind else {
        return Err(RecordError::new(
            RecordErrorKind::WrongType,
            spec.name,
            "expected a number",
        ));
    };
    let text = text.trim();
    values
        .iter()
        .position(|wire| *wire == text)
        .or_else(|| (0..values.len()).find(|&i| dataset_label(attribute, i) == Some(text)))
        .map(AttributeValue::Categorical)
        .ok_or_else(|| {
            RecordError::new(
                RecordErrorKind::UnknownCategory,
                spec.name,
                format!(
                    "unknown value `{text}`, expected one of: {}",
                    values.join(", ")
                ),
            )
        })
}

/// Checks one integer attribute value (range checks happen when the applicant is built).
pub(crate) fn number(attribute: usize, value: i64) -> Result<AttributeValue, RecordError> {
    let spec = &ATTRIBUTES[attribute];
    match spec.kind {
        AttributeKind::Numeric { .. } if (0..=i64::from(u32::MAX)).contains(&value) => {
            Ok(AttributeValue::Numeric(value as f64))
        }
        AttributeKind::Numeric { min, max } => Err(RecordError::new(
            RecordErrorKind::OutOfRange,
            spec.name,
            format!("value {value} is out of range, expected an integer from {min} to {max}"),
        )),
        AttributeKind::Categorical { .. } => Err(RecordError::new(
            RecordErrorKind::WrongType,
            spec.name,
            format!("expected a category, got the number {value}"),
        )),
    }
}

/// Parses the outcome column: `good`/`bad` (also `0`/`1` and `false`/`true` for "is bad");
/// an empty cell means unknown.
pub(crate) fn outcome(text: &str) -> Result<Option<bool>, RecordError> {
    match text.trim() {
        "" => Ok(None),
        "bad" | "1" | "true" => Ok(Some(true)),
        "good" | "0" | "false" => Ok(Some(false)),
        other => Err(RecordError::new(
            RecordErrorKind::UnknownCategory,
            OUTCOME_COLUMN,
            format!("`{other}` is not an outcome, expected `good` or `bad`"),
        )),
    }
}

/// The outcome's text form.
pub(crate) fn outcome_text(bad: bool) -> &'static str {
    if bad {
        "bad"
    } else {
        "good"
    }
}

/// Index of attribute `attribute`'s column among `headers`, by JSON name or data-set name.
pub(crate) fn attribute_column<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    attribute: usize,
) -> Option<usize> {
    let spec = &ATTRIBUTES[attribute];
    headers
        .into_iter()
        .position(|header| header.trim() == spec.name || header.trim() == spec.dataset_column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_parse_from_wire_names_and_labels() {
        assert_eq!(
            category(0, "below_0_dm").unwrap(),
            AttributeValue::Categorical(0)
        );
        assert_eq!(
            category(0, "no checking account").unwrap(),
            AttributeValue::Categorical(3)
        );
        let error = category(3, "yacht").unwrap_err();
        assert_eq!(error.field, "purpose");
        assert!(error.problem.contains("car_new"));
    }

    #[test]
    fn every_label_round_trips() {
        for (attribute, spec) in ATTRIBUTES.iter().enumerate() {
            if let AttributeKind::Categorical { values } = spec.kind {
                for index in 0..values.len() {
                    let label = dataset_label(attribute, index).unwrap();
                    assert_eq!(
                        category(attribute, label).unwrap(),
                        AttributeValue::Categorical(index)
                    );
                }
            }
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome("bad").unwrap(), Some(true));
        assert_eq!(outcome("good").unwrap(), Some(false));
        assert_eq!(outcome(" ").unwrap(), None);
        assert_eq!(outcome("maybe").unwrap_err().field, "creditability");
    }

    #[test]
    fn negative_number_is_rejected_with_range() {
        let error = number(1, -3).unwrap_err();
        assert_eq!(error.field, "duration_months");
        assert!(error.problem.contains("1 to 120"));
    }
}

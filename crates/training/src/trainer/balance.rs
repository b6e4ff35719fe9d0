//! Class balancing of the training split: SMOTE-NC or class weights.
//!
//! Only ever applied to the training rows. Oversampling before the split (as many published
//! notebooks on this data set do) puts synthetic neighbours of test applicants into training and
//! makes test scores look better than any real applicant will see.

use crate::smote::{MixedRow, SmoteError, SmoteNc};
use credit_core::applicant::{Applicant, AttributeValue, RecordError};
use credit_core::german_credit::LabelledApplicant;
use serde::{Deserialize, Serialize};

/// How the training split's 70:30 imbalance is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Balancing {
    /// SMOTE-NC: synthetic bad applicants until both classes are equal (the original study's
    /// choice, in the variant that keeps categorical attributes valid).
    Smote,
    /// No synthetic rows; bad rows weigh `good / bad` in the loss.
    ClassWeights,
    /// Neither.
    None,
}

/// Why balancing failed.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("SMOTE-NC failed: {0}")]
    Smote(#[from] SmoteError),
    #[error("SMOTE-NC produced an invalid applicant: {0}")]
    Invalid(#[from] RecordError),
}

/// Splits an applicant into SMOTE-NC's numeric and categorical parts.
pub(crate) fn to_mixed_row(applicant: &Applicant) -> MixedRow {
    let mut row = MixedRow {
        numeric: Vec::with_capacity(7),
        categorical: Vec::with_capacity(13),
    };
    for value in applicant.attribute_values() {
        match value {
            AttributeValue::Numeric(number) => row.numeric.push(number),
            AttributeValue::Categorical(index) => row.categorical.push(index),
        }
    }
    row
}

/// Rebuilds an applicant from a (possibly synthetic) mixed row; numeric values are rounded to
/// the schema's integers.
pub(crate) fn from_mixed_row(
    row: &MixedRow,
    template: &Applicant,
) -> Result<Applicant, RecordError> {
    let mut numeric = row.numeric.iter();
    let mut categorical = row.categorical.iter();
    let mut values = template.attribute_values();
    for value in values.iter_mut() {
        match value {
            AttributeValue::Numeric(number) => {
                *number = numeric.next().copied().unwrap_or(*number).round();
            }
            AttributeValue::Categorical(index) => {
                *index = categorical.next().copied().unwrap_or(*index);
            }
        }
    }
    Applicant::from_attribute_values(&values)
}

/// The training rows plus SMOTE-NC's synthetic bad rows, so both classes are equally many.
pub(crate) fn smote_nc(
    rows: &[LabelledApplicant],
    k_neighbours: usize,
    seed: u64,
) -> Result<Vec<LabelledApplicant>, BalanceError> {
    let good = rows.iter().filter(|row| !row.bad).count();
    let minority: Vec<&LabelledApplicant> = rows.iter().filter(|row| row.bad).collect();
    let mixed: Vec<MixedRow> = minority
        .iter()
        .map(|row| to_mixed_row(&row.applicant))
        .collect();
    let synthetic = SmoteNc { k_neighbours, seed }.oversample(&mixed, good)?;
    let mut balanced = rows.to_vec();
    for row in &synthetic {
        // The template only supplies the attribute kinds; every value is overwritten.
        let applicant = from_mixed_row(row, &minority[0].applicant)?;
        balanced.push(LabelledApplicant {
            applicant,
            bad: true,
        });
    }
    Ok(balanced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::german_credit;
    use std::path::Path;

    fn rows() -> Vec<LabelledApplicant> {
        german_credit::load(
            &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("data/german_credit.csv"),
        )
        .unwrap()
    }

    #[test]
    fn mixed_row_round_trip_is_identity() {
        for row in rows().iter().take(50) {
            let mixed = to_mixed_row(&row.applicant);
            assert_eq!(mixed.numeric.len(), 7);
            assert_eq!(mixed.categorical.len(), 13);
            assert_eq!(
                from_mixed_row(&mixed, &row.applicant).unwrap(),
                row.applicant
            );
        }
    }

    #[test]
    fn smote_nc_equalises_classes_with_valid_bad_applicants() {
        let original = rows();
        let balanced = smote_nc(&original[..300], 5, 7).unwrap();
        let good = balanced.iter().filter(|r| !r.bad).count();
        let bad = balanced.iter().filter(|r| r.bad).count();
        assert_eq!(good, bad);
        assert_eq!(&balanced[..300], &original[..300]);
        for row in &balanced[300..] {
            assert!(row.bad);
            row.applicant.validate().unwrap();
        }
    }

    #[test]
    fn smote_nc_is_deterministic_for_a_seed() {
        let original = rows();
        assert_eq!(
            smote_nc(&original[..200], 5, 1).unwrap(),
            smote_nc(&original[..200], 5, 1).unwrap()
        );
    }
}

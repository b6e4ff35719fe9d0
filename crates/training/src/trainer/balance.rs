//! Class balancing of the training split: SMOTE-NC or class weights.
//!
//! Only ever applied to the training rows. Oversampling before the split (as many published
//! notebooks on this data set do) puts synthetic neighbours of test applicants into training and
//! makes test scores look better than any real applicant will see.

use crate::smote::{MixedRow, SmoteError, SmoteNc, Standardise};
use credit_core::applicant::{Applicant, AttributeValue, RecordError};
use credit_core::dataset::LabelledApplicant;
use credit_core::schema::{Field, FieldKind, Schema};
use serde::{Deserialize, Serialize};

/// How the training split's class imbalance (70:30 in German Credit) is handled.
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

/// SMOTE-NC's level for a missing categorical value: a level of its own, after every real one.
const MISSING_LEVEL: usize = usize::MAX;

/// Whether SMOTE-NC sees `field`, and as what: every value producers send, so a synthetic
/// applicant has each field a real one has; the key and the label stay missing.
fn part(field: &Field) -> Option<Part> {
    if !field.is_wire() {
        return None;
    }
    match field.kind {
        FieldKind::Category { .. } | FieldKind::Boolean => Some(Part::Categorical),
        FieldKind::Integer { .. } | FieldKind::Number { .. } => Some(Part::Numeric),
        FieldKind::Text { .. } => None,
    }
}

#[derive(Clone, Copy)]
enum Part {
    Numeric,
    Categorical,
}

/// Splits an applicant into SMOTE-NC's numeric and categorical parts, in schema order.
pub(crate) fn to_mixed_row(schema: &Schema, applicant: &Applicant) -> MixedRow {
    let mut row = MixedRow {
        numeric: Vec::new(),
        categorical: Vec::new(),
    };
    for (field, value) in schema.fields().iter().zip(applicant.values()) {
        match (part(field), *value) {
            (Some(Part::Numeric), AttributeValue::Numeric(number)) => {
                row.numeric.push(Some(number))
            }
            (Some(Part::Numeric), _) => row.numeric.push(None),
            (Some(Part::Categorical), AttributeValue::Categorical(index)) => {
                row.categorical.push(index)
            }
            (Some(Part::Categorical), _) => row.categorical.push(MISSING_LEVEL),
            (None, _) => {}
        }
    }
    row
}

/// Rebuilds an applicant from a (possibly synthetic) mixed row; integer values are rounded and
/// every value checked against the schema.
pub(crate) fn from_mixed_row(schema: &Schema, row: &MixedRow) -> Result<Applicant, RecordError> {
    let mut numeric = row.numeric.iter();
    let mut categorical = row.categorical.iter();
    let values = schema
        .fields()
        .iter()
        .map(|field| match part(field) {
            Some(Part::Numeric) => numeric
                .next()
                .copied()
                .flatten()
                .map_or(AttributeValue::Missing, AttributeValue::Numeric),
            Some(Part::Categorical) => match categorical.next() {
                Some(&index) if index != MISSING_LEVEL => AttributeValue::Categorical(index),
                _ => AttributeValue::Missing,
            },
            None => AttributeValue::Missing,
        })
        .collect();
    Applicant::from_values(schema, values)
}

/// Each numeric part's mean and standard deviation (population) over `rows`' present values;
/// a constant or absent one gets 1, so it neither divides by zero nor is stretched.
fn standardisation(rows: &[MixedRow]) -> Vec<Standardise> {
    let attributes = rows.first().map_or(0, |row| row.numeric.len());
    (0..attributes)
        .map(|a| {
            let present: Vec<f64> = rows.iter().filter_map(|row| row.numeric[a]).collect();
            let n = present.len().max(1) as f64;
            let mean = present.iter().sum::<f64>() / n;
            let variance = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let std = variance.sqrt();
            Standardise {
                mean,
                std: if std > 0.0 && std.is_finite() {
                    std
                } else {
                    1.0
                },
            }
        })
        .collect()
}

/// The minority rows as SMOTE-NC's rows, and the standardisation of every training row's
/// numerics.
fn minority_and_scales(
    schema: &Schema,
    rows: &[LabelledApplicant],
) -> (Vec<MixedRow>, Vec<Standardise>) {
    let all: Vec<MixedRow> = rows
        .iter()
        .map(|row| to_mixed_row(schema, &row.applicant))
        .collect();
    let scales = standardisation(&all);
    let minority = all
        .into_iter()
        .zip(rows)
        .filter(|(_, row)| row.bad)
        .map(|(mixed, _)| mixed)
        .collect();
    (minority, scales)
}

/// The training rows plus SMOTE-NC's synthetic bad rows, so both classes are equally many.
/// Neighbours are found on numerics standardised with the training rows' means and standard
/// deviations.
pub(crate) fn smote_nc(
    schema: &Schema,
    rows: &[LabelledApplicant],
    k_neighbours: usize,
    seed: u64,
) -> Result<Vec<LabelledApplicant>, BalanceError> {
    let good = rows.iter().filter(|row| !row.bad).count();
    let (mixed, scales) = minority_and_scales(schema, rows);
    let synthetic =
        SmoteNc { k_neighbours, seed }.oversample_scaled(&mixed, good, Some(&scales))?;
    let mut balanced = rows.to_vec();
    for row in &synthetic {
        balanced.push(LabelledApplicant {
            applicant: from_mixed_row(schema, row)?,
            bad: true,
        });
    }
    Ok(balanced)
}

/// One field's part in SMOTE-NC's neighbour choice, on unscaled and on standardised numerics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldNeighbourMix {
    pub field: String,
    /// Share of the summed squared distance to the chosen neighbours.
    pub share_unscaled: f64,
    pub share_scaled: f64,
    /// Share of (row, neighbour) pairs with the same value.
    pub same_value_unscaled: f64,
    pub same_value_scaled: f64,
}

/// What decides SMOTE-NC's neighbours among `rows`' bad rows (`k` each), before and after
/// standardising the numerics; numeric fields first, then categorical ones.
pub(crate) fn neighbour_mix(
    schema: &Schema,
    rows: &[LabelledApplicant],
    k_neighbours: usize,
) -> Result<Vec<FieldNeighbourMix>, BalanceError> {
    let (minority, scales) = minority_and_scales(schema, rows);
    let unscaled = crate::smote::neighbour_mix(&minority, k_neighbours, None)?;
    let scaled = crate::smote::neighbour_mix(&minority, k_neighbours, Some(&scales))?;
    let fields = schema
        .fields()
        .iter()
        .filter(|field| matches!(part(field), Some(Part::Numeric)))
        .chain(
            schema
                .fields()
                .iter()
                .filter(|field| matches!(part(field), Some(Part::Categorical))),
        );
    Ok(fields
        .enumerate()
        .map(|(i, field)| FieldNeighbourMix {
            field: field.name.clone(),
            share_unscaled: unscaled.share_of_distance[i],
            share_scaled: scaled.share_of_distance[i],
            same_value_unscaled: unscaled.same_value[i],
            same_value_scaled: scaled.same_value[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dataset::shipped_german_credit;
    use credit_core::schema::german_credit;

    #[test]
    fn mixed_row_round_trip_is_identity() {
        let schema = german_credit();
        for row in shipped_german_credit().iter().take(50) {
            let mixed = to_mixed_row(&schema, &row.applicant);
            assert_eq!(mixed.numeric.len(), 7);
            assert_eq!(mixed.categorical.len(), 13);
            assert_eq!(from_mixed_row(&schema, &mixed).unwrap(), row.applicant);
        }
    }

    #[test]
    fn smote_nc_equalises_classes_with_valid_bad_applicants() {
        let schema = german_credit();
        let original = shipped_german_credit();
        let balanced = smote_nc(&schema, &original[..300], 5, 7).unwrap();
        let good = balanced.iter().filter(|r| !r.bad).count();
        let bad = balanced.iter().filter(|r| r.bad).count();
        assert_eq!(good, bad);
        assert_eq!(&balanced[..300], &original[..300]);
        for row in &balanced[300..] {
            assert!(row.bad);
            let values = row.applicant.values().to_vec();
            assert_eq!(
                Applicant::from_values(&schema, values).unwrap(),
                row.applicant
            );
        }
    }

    #[test]
    fn standardised_numerics_stop_the_credit_amount_deciding_every_neighbour() {
        let schema = german_credit();
        let mix = neighbour_mix(&schema, &shipped_german_credit(), 5).unwrap();
        let amount = mix
            .iter()
            .find(|field| field.field == "credit_amount_dm")
            .unwrap();
        assert!(amount.share_unscaled > 0.9, "{amount:?}");
        assert!(amount.share_scaled < 0.5, "{amount:?}");
        let categorical: f64 = mix.iter().skip(7).map(|field| field.share_scaled).sum();
        assert!(categorical > 0.3, "{mix:?}");
    }

    #[test]
    fn smote_nc_is_deterministic_for_a_seed() {
        let schema = german_credit();
        let original = shipped_german_credit();
        assert_eq!(
            smote_nc(&schema, &original[..200], 5, 1).unwrap(),
            smote_nc(&schema, &original[..200], 5, 1).unwrap()
        );
    }

    /// A lender's schema with an optional number, an optional category and a non-integer one.
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
            required = false
            [[field]]
            name = "ratio"
            label = "Ratio"
            type = "number"
            min = 0
            max = 1
            [[field]]
            name = "home"
            label = "Home"
            type = "category"
            required = false
            categories = [{ value = "rent", label = "Rent" }, { value = "own", label = "Own" }]
            [[field]]
            name = "outcome"
            label = "Outcome"
            type = "category"
            role = "label"
            bad = "bad"
            categories = [{ value = "good", label = "Good" }, { value = "bad", label = "Bad" }]
            "#,
            "optional.toml",
        )
        .unwrap()
    }

    #[test]
    fn smote_nc_keeps_or_copies_missing_values_and_does_not_round_numbers() {
        let schema = optional_schema();
        let value = |income: Option<f64>, ratio: f64, home: Option<usize>| {
            let values = vec![
                income.map_or(AttributeValue::Missing, AttributeValue::Numeric),
                AttributeValue::Numeric(ratio),
                home.map_or(AttributeValue::Missing, AttributeValue::Categorical),
                AttributeValue::Missing,
            ];
            Applicant::from_values(&schema, values).unwrap()
        };
        let mut rows: Vec<LabelledApplicant> = (0..20)
            .map(|i| LabelledApplicant {
                applicant: value(Some(1000.0 * f64::from(i)), 0.5, Some(i as usize % 2)),
                bad: false,
            })
            .collect();
        for (income, ratio, home) in [
            (None, 0.11, None),
            (Some(5000.0), 0.23, Some(1)),
            (None, 0.37, Some(0)),
            (Some(9000.0), 0.41, None),
        ] {
            rows.push(LabelledApplicant {
                applicant: value(income, ratio, home),
                bad: true,
            });
        }
        let balanced = smote_nc(&schema, &rows, 3, 11).unwrap();
        assert_eq!(balanced.len(), 40);
        let synthetic = &balanced[24..];
        let income = |row: &LabelledApplicant| row.applicant.values()[0];
        assert!(synthetic
            .iter()
            .any(|r| income(r) == AttributeValue::Missing));
        assert!(synthetic
            .iter()
            .any(|r| matches!(income(r), AttributeValue::Numeric(_))));
        // A number is interpolated as is: rounding would make every ratio 0.
        assert!(synthetic.iter().all(|r| matches!(
            r.applicant.values()[1],
            AttributeValue::Numeric(ratio) if (0.11..=0.41).contains(&ratio)
        )));
        for row in synthetic {
            assert_eq!(row.applicant.values()[3], AttributeValue::Missing);
        }
    }
}

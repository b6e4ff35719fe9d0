//! SMOTE-NC: synthetic minority oversampling for rows with numeric *and* categorical
//! attributes (Chawla, Bowyer, Hall & Kegelmeyer, 2002, section 6.1).
//!
//! Why: `bad` applicants are a minority of any loan book (30% of the German Credit data), and a
//! network trained on the raw ratio learns to under-score them. SMOTE-NC adds plausible new
//! `bad` applicants between existing ones instead of repeating rows, which would only teach the
//! network to memorise them. Many credit attributes are categorical, where "between" has no
//! meaning, hence the NC variant: numeric attributes are interpolated, categorical ones take
//! the majority value of the neighbourhood.
//!
//! Only ever apply it to the training split: synthetic rows in validation or test data would
//! be rows the model never has to score in production, and they are built from training rows,
//! so they would leak them.
//!
//! Distance, as in the paper: with `med` the median over numeric attributes of their standard
//! deviation within the minority class,
//!
//! ```text
//! distance² = Σ_numeric (a − b)²  +  med² · (number of categorical attributes that differ)
//! ```
//!
//! on the numeric values as given, or standardised first ([`SmoteNc::oversample_scaled`]; the
//! trainer standardises with the training split's means and standard deviations, so that an
//! amount in Deutsche Mark does not decide every neighbour by its unit alone). The penalty puts
//! one categorical mismatch on the scale of a typical numeric difference. Interpolation always
//! works on the values as given.
//! Standard deviations are population ones (divisor n), as in imbalanced-learn's SMOTENC.
//!
//! A numeric value may be missing (an optional field). Missing against present counts as one
//! categorical mismatch, missing against missing as a match, and standard deviations use the
//! present values only. Where the base row or its partner lacks a numeric value there is no
//! segment to interpolate on, so the synthetic row takes the value (or its absence) of the one
//! of the two it is nearer to, as a categorical attribute would. A missing categorical value is
//! the caller's to encode as a level of its own.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One row split into its numeric and categorical attributes; categorical values are indices
/// into each attribute's list of levels, a numeric value is `None` when missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MixedRow {
    pub numeric: Vec<Option<f64>>,
    pub categorical: Vec<usize>,
}

/// Why synthetic rows could not be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmoteError {
    /// Interpolation needs a neighbour, so at least two minority rows.
    #[error("SMOTE-NC needs at least 2 minority rows, got {found}")]
    TooFewMinorityRows { found: usize },
    /// Every row must have the same attributes as the first one, or distances are meaningless.
    #[error(
        "minority row {row} has {numeric} numeric and {categorical} categorical attributes, \
         expected {expected_numeric} and {expected_categorical}"
    )]
    InconsistentAttributes {
        row: usize,
        numeric: usize,
        categorical: usize,
        expected_numeric: usize,
        expected_categorical: usize,
    },
    /// With no neighbours there is nothing to interpolate towards.
    #[error("k_neighbours must be at least 1")]
    ZeroNeighbours,
    /// A `NaN` or infinite value would make every distance to it meaningless and spread into
    /// the synthetic rows.
    #[error("minority row {row} has a non-finite value in numeric attribute {attribute}")]
    NonFiniteValue { row: usize, attribute: usize },
}

/// The mean and standard deviation a numeric attribute is standardised with before distances
/// are measured (interpolation stays on the raw values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Standardise {
    pub mean: f64,
    pub std: f64,
}

impl Standardise {
    fn apply(&self, value: f64) -> f64 {
        (value - self.mean) / self.std
    }
}

/// The minority rows as distances see them: numerics standardised when `scales` is given.
fn distance_space(minority: &[MixedRow], scales: Option<&[Standardise]>) -> Vec<MixedRow> {
    let Some(scales) = scales else {
        return minority.to_vec();
    };
    minority
        .iter()
        .map(|row| MixedRow {
            numeric: row
                .numeric
                .iter()
                .zip(scales)
                .map(|(value, scale)| value.map(|v| scale.apply(v)))
                .collect(),
            categorical: row.categorical.clone(),
        })
        .collect()
}

/// How the nearest neighbours were chosen: over every minority row and each of its `k`
/// nearest, each attribute's share of the summed squared distance (numeric attributes first,
/// then categorical ones, in row order) and how often the pair has the same value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NeighbourMix {
    pub share_of_distance: Vec<f64>,
    pub same_value: Vec<f64>,
}

/// The neighbour mix of `minority` with `k` neighbours, in the space `scales` gives.
pub(crate) fn neighbour_mix(
    minority: &[MixedRow],
    k_neighbours: usize,
    scales: Option<&[Standardise]>,
) -> Result<NeighbourMix, SmoteError> {
    validate(minority, k_neighbours)?;
    let space = distance_space(minority, scales);
    let k = k_neighbours.min(space.len() - 1);
    let penalty = categorical_penalty(&space);
    let (numeric, categorical) = (space[0].numeric.len(), space[0].categorical.len());
    let mut contribution = vec![0.0; numeric + categorical];
    let mut same = vec![0usize; numeric + categorical];
    let mut pairs = 0usize;
    for i in 0..space.len() {
        for j in nearest_neighbours(&space, i, k, penalty) {
            pairs += 1;
            let (a, b) = (&space[i], &space[j]);
            for (attribute, (x, y)) in a.numeric.iter().zip(&b.numeric).enumerate() {
                contribution[attribute] += match (x, y) {
                    (Some(x), Some(y)) => (x - y).powi(2),
                    (None, None) => 0.0,
                    _ => penalty,
                };
                same[attribute] += usize::from(x == y);
            }
            for (attribute, (x, y)) in a.categorical.iter().zip(&b.categorical).enumerate() {
                contribution[numeric + attribute] += if x == y { 0.0 } else { penalty };
                same[numeric + attribute] += usize::from(x == y);
            }
        }
    }
    let total: f64 = contribution.iter().sum();
    Ok(NeighbourMix {
        share_of_distance: contribution
            .iter()
            .map(|c| if total > 0.0 { c / total } else { 0.0 })
            .collect(),
        same_value: same
            .iter()
            .map(|&n| n as f64 / pairs.max(1) as f64)
            .collect(),
    })
}

/// SMOTE-NC settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SmoteNc {
    /// Neighbours considered for each minority row (5 in the paper). Capped at the number of
    /// other minority rows, so a small minority still works.
    pub k_neighbours: usize,
    /// Seeds the `ChaCha8Rng` behind every random choice: same seed, same synthetic rows.
    pub seed: u64,
}

impl SmoteNc {
    /// Returns only the new synthetic rows, `target_count − minority.len()` of them (none when
    /// the minority is already that large), so the caller decides where they go and the
    /// original rows are never touched.
    ///
    /// The minority rows are visited in a seeded random order, cycling when more synthetic
    /// rows than minority rows are needed, so every row seeds about the same number of new
    /// ones. For each base row: one of its k nearest minority neighbours is picked at random,
    /// the numeric attributes are `base + u · (neighbour − base)` with one `u ~ U(0, 1)` per
    /// synthetic row (a point on the segment between them, as in imbalanced-learn; the paper's
    /// pseudo-code draws a `u` per attribute), and each categorical attribute is the value
    /// most frequent among the base's k nearest neighbours, ties going to the smallest value.
    ///
    /// The input is validated even when no rows are needed, so a configuration mistake shows
    /// up on the first run rather than on the first data set that needs balancing.
    #[cfg(test)]
    pub(crate) fn oversample(
        &self,
        minority: &[MixedRow],
        target_count: usize,
    ) -> Result<Vec<MixedRow>, SmoteError> {
        self.oversample_scaled(minority, target_count, None)
    }

    /// As [`Self::oversample`], with neighbours found on numerics standardised by `scales`
    /// (one per numeric attribute) so that no attribute decides them by its unit alone.
    pub(crate) fn oversample_scaled(
        &self,
        minority: &[MixedRow],
        target_count: usize,
        scales: Option<&[Standardise]>,
    ) -> Result<Vec<MixedRow>, SmoteError> {
        validate(minority, self.k_neighbours)?;
        let needed = target_count.saturating_sub(minority.len());
        if needed == 0 {
            return Ok(Vec::new());
        }

        let k = self.k_neighbours.min(minority.len() - 1);
        let space = distance_space(minority, scales);
        let penalty = categorical_penalty(&space);
        let neighbours: Vec<Vec<usize>> = (0..space.len())
            .map(|i| nearest_neighbours(&space, i, k, penalty))
            .collect();

        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut order: Vec<usize> = (0..minority.len()).collect();
        order.shuffle(&mut rng);

        let mut synthetic = Vec::with_capacity(needed);
        for &base_index in order.iter().cycle().take(needed) {
            let base = &minority[base_index];
            let its_neighbours = &neighbours[base_index];
            let partner = &minority[its_neighbours[rng.gen_range(0..its_neighbours.len())]];
            let u: f64 = rng.gen();
            let numeric = base
                .numeric
                .iter()
                .zip(&partner.numeric)
                .map(|(&b, &p)| match (b, p) {
                    (Some(b), Some(p)) => Some(b + u * (p - b)),
                    _ if u < 0.5 => b,
                    _ => p,
                })
                .collect();
            let categorical = (0..base.categorical.len())
                .map(|attribute| {
                    majority(
                        its_neighbours
                            .iter()
                            .map(|&n| minority[n].categorical[attribute]),
                    )
                })
                .collect();
            synthetic.push(MixedRow {
                numeric,
                categorical,
            });
        }
        Ok(synthetic)
    }
}

fn validate(minority: &[MixedRow], k_neighbours: usize) -> Result<(), SmoteError> {
    if k_neighbours == 0 {
        return Err(SmoteError::ZeroNeighbours);
    }
    let Some(first) = minority.first() else {
        return Err(SmoteError::TooFewMinorityRows { found: 0 });
    };
    if minority.len() < 2 {
        return Err(SmoteError::TooFewMinorityRows {
            found: minority.len(),
        });
    }
    let (expected_numeric, expected_categorical) = (first.numeric.len(), first.categorical.len());
    for (row, r) in minority.iter().enumerate() {
        if r.numeric.len() != expected_numeric || r.categorical.len() != expected_categorical {
            return Err(SmoteError::InconsistentAttributes {
                row,
                numeric: r.numeric.len(),
                categorical: r.categorical.len(),
                expected_numeric,
                expected_categorical,
            });
        }
        if let Some(attribute) = r
            .numeric
            .iter()
            .position(|v| v.is_some_and(|v| !v.is_finite()))
        {
            return Err(SmoteError::NonFiniteValue { row, attribute });
        }
    }
    Ok(())
}

/// `med²`: the squared median of the numeric attributes' standard deviations in the minority,
/// each over the rows where it is present (an attribute missing everywhere has none).
///
/// Falls back to 1 when there are no numeric attributes or they are all constant (median 0):
/// the paper leaves this open, and a zero penalty would make categorical attributes count for
/// nothing, whereas 1 turns the distance into a plain count of mismatches.
fn categorical_penalty(minority: &[MixedRow]) -> f64 {
    let attributes = minority.first().map_or(0, |r| r.numeric.len());
    let mut stds: Vec<f64> = (0..attributes)
        .filter_map(|a| {
            let present: Vec<f64> = minority.iter().filter_map(|r| r.numeric[a]).collect();
            if present.is_empty() {
                return None;
            }
            let n = present.len() as f64;
            let mean = present.iter().sum::<f64>() / n;
            let variance = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            Some(variance.sqrt())
        })
        .collect();
    match median(&mut stds) {
        Some(med) if med > 0.0 => med * med,
        _ => 1.0,
    }
}

/// Median, averaging the two middle values for an even count; `None` for no values.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// Squared SMOTE-NC distance (squaring does not change which rows are nearest).
fn distance_squared(a: &MixedRow, b: &MixedRow, penalty: f64) -> f64 {
    let numeric: f64 = a
        .numeric
        .iter()
        .zip(&b.numeric)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => (x - y).powi(2),
            (None, None) => 0.0,
            _ => penalty,
        })
        .sum();
    let mismatches = a
        .categorical
        .iter()
        .zip(&b.categorical)
        .filter(|(x, y)| x != y)
        .count();
    numeric + penalty * mismatches as f64
}

/// Indices of the `k` minority rows nearest to row `of` (itself excluded), nearest first;
/// equal distances go to the lower index so the result does not depend on sort internals.
fn nearest_neighbours(minority: &[MixedRow], of: usize, k: usize, penalty: f64) -> Vec<usize> {
    let mut others: Vec<(f64, usize)> = minority
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != of)
        .map(|(i, row)| (distance_squared(&minority[of], row, penalty), i))
        .collect();
    others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    others.into_iter().take(k).map(|(_, i)| i).collect()
}

/// The most frequent value, ties going to the smallest; 0 for no values (never happens here:
/// every row has at least one neighbour).
fn majority(values: impl Iterator<Item = usize>) -> usize {
    let mut sorted: Vec<usize> = values.collect();
    sorted.sort_unstable();
    let mut best = (0, 0); // (count, value)
    for run in sorted.chunk_by(|a, b| a == b) {
        // Runs come in ascending value order; only a strictly larger count replaces.
        if run.len() > best.0 {
            best = (run.len(), run[0]);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(numeric: &[f64], categorical: &[usize]) -> MixedRow {
        MixedRow {
            numeric: numeric.iter().copied().map(Some).collect(),
            categorical: categorical.to_vec(),
        }
    }

    fn number(row: &MixedRow, attribute: usize) -> f64 {
        row.numeric[attribute].expect("a present value")
    }

    /// A small, varied minority: two numeric and two categorical attributes.
    fn minority() -> Vec<MixedRow> {
        vec![
            row(&[1.0, 100.0], &[0, 2]),
            row(&[2.0, 150.0], &[1, 2]),
            row(&[4.0, 120.0], &[0, 3]),
            row(&[3.0, 300.0], &[1, 2]),
            row(&[8.0, 90.0], &[0, 2]),
            row(&[6.0, 210.0], &[2, 3]),
        ]
    }

    const SMOTE: SmoteNc = SmoteNc {
        k_neighbours: 3,
        seed: 17,
    };

    #[test]
    fn oversample_returns_exactly_the_missing_rows() {
        let rows = minority();
        assert_eq!(SMOTE.oversample(&rows, 20).unwrap().len(), 14);
        assert_eq!(SMOTE.oversample(&rows, 7).unwrap().len(), 1);
        assert!(SMOTE.oversample(&rows, 6).unwrap().is_empty());
        assert!(SMOTE.oversample(&rows, 2).unwrap().is_empty());
    }

    #[test]
    fn synthetic_numerics_stay_inside_the_minority_bounding_box() {
        let rows = minority();
        let synthetic = SMOTE.oversample(&rows, 200).unwrap();
        for attribute in 0..2 {
            let values = rows.iter().map(|r| number(r, attribute));
            let low = values.clone().fold(f64::INFINITY, f64::min);
            let high = values.fold(f64::NEG_INFINITY, f64::max);
            for s in &synthetic {
                let v = number(s, attribute);
                assert!(low <= v && v <= high, "{v} outside [{low}, {high}]");
            }
        }
    }

    #[test]
    fn synthetic_categoricals_occur_among_the_minority() {
        let rows = minority();
        for s in SMOTE.oversample(&rows, 200).unwrap() {
            assert_eq!(s.categorical.len(), 2);
            for (attribute, value) in s.categorical.iter().enumerate() {
                assert!(
                    rows.iter().any(|r| r.categorical[attribute] == *value),
                    "attribute {attribute} got unseen value {value}"
                );
            }
        }
    }

    #[test]
    fn oversample_is_deterministic_for_a_seed_and_differs_between_seeds() {
        let rows = minority();
        let a = SMOTE.oversample(&rows, 30).unwrap();
        let b = SMOTE.oversample(&rows, 30).unwrap();
        let c = SmoteNc { seed: 18, ..SMOTE }.oversample(&rows, 30).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_minority_row_seeds_the_same_number_of_rows_when_cycling() {
        // With k = 1 in a minority whose rows are far apart on one axis, the y coordinate of a
        // synthetic row identifies its base: rows at y = 0, 100, 1000 (neighbours: 0↔100,
        // 1000→100). Each synthetic row lies on a segment starting at its base.
        let rows = vec![
            row(&[0.0, 0.0], &[]),
            row(&[0.0, 100.0], &[]),
            row(&[0.0, 1000.0], &[]),
        ];
        let smote = SmoteNc {
            k_neighbours: 1,
            seed: 5,
        };
        let synthetic = smote.oversample(&rows, 3 + 9).unwrap();
        // Base 0 → partner 1: y in [0, 100); base 1 → partner 0: y in (0, 100];
        // base 2 → partner 1: y in (100, 1000]. Only base 2 gives y > 100: exactly 3 of 9.
        let from_base_2 = synthetic.iter().filter(|s| number(s, 1) > 100.0).count();
        assert_eq!(from_base_2, 3);
    }

    #[test]
    fn oversample_rejects_invalid_input() {
        let rows = minority();
        assert_eq!(
            SmoteNc {
                k_neighbours: 0,
                seed: 0
            }
            .oversample(&rows, 10),
            Err(SmoteError::ZeroNeighbours)
        );
        assert_eq!(
            SMOTE.oversample(&rows[..1], 10),
            Err(SmoteError::TooFewMinorityRows { found: 1 })
        );
        assert_eq!(
            SMOTE.oversample(&[], 10),
            Err(SmoteError::TooFewMinorityRows { found: 0 })
        );
        let mut ragged = rows.clone();
        ragged[3].categorical.push(0);
        assert_eq!(
            SMOTE.oversample(&ragged, 10),
            Err(SmoteError::InconsistentAttributes {
                row: 3,
                numeric: 2,
                categorical: 3,
                expected_numeric: 2,
                expected_categorical: 2,
            })
        );
        let mut nan = rows;
        nan[2].numeric[1] = Some(f64::NAN);
        assert_eq!(
            SMOTE.oversample(&nan, 10),
            Err(SmoteError::NonFiniteValue {
                row: 2,
                attribute: 1
            })
        );
    }

    /// x: A = 0, B = 1, C = −1.5, D = 20; categories A 0, B 1, C 0, D 0.
    /// Minority std of x (divisor 4): mean 4.875, squared deviations 23.765625, 15.015625,
    /// 40.640625 and 228.765625 summing to 308.1875, variance 77.046875 = med².
    /// Without the penalty A's nearest neighbour is B (distance² 1); with it, B costs
    /// 1 + 77.05 and C (2.25, same category) is nearest.
    fn penalty_example() -> Vec<MixedRow> {
        vec![
            row(&[0.0], &[0]),
            row(&[1.0], &[1]),
            row(&[-1.5], &[0]),
            row(&[20.0], &[0]),
        ]
    }

    #[test]
    fn categorical_penalty_is_the_squared_median_std() {
        assert!((categorical_penalty(&penalty_example()) - 77.046875).abs() < 1e-9);
        // Two attributes with stds 1 and 3 (population): median 2, penalty 4.
        let rows = vec![row(&[0.0, 0.0], &[]), row(&[2.0, 6.0], &[])];
        assert!((categorical_penalty(&rows) - 4.0).abs() < 1e-12);
        // No numeric attributes, or constant ones: plain mismatch counting.
        assert_eq!(categorical_penalty(&[row(&[], &[1]), row(&[], &[2])]), 1.0);
        assert_eq!(
            categorical_penalty(&[row(&[5.0], &[1]), row(&[5.0], &[2])]),
            1.0
        );
    }

    #[test]
    fn a_categorical_mismatch_can_outweigh_a_closer_numeric_value() {
        let rows = penalty_example();
        let penalty = categorical_penalty(&rows);
        assert_eq!(nearest_neighbours(&rows, 0, 1, penalty), vec![2]);
        assert_eq!(nearest_neighbours(&rows, 0, 3, penalty), vec![2, 1, 3]);
        // Without the penalty, B would be nearest.
        assert_eq!(nearest_neighbours(&rows, 0, 1, 0.0), vec![1]);

        // Through the public API, k = 1, each row seeding 10 of 40: with the penalty A pairs
        // with C, so A's rows (x = −1.5u) and C's rows (x = −1.5 + 1.5u) are the 20 with
        // x < 0, all of category 0. B's (partner A) and D's (partner A) have x > 0. Had A
        // paired with B, only C's 10 rows would have x < 0.
        let smote = SmoteNc {
            k_neighbours: 1,
            seed: 3,
        };
        let synthetic = smote.oversample(&rows, 4 + 40).unwrap();
        let negative: Vec<&MixedRow> = synthetic.iter().filter(|s| number(s, 0) < 0.0).collect();
        assert_eq!(negative.len(), 20);
        assert!(negative.iter().all(|s| s.categorical == vec![0]));
    }

    #[test]
    fn the_categorical_value_is_the_neighbourhood_majority() {
        // Base at x = 0 with category 5; neighbours at x = 1, 2, 3 with categories 1, 2, 2;
        // a far row at x = 100. k = 3: majority of {1, 2, 2} is 2, not the base's 5.
        let rows = vec![
            row(&[0.0], &[5]),
            row(&[1.0], &[1]),
            row(&[2.0], &[2]),
            row(&[3.0], &[2]),
            row(&[100.0], &[1]),
        ];
        let penalty = categorical_penalty(&rows);
        assert_eq!(nearest_neighbours(&rows, 0, 3, penalty), vec![1, 2, 3]);
        let smote = SmoteNc {
            k_neighbours: 3,
            seed: 8,
        };
        // Only row 0 has category 5, so 5 is never a neighbourhood's majority (ties go to the
        // smaller 1 or 2): copying the base's category instead would produce it.
        let synthetic = smote.oversample(&rows, 5 + 50).unwrap();
        assert!(synthetic.iter().all(|s| s.categorical[0] != 5));
    }

    #[test]
    fn a_missing_number_is_a_mismatch_against_a_present_one_and_a_match_against_a_missing_one() {
        let present = row(&[1.0], &[0]);
        let missing = MixedRow {
            numeric: vec![None],
            categorical: vec![0],
        };
        assert_eq!(distance_squared(&present, &missing, 7.0), 7.0);
        assert_eq!(distance_squared(&missing, &missing.clone(), 7.0), 0.0);
        assert_eq!(
            distance_squared(&present, &row(&[3.0], &[1]), 7.0),
            4.0 + 7.0
        );
    }

    #[test]
    fn the_penalty_uses_the_present_values_only() {
        // Present values 0 and 2 (std 1, population) and an attribute missing everywhere.
        let rows = vec![
            MixedRow {
                numeric: vec![Some(0.0), None],
                categorical: vec![],
            },
            MixedRow {
                numeric: vec![None, None],
                categorical: vec![],
            },
            MixedRow {
                numeric: vec![Some(2.0), None],
                categorical: vec![],
            },
        ];
        assert!((categorical_penalty(&rows) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_number_missing_at_either_end_is_copied_from_one_end_never_interpolated() {
        // Attribute 0 is present in every row; attribute 1 only in the first two, at 10 and 20.
        let rows: Vec<MixedRow> = [
            (0.0, Some(10.0)),
            (1.0, Some(20.0)),
            (2.0, None),
            (3.0, None),
        ]
        .into_iter()
        .map(|(x, y)| MixedRow {
            numeric: vec![Some(x), y],
            categorical: vec![],
        })
        .collect();
        let synthetic = SMOTE.oversample(&rows, 4 + 200).unwrap();
        let mut copied = (0, 0);
        for s in &synthetic {
            match s.numeric[1] {
                None => copied.0 += 1,
                Some(y) if y == 10.0 || y == 20.0 => copied.1 += 1,
                Some(y) => assert!((10.0..=20.0).contains(&y), "{y} outside [10, 20]"),
            }
        }
        assert!(copied.0 > 0, "some rows keep the value missing");
        assert!(copied.1 > 0, "some rows take the present neighbour's value");
        assert!(synthetic.iter().all(|s| s.numeric[0].is_some()));
    }

    #[test]
    fn standardising_lets_a_small_unit_attribute_choose_neighbours_too() {
        // x in thousands decides raw distances; y in units separates rows 0 and 1 from 2.
        let rows = vec![
            row(&[0.0, 0.0], &[]),
            row(&[1000.0, 0.1], &[]),
            row(&[900.0, 5.0], &[]),
            row(&[5000.0, 2.0], &[]),
        ];
        let raw = neighbour_mix(&rows, 1, None).unwrap();
        assert!(raw.share_of_distance[0] > 0.99, "{raw:?}");
        let scales = [
            Standardise {
                mean: 1725.0,
                std: 2000.0,
            },
            Standardise {
                mean: 1.775,
                std: 2.0,
            },
        ];
        let scaled = neighbour_mix(&rows, 1, Some(&scales)).unwrap();
        assert!(scaled.share_of_distance[1] > 0.2, "{scaled:?}");
        // Row 1's raw nearest is row 2 (x 100 apart); standardised, row 0 (y 0.1 apart) wins.
        let space = distance_space(&rows, Some(&scales));
        let penalty = categorical_penalty(&space);
        assert_eq!(
            nearest_neighbours(&rows, 1, 1, categorical_penalty(&rows)),
            vec![2]
        );
        assert_eq!(nearest_neighbours(&space, 1, 1, penalty), vec![0]);
    }

    #[test]
    fn majority_breaks_ties_towards_the_smallest_value() {
        assert_eq!(majority([3, 1, 3, 1].into_iter()), 1);
        assert_eq!(majority([7].into_iter()), 7);
        assert_eq!(majority([4, 9, 9, 4, 2].into_iter()), 4);
    }

    #[test]
    fn median_averages_the_middle_pair_for_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn neighbour_ties_go_to_the_lower_index_and_k_is_capped() {
        // Rows 1 and 2 are both at distance 1 from row 0.
        let rows = vec![row(&[0.0], &[]), row(&[1.0], &[]), row(&[-1.0], &[])];
        assert_eq!(nearest_neighbours(&rows, 0, 1, 1.0), vec![1]);
        // k larger than the other rows: oversample caps it rather than failing.
        let smote = SmoteNc {
            k_neighbours: 10,
            seed: 0,
        };
        assert_eq!(smote.oversample(&rows, 5).unwrap().len(), 2);
    }
}

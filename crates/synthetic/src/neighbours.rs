//! Nearest neighbours within a class, on every field of the schema.
//!
//! Distance: squared differences of the numeric attributes standardised by their standard
//! deviation over the whole data set, plus 1 for every categorical attribute that differs, so
//! a categorical mismatch weighs about as much as a one-standard-deviation numeric difference.
//! With 1,000 rows the brute-force O(n²) search takes milliseconds and is done once.

use credit_core::applicant::{Applicant, AttributeValue};

/// For every row, the indices of its `k` nearest rows with the same `class`, nearest first
/// (fewer when the class is smaller; none for a class of one).
pub(crate) fn same_class_neighbours(
    rows: &[&Applicant],
    class: &[bool],
    k: usize,
) -> Vec<Vec<usize>> {
    let values: Vec<&[AttributeValue]> = rows.iter().map(|row| row.values()).collect();
    let scale = numeric_scales(&values);
    (0..rows.len())
        .map(|i| {
            let mut candidates: Vec<(f64, usize)> = (0..rows.len())
                .filter(|&j| j != i && class.get(j) == class.get(i))
                .map(|j| (distance(values[i], values[j], &scale), j))
                .collect();
            candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            candidates.into_iter().take(k).map(|(_, j)| j).collect()
        })
        .collect()
}

/// 1 / standard deviation of each numeric attribute (1 for categoricals and constants).
fn numeric_scales(values: &[&[AttributeValue]]) -> Vec<f64> {
    let mut scale = vec![1.0; values.first().map_or(0, |row| row.len())];
    for (attribute, slot) in scale.iter_mut().enumerate() {
        let numbers: Vec<f64> = values
            .iter()
            .filter_map(|row| match row[attribute] {
                AttributeValue::Numeric(x) => Some(x),
                AttributeValue::Categorical(_) | AttributeValue::Missing => None,
            })
            .collect();
        if numbers.len() < 2 {
            continue;
        }
        let mean = numbers.iter().sum::<f64>() / numbers.len() as f64;
        let variance =
            numbers.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / numbers.len() as f64;
        if variance > 1e-12 {
            *slot = 1.0 / variance.sqrt();
        }
    }
    scale
}

fn distance(a: &[AttributeValue], b: &[AttributeValue], scale: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .zip(scale)
        .map(|((x, y), s)| match (x, y) {
            (AttributeValue::Numeric(x), AttributeValue::Numeric(y)) => ((x - y) * s).powi(2),
            (AttributeValue::Categorical(x), AttributeValue::Categorical(y)) => {
                f64::from(u8::from(x != y))
            }
            (AttributeValue::Missing, AttributeValue::Missing) => 0.0,
            _ => 1.0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dataset::shipped_german_credit;

    #[test]
    fn neighbours_share_the_class_and_are_close() {
        let rows = shipped_german_credit();
        let applicants: Vec<&Applicant> = rows.iter().take(200).map(|r| &r.applicant).collect();
        let class: Vec<bool> = rows.iter().take(200).map(|r| r.bad).collect();
        let neighbours = same_class_neighbours(&applicants, &class, 5);
        for (i, list) in neighbours.iter().enumerate() {
            assert_eq!(list.len(), 5);
            assert!(list.iter().all(|&j| class[j] == class[i] && j != i));
        }
    }
}

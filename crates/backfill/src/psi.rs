//! Population stability index (PSI) of the score distribution.
//!
//! The reference is the training data scored by the same model; its deciles cut the score axis
//! into 10 bins that each hold a tenth of the reference. A backfill counts its own scores in
//! those bins, and
//!
//! ```text
//! PSI = Σ_bins (actual% − reference%) · ln(actual% / reference%)
//! ```
//!
//! Rules of thumb: below 0.1 the population is stable, 0.1 to 0.25 it has shifted somewhat,
//! above 0.25 the model is scoring a population it was not trained on. Counting in fixed bins
//! keeps the state to ten integers, so it survives in the checkpoint across a resume.

use serde::{Deserialize, Serialize};

/// Default number of quantile bins.
pub(crate) const BINS: usize = 10;

/// Proportions are floored at this, so an empty bin gives a large but finite term.
const FLOOR: f64 = 1e-4;

/// The reference distribution: bin edges and the reference's share of each bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PsiReference {
    /// The `bins − 1` inner edges; a score `s` falls in bin `#{edges <= s}`.
    pub edges: Vec<f32>,
    /// Share of the reference in each bin.
    pub expected: Vec<f64>,
    /// Number of reference scores.
    pub rows: usize,
}

impl PsiReference {
    /// Bins at the quantiles of `scores` (non-finite scores are ignored); `None` when fewer
    /// scores than bins are left.
    pub(crate) fn from_scores(scores: &[f32], bins: usize) -> Option<Self> {
        let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        if bins < 2 || sorted.len() < bins {
            return None;
        }
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len();
        let edges: Vec<f32> = (1..bins).map(|k| sorted[k * n / bins]).collect();
        let mut reference = Self {
            edges,
            expected: vec![0.0; bins],
            rows: n,
        };
        let mut counts = vec![0u64; bins];
        for &score in &sorted {
            counts[reference.bin(score)] += 1;
        }
        reference.expected = counts.iter().map(|&c| c as f64 / n as f64).collect();
        Some(reference)
    }

    /// The bin of `score`.
    pub fn bin(&self, score: f32) -> usize {
        self.edges.partition_point(|&edge| edge <= score)
    }

    /// Number of bins.
    pub(crate) fn bins(&self) -> usize {
        self.expected.len()
    }

    /// PSI of the distribution with `counts` per bin; `None` with no counts.
    pub fn psi(&self, counts: &[u64]) -> Option<f64> {
        psi(&self.expected, counts)
    }
}

/// PSI between reference shares `expected` and observed `counts` per bin.
pub(crate) fn psi(expected: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || expected.len() != counts.len() {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(counts)
            .map(|(&e, &c)| {
                let e = e.max(FLOOR);
                let a = (c as f64 / total as f64).max(FLOOR);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(n: usize, from: f32, to: f32) -> Vec<f32> {
        (0..n)
            .map(|i| from + (to - from) * (i as f32 + 0.5) / n as f32)
            .collect()
    }

    #[test]
    fn same_distribution_has_near_zero_psi() {
        let reference = PsiReference::from_scores(&uniform(1000, 0.0, 1.0), BINS).unwrap();
        assert_eq!(reference.edges.len(), 9);
        for share in &reference.expected {
            assert!((share - 0.1).abs() < 1e-9);
        }
        let mut counts = vec![0u64; BINS];
        for score in uniform(5000, 0.0, 1.0) {
            counts[reference.bin(score)] += 1;
        }
        assert!(reference.psi(&counts).unwrap() < 0.01);
    }

    #[test]
    fn shifted_distribution_has_large_psi() {
        let reference = PsiReference::from_scores(&uniform(1000, 0.0, 1.0), BINS).unwrap();
        let mut counts = vec![0u64; BINS];
        for score in uniform(5000, 0.5, 1.0) {
            counts[reference.bin(score)] += 1;
        }
        assert!(reference.psi(&counts).unwrap() > 0.25);
    }

    #[test]
    fn too_few_scores_or_no_counts() {
        assert!(PsiReference::from_scores(&[0.5; 5], BINS).is_none());
        assert!(psi(&[0.5, 0.5], &[0, 0]).is_none());
    }
}

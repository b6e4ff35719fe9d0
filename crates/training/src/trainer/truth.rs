//! The model against the truth, on a data file whose rows were drawn from known probabilities.
//!
//! When every row's true probability of the bad outcome is known (a synthetic book), ranking
//! the rows by it gives the highest ROC AUC any model can reach on those rows: the outcomes are
//! coin flips beyond it. The report sets that AUC next to the models' on the same rows (the test
//! split, and each cross-validation fold's test rows), with the gap between them, and the mean
//! true probability next to the observed bad rate, which says how far luck moved the outcomes.

use credit_core::evaluation::{roc_auc, MetricsError, Spread};
use serde::{Deserialize, Serialize};

/// The true probabilities of some rows against the outcomes drawn from them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrueProbabilities {
    pub rows: usize,
    pub bad: usize,
    pub observed_bad_rate: f64,
    pub mean_true_probability: f64,
    /// ROC AUC of the true probabilities as scores: the best a model can reach on these rows.
    pub true_probability_auc: Option<f64>,
}

impl TrueProbabilities {
    /// The figures of rows with true probabilities `truth` and outcomes `bad`.
    pub fn of(truth: &[f64], bad: &[bool]) -> Result<Self, MetricsError> {
        // f32 keeps distinct probabilities distinct at the precision data files write them.
        let scores: Vec<f32> = truth.iter().map(|&p| p as f32).collect();
        let true_probability_auc = roc_auc(&scores, bad)?;
        let rows = truth.len();
        let bad = bad.iter().filter(|&&bad| bad).count();
        Ok(Self {
            rows,
            bad,
            observed_bad_rate: bad as f64 / rows as f64,
            mean_true_probability: truth.iter().sum::<f64>() / rows as f64,
            true_probability_auc,
        })
    }
}

/// The true probabilities and both models on the held-out test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestComparison {
    #[serde(flatten)]
    pub truth: TrueProbabilities,
    pub lstm_auc: Option<f64>,
    /// True-probability AUC minus the model's: the ranking the model leaves on the table.
    pub lstm_gap: Option<f64>,
    pub logistic_auc: Option<f64>,
    pub logistic_gap: Option<f64>,
}

impl TestComparison {
    /// The comparison on rows with figures `truth`, where the models reached these AUCs.
    pub fn new(truth: TrueProbabilities, lstm_auc: Option<f64>, logistic_auc: Option<f64>) -> Self {
        Self {
            truth,
            lstm_auc,
            lstm_gap: gap(truth.true_probability_auc, lstm_auc),
            logistic_auc,
            logistic_gap: gap(truth.true_probability_auc, logistic_auc),
        }
    }
}

/// The true probabilities and both models over the cross-validation folds, each fold on its own
/// test rows (out of fold): AUCs and gaps as mean and spread over the folds, rates pooled over
/// every fold's test rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FoldsComparison {
    pub folds: usize,
    pub rows: usize,
    pub bad: usize,
    pub observed_bad_rate: f64,
    pub mean_true_probability: f64,
    pub true_probability_auc: Spread,
    pub lstm_auc: Spread,
    pub lstm_gap: Spread,
    pub logistic_auc: Spread,
    pub logistic_gap: Spread,
}

/// What the comparison reads of one fold: its test rows' true probabilities and both models'
/// AUC on them.
#[derive(Debug, Clone, Copy)]
pub struct FoldAucs {
    pub true_probability: Option<TrueProbabilities>,
    pub lstm_auc: Option<f64>,
    pub logistic_auc: Option<f64>,
}

impl FoldsComparison {
    /// The comparison over `folds`; `None` when a fold has no true probabilities.
    pub fn of(folds: &[FoldAucs]) -> Option<Self> {
        let truths: Vec<TrueProbabilities> = folds
            .iter()
            .map(|fold| fold.true_probability)
            .collect::<Option<_>>()?;
        let rows: usize = truths.iter().map(|truth| truth.rows).sum();
        let bad: usize = truths.iter().map(|truth| truth.bad).sum();
        let probability_sum: f64 = truths
            .iter()
            .map(|truth| truth.mean_true_probability * truth.rows as f64)
            .sum();
        let spread = |value: &dyn Fn(&FoldAucs, &TrueProbabilities) -> Option<f64>| {
            let values: Vec<f64> = folds
                .iter()
                .zip(&truths)
                .filter_map(|(fold, truth)| value(fold, truth))
                .collect();
            Spread::of(&values)
        };
        Some(Self {
            folds: folds.len(),
            rows,
            bad,
            observed_bad_rate: bad as f64 / rows as f64,
            mean_true_probability: probability_sum / rows as f64,
            true_probability_auc: spread(&|_, truth| truth.true_probability_auc),
            lstm_auc: spread(&|fold, _| fold.lstm_auc),
            lstm_gap: spread(&|fold, truth| gap(truth.true_probability_auc, fold.lstm_auc)),
            logistic_auc: spread(&|fold, _| fold.logistic_auc),
            logistic_gap: spread(&|fold, truth| gap(truth.true_probability_auc, fold.logistic_auc)),
        })
    }
}

/// The model against the truth, as metrics.json reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrueProbabilityReport {
    /// The data file's column of true probabilities.
    pub column: String,
    pub test: TestComparison,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_validation: Option<FoldsComparison>,
}

fn gap(truth: Option<f64>, model: Option<f64>) -> Option<f64> {
    Some(truth? - model?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Two bad rows (0.9, 0.3) and two good (0.8, 0.1): the true probabilities rank three of the
    /// four bad-good pairs right, so their AUC is 0.75; they average 0.525 against a bad rate of
    /// one half.
    fn four_rows() -> (Vec<f64>, Vec<bool>) {
        (vec![0.9, 0.8, 0.3, 0.1], vec![true, false, true, false])
    }

    #[test]
    fn the_true_probabilities_auc_is_the_share_of_bad_good_pairs_they_rank_right() {
        let (truth, bad) = four_rows();
        let figures = TrueProbabilities::of(&truth, &bad).unwrap();
        assert_eq!((figures.rows, figures.bad), (4, 2));
        assert_eq!(figures.true_probability_auc, Some(0.75));
        assert!(close(figures.observed_bad_rate, 0.5));
        assert!(close(figures.mean_true_probability, 0.525));
    }

    #[test]
    fn the_gap_is_the_true_probabilities_auc_minus_the_models() {
        let (truth, bad) = four_rows();
        let comparison = TestComparison::new(
            TrueProbabilities::of(&truth, &bad).unwrap(),
            Some(0.5),
            None,
        );
        assert_eq!(comparison.lstm_gap, Some(0.25));
        assert_eq!(
            (comparison.logistic_auc, comparison.logistic_gap),
            (None, None)
        );
    }

    #[test]
    fn rows_of_one_outcome_have_no_auc_but_their_rates() {
        let figures = TrueProbabilities::of(&[0.2, 0.4], &[false, false]).unwrap();
        assert_eq!(figures.true_probability_auc, None);
        assert!(close(figures.mean_true_probability, 0.3));
        assert!(close(figures.observed_bad_rate, 0.0));
    }

    fn fold(truth: &[f64], bad: &[bool], lstm: f64, logistic: f64) -> FoldAucs {
        FoldAucs {
            true_probability: Some(TrueProbabilities::of(truth, bad).unwrap()),
            lstm_auc: Some(lstm),
            logistic_auc: Some(logistic),
        }
    }

    #[test]
    fn folds_give_mean_and_spread_of_each_auc_and_gap_and_pooled_rates() {
        let (truth, bad) = four_rows();
        // The second fold's probabilities rank both of its pairs right: AUC 1.
        let folds = [
            fold(&truth, &bad, 0.5, 0.75),
            fold(&[0.6, 0.2, 0.1], &[true, false, false], 0.5, 0.25),
        ];
        let comparison = FoldsComparison::of(&folds).unwrap();
        assert_eq!(
            (comparison.folds, comparison.rows, comparison.bad),
            (2, 7, 3)
        );
        assert!(close(comparison.observed_bad_rate, 3.0 / 7.0));
        assert!(close(comparison.mean_true_probability, 3.0 / 7.0));
        assert!(close(comparison.true_probability_auc.mean, 0.875));
        assert!(close(
            comparison.true_probability_auc.std,
            0.125 * 2f64.sqrt()
        ));
        assert!(close(comparison.lstm_auc.mean, 0.5));
        assert!(close(comparison.lstm_gap.mean, 0.375));
        assert!(close(comparison.logistic_gap.mean, 0.375));
        assert!(close(comparison.logistic_gap.std, 0.375 * 2f64.sqrt()));
    }

    #[test]
    fn folds_without_true_probabilities_give_no_comparison() {
        let (truth, bad) = four_rows();
        let mut folds = [fold(&truth, &bad, 0.5, 0.5)];
        folds[0].true_probability = None;
        assert_eq!(FoldsComparison::of(&folds), None);
    }
}

//! Classification metrics, the cost-based threshold and the evaluation report.
//!
//! Conventions used throughout: the positive class is `bad` credit risk, labels are `bool`
//! (`true` = bad) and scores are `f32` probabilities of `bad`. A score at or above the
//! threshold is a prediction of `bad`.
//!
//! Why costs and not only accuracy: in the German Credit data set lending to a bad risk is
//! five times as expensive as turning away a good one, so the threshold that minimises
//! expected cost sits far below 0.5, and a model is judged by what its decisions cost.
//!
//! Every function that takes scores and labels checks them first and returns a
//! [`MetricsError`] instead of panicking: evaluation runs on data that came from files and
//! from a model, and a length mismatch or a `NaN` score is a bug to report, not a crash.

use serde::{Deserialize, Serialize};

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Scores and labels must describe the same applicants, one to one.
    #[error("{scores} scores but {labels} labels")]
    LengthMismatch { scores: usize, labels: usize },
    /// A metric over no applicants is not a number; an empty evaluation set is a bug upstream.
    #[error("no scores to evaluate")]
    Empty,
    /// A `NaN` or infinite score (for example from a diverged model) would silently poison
    /// ranks, costs and losses, so it is rejected with its position.
    #[error("score at index {index} is not finite")]
    NonFiniteScore { index: usize },
}

/// The cost of each kind of mistake. Correct decisions cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostMatrix {
    /// Cost of predicting `good` for an applicant who is actually `bad` (lending to a bad risk).
    pub false_good_cost: f64,
    /// Cost of predicting `bad` for an applicant who is actually `good` (turning away a good
    /// risk).
    pub false_bad_cost: f64,
}

impl CostMatrix {
    /// The cost matrix published with the German Credit data set: lending to a bad risk
    /// costs 5, turning away a good one costs 1.
    pub const GERMAN_CREDIT: CostMatrix = CostMatrix {
        false_good_cost: 5.0,
        false_bad_cost: 1.0,
    };

    /// The cost of one decision: `decided_bad` for an applicant whose outcome was `bad`.
    pub fn of(&self, decided_bad: bool, bad: bool) -> f64 {
        match (decided_bad, bad) {
            (false, true) => self.false_good_cost,
            (true, false) => self.false_bad_cost,
            _ => 0.0,
        }
    }

    /// The threshold a perfectly calibrated model should use: predicting `bad` is cheaper
    /// in expectation exactly when `p · false_good_cost >= (1 − p) · false_bad_cost`, that is
    /// when `p >= false_bad_cost / (false_bad_cost + false_good_cost)` (1/6 for 5:1).
    ///
    /// Costs that do not add up to a positive finite number make every decision equally
    /// (un)expensive; 0.5 is returned then so that callers always get a usable threshold.
    pub(crate) fn bayes_threshold(&self) -> f64 {
        let total = self.false_bad_cost + self.false_good_cost;
        if total.is_finite() && total > 0.0 {
            self.false_bad_cost / total
        } else {
            0.5
        }
    }
}

/// Counts of the four outcomes of a binary decision, with `bad` as the positive class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Actually bad, predicted bad.
    pub true_bad: u64,
    /// Actually good, predicted bad.
    pub false_bad: u64,
    /// Actually good, predicted good.
    pub true_good: u64,
    /// Actually bad, predicted good.
    pub false_good: u64,
}

impl ConfusionMatrix {
    /// Counts the outcomes of predicting `bad` whenever `score >= threshold`.
    ///
    /// `>=` rather than `>` so that a threshold equal to a score flags that applicant: the
    /// cost-minimising threshold is chosen with the same rule.
    pub(crate) fn at_threshold(
        scores: &[f32],
        labels: &[bool],
        threshold: f32,
    ) -> Result<Self, MetricsError> {
        check_inputs(scores, labels)?;
        let mut matrix = ConfusionMatrix {
            true_bad: 0,
            false_bad: 0,
            true_good: 0,
            false_good: 0,
        };
        for (&score, &bad) in scores.iter().zip(labels) {
            match (score >= threshold, bad) {
                (true, true) => matrix.true_bad += 1,
                (true, false) => matrix.false_bad += 1,
                (false, false) => matrix.true_good += 1,
                (false, true) => matrix.false_good += 1,
            }
        }
        Ok(matrix)
    }

    /// Number of applicants counted.
    pub fn total(&self) -> u64 {
        self.true_bad + self.false_bad + self.true_good + self.false_good
    }

    /// Share of correct decisions; 0 for an empty matrix.
    pub fn accuracy(&self) -> f64 {
        ratio(self.true_bad + self.true_good, self.total())
    }

    /// Of the applicants flagged `bad`, the share that really are; 0 when nobody is flagged.
    pub fn precision_bad(&self) -> f64 {
        ratio(self.true_bad, self.true_bad + self.false_bad)
    }

    /// Of the applicants that really are `bad`, the share that were flagged; 0 when there are
    /// none.
    pub fn recall_bad(&self) -> f64 {
        ratio(self.true_bad, self.true_bad + self.false_good)
    }

    /// Harmonic mean of precision and recall for `bad`; 0 when both are 0.
    pub fn f1_bad(&self) -> f64 {
        let precision = self.precision_bad();
        let recall = self.recall_bad();
        if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        }
    }

    /// Total cost of the mistakes divided by the number of applicants, so that sets of
    /// different sizes compare; 0 for an empty matrix.
    pub fn average_cost(&self, costs: &CostMatrix) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        total_cost(self.false_good, self.false_bad, costs) / total as f64
    }
}

/// Area under the ROC curve: the probability that a random `bad` applicant scores higher than
/// a random `good` one, ties counting one half.
///
/// Computed from the rank sum of the `bad` scores (Mann–Whitney U) with tied scores given their
/// average rank, which handles ties exactly and needs no curve. `None` when one class is
/// absent, because the probability is then undefined.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Result<Option<f64>, MetricsError> {
    check_inputs(scores, labels)?;
    let positives = labels.iter().filter(|&&bad| bad).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Ok(None);
    }

    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));

    // Walk groups of tied scores; ranks are 1-based, a group spanning ranks
    // `start + 1 ..= end` gets their average `(start + 1 + end) / 2`.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let group_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += average_rank * group_positives as f64;
        start = end;
    }

    let positives = positives as f64;
    let negatives = negatives as f64;
    let u = positive_rank_sum - positives * (positives + 1.0) / 2.0;
    Ok(Some(u / (positives * negatives)))
}

/// Points (false-positive rate, true-positive rate) of the ROC curve, from `(0, 0)` to `(1, 1)`.
///
/// The threshold is lowered past one distinct score at a time, so tied scores move both rates
/// at once (a diagonal step) instead of producing an order-dependent staircase; the
/// trapezoidal area under these points equals [`roc_auc`]. Empty when one class is absent,
/// since one of the two rates would then be undefined (mirroring `roc_auc`'s `None`).
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Result<Vec<(f64, f64)>, MetricsError> {
    check_inputs(scores, labels)?;
    let positives = labels.iter().filter(|&&bad| bad).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Ok(Vec::new());
    }

    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    let mut points = vec![(0.0, 0.0)];
    let (mut true_positives, mut false_positives) = (0usize, 0usize);
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            if labels[order[end]] {
                true_positives += 1;
            } else {
                false_positives += 1;
            }
            end += 1;
        }
        points.push((
            false_positives as f64 / negatives as f64,
            true_positives as f64 / positives as f64,
        ));
        start = end;
    }
    Ok(points)
}

/// Mean squared difference between the predicted probability and the outcome (1 for `bad`).
///
/// Unlike AUC it punishes miscalibration, which matters because the cost-based threshold
/// assumes the scores are probabilities.
pub(crate) fn brier_score(scores: &[f32], labels: &[bool]) -> Result<f64, MetricsError> {
    check_inputs(scores, labels)?;
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&score, &bad)| (f64::from(score) - outcome(bad)).powi(2))
        .sum();
    Ok(sum / scores.len() as f64)
}

/// Mean negative log-likelihood of the outcomes (binary cross-entropy), the training loss.
///
/// Probabilities are clamped to `[1e-7, 1 − 1e-7]` so that one confidently wrong score gives
/// a large but finite loss instead of infinity.
pub(crate) fn log_loss(scores: &[f32], labels: &[bool]) -> Result<f64, MetricsError> {
    const EPSILON: f64 = 1e-7;
    check_inputs(scores, labels)?;
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&score, &bad)| {
            let p = f64::from(score).clamp(EPSILON, 1.0 - EPSILON);
            if bad {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Ok(sum / scores.len() as f64)
}

/// The threshold that minimises the average cost of decisions on these scores.
///
/// Only the position of the threshold relative to the scores matters, so the candidates are
/// one threshold per gap: the midpoint between each pair of consecutive distinct scores,
/// one below the minimum (everyone flagged `bad`) and one above the maximum (nobody
/// flagged). For probability scores the outer candidates are 0 and 1 when those lie outside
/// the scores, otherwise the nearest representable `f32` beyond them.
///
/// Several candidates can cost the same; the one closest to the Bayes threshold
/// ([`CostMatrix::bayes_threshold`]) wins, because that is where a calibrated model's
/// threshold belongs and it generalises best. A remaining tie goes to the lower threshold,
/// which errs on the side of flagging `bad`, the more expensive mistake to miss.
///
/// Choose it on validation scores, not test scores: it is fitted to the data it sees.
pub fn cost_minimising_threshold(
    scores: &[f32],
    labels: &[bool],
    costs: &CostMatrix,
) -> Result<f32, MetricsError> {
    check_inputs(scores, labels)?;
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bayes = costs.bayes_threshold();

    // Below the minimum everyone is flagged bad: every good applicant is a false bad.
    let mut false_bad = labels.iter().filter(|&&bad| !bad).count() as u64;
    let mut false_good = 0u64;
    let lowest = pairs[0].0;
    let below = if lowest > 0.0 {
        0.0
    } else {
        lowest.next_down()
    };
    let mut best = (below, total_cost(false_good, false_bad, costs));

    let mut start = 0;
    while start < pairs.len() {
        // Raise the threshold past this group of tied scores: they are now predicted good.
        let score = pairs[start].0;
        let mut end = start;
        while end < pairs.len() && pairs[end].0 == score {
            if pairs[end].1 {
                false_good += 1;
            } else {
                false_bad -= 1;
            }
            end += 1;
        }
        let candidate = match pairs.get(end) {
            Some(&(next, _)) => midpoint_above(score, next),
            None if score < 1.0 => 1.0,
            None => score.next_up(),
        };
        let cost = total_cost(false_good, false_bad, costs);
        let closer = (f64::from(candidate) - bayes).abs() < (f64::from(best.0) - bayes).abs();
        if cost < best.1 || (cost == best.1 && closer) {
            best = (candidate, cost);
        }
        start = end;
    }
    Ok(best.0)
}

/// Everything we report about a model on one evaluation set at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    pub accuracy: f64,
    /// `None` when the set holds only one class.
    pub roc_auc: Option<f64>,
    pub precision_bad: f64,
    pub recall_bad: f64,
    pub f1_bad: f64,
    pub brier: f64,
    pub log_loss: f64,
    /// Average cost per applicant under the cost matrix the report was made with.
    pub average_cost: f64,
    pub confusion: ConfusionMatrix,
    /// Scores at or above this were predicted `bad`.
    pub threshold: f32,
    /// Number of applicants evaluated.
    pub n: usize,
}

impl ClassificationReport {
    /// Computes every metric in one pass over the inputs' checks, so a report is either
    /// complete or an error, never half-filled.
    pub fn evaluate(
        scores: &[f32],
        labels: &[bool],
        threshold: f32,
        costs: &CostMatrix,
    ) -> Result<Self, MetricsError> {
        let confusion = ConfusionMatrix::at_threshold(scores, labels, threshold)?;
        Ok(ClassificationReport {
            accuracy: confusion.accuracy(),
            roc_auc: roc_auc(scores, labels)?,
            precision_bad: confusion.precision_bad(),
            recall_bad: confusion.recall_bad(),
            f1_bad: confusion.f1_bad(),
            brier: brier_score(scores, labels)?,
            log_loss: log_loss(scores, labels)?,
            average_cost: confusion.average_cost(costs),
            confusion,
            threshold,
            n: scores.len(),
        })
    }
}

/// Equal-width probability bins of the calibration report: ten, as the issue measured it.
pub const CALIBRATION_BINS: usize = 10;

/// One bin of a reliability table: the rows whose probability of `bad` fell in
/// `[lower, upper)` (the last bin includes 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// `None` for an empty bin.
    pub mean_predicted: Option<f64>,
    pub observed_bad_rate: Option<f64>,
}

/// How far predicted probabilities are from observed frequencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub n: usize,
    /// Number of equal-width bins the error and the table use.
    pub bins: usize,
    /// Expected calibration error: `Σ (count / n) · |mean predicted − observed bad rate|` over
    /// the bins.
    pub expected_calibration_error: f64,
    pub brier: f64,
    pub mean_predicted: f64,
    pub observed_bad_rate: f64,
    pub reliability: Vec<ReliabilityBin>,
}

impl CalibrationReport {
    /// The report over `bins` equal-width bins of `[0, 1]` (at least one).
    pub fn evaluate(scores: &[f32], labels: &[bool], bins: usize) -> Result<Self, MetricsError> {
        check_inputs(scores, labels)?;
        let bins = bins.max(1);
        // Per bin: rows, summed probability, bad rows.
        let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
        for (&score, &bad) in scores.iter().zip(labels) {
            let p = f64::from(score).clamp(0.0, 1.0);
            let bin = ((p * bins as f64) as usize).min(bins - 1);
            sums[bin].0 += 1;
            sums[bin].1 += p;
            sums[bin].2 += usize::from(bad);
        }
        let n = scores.len();
        let mut error = 0.0;
        let reliability = sums
            .iter()
            .enumerate()
            .map(|(bin, &(count, probability, bad))| {
                let (mean_predicted, observed_bad_rate) = if count == 0 {
                    (None, None)
                } else {
                    let mean = probability / count as f64;
                    let observed = bad as f64 / count as f64;
                    error += count as f64 / n as f64 * (mean - observed).abs();
                    (Some(mean), Some(observed))
                };
                ReliabilityBin {
                    lower: bin as f64 / bins as f64,
                    upper: (bin + 1) as f64 / bins as f64,
                    count,
                    mean_predicted,
                    observed_bad_rate,
                }
            })
            .collect();
        Ok(Self {
            n,
            bins,
            expected_calibration_error: error,
            brier: brier_score(scores, labels)?,
            mean_predicted: scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64,
            observed_bad_rate: labels.iter().filter(|&&bad| bad).count() as f64 / n as f64,
            reliability,
        })
    }
}

/// Mean and sample standard deviation (divisor `n − 1`), for summarising a metric across
/// cross-validation folds or training seeds, which are samples of what the model would do.
///
/// The standard deviation is 0 for fewer than two values (no spread can be estimated); the
/// mean of no values is `NaN`, because any number would look like a real result in a report.
pub fn mean_and_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    (mean, (squares / (n - 1.0)).sqrt())
}

/// Mean and sample standard deviation of a set of figures (folds, seeds), as
/// [`mean_and_std`] computes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_and_std(values);
        Self { mean, std }
    }
}

/// The checks shared by every metric over scores and labels.
fn check_inputs(scores: &[f32], labels: &[bool]) -> Result<(), MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    if scores.is_empty() {
        return Err(MetricsError::Empty);
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricsError::NonFiniteScore { index });
    }
    Ok(())
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Computed from counts rather than accumulated, so that equal costs compare equal exactly.
fn total_cost(false_good: u64, false_bad: u64, costs: &CostMatrix) -> f64 {
    false_good as f64 * costs.false_good_cost + false_bad as f64 * costs.false_bad_cost
}

fn outcome(bad: bool) -> f64 {
    if bad {
        1.0
    } else {
        0.0
    }
}

/// A threshold strictly above `low` and at most `high` (`low < high`): their midpoint, or
/// `high` itself when the two are adjacent floats and the midpoint rounds down onto `low`.
pub fn midpoint_above(low: f32, high: f32) -> f32 {
    let middle = ((f64::from(low) + f64::from(high)) / 2.0) as f32;
    if middle > low && middle <= high {
        middle
    } else {
        high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < EPS,
            "expected {expected}, got {actual}"
        );
    }

    // Scores and labels used by several tests:
    //   0.9 bad, 0.8 good, 0.7 bad, 0.4 good, 0.3 bad, 0.1 good
    const SCORES: [f32; 6] = [0.9, 0.8, 0.7, 0.4, 0.3, 0.1];
    const LABELS: [bool; 6] = [true, false, true, false, true, false];

    #[test]
    fn german_credit_costs_are_five_to_one() {
        assert_eq!(CostMatrix::GERMAN_CREDIT.false_good_cost, 5.0);
        assert_eq!(CostMatrix::GERMAN_CREDIT.false_bad_cost, 1.0);
    }

    #[test]
    fn a_decision_costs_only_when_it_is_wrong() {
        let cost = CostMatrix::GERMAN_CREDIT;
        assert_eq!(cost.of(false, true), 5.0);
        assert_eq!(cost.of(true, false), 1.0);
        assert_eq!(cost.of(true, true), 0.0);
        assert_eq!(cost.of(false, false), 0.0);
    }

    #[test]
    fn bayes_threshold_is_one_sixth_for_german_credit_and_half_for_degenerate_costs() {
        assert_close(CostMatrix::GERMAN_CREDIT.bayes_threshold(), 1.0 / 6.0);
        let zero = CostMatrix {
            false_good_cost: 0.0,
            false_bad_cost: 0.0,
        };
        assert_close(zero.bayes_threshold(), 0.5);
    }

    #[test]
    fn confusion_matrix_predicts_bad_at_or_above_threshold() {
        // At 0.7: flagged 0.9 (bad), 0.8 (good), 0.7 (bad, equal to threshold).
        let m = ConfusionMatrix::at_threshold(&SCORES, &LABELS, 0.7).unwrap();
        assert_eq!(
            m,
            ConfusionMatrix {
                true_bad: 2,
                false_bad: 1,
                true_good: 2,
                false_good: 1,
            }
        );
        assert_eq!(m.total(), 6);
    }

    #[test]
    fn confusion_matrix_rejects_mismatched_empty_and_nan_inputs() {
        assert_eq!(
            ConfusionMatrix::at_threshold(&[0.1, 0.2], &[true], 0.5),
            Err(MetricsError::LengthMismatch {
                scores: 2,
                labels: 1
            })
        );
        assert_eq!(
            ConfusionMatrix::at_threshold(&[], &[], 0.5),
            Err(MetricsError::Empty)
        );
        assert_eq!(
            ConfusionMatrix::at_threshold(&[0.1, f32::NAN], &[true, false], 0.5),
            Err(MetricsError::NonFiniteScore { index: 1 })
        );
    }

    #[test]
    fn rates_match_hand_computed_values() {
        let m = ConfusionMatrix {
            true_bad: 3,
            false_bad: 1,
            true_good: 4,
            false_good: 2,
        };
        assert_close(m.accuracy(), 7.0 / 10.0);
        assert_close(m.precision_bad(), 3.0 / 4.0);
        assert_close(m.recall_bad(), 3.0 / 5.0);
        // 2 · 0.75 · 0.6 / 1.35 = 2/3
        assert_close(m.f1_bad(), 2.0 / 3.0);
    }

    #[test]
    fn rates_are_zero_when_denominators_are_zero() {
        let nobody_flagged = ConfusionMatrix {
            true_bad: 0,
            false_bad: 0,
            true_good: 3,
            false_good: 2,
        };
        assert_eq!(nobody_flagged.precision_bad(), 0.0);
        assert_eq!(nobody_flagged.recall_bad(), 0.0);
        assert_eq!(nobody_flagged.f1_bad(), 0.0);
        let empty = ConfusionMatrix {
            true_bad: 0,
            false_bad: 0,
            true_good: 0,
            false_good: 0,
        };
        assert_eq!(empty.accuracy(), 0.0);
        assert_eq!(empty.average_cost(&CostMatrix::GERMAN_CREDIT), 0.0);
        assert_eq!(empty.total(), 0);
    }

    #[test]
    fn average_cost_weights_mistakes_by_the_cost_matrix() {
        let m = ConfusionMatrix {
            true_bad: 3,
            false_bad: 1,
            true_good: 4,
            false_good: 2,
        };
        // (2 · 5 + 1 · 1) / 10
        assert_close(m.average_cost(&CostMatrix::GERMAN_CREDIT), 1.1);
    }

    #[test]
    fn roc_auc_counts_ordered_pairs() {
        // Pairs (bad, good) with bad scoring higher: 0.9 beats all 3 goods, 0.7 beats 0.4 and
        // 0.1, 0.3 beats 0.1 → 6 of 9.
        assert_close(roc_auc(&SCORES, &LABELS).unwrap().unwrap(), 6.0 / 9.0);
    }

    #[test]
    fn roc_auc_counts_ties_as_half() {
        // bad 0.5, bad 0.2; good 0.5, good 0.1.
        // (0.5 vs 0.5) = ½, (0.5 vs 0.1) = 1, (0.2 vs 0.5) = 0, (0.2 vs 0.1) = 1 → 2.5 / 4.
        let auc = roc_auc(&[0.5, 0.2, 0.5, 0.1], &[true, true, false, false]).unwrap();
        assert_close(auc.unwrap(), 0.625);
        // All scores equal: no information, exactly 0.5.
        let auc = roc_auc(&[0.3; 4], &[true, false, false, true]).unwrap();
        assert_close(auc.unwrap(), 0.5);
    }

    #[test]
    fn roc_auc_is_none_for_a_single_class_and_errors_on_bad_input() {
        assert_eq!(roc_auc(&[0.2, 0.9], &[true, true]), Ok(None));
        assert_eq!(roc_auc(&[0.2, 0.9], &[false, false]), Ok(None));
        assert_eq!(
            roc_auc(&[0.2], &[true, false]),
            Err(MetricsError::LengthMismatch {
                scores: 1,
                labels: 2
            })
        );
        assert_eq!(roc_auc(&[], &[]), Err(MetricsError::Empty));
    }

    #[test]
    fn roc_curve_steps_through_each_distinct_score() {
        let curve = roc_curve(&SCORES, &LABELS).unwrap();
        let third = 1.0 / 3.0;
        let expected = [
            (0.0, 0.0),
            (0.0, third),
            (third, third),
            (third, 2.0 * third),
            (2.0 * third, 2.0 * third),
            (2.0 * third, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(curve.len(), expected.len());
        for (got, want) in curve.iter().zip(expected) {
            assert_close(got.0, want.0);
            assert_close(got.1, want.1);
        }
    }

    #[test]
    fn roc_curve_collapses_ties_and_its_area_equals_auc() {
        let scores = [0.5, 0.2, 0.5, 0.1];
        let labels = [true, true, false, false];
        let curve = roc_curve(&scores, &labels).unwrap();
        // The two 0.5 scores (one bad, one good) move together: one diagonal step.
        assert_eq!(curve, vec![(0.0, 0.0), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert_close(area, roc_auc(&scores, &labels).unwrap().unwrap());
    }

    #[test]
    fn roc_curve_is_empty_for_a_single_class() {
        assert!(roc_curve(&[0.1, 0.2], &[true, true]).unwrap().is_empty());
        assert_eq!(
            roc_curve(&[0.1], &[]),
            Err(MetricsError::LengthMismatch {
                scores: 1,
                labels: 0
            })
        );
    }

    #[test]
    fn brier_score_is_mean_squared_error_against_outcomes() {
        // (0.25)² for bad at 0.75, (0.5)² for good at 0.5 → (0.0625 + 0.25) / 2.
        assert_close(brier_score(&[0.75, 0.5], &[true, false]).unwrap(), 0.15625);
        assert_eq!(brier_score(&[], &[]), Err(MetricsError::Empty));
    }

    /// For figures computed from `f32` scores, which carry about seven digits.
    fn assert_near(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-6,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn calibration_bins_rows_by_probability_and_weighs_each_bin_by_its_rows() {
        // Bin [0.1, 0.2): 0.1 and 0.15, one bad: mean 0.125, observed 0.5, gap 0.375.
        // Bin [0.9, 1.0]: 0.95 and 1.0, both bad: mean 0.975, observed 1, gap 0.025.
        // ECE = 2/4 · 0.375 + 2/4 · 0.025 = 0.2.
        let report = CalibrationReport::evaluate(
            &[0.1, 0.15, 0.95, 1.0],
            &[true, false, true, true],
            CALIBRATION_BINS,
        )
        .unwrap();
        assert_near(report.expected_calibration_error, 0.2);
        assert_eq!(report.reliability.len(), 10);
        let low = &report.reliability[1];
        assert_eq!(low.count, 2);
        assert_near(low.mean_predicted.unwrap(), 0.125);
        assert_near(low.observed_bad_rate.unwrap(), 0.5);
        assert_eq!(report.reliability[9].count, 2, "1.0 falls in the last bin");
        assert_eq!(report.reliability[0].mean_predicted, None);
        assert_near(report.mean_predicted, 0.55);
        assert_near(report.observed_bad_rate, 0.75);
        // (0.1−1)² + 0.15² + 0.05² + 0 = 0.81 + 0.0225 + 0.0025 = 0.835, over 4.
        assert_near(report.brier, 0.20875);
    }

    #[test]
    fn a_model_predicting_each_bins_observed_rate_has_no_calibration_error() {
        let scores = [0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75];
        let labels = [true, false, false, false, true, true, true, false];
        let report = CalibrationReport::evaluate(&scores, &labels, 10).unwrap();
        assert!(report.expected_calibration_error < 1e-6);
        assert_eq!(
            CalibrationReport::evaluate(&[], &[], 10),
            Err(MetricsError::Empty)
        );
    }

    #[test]
    fn log_loss_is_mean_negative_log_likelihood() {
        // −(ln 0.75 + ln 0.5) / 2
        let expected = -(0.75f64.ln() + 0.5f64.ln()) / 2.0;
        assert_close(log_loss(&[0.75, 0.5], &[true, false]).unwrap(), expected);
    }

    #[test]
    fn log_loss_clamps_confident_mistakes_to_a_finite_value() {
        let loss = log_loss(&[0.0, 1.0], &[true, false]).unwrap();
        assert!((loss - -(1e-7f64).ln()).abs() < 1e-6, "got {loss}");
        assert!(log_loss(&[0.5], &[true, true]).is_err());
    }

    #[test]
    fn cost_minimising_threshold_finds_the_cheapest_gap() {
        // 5:1 costs. Sorted: 0.1 g, 0.3 b, 0.4 g, 0.7 b, 0.8 g, 0.9 b.
        // Costs by threshold: 0 → 3 goods flagged = 3; 0.2 → 2; 0.35 → 5 + 2 = 7; ...
        // so the cheapest is between 0.1 and 0.3: 0.2.
        let t = cost_minimising_threshold(&SCORES, &LABELS, &CostMatrix::GERMAN_CREDIT).unwrap();
        assert!((t - 0.2).abs() < 1e-6, "got {t}");
    }

    #[test]
    fn cost_minimising_threshold_can_flag_nobody_or_everybody() {
        // Only good applicants: flagging nobody costs 0, threshold must be above the maximum.
        let t = cost_minimising_threshold(&[0.2, 0.6], &[false, false], &CostMatrix::GERMAN_CREDIT)
            .unwrap();
        assert_eq!(t, 1.0);
        // Only bad applicants: flag everybody, threshold below the minimum.
        let t = cost_minimising_threshold(&[0.2, 0.6], &[true, true], &CostMatrix::GERMAN_CREDIT)
            .unwrap();
        assert_eq!(t, 0.0);
        // A score of exactly 1.0 needs a threshold strictly above it to flag nobody.
        let t = cost_minimising_threshold(&[1.0], &[false], &CostMatrix::GERMAN_CREDIT).unwrap();
        assert!(t > 1.0);
        let m = ConfusionMatrix::at_threshold(&[1.0], &[false], t).unwrap();
        assert_eq!(m.false_bad, 0);
    }

    #[test]
    fn cost_minimising_threshold_breaks_ties_towards_the_bayes_threshold() {
        let even = CostMatrix {
            false_good_cost: 1.0,
            false_bad_cost: 1.0,
        };
        // 0.1 g, 0.3 b, 0.5 g, 0.9 b at 1:1 (Bayes 0.5): thresholds 0 → 2, 0.2 → 1,
        // 0.4 → 2, 0.7 → 1, 1 → 2. 0.7 is 0.2 from Bayes, 0.2 is 0.3 away.
        let labels = [false, true, false, true];
        let t = cost_minimising_threshold(&[0.1, 0.3, 0.5, 0.9], &labels, &even).unwrap();
        assert!((t - 0.7).abs() < 1e-6, "got {t}");

        // 0.125 g, 0.375 b, 0.625 g, 0.875 b at 1:1: 0.25 and 0.75 both cost 1 and are
        // exactly 0.25 from Bayes; the lower one wins.
        let scores = [0.125, 0.375, 0.625, 0.875];
        assert_eq!(
            cost_minimising_threshold(&scores, &labels, &even).unwrap(),
            0.25
        );

        // Costs tie across different counts at 5:1: 0.1 b then five goods.
        // 0 → five goods flagged = 5; 1 → the bad one missed = 5; every midpoint costs more.
        // 0 is the closer to 1/6.
        let scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let labels = [true, false, false, false, false, false];
        let t = cost_minimising_threshold(&scores, &labels, &CostMatrix::GERMAN_CREDIT).unwrap();
        assert_eq!(t, 0.0);
    }

    #[test]
    fn cost_minimising_threshold_rejects_bad_input() {
        assert_eq!(
            cost_minimising_threshold(&[], &[], &CostMatrix::GERMAN_CREDIT),
            Err(MetricsError::Empty)
        );
        assert_eq!(
            cost_minimising_threshold(&[f32::INFINITY], &[true], &CostMatrix::GERMAN_CREDIT),
            Err(MetricsError::NonFiniteScore { index: 0 })
        );
    }

    #[test]
    fn midpoint_above_stays_strictly_above_the_lower_score() {
        assert_eq!(midpoint_above(0.25, 0.75), 0.5);
        let low = 0.5f32;
        let high = low.next_up();
        let t = midpoint_above(low, high);
        assert!(t > low && t <= high);
    }

    #[test]
    fn evaluate_fills_every_field_consistently() {
        let report =
            ClassificationReport::evaluate(&SCORES, &LABELS, 0.7, &CostMatrix::GERMAN_CREDIT)
                .unwrap();
        // Confusion at 0.7: tb 2, fb 1, tg 2, fg 1.
        assert_eq!(report.n, 6);
        assert_eq!(report.threshold, 0.7);
        assert_eq!(report.confusion.true_bad, 2);
        assert_close(report.accuracy, 4.0 / 6.0);
        assert_close(report.precision_bad, 2.0 / 3.0);
        assert_close(report.recall_bad, 2.0 / 3.0);
        assert_close(report.f1_bad, 2.0 / 3.0);
        assert_close(report.average_cost, (5.0 + 1.0) / 6.0);
        assert_close(report.roc_auc.unwrap(), 6.0 / 9.0);
        assert_close(report.brier, brier_score(&SCORES, &LABELS).unwrap());
        assert_close(report.log_loss, log_loss(&SCORES, &LABELS).unwrap());
    }

    #[test]
    fn evaluate_round_trips_through_json_and_rejects_bad_input() {
        let report =
            ClassificationReport::evaluate(&SCORES, &LABELS, 0.5, &CostMatrix::GERMAN_CREDIT)
                .unwrap();
        let json = serde_json::to_string(&report).unwrap();
        let back: ClassificationReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert!(matches!(
            ClassificationReport::evaluate(&SCORES, &[true], 0.5, &CostMatrix::GERMAN_CREDIT),
            Err(MetricsError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn mean_and_std_use_the_sample_standard_deviation() {
        // Mean 5, squared deviations 9 + 1 + 1 + 9 = 20, / 3.
        let (mean, std) = mean_and_std(&[2.0, 4.0, 6.0, 8.0]);
        assert_close(mean, 5.0);
        assert_close(std, (20.0f64 / 3.0).sqrt());
    }

    #[test]
    fn mean_and_std_of_fewer_than_two_values_has_no_spread() {
        assert_eq!(mean_and_std(&[3.5]), (3.5, 0.0));
        let (mean, std) = mean_and_std(&[]);
        assert!(mean.is_nan());
        assert_eq!(std, 0.0);
    }
}

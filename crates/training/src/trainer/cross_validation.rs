//! Stratified K-fold cross-validation of the whole fitting procedure, repeated over seeds.
//!
//! One 200-applicant test split gives an AUC with a standard error of about 0.03, too coarse to
//! tell a real improvement from luck. K folds give every applicant one turn in a test set and a
//! spread to go with the mean; repeating them with other seeds (other folds, other initial
//! weights) shows how much of a difference is the seed's. Each fold carves its own validation
//! split out of its training part (for early stopping, calibration and the threshold), exactly
//! as the shipped model does.
//!
//! Every fold's test predictions are also pooled (out of fold, each decided at its own fold's
//! threshold) for the calibration and fairness figures, which need more rows than one fold has.

use super::data::TrainingData;
use super::fair_threshold::{self, Floors, NestedFloors};
use super::fit::{fit, FitError, FitOptions, SplitIndices};
use super::out_of_fold::{decide, decide_at, Prediction, ThresholdTradeoff};
use super::truth::TrueProbabilities;
use crate::split::{stratified_k_fold, stratified_split};
use credit_core::evaluation::{
    CalibrationReport, CostMatrix, MetricsError, Spread, CALIBRATION_BINS,
};
use credit_core::fairness::{FairnessError, FairnessReport, ProtectedGroups};
use credit_core::schema::Schema;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Test-split figures of one fold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldSummary {
    /// The seed of the fold's split and training.
    #[serde(default)]
    pub seed: u64,
    pub fold: usize,
    pub test_rows: usize,
    pub lstm_auc: Option<f64>,
    pub lstm_cost: f64,
    pub lstm_threshold: f32,
    pub lstm_train_test_auc_gap: Option<f64>,
    pub lstm_best_epoch: usize,
    /// Expected calibration error of the calibrated LSTM on the fold's test rows.
    #[serde(default)]
    pub lstm_ece: f64,
    #[serde(default)]
    pub lstm_brier: f64,
    /// Mean calibrated probability on the fold's test rows, and their observed bad rate.
    #[serde(default)]
    pub lstm_mean_predicted: f64,
    #[serde(default)]
    pub observed_bad_rate: f64,
    pub logistic_auc: Option<f64>,
    pub logistic_cost: f64,
    #[serde(default)]
    pub logistic_ece: f64,
    #[serde(default)]
    pub logistic_brier: f64,
    pub seconds: f64,
    /// The true probabilities of the fold's test rows, when the data file has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_probability: Option<TrueProbabilities>,
}

/// Aggregates of one model over the folds (of every seed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ModelSpread {
    pub roc_auc: Spread,
    pub average_cost: Spread,
    /// Per-fold expected calibration error (10 equal-width bins) on the fold's test rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_calibration_error: Option<Spread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brier: Option<Spread>,
}

/// Every fold's test predictions together, each row once per seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PooledOutOfFold {
    pub predictions: usize,
    /// Calibration of the pooled calibrated probabilities (10 equal-width bins).
    pub lstm: CalibrationReport,
    pub logistic: CalibrationReport,
    /// Average cost of the pooled decisions, each at its fold's threshold.
    pub lstm_cost: f64,
    /// By protected group, from the LSTM's decisions; `None` when the schema has no
    /// protected field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness: Option<FairnessReport>,
    /// The same pooled probabilities decided at other thresholds: what a stricter or looser
    /// threshold costs and does to each protected field's lowest adverse-impact ratio.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fairness_by_threshold: Vec<ThresholdTradeoff>,
    /// The same predictions decided under the schema's adverse-impact floors, each fold at the
    /// threshold they pick from the other folds; `None` when the schema sets no floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floors: Option<NestedFloors>,
}

/// Thresholds the trade-off is shown at: from strict to lenient around the 5:1 matrix's 1/6.
const TRADEOFF_THRESHOLDS: [f32; 9] = [0.10, 0.15, 0.175, 0.20, 0.25, 0.30, 0.35, 0.40, 0.50];

/// The pooled probabilities decided at each of [`TRADEOFF_THRESHOLDS`].
fn threshold_tradeoff(
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    cost: &CostMatrix,
) -> Vec<ThresholdTradeoff> {
    if groups.is_empty() {
        return Vec::new();
    }
    TRADEOFF_THRESHOLDS
        .iter()
        .map(|&threshold| decide_at(groups, predictions, cost, threshold))
        .collect()
}

/// The cross-validation report written into metrics.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossValidationReport {
    pub folds: usize,
    /// The first seed; see `seeds`.
    pub seed: u64,
    /// Every seed the folds were repeated with (split and training seed alike).
    #[serde(default)]
    pub seeds: Vec<u64>,
    pub lstm: ModelSpread,
    pub lstm_train_test_auc_gap: Spread,
    pub logistic_regression: ModelSpread,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<PooledOutOfFold>,
    pub per_fold: Vec<FoldSummary>,
    pub seconds: f64,
}

/// Why cross-validation failed.
#[derive(Debug, thiserror::Error)]
pub enum CrossValidationError {
    #[error("cannot make {k} folds: {reason}")]
    Folds { k: usize, reason: String },
    #[error("fold {fold}: {source}")]
    Fit { fold: usize, source: FitError },
    #[error("fold {fold}: true probabilities: {source}")]
    Truth { fold: usize, source: MetricsError },
    #[error("pooled out-of-fold calibration: {0}")]
    Pooled(#[from] MetricsError),
    #[error("protected groups: {0}")]
    Fairness(#[from] FairnessError),
}

/// The pooled out-of-fold predictions as they come in.
struct Pool<'d> {
    /// The LSTM's, each with its row's outcome, applicant, seed and fold.
    lstm: Vec<Prediction<'d>>,
    logistic: Vec<f32>,
    /// Each fold's own threshold, seed by seed.
    thresholds: Vec<f32>,
    groups: ProtectedGroups,
}

impl Pool<'_> {
    fn labels(&self) -> Vec<bool> {
        self.lstm.iter().map(|p| p.bad).collect()
    }

    fn scores(&self) -> Vec<f32> {
        self.lstm.iter().map(|p| p.score).collect()
    }
}

/// Runs `k`-fold cross-validation on `data.rows` once per seed of `seeds` (each seed making the
/// folds, the inner validation split and the training seed of `options`); `on_fold` sees each
/// fold as it finishes. When the data has true probabilities, each fold also reports those of
/// its test rows. Returns the report and the pooled out-of-fold LSTM predictions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross_validate<'d>(
    schema: &Schema,
    data: &'d TrainingData,
    k: usize,
    seeds: &[u64],
    validation_fraction: f64,
    options: &FitOptions,
    cost: &CostMatrix,
    on_fold: &mut dyn FnMut(&FoldSummary),
) -> Result<(CrossValidationReport, Vec<Prediction<'d>>), CrossValidationError> {
    let started = Instant::now();
    let (rows, truth) = (&data.rows, data.true_probabilities.as_deref());
    let labels: Vec<bool> = rows.iter().map(|row| row.bad).collect();
    let groups = ProtectedGroups::new(schema, &[])?;
    let mut pool = Pool {
        lstm: Vec::new(),
        logistic: Vec::new(),
        thresholds: Vec::new(),
        groups,
    };
    let mut per_fold = Vec::with_capacity(k * seeds.len());
    for (seed_index, &seed) in seeds.iter().enumerate() {
        let options = FitOptions {
            training: crate::training::TrainingConfig {
                seed,
                ..options.training
            },
            baseline_training: crate::training::TrainingConfig {
                seed,
                ..options.baseline_training
            },
            ..*options
        };
        let folds =
            stratified_k_fold(&labels, k, seed).map_err(|error| CrossValidationError::Folds {
                k,
                reason: error.to_string(),
            })?;
        for (fold, test) in folds.iter().enumerate() {
            let fold_started = Instant::now();
            let mut in_test = vec![false; rows.len()];
            for &i in test {
                in_test[i] = true;
            }
            let rest: Vec<usize> = (0..rows.len()).filter(|&i| !in_test[i]).collect();
            let rest_labels: Vec<bool> = rest.iter().map(|&i| labels[i]).collect();
            let inner = stratified_split(
                &rest_labels,
                validation_fraction,
                0.0,
                seed.wrapping_add(fold as u64 + 1),
            );
            let split = SplitIndices {
                train: inner.train.iter().map(|&i| rest[i]).collect(),
                validation: inner.validation.iter().map(|&i| rest[i]).collect(),
                test: test.clone(),
            };
            let result = fit(schema, rows, &split, &options, cost, &mut |_| {})
                .map_err(|source| CrossValidationError::Fit { fold, source })?;
            let true_probability = truth
                .map(|truth| {
                    let test_truth: Vec<f64> = split.test.iter().map(|&i| truth[i]).collect();
                    let test_bad: Vec<bool> = split.test.iter().map(|&i| labels[i]).collect();
                    TrueProbabilities::of(&test_truth, &test_bad)
                })
                .transpose()
                .map_err(|source| CrossValidationError::Truth { fold, source })?;
            let threshold = result.lstm.threshold;
            pool.thresholds.push(threshold);
            for (position, &i) in split.test.iter().enumerate() {
                pool.lstm.push(Prediction {
                    row: i,
                    score: result.test_scores.lstm[position],
                    bad: labels[i],
                    applicant: &rows[i].applicant,
                    seed: seed_index,
                    fold,
                });
                pool.logistic.push(result.test_scores.logistic[position]);
            }
            let calibration = |reports: &super::fit::SplitReports| {
                reports.calibration.as_ref().map(|c| c.test.clone())
            };
            let lstm_calibration = calibration(&result.lstm);
            let logistic_calibration = calibration(&result.logistic);
            let summary = FoldSummary {
                seed,
                fold: fold + 1,
                test_rows: split.test.len(),
                lstm_auc: result.lstm.test.roc_auc,
                lstm_cost: result.lstm.test.average_cost,
                lstm_threshold: threshold,
                lstm_train_test_auc_gap: result.lstm.train_test_auc_gap,
                lstm_best_epoch: result.best_epoch,
                lstm_ece: lstm_calibration
                    .as_ref()
                    .map_or(f64::NAN, |c| c.expected_calibration_error),
                lstm_brier: result.lstm.test.brier,
                lstm_mean_predicted: lstm_calibration
                    .as_ref()
                    .map_or(f64::NAN, |c| c.mean_predicted),
                observed_bad_rate: lstm_calibration
                    .as_ref()
                    .map_or(f64::NAN, |c| c.observed_bad_rate),
                logistic_auc: result.logistic.test.roc_auc,
                logistic_cost: result.logistic.test.average_cost,
                logistic_ece: logistic_calibration
                    .as_ref()
                    .map_or(f64::NAN, |c| c.expected_calibration_error),
                logistic_brier: result.logistic.test.brier,
                seconds: fold_started.elapsed().as_secs_f64(),
                true_probability,
            };
            on_fold(&summary);
            per_fold.push(summary);
        }
    }
    let collect = |f: fn(&FoldSummary) -> Option<f64>| -> Vec<f64> {
        per_fold.iter().filter_map(f).collect()
    };
    let pooled_labels = pool.labels();
    let floors = Floors::of(schema);
    let at_own = decide(&pool.groups, &pool.lstm, cost, |p| {
        pool.thresholds[p.seed * k + p.fold]
    });
    let pooled = PooledOutOfFold {
        predictions: pool.lstm.len(),
        lstm: CalibrationReport::evaluate(&pool.scores(), &pooled_labels, CALIBRATION_BINS)?,
        logistic: CalibrationReport::evaluate(&pool.logistic, &pooled_labels, CALIBRATION_BINS)?,
        lstm_cost: at_own.cost,
        fairness: (!pool.groups.is_empty()).then_some(at_own.fairness),
        fairness_by_threshold: threshold_tradeoff(&pool.groups, &pool.lstm, cost),
        floors: (!floors.is_empty()).then(|| {
            fair_threshold::nested(&floors, &pool.groups, &pool.lstm, &pool.thresholds, k, cost)
        }),
    };
    let report = CrossValidationReport {
        folds: k,
        seed: seeds.first().copied().unwrap_or(options.training.seed),
        seeds: seeds.to_vec(),
        lstm: ModelSpread {
            roc_auc: Spread::of(&collect(|f| f.lstm_auc)),
            average_cost: Spread::of(&collect(|f| Some(f.lstm_cost))),
            expected_calibration_error: Some(Spread::of(&collect(|f| Some(f.lstm_ece)))),
            brier: Some(Spread::of(&collect(|f| Some(f.lstm_brier)))),
        },
        lstm_train_test_auc_gap: Spread::of(&collect(|f| f.lstm_train_test_auc_gap)),
        logistic_regression: ModelSpread {
            roc_auc: Spread::of(&collect(|f| f.logistic_auc)),
            average_cost: Spread::of(&collect(|f| Some(f.logistic_cost))),
            expected_calibration_error: Some(Spread::of(&collect(|f| Some(f.logistic_ece)))),
            brier: Some(Spread::of(&collect(|f| Some(f.logistic_brier)))),
        },
        pooled: Some(pooled),
        per_fold,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((report, pool.lstm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dataset::shipped_german_credit;
    use credit_core::schema::german_credit;

    #[test]
    fn the_tradeoff_decides_the_pooled_probabilities_at_each_threshold() {
        let schema = german_credit();
        let rows = shipped_german_credit();
        let groups = ProtectedGroups::new(&schema, &[]).unwrap();
        // Scores spread over [0, 1) by row, so every threshold splits the rows differently.
        let scores: Vec<f32> = (0..rows.len())
            .map(|i| ((i * 37) % 100) as f32 / 100.0)
            .collect();
        let predictions: Vec<Prediction<'_>> = rows
            .iter()
            .zip(&scores)
            .enumerate()
            .map(|(i, (row, &score))| Prediction {
                row: i,
                score,
                bad: row.bad,
                applicant: &row.applicant,
                seed: 0,
                fold: 0,
            })
            .collect();
        let cost = CostMatrix::GERMAN_CREDIT;
        let tradeoff = threshold_tradeoff(&groups, &predictions, &cost);
        assert_eq!(tradeoff.len(), TRADEOFF_THRESHOLDS.len());
        for point in &tradeoff {
            let approved = scores.iter().filter(|&&s| s < point.threshold).count();
            assert!((point.approval_rate - approved as f64 / rows.len() as f64).abs() < 1e-12);
            let expected_cost: f64 = rows
                .iter()
                .zip(&scores)
                .map(|(row, &s)| cost.of(s >= point.threshold, row.bad))
                .sum::<f64>()
                / rows.len() as f64;
            assert!((point.cost - expected_cost).abs() < 1e-12);
            assert_eq!(point.lowest_ratios.len(), 3);
            for (_, _, ratio) in &point.lowest_ratios {
                assert!(ratio.is_some_and(|r| (0.0..=1.0).contains(&r)), "{point:?}");
            }
        }
        // Approving more can only approve more.
        assert!(tradeoff
            .windows(2)
            .all(|pair| pair[0].approval_rate <= pair[1].approval_rate));
    }
}

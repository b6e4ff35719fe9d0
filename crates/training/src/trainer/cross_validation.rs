//! Stratified K-fold cross-validation of the whole fitting procedure.
//!
//! One 200-applicant test split gives an AUC with a standard error of about 0.03, too coarse to
//! tell a real improvement from luck. K folds give every applicant one turn in a test set and a
//! spread to go with the mean. Each fold carves its own validation split out of its training
//! part (for early stopping and the threshold), exactly as the shipped model does.

use super::data::TrainingData;
use super::fit::{fit, FitError, FitOptions, SplitIndices};
use super::truth::TrueProbabilities;
use crate::split::{stratified_k_fold, stratified_split};
use credit_core::evaluation::{mean_and_std, CostMatrix, MetricsError};
use credit_core::schema::Schema;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Test-split figures of one fold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldSummary {
    pub fold: usize,
    pub test_rows: usize,
    pub lstm_auc: Option<f64>,
    pub lstm_cost: f64,
    pub lstm_threshold: f32,
    pub lstm_train_test_auc_gap: Option<f64>,
    pub lstm_best_epoch: usize,
    pub logistic_auc: Option<f64>,
    pub logistic_cost: f64,
    pub seconds: f64,
    /// The true probabilities of the fold's test rows, when the data file has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_probability: Option<TrueProbabilities>,
}

/// Mean and sample standard deviation across folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

impl Spread {
    pub(crate) fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_and_std(values);
        Self { mean, std }
    }
}

/// Aggregates of one model over the folds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ModelSpread {
    pub roc_auc: Spread,
    pub average_cost: Spread,
}

/// The cross-validation report written into metrics.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossValidationReport {
    pub folds: usize,
    pub seed: u64,
    pub lstm: ModelSpread,
    pub lstm_train_test_auc_gap: Spread,
    pub logistic_regression: ModelSpread,
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
}

/// Runs `k`-fold cross-validation on `data.rows`; `on_fold` sees each fold as it finishes. When
/// the data has true probabilities, each fold also reports those of its test rows.
pub(crate) fn cross_validate(
    schema: &Schema,
    data: &TrainingData,
    k: usize,
    validation_fraction: f64,
    options: &FitOptions,
    cost: &CostMatrix,
    on_fold: &mut dyn FnMut(&FoldSummary),
) -> Result<CrossValidationReport, CrossValidationError> {
    let started = Instant::now();
    let (rows, truth) = (&data.rows, data.true_probabilities.as_deref());
    let seed = options.training.seed;
    let labels: Vec<bool> = rows.iter().map(|row| row.bad).collect();
    let folds =
        stratified_k_fold(&labels, k, seed).map_err(|error| CrossValidationError::Folds {
            k,
            reason: error.to_string(),
        })?;
    let mut per_fold = Vec::with_capacity(k);
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
        let result = fit(schema, rows, &split, options, cost, &mut |_| {})
            .map_err(|source| CrossValidationError::Fit { fold, source })?;
        let true_probability = truth
            .map(|truth| {
                let test_truth: Vec<f64> = split.test.iter().map(|&i| truth[i]).collect();
                let test_bad: Vec<bool> = split.test.iter().map(|&i| labels[i]).collect();
                TrueProbabilities::of(&test_truth, &test_bad)
            })
            .transpose()
            .map_err(|source| CrossValidationError::Truth { fold, source })?;
        let summary = FoldSummary {
            fold: fold + 1,
            test_rows: split.test.len(),
            lstm_auc: result.lstm.test.roc_auc,
            lstm_cost: result.lstm.test.average_cost,
            lstm_threshold: result.lstm.threshold,
            lstm_train_test_auc_gap: result.lstm.train_test_auc_gap,
            lstm_best_epoch: result.best_epoch,
            logistic_auc: result.logistic.test.roc_auc,
            logistic_cost: result.logistic.test.average_cost,
            seconds: fold_started.elapsed().as_secs_f64(),
            true_probability,
        };
        on_fold(&summary);
        per_fold.push(summary);
    }
    let collect = |f: fn(&FoldSummary) -> Option<f64>| -> Vec<f64> {
        per_fold.iter().filter_map(f).collect()
    };
    Ok(CrossValidationReport {
        folds: k,
        seed,
        lstm: ModelSpread {
            roc_auc: Spread::of(&collect(|f| f.lstm_auc)),
            average_cost: Spread::of(&collect(|f| Some(f.lstm_cost))),
        },
        lstm_train_test_auc_gap: Spread::of(&collect(|f| f.lstm_train_test_auc_gap)),
        logistic_regression: ModelSpread {
            roc_auc: Spread::of(&collect(|f| f.logistic_auc)),
            average_cost: Spread::of(&collect(|f| Some(f.logistic_cost))),
        },
        per_fold,
        seconds: started.elapsed().as_secs_f64(),
    })
}

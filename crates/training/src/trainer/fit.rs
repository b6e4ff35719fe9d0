//! One complete fit on given train / validation / test indices: preprocess, balance, train the
//! LSTM and the logistic baseline, calibrate them and choose the threshold on validation,
//! evaluate all three splits.
//!
//! The shipped model and every cross-validation fold go through this same function, so the
//! figures in the CV report describe exactly the procedure that produced the shipped model.

use super::balance::{self, Balancing};
use crate::calibration::{CalibrationError, PlattScaling};
use crate::logistic::LogisticRegression;
use crate::network::{Network, NetworkConfig};
use crate::plots::LearningCurve;
use crate::training::{
    self, ClassWeights, EpochStats, Examples, LossWeights, TrainingConfig, TrainingOutcome,
};
use credit_core::dataset::LabelledApplicant;
use credit_core::evaluation::{
    self, CalibrationReport, ClassificationReport, CostMatrix, CALIBRATION_BINS,
};
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Everything that decides how a model is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    pub balancing: Balancing,
    /// Neighbours considered by SMOTE-NC.
    pub smote_neighbours: usize,
    pub network: NetworkConfig,
    pub training: TrainingConfig,
    /// Optimiser settings of the logistic baseline (same loop, its own weight decay).
    pub baseline_training: TrainingConfig,
}

impl Default for FitOptions {
    fn default() -> Self {
        let training = TrainingConfig::default();
        Self {
            balancing: Balancing::ClassWeights,
            smote_neighbours: 5,
            network: NetworkConfig::default(),
            training,
            baseline_training: TrainingConfig {
                weight_decay: 0.01,
                ..training
            },
        }
    }
}

/// Row indices of the three splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Metrics of one model on the three splits, at the threshold chosen on validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitReports {
    pub threshold: f32,
    /// The Platt scaling fitted on validation and folded into the model's output layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platt: Option<PlattScaling>,
    pub train: ClassificationReport,
    pub validation: ClassificationReport,
    pub test: ClassificationReport,
    /// Train AUC minus test AUC: how much the model memorised.
    pub train_test_auc_gap: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<SplitCalibration>,
}

/// Calibration of one model on each split, and on validation and test before Platt scaling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitCalibration {
    pub train: CalibrationReport,
    pub validation: CalibrationReport,
    pub test: CalibrationReport,
    pub uncalibrated_validation: CalibrationReport,
    pub uncalibrated_test: CalibrationReport,
}

/// Scores of the test split, kept for ROC plots.
#[derive(Debug, Clone)]
pub struct TestScores {
    pub labels: Vec<bool>,
    pub lstm: Vec<f32>,
    pub logistic: Vec<f32>,
}

/// The calibrated LSTM's scores and the outcomes of each split (train, validation, test),
/// kept so that the threshold can still move after the fit.
#[derive(Debug, Clone)]
pub struct SplitScores {
    pub scores: [Vec<f32>; 3],
    pub labels: [Vec<bool>; 3],
}

/// The result of one fit.
pub struct FitResult {
    pub preprocessor: Preprocessor,
    pub network: Network,
    pub lstm: SplitReports,
    pub logistic: SplitReports,
    pub lstm_curve: LearningCurve,
    pub logistic_curve: LearningCurve,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub training_rows: usize,
    pub training_rows_after_balancing: usize,
    pub lstm_seconds: f64,
    pub test_scores: TestScores,
    pub lstm_scores: SplitScores,
}

impl FitResult {
    /// Moves the LSTM's threshold to `threshold` and re-evaluates every split at it.
    pub fn set_threshold(&mut self, threshold: f32, cost: &CostMatrix) -> Result<(), FitError> {
        let labels = self.lstm_scores.labels.each_ref().map(Vec::as_slice);
        let moved = evaluate_at(&self.lstm_scores.scores, labels, threshold, cost)?;
        self.lstm = SplitReports {
            platt: self.lstm.platt,
            calibration: self.lstm.calibration.take(),
            ..moved
        };
        Ok(())
    }
}

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    Preprocess(#[from] credit_core::preprocess::PreprocessError),
    #[error(transparent)]
    Balance(#[from] balance::BalanceError),
    #[error(transparent)]
    Training(#[from] training::TrainingError),
    #[error("network construction failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("metrics failed: {0}")]
    Metrics(#[from] evaluation::MetricsError),
    #[error("calibration failed: {0}")]
    Calibration(#[from] CalibrationError),
}

fn examples(preprocessor: &Preprocessor, rows: &[LabelledApplicant]) -> Result<Examples, FitError> {
    let applicants: Vec<_> = rows.iter().map(|row| row.applicant.clone()).collect();
    Ok(Examples {
        features: preprocessor.transform_batch(&applicants)?,
        labels: rows.iter().map(|row| row.bad).collect(),
        width: preprocessor.width,
    })
}

fn pick(rows: &[LabelledApplicant], indices: &[usize]) -> Vec<LabelledApplicant> {
    indices
        .iter()
        .filter_map(|&i| rows.get(i).cloned())
        .collect()
}

/// Reports for one model: threshold chosen on validation scores, then all three splits.
fn reports(
    scores: &[Vec<f32>; 3],
    labels: [&[bool]; 3],
    cost: &CostMatrix,
) -> Result<SplitReports, FitError> {
    let threshold = evaluation::cost_minimising_threshold(&scores[1], labels[1], cost)?;
    evaluate_at(scores, labels, threshold, cost)
}

/// Reports for one model deciding all three splits at `threshold`.
fn evaluate_at(
    scores: &[Vec<f32>; 3],
    labels: [&[bool]; 3],
    threshold: f32,
    cost: &CostMatrix,
) -> Result<SplitReports, FitError> {
    let train = ClassificationReport::evaluate(&scores[0], labels[0], threshold, cost)?;
    let validation = ClassificationReport::evaluate(&scores[1], labels[1], threshold, cost)?;
    let test = ClassificationReport::evaluate(&scores[2], labels[2], threshold, cost)?;
    let train_test_auc_gap = match (train.roc_auc, test.roc_auc) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    Ok(SplitReports {
        threshold,
        platt: None,
        train,
        validation,
        test,
        train_test_auc_gap,
        calibration: None,
    })
}

/// The rows to optimise on and the loss weights, for the configured balancing.
///
/// Evaluation losses weigh the real (imbalanced) rows as the optimised data is balanced, so the
/// train and validation curves are on one scale with the training loss.
fn balance_rows(
    schema: &Schema,
    rows: &[LabelledApplicant],
    options: &FitOptions,
) -> Result<(Vec<LabelledApplicant>, LossWeights), FitError> {
    let balanced_weights =
        ClassWeights::balanced(&rows.iter().map(|row| row.bad).collect::<Vec<_>>());
    Ok(match options.balancing {
        Balancing::Smote => (
            balance::smote_nc(
                schema,
                rows,
                options.smote_neighbours,
                options.training.seed,
            )?,
            LossWeights {
                optimisation: ClassWeights::UNIFORM,
                evaluation: balanced_weights,
            },
        ),
        Balancing::ClassWeights => (rows.to_vec(), LossWeights::same(balanced_weights)),
        Balancing::None => (rows.to_vec(), LossWeights::same(ClassWeights::UNIFORM)),
    })
}

/// Fits preprocessor, LSTM and baseline on `split.train`, early-stops, calibrates and picks
/// thresholds on `split.validation`, and evaluates on all three. `observer` sees every LSTM
/// epoch.
///
/// The early-stopped models are the ones that ship: validation rows chose their epoch, their
/// Platt scaling and their threshold, and no later training moves the weights those choices
/// were made for.
pub fn fit(
    schema: &Schema,
    rows: &[LabelledApplicant],
    split: &SplitIndices,
    options: &FitOptions,
    cost: &CostMatrix,
    observer: &mut dyn FnMut(&EpochStats),
) -> Result<FitResult, FitError> {
    let data = FitData::prepare(schema, rows, split, options)?;
    let started = Instant::now();
    let early = train_early_stopped(&data, options, observer)?;
    let lstm_seconds = started.elapsed().as_secs_f64();

    let network = &early.network;
    let (lstm, lstm_scores) = calibrate_and_report(
        |x| network.predict_logits(x),
        |platt| network.calibrate(platt),
        |x| network.predict(x),
        &data,
        cost,
    )?;
    let baseline = &early.baseline;
    let (logistic, [_, _, logistic_test]) = calibrate_and_report(
        |x| baseline.predict_logits(x),
        |platt| baseline.calibrate(platt),
        |x| baseline.predict(x),
        &data,
        cost,
    )?;

    Ok(FitResult {
        preprocessor: data.preprocessor,
        network: early.network,
        lstm,
        logistic,
        lstm_curve: early.lstm_outcome.curve,
        logistic_curve: early.logistic_outcome.curve,
        best_epoch: early.lstm_outcome.best_epoch,
        epochs_run: early.lstm_outcome.epochs_run,
        training_rows: data.train_eval.rows(),
        training_rows_after_balancing: data.optimised.rows(),
        lstm_seconds,
        test_scores: TestScores {
            labels: data.test.labels.clone(),
            lstm: lstm_scores[2].clone(),
            logistic: logistic_test,
        },
        lstm_scores: SplitScores {
            scores: lstm_scores,
            labels: [
                data.train_eval.labels,
                data.validation.labels,
                data.test.labels,
            ],
        },
    })
}

/// Fits Platt scaling on one model's validation logits, folds it into the model, chooses the
/// threshold on the calibrated validation scores and reports all three splits; returns the
/// reports and the calibrated scores of the three splits.
fn calibrate_and_report(
    logits: impl Fn(&[f32]) -> candle_core::Result<Vec<f32>>,
    calibrate: impl FnOnce(PlattScaling) -> candle_core::Result<()>,
    predict: impl Fn(&[f32]) -> candle_core::Result<Vec<f32>>,
    data: &FitData,
    cost: &CostMatrix,
) -> Result<(SplitReports, [Vec<f32>; 3]), FitError> {
    let splits = [&data.train_eval, &data.validation, &data.test];
    let labels = splits.map(|split| split.labels.as_slice());
    let uncalibrated = |split: &Examples| -> Result<CalibrationReport, FitError> {
        Ok(CalibrationReport::evaluate(
            &predict(&split.features)?,
            &split.labels,
            CALIBRATION_BINS,
        )?)
    };
    let uncalibrated_validation = uncalibrated(&data.validation)?;
    let uncalibrated_test = uncalibrated(&data.test)?;
    let platt = PlattScaling::fit(&logits(&data.validation.features)?, labels[1])?;
    calibrate(platt)?;
    let scores = [
        predict(&data.train_eval.features)?,
        predict(&data.validation.features)?,
        predict(&data.test.features)?,
    ];
    let mut reports = reports(&scores, labels, cost)?;
    let calibration =
        |i: usize| CalibrationReport::evaluate(&scores[i], labels[i], CALIBRATION_BINS);
    reports.platt = Some(platt);
    reports.calibration = Some(SplitCalibration {
        train: calibration(0)?,
        validation: calibration(1)?,
        test: calibration(2)?,
        uncalibrated_validation,
        uncalibrated_test,
    });
    Ok((reports, scores))
}

/// The rows of the three splits and their features under the preprocessor fitted on training.
struct FitData {
    preprocessor: Preprocessor,
    /// The training rows after balancing: what the optimiser sees.
    optimised: Examples,
    loss_weights: LossWeights,
    /// The real training rows, which the train curve and train metrics are measured on.
    train_eval: Examples,
    validation: Examples,
    test: Examples,
}

impl FitData {
    fn prepare(
        schema: &Schema,
        rows: &[LabelledApplicant],
        split: &SplitIndices,
        options: &FitOptions,
    ) -> Result<Self, FitError> {
        let train_rows = pick(rows, &split.train);
        let validation_rows = pick(rows, &split.validation);
        let test_rows = pick(rows, &split.test);

        // Fitted on the real training rows only: validation and test stay unseen, and synthetic
        // rows do not shift the scaler.
        let preprocessor = Preprocessor::fit(
            schema,
            &train_rows
                .iter()
                .map(|row| row.applicant.clone())
                .collect::<Vec<_>>(),
        )?;

        let (balanced_rows, loss_weights) = balance_rows(schema, &train_rows, options)?;
        let optimised = examples(&preprocessor, &balanced_rows)?;
        let train_eval = examples(&preprocessor, &train_rows)?;
        let validation = examples(&preprocessor, &validation_rows)?;
        let test = examples(&preprocessor, &test_rows)?;
        Ok(Self {
            preprocessor,
            optimised,
            loss_weights,
            train_eval,
            validation,
            test,
        })
    }
}

/// Both models after early stopping on validation, with how their training went.
struct EarlyStopped {
    network: Network,
    lstm_outcome: TrainingOutcome,
    baseline: LogisticRegression,
    logistic_outcome: TrainingOutcome,
}

/// The LSTM, its initial weights seeded by the training seed.
fn new_network(preprocessor: &Preprocessor, options: &FitOptions) -> Result<Network, FitError> {
    Ok(Network::new(
        options.network,
        preprocessor.width,
        &preprocessor.attribute_blocks(),
        options.training.seed,
    )?)
}

/// Trains the LSTM (seen by `observer`) and then the baseline, each early-stopped on validation.
fn train_early_stopped(
    data: &FitData,
    options: &FitOptions,
    observer: &mut dyn FnMut(&EpochStats),
) -> Result<EarlyStopped, FitError> {
    let network = new_network(&data.preprocessor, options)?;
    let lstm_outcome = training::train(
        &network,
        &options.training,
        data.loss_weights,
        &data.optimised,
        &data.train_eval,
        &data.validation,
        observer,
    )?;
    let baseline = LogisticRegression::new(data.preprocessor.width)?;
    let logistic_outcome = training::train(
        &baseline,
        &options.baseline_training,
        data.loss_weights,
        &data.optimised,
        &data.train_eval,
        &data.validation,
        &mut |_| {},
    )?;
    Ok(EarlyStopped {
        network,
        lstm_outcome,
        baseline,
        logistic_outcome,
    })
}

//! One complete fit on given train / validation / test indices: preprocess, balance, train the
//! LSTM and the logistic baseline, choose the threshold on validation, evaluate all three splits.
//!
//! The shipped model and every cross-validation fold go through this same function, so the
//! figures in the CV report describe exactly the procedure that produced the shipped model.

use super::balance::{self, Balancing};
use crate::logistic::LogisticRegression;
use crate::network::{Network, NetworkConfig};
use crate::plots::LearningCurve;
use crate::training::{
    self, ClassWeights, EpochStats, Examples, LossWeights, TrainingConfig, TrainingOutcome,
};
use credit_core::dataset::LabelledApplicant;
use credit_core::evaluation::{self, ClassificationReport, CostMatrix};
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
    /// After early stopping, retrain from the same initial weights on training + validation
    /// rows for the chosen number of epochs (see [`training::refit`]).
    pub refit: bool,
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
            refit: true,
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
    pub train: ClassificationReport,
    pub validation: ClassificationReport,
    pub test: ClassificationReport,
    /// Train AUC minus test AUC: how much the model memorised.
    pub train_test_auc_gap: Option<f64>,
}

/// Scores of the test split, kept for ROC plots.
#[derive(Debug, Clone)]
pub struct TestScores {
    pub labels: Vec<bool>,
    pub lstm: Vec<f32>,
    pub logistic: Vec<f32>,
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
    let train = ClassificationReport::evaluate(&scores[0], labels[0], threshold, cost)?;
    let validation = ClassificationReport::evaluate(&scores[1], labels[1], threshold, cost)?;
    let test = ClassificationReport::evaluate(&scores[2], labels[2], threshold, cost)?;
    let train_test_auc_gap = match (train.roc_auc, test.roc_auc) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    Ok(SplitReports {
        threshold,
        train,
        validation,
        test,
        train_test_auc_gap,
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

/// Fits preprocessor, LSTM and baseline on `split.train`, early-stops and picks thresholds on
/// `split.validation`, and evaluates on all three. `observer` sees every LSTM epoch.
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
    // Validation scores come from the early-stopped models, which never trained on those rows:
    // the threshold is chosen on them even when the final weights are refitted.
    let lstm_validation = early.network.predict(&data.validation.features)?;
    let logistic_validation = early.baseline.predict(&data.validation.features)?;
    let trained = if options.refit {
        refit_on_train_and_validation(schema, &data, options, &early)?
    } else {
        FinalModels {
            optimised_rows: data.optimised.rows(),
            network: early.network,
            baseline: early.baseline,
            train_eval: data.train_eval,
        }
    };
    let lstm_seconds = started.elapsed().as_secs_f64();

    let splits = [&trained.train_eval, &data.validation, &data.test];
    let (lstm, lstm_test) = score_and_report(
        |x| trained.network.predict(x),
        lstm_validation,
        splits,
        cost,
    )?;
    let (logistic, logistic_test) = score_and_report(
        |x| trained.baseline.predict(x),
        logistic_validation,
        splits,
        cost,
    )?;

    Ok(FitResult {
        preprocessor: data.preprocessor,
        network: trained.network,
        lstm,
        logistic,
        lstm_curve: early.lstm_outcome.curve,
        logistic_curve: early.logistic_outcome.curve,
        best_epoch: early.lstm_outcome.best_epoch,
        epochs_run: early.lstm_outcome.epochs_run,
        training_rows: trained.train_eval.rows(),
        training_rows_after_balancing: trained.optimised_rows,
        lstm_seconds,
        test_scores: TestScores {
            labels: data.test.labels,
            lstm: lstm_test,
            logistic: logistic_test,
        },
    })
}

/// The rows of the three splits and their features under the preprocessor fitted on training.
struct FitData {
    preprocessor: Preprocessor,
    train_rows: Vec<LabelledApplicant>,
    validation_rows: Vec<LabelledApplicant>,
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
            train_rows,
            validation_rows,
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

/// The weights the fit ends with, and the rows they are evaluated on as "train".
struct FinalModels {
    network: Network,
    baseline: LogisticRegression,
    train_eval: Examples,
    /// Rows the final weights were optimised on, after balancing.
    optimised_rows: usize,
}

/// The LSTM, seeded so the early-stopped and the refitted one start from the same weights.
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

/// Both models trained afresh on training + validation rows, for the epochs and learning rates
/// early stopping chose (see [`training::refit`]).
fn refit_on_train_and_validation(
    schema: &Schema,
    data: &FitData,
    options: &FitOptions,
    early: &EarlyStopped,
) -> Result<FinalModels, FitError> {
    let mut refit_rows = data.train_rows.clone();
    refit_rows.extend_from_slice(&data.validation_rows);
    let (refit_balanced, refit_weights) = balance_rows(schema, &refit_rows, options)?;
    let refit_set = examples(&data.preprocessor, &refit_balanced)?;
    let network = new_network(&data.preprocessor, options)?;
    training::refit(
        &network,
        &options.training,
        refit_weights.optimisation,
        &refit_set,
        &early.lstm_outcome.learning_rates,
    )?;
    let baseline = LogisticRegression::new(data.preprocessor.width)?;
    training::refit(
        &baseline,
        &options.baseline_training,
        refit_weights.optimisation,
        &refit_set,
        &early.logistic_outcome.learning_rates,
    )?;
    Ok(FinalModels {
        network,
        baseline,
        train_eval: examples(&data.preprocessor, &refit_rows)?,
        optimised_rows: refit_balanced.len(),
    })
}

/// One final model's reports on train, validation and test (`splits`), and its test scores for
/// the ROC plot; the validation scores are given, as they come from the early-stopped model.
fn score_and_report(
    predict: impl Fn(&[f32]) -> candle_core::Result<Vec<f32>>,
    validation_scores: Vec<f32>,
    splits: [&Examples; 3],
    cost: &CostMatrix,
) -> Result<(SplitReports, Vec<f32>), FitError> {
    let [train_eval, _, test] = splits;
    let scores = [
        predict(&train_eval.features)?,
        validation_scores,
        predict(&test.features)?,
    ];
    let reports = reports(&scores, splits.map(|split| split.labels.as_slice()), cost)?;
    let [_, _, test_scores] = scores;
    Ok((reports, test_scores))
}

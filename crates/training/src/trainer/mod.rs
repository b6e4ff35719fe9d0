//! The offline training run: a schema and a data file in; the model bundle (ONNX model,
//! preprocessor, schema, JSON Schema, report) out.
//!
//! - [`data`]: the data file read row by row against the schema, bad rows reported.
//! - [`balance`]: SMOTE-NC or class weights, on the training split only.
//! - [`fit`]: one fit of preprocessor, LSTM and baseline on given splits.
//! - [`cross_validation`]: stratified K-fold of that same fit.
//! - [`out_of_fold`]: the pooled out-of-fold predictions, decided at a threshold.
//! - [`fair_threshold`]: the threshold raised until the schema's adverse-impact floors hold.
//! - [`truth`]: the models against the true probabilities, when the data file has them.
//! - [`report`]: models/metrics.json and the printed table.
//!
//! The run ends by writing `manifest.json` (see [`credit_core::bundle`]), the size and SHA-256 of every
//! artifact, which the worker and backfill check before loading.
//!
//! [`run`] ties them together; the `trainer` binary only parses arguments and draws progress.

pub mod balance;
pub mod cross_validation;
pub mod data;
pub mod fair_threshold;
pub mod fit;
pub mod out_of_fold;
pub mod report;
pub mod truth;

use crate::plots::{plot_learning_curve, plot_reliability_curves, plot_roc};
use crate::split::stratified_split;
use crate::training::EpochStats;
use balance::Balancing;
use credit_core::artifacts::{self, ArtifactPaths};
use credit_core::bundle::{self, Manifest};
use credit_core::dataset::LabelledApplicant;
use credit_core::evaluation::{roc_curve, CalibrationReport, CostMatrix, MetricsError};
use credit_core::explain::Reference;
use credit_core::model::onnx_export::export_onnx;
use credit_core::schema::{Role, Schema, SchemaError};
use credit_core::scoring::onnx_runtime::{init_runtime, OnnxScorer};
use credit_core::training_rows::TrainingRows;
use cross_validation::{cross_validate, CrossValidationReport, FoldSummary};
use data::{OutcomeChoice, TrainingData};
use fair_threshold::{Floors, ThresholdChoice};
use fit::{fit, FitOptions, FitResult, SplitIndices, TestScores};
use out_of_fold::Prediction;
use report::{
    BalancingComparison, BalancingSummary, DataSummary, OutcomeSummary, ParitySummary,
    ProtectedInputsComparison, ProtectedInputsFigures, SchemaSummary, SplitSummary, TrainingReport,
};
use std::path::{Path, PathBuf};
use truth::{FoldAucs, FoldsComparison, TestComparison, TrueProbabilities, TrueProbabilityReport};

/// Largest difference between ONNX Runtime and the trainer's forward pass that the run accepts.
/// Float32 kernels differ in summation order and activation approximations by ~1e-7; anything
/// near 1e-5 means the exported graph is not the trained network.
pub(crate) const PARITY_TOLERANCE: f64 = 1e-5;

/// What the run needs to know.
#[derive(Debug, Clone)]
pub struct TrainerOptions {
    pub data_path: PathBuf,
    /// The applicant schema the data is read with and the bundle carries.
    pub schema_path: PathBuf,
    /// The outcome column and bad-risk value, where not the schema's label field's.
    pub outcome: OutcomeChoice,
    /// Train on the rows that fit the schema and count the others, rather than refusing the run.
    pub skip_bad_rows: bool,
    /// The data file's column of each row's true probability of the bad outcome (a synthetic
    /// book's), for comparing the model with the best any model can do on those rows.
    pub true_probability_column: Option<String>,
    pub output_dir: PathBuf,
    pub validation_fraction: f64,
    pub test_fraction: f64,
    /// Also run stratified K-fold cross-validation of the same procedure.
    pub cv_folds: Option<usize>,
    /// With `cv_folds`: cross-validate the other balancing methods too, so the report shows
    /// the evidence behind the choice.
    pub compare_balancing: bool,
    /// With `cv_folds`: repeat the cross-validation with this many seeds (the training seed and
    /// the ones after it), pooling the figures over every fold of every seed.
    pub seeds: usize,
    pub fit: FitOptions,
    /// Explicit ONNX Runtime library; otherwise `ORT_DYLIB_PATH` or `.onnxruntime/`.
    pub ort_dylib: Option<PathBuf>,
    /// Recorded in the report.
    pub command: String,
}

/// What the run reports as it goes, for progress bars.
pub trait TrainingObserver {
    fn stage(&mut self, _message: &str) {}
    fn epoch(&mut self, _stats: &EpochStats) {}
    fn fold(&mut self, _summary: &FoldSummary, _total: usize) {}
}

/// An observer that ignores everything (tests, quiet runs).
pub struct Silent;
impl TrainingObserver for Silent {}

/// Why the run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Fit(#[from] fit::FitError),
    #[error("SMOTE-NC's neighbour mix: {0}")]
    Balance(#[from] balance::BalanceError),
    #[error(transparent)]
    CrossValidation(#[from] cross_validation::CrossValidationError),
    #[error("ONNX export failed: {0}")]
    Export(String),
    #[error(transparent)]
    Scoring(#[from] credit_core::scoring::onnx_runtime::ScoringError),
    #[error(transparent)]
    Preprocess(#[from] credit_core::preprocess::PreprocessError),
    #[error("ONNX Runtime disagrees with the trained network by {difference:e} (tolerance {PARITY_TOLERANCE:e}): the export is wrong")]
    Parity { difference: f64 },
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error(transparent)]
    Bundle(#[from] credit_core::bundle::BundleError),
    #[error(transparent)]
    Reference(#[from] credit_core::explain::ExplainError),
    #[error("true probabilities of the test split: {0}")]
    Truth(#[from] MetricsError),
}

fn write_error(path: &std::path::Path, error: impl std::fmt::Display) -> TrainerError {
    TrainerError::Write {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

pub use credit_core::artifacts::model_version;

/// Trains, evaluates and exports; writes every artifact into `options.output_dir`.
pub fn run(
    options: &TrainerOptions,
    observer: &mut dyn TrainingObserver,
) -> Result<TrainingReport, TrainerError> {
    let cost = CostMatrix::GERMAN_CREDIT;
    let schema = Schema::load(&options.schema_path)?;
    let outcome = options.outcome.resolve(&schema)?;
    observer.stage(&format!(
        "reading {} with schema `{}` (outcome `{}` = `{}` is bad)",
        options.data_path.display(),
        schema.name(),
        outcome.column,
        outcome.bad
    ));
    let data = data::load(
        &schema,
        &outcome,
        options.true_probability_column.as_deref(),
        &options.data_path,
        options.skip_bad_rows,
    )?;
    if data.skipped > 0 {
        observer.stage(&format!(
            "skipped {} of {} rows that do not fit the schema",
            data.skipped, data.read
        ));
    }
    let rows = &data.rows;
    let truth = data.true_probabilities.as_deref();
    let split = split_rows(rows, options);

    observer.stage("training the stacked LSTM and the logistic baseline");
    let mut result = fit(&schema, rows, &split, &options.fit, &cost, &mut |stats| {
        observer.epoch(stats)
    })?;
    let (cross_validation, out_of_fold) =
        cross_validate_if_asked(&schema, &data, options, &cost, observer)?.unzip();
    let threshold = choose_threshold(&schema, out_of_fold.as_deref(), &mut result, &cost)?;
    if threshold.outcome == fair_threshold::FloorOutcome::NotChecked {
        observer.stage(
            "the schema's adverse-impact floors were not checked: they need --cv; \
             the threshold is the cost-minimising one",
        );
    }
    let model = export_model(&result)?;

    observer.stage("checking ONNX Runtime against the trained network");
    let onnx_parity = check_onnx_parity(&model.bytes, &result, rows, options)?;
    let protected_inputs = compare_protected_inputs_if_asked(
        &schema,
        &data,
        options,
        &cost,
        cross_validation.as_ref(),
        observer,
    )?;
    let balancing_comparison = compare_balancing_if_asked(
        &schema,
        &data,
        options,
        &cost,
        cross_validation.as_ref(),
        observer,
    )?;
    let true_probability = compare_with_truth(
        options,
        rows,
        truth,
        &split,
        &result,
        cross_validation.as_ref(),
    )?;
    let smote_neighbours = if options.compare_balancing || options.fit.balancing == Balancing::Smote
    {
        let train: Vec<LabelledApplicant> = split.train.iter().map(|&i| rows[i].clone()).collect();
        balance::neighbour_mix(&schema, &train, options.fit.smote_neighbours)?
    } else {
        Vec::new()
    };
    let checks = Checks {
        threshold,
        onnx_parity,
        smote_neighbours,
        cross_validation,
        protected_inputs,
        balancing_comparison,
        true_probability,
    };
    let input = Input {
        schema: &schema,
        outcome: OutcomeSummary {
            column: outcome.column,
            bad: outcome.bad,
        },
        data: &data,
    };
    let report = training_report(options, &input, &split, &result, &cost, &model, checks);

    observer.stage("writing artifacts");
    // Reasons are measured against the typical applicant of the rows the model trained on.
    let trained_on: Vec<_> = split
        .train
        .iter()
        .map(|&row| rows[row].applicant.clone())
        .collect();
    let reference = Reference::typical(&schema, &trained_on)?;
    // Test rows stay out: the model never saw them, so figures on them are held out.
    let fitted_on = TrainingRows::of(
        &schema,
        split
            .train
            .iter()
            .chain(&split.validation)
            .map(|&row| &rows[row].applicant),
    );
    write_artifacts(
        &ArtifactPaths::new(&options.output_dir),
        &schema,
        &model.bytes,
        &result,
        &report,
        &reference,
        &fitted_on,
    )?;
    Ok(report)
}

/// Writes the manifest of the bundle in `dir` without retraining (see [`bundle::seal`]), after
/// writing the JSON Schema from the bundle's schema when the bundle has none yet.
pub fn seal(dir: &Path) -> Result<Manifest, TrainerError> {
    let paths = ArtifactPaths::new(dir);
    if !paths.json_schema().exists() && paths.schema().exists() {
        let schema = Schema::load(&paths.schema())?;
        bundle::write_json_schema(dir, &schema)?;
    }
    Ok(bundle::seal(dir)?)
}

/// What the run read: the schema, the outcome and the data file's rows.
struct Input<'a> {
    schema: &'a Schema,
    outcome: OutcomeSummary,
    data: &'a TrainingData,
}

/// The exported network and the identity written into its metadata.
struct OnnxModel {
    bytes: Vec<u8>,
    version: String,
    trained_at: String,
}

/// What the run checked beyond the fit itself, for the report.
struct Checks {
    threshold: ThresholdChoice,
    onnx_parity: ParitySummary,
    smote_neighbours: Vec<balance::FieldNeighbourMix>,
    cross_validation: Option<CrossValidationReport>,
    protected_inputs: Option<ProtectedInputsComparison>,
    balancing_comparison: Vec<BalancingComparison>,
    true_probability: Option<TrueProbabilityReport>,
}

/// The shipped threshold: the cost-minimising one on validation, raised until the schema's
/// adverse-impact floors hold on the pooled out-of-fold predictions; `result` is re-evaluated
/// at it.
fn choose_threshold(
    schema: &Schema,
    out_of_fold: Option<&[Prediction<'_>]>,
    result: &mut FitResult,
    cost: &CostMatrix,
) -> Result<ThresholdChoice, TrainerError> {
    let groups = credit_core::fairness::ProtectedGroups::new(schema, &[])
        .map_err(cross_validation::CrossValidationError::from)?;
    let choice = fair_threshold::choose(
        &Floors::of(schema),
        &groups,
        out_of_fold,
        result.lstm.threshold,
        cost,
    );
    if choice.shipped != result.lstm.threshold {
        result.set_threshold(choice.shipped, cost)?;
    }
    Ok(choice)
}

/// Stratified train / validation / test indices of `rows`, seeded by the training seed.
fn split_rows(rows: &[LabelledApplicant], options: &TrainerOptions) -> SplitIndices {
    let labels: Vec<bool> = rows.iter().map(|row| row.bad).collect();
    let split = stratified_split(
        &labels,
        options.validation_fraction,
        options.test_fraction,
        options.fit.training.seed,
    );
    SplitIndices {
        train: split.train,
        validation: split.validation,
        test: split.test,
    }
}

/// The trained network as ONNX, its version (a hash of weights, preprocessor and threshold)
/// and everything the worker needs to score with it in the model's metadata.
fn export_model(result: &FitResult) -> Result<OnnxModel, TrainerError> {
    let weights = result.network.to_weights()?;
    let threshold = result.lstm.threshold;
    let preprocessor_sha256 = result.preprocessor.fingerprint();
    let version = model_version(&weights, &preprocessor_sha256, threshold);
    let trained_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let metadata = vec![
        (artifacts::KEY_VERSION.to_string(), version.clone()),
        (artifacts::KEY_THRESHOLD.to_string(), threshold.to_string()),
        (
            artifacts::KEY_FEATURE_LAYOUT.to_string(),
            result.preprocessor.layout_json(),
        ),
        (artifacts::KEY_TRAINED_AT.to_string(), trained_at.clone()),
        (
            artifacts::KEY_PREPROCESSOR_SHA256.to_string(),
            preprocessor_sha256,
        ),
    ];
    let bytes =
        export_onnx(&weights, &metadata).map_err(|e| TrainerError::Export(e.to_string()))?;
    Ok(OnnxModel {
        bytes,
        version,
        trained_at,
    })
}

/// Scores every applicant with ONNX Runtime and with the trained network, and refuses the
/// export if they differ by more than [`PARITY_TOLERANCE`].
fn check_onnx_parity(
    onnx: &[u8],
    result: &FitResult,
    rows: &[LabelledApplicant],
    options: &TrainerOptions,
) -> Result<ParitySummary, TrainerError> {
    init_runtime(options.ort_dylib.as_deref())?;
    let mut scorer = OnnxScorer::from_bytes(onnx, 1)?;
    let all_features = result.preprocessor.transform_batch(
        &rows
            .iter()
            .map(|row| row.applicant.clone())
            .collect::<Vec<_>>(),
    )?;
    let mut onnx_scores = Vec::with_capacity(rows.len());
    scorer.score_into(&all_features, rows.len(), &mut onnx_scores)?;
    let own_scores = result.network.predict(&all_features)?;
    let max_abs_difference = onnx_scores
        .iter()
        .zip(&own_scores)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    if max_abs_difference > PARITY_TOLERANCE || onnx_scores.len() != own_scores.len() {
        return Err(TrainerError::Parity {
            difference: max_abs_difference,
        });
    }
    Ok(ParitySummary {
        applicants: rows.len(),
        max_abs_difference,
    })
}

/// The models against the true probabilities on the test split and, after cross-validation,
/// on each fold's test rows, when the data file has true probabilities.
fn compare_with_truth(
    options: &TrainerOptions,
    rows: &[LabelledApplicant],
    truth: Option<&[f64]>,
    split: &SplitIndices,
    result: &FitResult,
    cross_validation: Option<&CrossValidationReport>,
) -> Result<Option<TrueProbabilityReport>, TrainerError> {
    let (Some(column), Some(truth)) = (&options.true_probability_column, truth) else {
        return Ok(None);
    };
    let test_truth: Vec<f64> = split.test.iter().map(|&i| truth[i]).collect();
    let test_bad: Vec<bool> = split.test.iter().map(|&i| rows[i].bad).collect();
    Ok(Some(TrueProbabilityReport {
        column: column.clone(),
        test: TestComparison::new(
            TrueProbabilities::of(&test_truth, &test_bad)?,
            result.lstm.test.roc_auc,
            result.logistic.test.roc_auc,
        ),
        cross_validation: cross_validation.and_then(|cv| {
            let folds: Vec<FoldAucs> = cv
                .per_fold
                .iter()
                .map(|fold| FoldAucs {
                    true_probability: fold.true_probability,
                    lstm_auc: fold.lstm_auc,
                    logistic_auc: fold.logistic_auc,
                })
                .collect();
            FoldsComparison::of(&folds)
        }),
    }))
}

/// K-fold cross-validation of the run's own fit options, when `--cv` asks for it.
fn cross_validate_if_asked<'d>(
    schema: &Schema,
    data: &'d TrainingData,
    options: &TrainerOptions,
    cost: &CostMatrix,
    observer: &mut dyn TrainingObserver,
) -> Result<Option<(CrossValidationReport, Vec<Prediction<'d>>)>, TrainerError> {
    let Some(k) = options.cv_folds else {
        return Ok(None);
    };
    observer.stage(&format!("{k}-fold cross-validation"));
    Ok(Some(k_fold(
        schema,
        data,
        k,
        options,
        &options.fit,
        cost,
        observer,
    )?))
}

/// The cross-validated LSTM under each balancing method, when `--compare-balancing` asks for
/// it; the run's own method reuses `primary` rather than cross-validating it twice.
fn compare_balancing_if_asked(
    schema: &Schema,
    data: &TrainingData,
    options: &TrainerOptions,
    cost: &CostMatrix,
    primary: Option<&CrossValidationReport>,
    observer: &mut dyn TrainingObserver,
) -> Result<Vec<BalancingComparison>, TrainerError> {
    let mut balancing_comparison = Vec::new();
    let (Some(k), true) = (options.cv_folds, options.compare_balancing) else {
        return Ok(balancing_comparison);
    };
    for method in [Balancing::Smote, Balancing::ClassWeights, Balancing::None] {
        let spread = match (primary, method == options.fit.balancing) {
            (Some(primary), true) => primary.lstm,
            _ => {
                observer.stage(&format!(
                    "{k}-fold cross-validation with {method:?} balancing"
                ));
                let fit_options = FitOptions {
                    balancing: method,
                    ..options.fit
                };
                k_fold(schema, data, k, options, &fit_options, cost, observer)?
                    .0
                    .lstm
            }
        };
        balancing_comparison.push(BalancingComparison {
            method,
            seeds: options.seeds.max(1),
            lstm: spread,
        });
    }
    Ok(balancing_comparison)
}

/// One `k`-fold cross-validation of `fit_options`, each fold reported to `observer`; its report
/// and pooled out-of-fold predictions.
fn k_fold<'d>(
    schema: &Schema,
    data: &'d TrainingData,
    k: usize,
    options: &TrainerOptions,
    fit_options: &FitOptions,
    cost: &CostMatrix,
    observer: &mut dyn TrainingObserver,
) -> Result<(CrossValidationReport, Vec<Prediction<'d>>), TrainerError> {
    // Validation comes out of the rows outside each fold's test part, so the fraction is rescaled
    // to keep the shipped split's train : validation ratio.
    let validation_fraction = options.validation_fraction / (1.0 - options.test_fraction);
    let seeds = seeds_of(options);
    let total = k * seeds.len();
    Ok(cross_validate(
        schema,
        data,
        k,
        &seeds,
        validation_fraction,
        fit_options,
        cost,
        &mut |summary| observer.fold(summary, total),
    )?)
}

/// The seeds cross-validation repeats with: the training seed and the `seeds − 1` after it.
fn seeds_of(options: &TrainerOptions) -> Vec<u64> {
    let first = options.fit.training.seed;
    (0..options.seeds.max(1) as u64)
        .map(|i| first.wrapping_add(i))
        .collect()
}

/// When the run cross-validates and the schema keeps protected fields out of the model, the
/// same cross-validation with every protected field an input, to show what keeping them out
/// costs.
fn compare_protected_inputs_if_asked(
    schema: &Schema,
    data: &TrainingData,
    options: &TrainerOptions,
    cost: &CostMatrix,
    primary: Option<&CrossValidationReport>,
    observer: &mut dyn TrainingObserver,
) -> Result<Option<ProtectedInputsComparison>, TrainerError> {
    let (Some(k), Some(primary)) = (options.cv_folds, primary) else {
        return Ok(None);
    };
    let left_out: Vec<String> = schema
        .fields()
        .iter()
        .filter(|field| matches!(field.role, Role::Protected { .. }) && !field.is_model_input())
        .map(|field| field.name.clone())
        .collect();
    if left_out.is_empty() {
        return Ok(None);
    }
    observer.stage(&format!(
        "{k}-fold cross-validation with the protected fields as inputs ({})",
        left_out.join(", ")
    ));
    let variant = schema.with_protected_inputs();
    let (with, _) = k_fold(&variant, data, k, options, &options.fit, cost, observer)?;
    Ok(Some(ProtectedInputsComparison {
        fields: left_out,
        without: ProtectedInputsFigures::of(primary),
        with: ProtectedInputsFigures::of(&with),
    }))
}

/// The report of the run, as written to metrics.json.
fn training_report(
    options: &TrainerOptions,
    input: &Input<'_>,
    split: &SplitIndices,
    result: &FitResult,
    cost: &CostMatrix,
    model: &OnnxModel,
    checks: Checks,
) -> TrainingReport {
    let bad_rows = input.data.rows.iter().filter(|row| row.bad).count();
    TrainingReport {
        model_version: model.version.clone(),
        trained_at: model.trained_at.clone(),
        command: options.command.clone(),
        data: DataSummary {
            path: options.data_path.display().to_string(),
            rows: input.data.rows.len(),
            bad: bad_rows,
            schema: Some(SchemaSummary {
                name: input.schema.name().to_owned(),
                fingerprint: input.schema.fingerprint(),
                path: options.schema_path.display().to_string(),
            }),
            outcome: Some(input.outcome.clone()),
            rows_read: Some(input.data.read),
            rows_skipped: Some(input.data.skipped),
            skipped_rows: input.data.skipped_rows.clone(),
        },
        split: SplitSummary {
            seed: options.fit.training.seed,
            train: split.train.len(),
            validation: split.validation.len(),
            test: split.test.len(),
        },
        balancing: BalancingSummary {
            method: options.fit.balancing,
            training_rows_before: result.training_rows,
            training_rows_after: result.training_rows_after_balancing,
            reason: report::balancing_reason(
                options.fit.balancing,
                bad_rows as f64 / input.data.rows.len().max(1) as f64,
                &checks.balancing_comparison,
            ),
            smote_neighbours: checks.smote_neighbours,
        },
        cost_matrix: *cost,
        network: options.fit.network,
        training: options.fit.training,
        best_epoch: result.best_epoch,
        epochs_run: result.epochs_run,
        training_seconds: result.lstm_seconds,
        threshold: Some(checks.threshold),
        lstm: result.lstm.clone(),
        logistic_regression: result.logistic.clone(),
        onnx_parity: checks.onnx_parity,
        cross_validation: checks.cross_validation,
        protected_inputs: checks.protected_inputs,
        balancing_comparison: checks.balancing_comparison,
        true_probability: checks.true_probability,
        learning_curve: result.lstm_curve.clone(),
    }
}

/// Writes model, preprocessor, schema, JSON Schema, report and plots into `paths.dir`, then the
/// manifest over them.
fn write_artifacts(
    paths: &ArtifactPaths,
    schema: &Schema,
    onnx: &[u8],
    result: &FitResult,
    report: &TrainingReport,
    reference: &Reference,
    fitted_on: &TrainingRows,
) -> Result<(), TrainerError> {
    std::fs::create_dir_all(&paths.dir).map_err(|e| write_error(&paths.dir, e))?;
    fitted_on
        .write(&paths.training_rows())
        .map_err(|e| write_error(&paths.training_rows(), e))?;
    std::fs::write(paths.model(), onnx).map_err(|e| write_error(&paths.model(), e))?;
    result.preprocessor.save(&paths.preprocessor())?;
    // The schema as read, byte for byte: its fingerprint in the report is the bundle's.
    std::fs::write(paths.schema(), schema.source()).map_err(|e| write_error(&paths.schema(), e))?;
    bundle::write_json_schema(&paths.dir, schema)?;
    std::fs::write(paths.reference(), reference.to_json(schema))
        .map_err(|e| write_error(&paths.reference(), e))?;
    let json =
        serde_json::to_string_pretty(report).map_err(|e| write_error(&paths.metrics(), e))?;
    std::fs::write(paths.metrics(), json + "\n").map_err(|e| write_error(&paths.metrics(), e))?;
    plot_learning_curve(
        &result.lstm_curve,
        &paths.learning_curve(),
        "Stacked LSTM: loss and ROC AUC per epoch",
    )
    .map_err(|e| write_error(&paths.learning_curve(), e))?;
    plot_test_roc(paths, &result.test_scores, report)?;
    plot_reliability(paths, report)?;
    // Last, so a manifest only ever describes a complete bundle; opening it as the worker will
    // proves the version read back from the ONNX file is the one just computed.
    bundle::write_manifest(&paths.dir, &report.model_version, &artifacts::BUNDLE_FILES)?;
    bundle::open(&paths.dir)?;
    Ok(())
}

/// Both models' ROC curves on the held-out test split, in one plot.
fn plot_test_roc(
    paths: &ArtifactPaths,
    test: &TestScores,
    report: &TrainingReport,
) -> Result<(), TrainerError> {
    let roc = vec![
        (
            format!(
                "stacked LSTM (test AUC {})",
                fmt_auc(report.lstm.test.roc_auc)
            ),
            roc_curve(&test.lstm, &test.labels).map_err(|e| write_error(&paths.roc(), e))?,
        ),
        (
            format!(
                "logistic regression (test AUC {})",
                fmt_auc(report.logistic_regression.test.roc_auc)
            ),
            roc_curve(&test.logistic, &test.labels).map_err(|e| write_error(&paths.roc(), e))?,
        ),
    ];
    plot_roc(&roc, &paths.roc(), "ROC on the held-out test split")
        .map_err(|e| write_error(&paths.roc(), e))
}

/// Predicted probability against observed bad rate: the calibrated LSTM on the test split and,
/// after cross-validation, on the pooled out-of-fold predictions; the uncalibrated test split
/// for contrast.
fn plot_reliability(paths: &ArtifactPaths, report: &TrainingReport) -> Result<(), TrainerError> {
    let points = |c: &CalibrationReport| -> Vec<(f64, f64)> {
        c.reliability
            .iter()
            .filter_map(|bin| Some((bin.mean_predicted?, bin.observed_bad_rate?)))
            .collect()
    };
    let mut series = Vec::new();
    if let Some(calibration) = &report.lstm.calibration {
        series.push((
            format!(
                "test split, calibrated (ECE {:.3}, {} rows)",
                calibration.test.expected_calibration_error, calibration.test.n
            ),
            points(&calibration.test),
        ));
        series.push((
            format!(
                "test split, before calibration (ECE {:.3})",
                calibration.uncalibrated_test.expected_calibration_error
            ),
            points(&calibration.uncalibrated_test),
        ));
    }
    if let Some(pooled) = report
        .cross_validation
        .as_ref()
        .and_then(|cv| cv.pooled.as_ref())
    {
        series.push((
            format!(
                "CV out of fold, calibrated (ECE {:.3}, {} predictions)",
                pooled.lstm.expected_calibration_error, pooled.predictions
            ),
            points(&pooled.lstm),
        ));
    }
    plot_reliability_curves(
        &series,
        &paths.reliability(),
        "Reliability of the stacked LSTM's probability of bad (10 equal-width bins)",
    )
    .map_err(|e| write_error(&paths.reliability(), e))
}

fn fmt_auc(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.3}"))
}

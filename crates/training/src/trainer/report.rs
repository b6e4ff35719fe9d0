//! The evaluation report (models/metrics.json) and its printed table.
//!
//! Every figure is computed by the run that writes the file; the README quotes this file and
//! the command that produced it, never a number typed by hand.

use super::balance::{Balancing, FieldNeighbourMix};
use super::cross_validation::{CrossValidationReport, ModelSpread, PooledOutOfFold};
use super::data::BadRow;
use super::fair_threshold::{FloorOutcome, Floors, ThresholdChoice};
use super::fit::SplitReports;
use super::out_of_fold::ThresholdTradeoff;
use super::truth::TrueProbabilityReport;
use crate::network::NetworkConfig;
use crate::plots::LearningCurve;
use crate::training::TrainingConfig;
use credit_core::evaluation::{CalibrationReport, ClassificationReport, CostMatrix, Spread};
use credit_core::fairness::FairnessReport;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The data set that was used.
///
/// The fields after `bad` are optional so that reports written before they existed still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataSummary {
    pub path: String,
    /// Rows trained and evaluated on.
    pub rows: usize,
    pub bad: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeSummary>,
    /// Data rows in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_read: Option<usize>,
    /// Rows left out because they do not fit the schema (`--skip-bad-rows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_skipped: Option<usize>,
    /// The first of them, with the field and the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_rows: Vec<BadRow>,
}

/// The applicant schema the data was read with (and the bundle carries).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaSummary {
    pub name: String,
    /// SHA-256 of the schema file's text.
    pub fingerprint: String,
    pub path: String,
}

/// Which column held the outcome, and which of its values meant a bad risk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutcomeSummary {
    pub column: String,
    pub bad: String,
}

/// Sizes of the three splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitSummary {
    pub seed: u64,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// How the training split was balanced, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BalancingSummary {
    pub method: Balancing,
    pub training_rows_before: usize,
    pub training_rows_after: usize,
    pub reason: String,
    /// What decides SMOTE-NC's neighbours among the training split's bad rows, on unscaled
    /// and on standardised numerics (standardised is what SMOTE-NC uses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smote_neighbours: Vec<FieldNeighbourMix>,
}

/// ONNX Runtime against the trainer's own forward pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParitySummary {
    pub applicants: usize,
    pub max_abs_difference: f64,
}

/// Cross-validated LSTM figures under one balancing method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BalancingComparison {
    pub method: Balancing,
    /// Seeds the folds were repeated with; the spreads are over every fold of every seed.
    #[serde(default = "one")]
    pub seeds: usize,
    pub lstm: ModelSpread,
}

fn one() -> usize {
    1
}

/// Cross-validated figures of one schema variant, for the protected-inputs comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedInputsFigures {
    pub lstm: ModelSpread,
    pub logistic_regression: ModelSpread,
    /// Expected calibration error of the pooled out-of-fold LSTM probabilities.
    pub pooled_lstm_ece: Option<f64>,
    /// Adverse-impact ratio of each protected group (approval rate against the best group's),
    /// from the pooled out-of-fold decisions.
    pub adverse_impact_ratios: Vec<(String, String, Option<f64>)>,
}

impl ProtectedInputsFigures {
    pub(crate) fn of(cv: &CrossValidationReport) -> Self {
        let pooled = cv.pooled.as_ref();
        Self {
            lstm: cv.lstm,
            logistic_regression: cv.logistic_regression,
            pooled_lstm_ece: pooled.map(|p| p.lstm.expected_calibration_error),
            adverse_impact_ratios: pooled
                .and_then(|p| p.fairness.as_ref())
                .map(|fairness| {
                    fairness
                        .fields
                        .iter()
                        .flat_map(|field| {
                            field.groups.iter().map(|group| {
                                (
                                    field.field.clone(),
                                    group.group.clone(),
                                    group.adverse_impact_ratio,
                                )
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What keeping the protected fields out of the model costs: the same cross-validation (same
/// folds and seeds) without them, as shipped, and with every one of them an input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedInputsComparison {
    /// The protected fields the shipped schema keeps out.
    pub fields: Vec<String>,
    pub without: ProtectedInputsFigures,
    pub with: ProtectedInputsFigures,
}

/// The full report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingReport {
    pub model_version: String,
    pub trained_at: String,
    /// The command line that produced this report.
    pub command: String,
    pub data: DataSummary,
    pub split: SplitSummary,
    pub balancing: BalancingSummary,
    pub cost_matrix: CostMatrix,
    pub network: NetworkConfig,
    pub training: TrainingConfig,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub training_seconds: f64,
    /// How the shipped threshold was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdChoice>,
    /// The stacked LSTM (the shipped model), at the shipped threshold.
    pub lstm: SplitReports,
    /// The logistic-regression baseline on the same features and splits.
    pub logistic_regression: SplitReports,
    pub onnx_parity: ParitySummary,
    pub cross_validation: Option<CrossValidationReport>,
    /// After cross-validation, when the schema keeps protected fields out: the same
    /// cross-validation with them as inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_inputs: Option<ProtectedInputsComparison>,
    /// With `--compare-balancing`: the same cross-validation under each balancing method.
    #[serde(default)]
    pub balancing_comparison: Vec<BalancingComparison>,
    /// With `--true-probability-column`: the models against the data's true probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_probability: Option<TrueProbabilityReport>,
    pub learning_curve: LearningCurve,
}

/// Why the balancing method was used: written into the report so the choice is explained
/// next to its consequences, with the cross-validated comparison when one was run.
/// `bad_share` is the share of bad rows in the data.
pub(crate) fn balancing_reason(
    method: Balancing,
    bad_share: f64,
    comparison: &[BalancingComparison],
) -> String {
    let bad_percent = (bad_share * 100.0).round();
    let mix = format!("{}:{}", 100.0 - bad_percent, bad_percent);
    let what = match method {
        Balancing::Smote => {
            "SMOTE-NC on the training split only (the original study's SMOTE, in \
            the variant that keeps categorical attributes valid)"
        }
        Balancing::ClassWeights => {
            "class weights on the training split (bad rows weigh \
            good/bad in the loss; no synthetic applicants)"
        }
        Balancing::None => "no balancing (the cost-based threshold alone handles the class mix)",
    };
    let mut reason = format!(
        "{what}; validation and test keep the real {mix} mix, so their figures are what \
         production sees"
    );
    if !comparison.is_empty() {
        let figures: Vec<String> = comparison
            .iter()
            .map(|c| {
                format!(
                    "{:?}: AUC {:.3} ± {:.3}, cost {:.3} ± {:.3}",
                    c.method,
                    c.lstm.roc_auc.mean,
                    c.lstm.roc_auc.std,
                    c.lstm.average_cost.mean,
                    c.lstm.average_cost.std
                )
            })
            .collect();
        let seeds = comparison.first().map_or(1, |c| c.seeds);
        reason.push_str(&format!(
            ". The method is chosen on the cross-validated LSTM under each method, pooled over \
             every fold of {seeds} seed{} (not on the single split reported above): {}",
            if seeds == 1 { "" } else { "s" },
            figures.join("; ")
        ));
    }
    reason
}

fn auc(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.3}"))
}

fn row(table: &mut String, model: &str, split: &str, report: &ClassificationReport) {
    let c = &report.confusion;
    let _ = writeln!(
        table,
        "{model:<9} {split:<10} {:>6.3} {:>6} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}   {:>4} {:>4} {:>4} {:>4}",
        report.accuracy,
        auc(report.roc_auc),
        report.precision_bad,
        report.recall_bad,
        report.f1_bad,
        report.brier,
        report.average_cost,
        c.true_bad,
        c.false_good,
        c.false_bad,
        c.true_good,
    );
}

/// The models against the true probabilities of column `truth.column`, on the test split and
/// over the cross-validation folds.
fn render_truth(table: &mut String, truth: &TrueProbabilityReport) {
    let test = &truth.test;
    let _ = writeln!(
        table,
        "true probabilities (`{}`) on the test split: AUC {} (the best any model can reach) vs lstm {} (gap {}), logistic {} (gap {}); mean true probability {:.3} vs observed bad rate {:.3} over {} rows",
        truth.column,
        auc(test.truth.true_probability_auc),
        auc(test.lstm_auc),
        auc(test.lstm_gap),
        auc(test.logistic_auc),
        auc(test.logistic_gap),
        test.truth.mean_true_probability,
        test.truth.observed_bad_rate,
        test.truth.rows,
    );
    if let Some(cv) = &truth.cross_validation {
        let _ = writeln!(
            table,
            "true probabilities over {} CV folds (each fold's test rows): AUC {:.3} ± {:.3} vs lstm {:.3} ± {:.3} (gap {:.3} ± {:.3}), logistic {:.3} ± {:.3} (gap {:.3} ± {:.3}); mean true probability {:.3} vs observed bad rate {:.3} over {} rows",
            cv.folds,
            cv.true_probability_auc.mean,
            cv.true_probability_auc.std,
            cv.lstm_auc.mean,
            cv.lstm_auc.std,
            cv.lstm_gap.mean,
            cv.lstm_gap.std,
            cv.logistic_auc.mean,
            cv.logistic_auc.std,
            cv.logistic_gap.mean,
            cv.logistic_gap.std,
            cv.mean_true_probability,
            cv.observed_bad_rate,
            cv.rows,
        );
    }
}

fn spread(value: Option<Spread>) -> String {
    value.map_or("n/a".to_string(), |v| {
        format!("{:.3} ± {:.3}", v.mean, v.std)
    })
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), |v| format!("{v:.3}"))
}

/// Calibration of the shipped LSTM per split (and of the baseline on test), before and after
/// Platt scaling.
fn render_calibration(table: &mut String, report: &TrainingReport) {
    let Some(calibration) = &report.lstm.calibration else {
        return;
    };
    if let Some(platt) = report.lstm.platt {
        let _ = writeln!(
            table,
            "calibration: Platt scaling fitted on validation (a {:.3}, b {:.3}) and folded into the output layer; ECE over 10 equal-width bins",
            platt.a, platt.b
        );
    }
    let mut line = |name: &str, c: &CalibrationReport| {
        let _ = writeln!(
            table,
            "  {name:<28} ECE {:.3}  Brier {:.3}  mean predicted {:.3} vs observed {:.3} ({} rows)",
            c.expected_calibration_error, c.brier, c.mean_predicted, c.observed_bad_rate, c.n
        );
    };
    line("lstm train", &calibration.train);
    line("lstm validation", &calibration.validation);
    line("lstm test", &calibration.test);
    line(
        "lstm test, before calibration",
        &calibration.uncalibrated_test,
    );
    if let Some(logistic) = &report.logistic_regression.calibration {
        line("logistic test", &logistic.test);
    }
    render_reliability(table, "lstm test", &calibration.test);
}

/// A reliability table: per bin, rows, mean predicted and observed bad rate.
fn render_reliability(table: &mut String, name: &str, c: &CalibrationReport) {
    let _ = writeln!(
        table,
        "  reliability ({name}): bin  rows  predicted  observed"
    );
    for bin in c.reliability.iter().filter(|bin| bin.count > 0) {
        let _ = writeln!(
            table,
            "    [{:.1}, {:.1})  {:>5}  {:>9}  {:>8}",
            bin.lower,
            bin.upper,
            bin.count,
            ratio(bin.mean_predicted),
            ratio(bin.observed_bad_rate)
        );
    }
}

/// The pooled out-of-fold calibration and fairness.
fn render_pooled(table: &mut String, pooled: &PooledOutOfFold) {
    let _ = writeln!(
        table,
        "CV pooled out of fold ({} predictions, each at its fold's threshold): lstm ECE {:.3}, Brier {:.3}, mean predicted {:.3} vs observed {:.3}, cost {:.3}; logistic ECE {:.3}, Brier {:.3}, mean predicted {:.3}",
        pooled.predictions,
        pooled.lstm.expected_calibration_error,
        pooled.lstm.brier,
        pooled.lstm.mean_predicted,
        pooled.lstm.observed_bad_rate,
        pooled.lstm_cost,
        pooled.logistic.expected_calibration_error,
        pooled.logistic.brier,
        pooled.logistic.mean_predicted,
    );
    render_reliability(table, "lstm, CV pooled", &pooled.lstm);
    if let Some(fairness) = &pooled.fairness {
        render_fairness(
            table,
            "CV pooled out of fold, each at its fold's threshold",
            fairness,
        );
    }
    render_tradeoff(table, &pooled.fairness_by_threshold);
    if let Some(nested) = &pooled.floors {
        let thresholds: Vec<f64> = nested.thresholds.iter().map(|&t| f64::from(t)).collect();
        let spread = Spread::of(&thresholds);
        let _ = writeln!(
            table,
            "under the floors ({}), each fold at the threshold they pick from the other rows' predictions: threshold {:.3} ± {:.3} ({} of {} folds raised), approved {:.3}, cost {:.3}",
            floor_list(&nested.floors),
            spread.mean,
            spread.std,
            nested.raised,
            nested.thresholds.len(),
            nested.approval_rate,
            nested.cost,
        );
        for interval in &nested.intervals {
            let _ = writeln!(
                table,
                "  {} lowest ratio {}: 95% interval {}-{} over {} resamples of the applicants, at or above the floor in {:.0}% of them",
                interval.field,
                ratio(interval.lowest_ratio),
                ratio(interval.low),
                ratio(interval.high),
                interval.resamples,
                100.0 * interval.meets_floor,
            );
        }
        render_fairness(
            table,
            "CV pooled out of fold, under the floors, each fold at the threshold the other rows pick",
            &nested.fairness,
        );
    }
}

/// `field >= ratio` for each floor.
fn floor_list(floors: &Floors) -> String {
    floors
        .0
        .iter()
        .map(|floor| format!("{} >= {}", floor.field, floor.min_impact_ratio))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the shipped threshold came about, in words.
fn threshold_origin(report: &TrainingReport) -> String {
    let cost = format!(
        "{}:{} cost",
        report.cost_matrix.false_good_cost, report.cost_matrix.false_bad_cost
    );
    let Some(choice) = &report.threshold else {
        return format!("chosen on validation, {cost}");
    };
    match choice.outcome {
        FloorOutcome::NoFloors => format!("chosen on validation, {cost}"),
        FloorOutcome::AlreadyMet => format!(
            "chosen on validation, {cost}; the floors {} hold at it out of fold",
            floor_list(&choice.floors)
        ),
        FloorOutcome::Raised => format!(
            "{:.3} chosen on validation ({cost}), raised until the floors {} hold out of fold",
            choice.cost_minimising,
            floor_list(&choice.floors)
        ),
        FloorOutcome::NotChecked => format!(
            "chosen on validation, {cost}; the floors {} NOT checked: run with --cv",
            floor_list(&choice.floors)
        ),
    }
}

/// The pooled decisions at other thresholds: cost against each field's lowest ratio.
fn render_tradeoff(table: &mut String, tradeoff: &[ThresholdTradeoff]) {
    if tradeoff.is_empty() {
        return;
    }
    let _ = writeln!(
        table,
        "threshold trade-off (CV pooled out of fold, the same probabilities at other thresholds; lowest adverse-impact ratio per field):"
    );
    for point in tradeoff {
        let _ = writeln!(table, "  {}", tradeoff_line(point));
    }
}

/// One threshold's approvals, cost and lowest ratio per field.
fn tradeoff_line(point: &ThresholdTradeoff) -> String {
    let ratios: Vec<String> = point
        .lowest_ratios
        .iter()
        .map(|(field, group, ratio_value)| format!("{field} {} ({group})", ratio(*ratio_value)))
        .collect();
    format!(
        "threshold {:.3}  approved {:.3}  cost {:.3}  {}",
        point.threshold,
        point.approval_rate,
        point.cost,
        ratios.join(", ")
    )
}

/// Per protected group: the four-fifths rule, error rates and calibration.
fn render_fairness(table: &mut String, title: &str, fairness: &FairnessReport) {
    let _ = writeln!(
        table,
        "fairness by protected group ({title}; ratio = approval rate / best group's, flagged under {}):",
        fairness.four_fifths
    );
    let _ = writeln!(
        table,
        "  {:<20} {:<34} {:>6} {:>6} {:>8} {:>6} {:>6} {:>6} {:>8}",
        "field", "group", "count", "bad", "approved", "ratio", "TPR", "FPR", "cal gap"
    );
    for field in &fairness.fields {
        for group in &field.groups {
            let _ = writeln!(
                table,
                "  {:<20} {:<34} {:>6} {:>6} {:>8} {:>6}{} {:>6} {:>6} {:>8}",
                field.field,
                group.group,
                group.count,
                ratio(group.bad_rate),
                ratio(group.approval_rate),
                ratio(group.adverse_impact_ratio),
                if group.below_four_fifths { "!" } else { " " },
                ratio(group.true_positive_rate),
                ratio(group.false_positive_rate),
                group
                    .calibration_gap
                    .map_or("n/a".to_string(), |v| format!("{v:+.3}")),
            );
        }
    }
}

/// What keeping the protected fields out costs.
fn render_protected(table: &mut String, protected: &ProtectedInputsComparison) {
    let line = |figures: &ProtectedInputsFigures| {
        format!(
            "lstm AUC {:.3} ± {:.3}, cost {:.3} ± {:.3}, pooled ECE {}; logistic AUC {:.3} ± {:.3}, cost {:.3} ± {:.3}",
            figures.lstm.roc_auc.mean,
            figures.lstm.roc_auc.std,
            figures.lstm.average_cost.mean,
            figures.lstm.average_cost.std,
            ratio(figures.pooled_lstm_ece),
            figures.logistic_regression.roc_auc.mean,
            figures.logistic_regression.roc_auc.std,
            figures.logistic_regression.average_cost.mean,
            figures.logistic_regression.average_cost.std,
        )
    };
    let _ = writeln!(
        table,
        "protected fields ({}) out of the model (shipped): {}",
        protected.fields.join(", "),
        line(&protected.without)
    );
    let _ = writeln!(
        table,
        "protected fields as inputs (same folds and seeds): {}",
        line(&protected.with)
    );
    let ratios = |figures: &ProtectedInputsFigures| -> String {
        figures
            .adverse_impact_ratios
            .iter()
            .map(|(field, group, r)| format!("{field}={group} {}", ratio(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        table,
        "  adverse-impact ratios without: {}\n  adverse-impact ratios with:    {}",
        ratios(&protected.without),
        ratios(&protected.with)
    );
}

/// The summary table printed at the end of training.
pub fn render_table(report: &TrainingReport) -> String {
    let mut table = String::new();
    let data = &report.data;
    let schema = data.schema.as_ref().map_or(String::new(), |schema| {
        format!(
            " with schema `{}` ({})",
            schema.name,
            &schema.fingerprint[..schema.fingerprint.len().min(12)]
        )
    });
    let _ = writeln!(
        table,
        "data {}{schema}: {} rows read, {} skipped, {} trained on ({} bad)",
        data.path,
        data.rows_read.unwrap_or(data.rows),
        data.rows_skipped.unwrap_or(0),
        data.rows,
        data.bad
    );
    let _ = writeln!(
        table,
        "model {}  threshold {:.3} ({})  best epoch {}/{}  {:.1}s",
        report.model_version,
        report.lstm.threshold,
        threshold_origin(report),
        report.best_epoch,
        report.epochs_run,
        report.training_seconds
    );
    let _ = writeln!(
        table,
        "{:<9} {:<10} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}   {:>4} {:>4} {:>4} {:>4}",
        "model",
        "split",
        "acc",
        "auc",
        "prec",
        "recall",
        "f1",
        "brier",
        "cost",
        "TB",
        "FG",
        "FB",
        "TG"
    );
    for (name, reports) in [
        ("lstm", &report.lstm),
        ("logistic", &report.logistic_regression),
    ] {
        row(&mut table, name, "train", &reports.train);
        row(&mut table, name, "validation", &reports.validation);
        row(&mut table, name, "test", &reports.test);
    }
    let _ = writeln!(
        table,
        "train-test AUC gap: lstm {}  logistic {}   (TB/FG/FB/TG: true bad, bad predicted good, good predicted bad, true good)",
        auc(report.lstm.train_test_auc_gap),
        auc(report.logistic_regression.train_test_auc_gap)
    );
    let _ = writeln!(
        table,
        "ONNX Runtime vs trainer forward pass: max |diff| {:.2e} over {} applicants",
        report.onnx_parity.max_abs_difference, report.onnx_parity.applicants
    );
    render_calibration(&mut table, report);
    if let Some(cv) = &report.cross_validation {
        let _ = writeln!(
            table,
            "{}-fold CV x {} seed(s) ({:.0}s), mean ± sd over all folds: lstm AUC {:.3} ± {:.3}, cost {:.3} ± {:.3}, ECE {}, Brier {}, train-test AUC gap {:.3}; logistic AUC {:.3} ± {:.3}, cost {:.3} ± {:.3}, ECE {}, Brier {}",
            cv.folds,
            cv.seeds.len().max(1),
            cv.seconds,
            cv.lstm.roc_auc.mean,
            cv.lstm.roc_auc.std,
            cv.lstm.average_cost.mean,
            cv.lstm.average_cost.std,
            spread(cv.lstm.expected_calibration_error),
            spread(cv.lstm.brier),
            cv.lstm_train_test_auc_gap.mean,
            cv.logistic_regression.roc_auc.mean,
            cv.logistic_regression.roc_auc.std,
            cv.logistic_regression.average_cost.mean,
            cv.logistic_regression.average_cost.std,
            spread(cv.logistic_regression.expected_calibration_error),
            spread(cv.logistic_regression.brier),
        );
        if let Some(pooled) = &cv.pooled {
            render_pooled(&mut table, pooled);
        }
        if let Some(point) = report
            .threshold
            .as_ref()
            .and_then(|t| t.out_of_fold.as_ref())
        {
            let _ = writeln!(
                table,
                "the shipped threshold on the pooled out-of-fold predictions: {}",
                tradeoff_line(point)
            );
        }
    }
    if let Some(protected) = &report.protected_inputs {
        render_protected(&mut table, protected);
    }
    if let Some(truth) = &report.true_probability {
        render_truth(&mut table, truth);
    }
    if !report.balancing.smote_neighbours.is_empty() {
        let _ = writeln!(
            table,
            "SMOTE-NC neighbours (training split's bad rows, k nearest each): share of squared distance and of pairs with the same value, unscaled -> standardised numerics"
        );
        for field in &report.balancing.smote_neighbours {
            let _ = writeln!(
                table,
                "  {:<26} distance {:>5.1}% -> {:>5.1}%   same value {:>5.1}% -> {:>5.1}%",
                field.field,
                100.0 * field.share_unscaled,
                100.0 * field.share_scaled,
                100.0 * field.same_value_unscaled,
                100.0 * field.same_value_scaled,
            );
        }
    }
    for comparison in &report.balancing_comparison {
        let _ = writeln!(
            table,
            "balancing {:?} ({} seed(s)): lstm CV AUC {:.3} ± {:.3}, cost {:.3} ± {:.3}, ECE {}, Brier {}",
            comparison.method,
            comparison.seeds,
            comparison.lstm.roc_auc.mean,
            comparison.lstm.roc_auc.std,
            comparison.lstm.average_cost.mean,
            comparison.lstm.average_cost.std,
            spread(comparison.lstm.expected_calibration_error),
            spread(comparison.lstm.brier),
        );
    }
    table
}

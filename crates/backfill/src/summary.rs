//! The end-of-run summary, printed and written to `<output>.summary.json`.

use super::psi::PsiReference;
use super::stats::{Confusion, RunningStats};
use credit_core::evaluation::CostMatrix;
use credit_core::fairness::{FairnessReport, ProtectedGroups};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The realised performance of the model on rows whose outcome is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    /// Rows with a known outcome.
    pub labelled_rows: u64,
    /// ROC AUC (from the score histogram; `None` unless both outcomes occur).
    pub roc_auc: Option<f64>,
    /// Average cost per applicant at the threshold under `cost_matrix`.
    pub average_cost: Option<f64>,
    pub cost_matrix: CostMatrix,
    pub threshold: f32,
    pub confusion: Confusion,
}

/// Population stability of the scores against the training data's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PsiSummary {
    pub value: f64,
    pub bins: usize,
    /// The reference data set.
    pub reference: String,
    pub reference_rows: usize,
    /// Share of the reference in each bin.
    pub reference_shares: Vec<f64>,
    /// Share of this run's scores in each bin.
    pub shares: Vec<f64>,
}

/// Whether the scored rows included the model's own training rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRowsSummary {
    /// Whether the model's bundle records the fingerprints of its training rows; without
    /// them the figures may include rows the model was fitted on.
    pub recorded: bool,
    /// Scored rows that were training rows of the model.
    pub scored: u64,
    /// Scored rows the backtest, PSI and fairness figures are computed on.
    pub held_out: u64,
    /// Said when some scored rows were training rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl TrainingRowsSummary {
    /// The part of `stats`; `recorded` says whether the bundle had fingerprints to check.
    pub fn of(stats: &RunningStats, recorded: bool) -> Self {
        let warning = (stats.training_rows > 0).then(|| {
            format!(
                "{} of the {} scored rows were the model's training rows: the backtest, PSI and \
                 fairness figures are on the {} held-out rows only",
                stats.training_rows,
                stats.rows,
                stats.rows - stats.training_rows
            )
        });
        if let Some(warning) = &warning {
            tracing::warn!("{warning}");
        }
        Self {
            recorded,
            scored: stats.training_rows,
            held_out: stats.rows - stats.training_rows,
            warning,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub input: String,
    pub output: String,
    pub model_version: String,
    pub threshold: f32,
    pub shard: String,
    /// Rows scored, over every attempt of the run.
    pub rows: u64,
    /// Rows rejected, over every attempt.
    pub rejects: u64,
    pub rejects_file: String,
    /// Rows decided bad.
    pub bad_decisions: u64,
    /// Share of scored rows decided bad.
    pub bad_rate: Option<f64>,
    /// Input row at which this attempt started (0 unless resumed).
    pub resumed_from_row: u64,
    /// Rows scored by this attempt.
    pub rows_this_attempt: u64,
    /// Wall time of this attempt.
    pub wall_seconds: f64,
    /// Rows scored per second by this attempt.
    pub rows_per_second: f64,
    pub workers: usize,
    pub intra_threads: usize,
    pub batch_size: usize,
    pub backtest: Option<Backtest>,
    pub psi: Option<PsiSummary>,
    /// Decisions per protected group; `None` without protected fields, or when the run was
    /// resumed from a checkpoint written before fairness was counted.
    #[serde(default)]
    pub fairness: Option<FairnessReport>,
    /// Whether the checkpoint said the run had already finished (nothing was redone).
    pub already_complete: bool,
    /// Scored rows that were the model's training rows, kept out of the figures.
    #[serde(default)]
    pub training_rows: TrainingRowsSummary,
}

impl Summary {
    /// The backtest part, when some rows carried an outcome.
    pub fn backtest(stats: &RunningStats, threshold: f32) -> Option<Backtest> {
        let labelled_rows = stats.confusion.total();
        (labelled_rows > 0).then(|| Backtest {
            labelled_rows,
            roc_auc: stats.roc_auc(),
            average_cost: stats.confusion.average_cost(&CostMatrix::GERMAN_CREDIT),
            cost_matrix: CostMatrix::GERMAN_CREDIT,
            threshold,
            confusion: stats.confusion,
        })
    }

    /// The fairness part, when the schema has protected fields and every row was counted.
    pub fn fairness(stats: &RunningStats, groups: &ProtectedGroups) -> Option<FairnessReport> {
        if !groups.is_empty() && stats.fairness.is_none() {
            tracing::warn!(
                "no fairness report: the run was resumed from a checkpoint written without it"
            );
        }
        stats.fairness.as_ref().map(|counts| counts.report())
    }

    /// The PSI part, when there is a reference and scores.
    pub fn psi(
        stats: &RunningStats,
        reference: Option<&PsiReference>,
        reference_path: &str,
    ) -> Option<PsiSummary> {
        let reference = reference?;
        let value = reference.psi(&stats.psi_counts)?;
        let total: u64 = stats.psi_counts.iter().sum();
        Some(PsiSummary {
            value,
            bins: reference.bins(),
            reference: reference_path.to_string(),
            reference_rows: reference.rows,
            reference_shares: reference.expected.clone(),
            shares: stats
                .psi_counts
                .iter()
                .map(|&c| c as f64 / total.max(1) as f64)
                .collect(),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.already_complete {
            writeln!(
                f,
                "already complete according to its checkpoint; nothing redone"
            )?;
        }
        writeln!(f, "backfill {} -> {}", self.input, self.output)?;
        writeln!(
            f,
            "  model {} at threshold {}, shard {}",
            self.model_version, self.threshold, self.shard
        )?;
        writeln!(
            f,
            "  rows scored {}, rejected {} ({}), decided bad {} ({})",
            self.rows,
            self.rejects,
            self.rejects_file,
            self.bad_decisions,
            percent(self.bad_rate)
        )?;
        let training = &self.training_rows;
        match &training.warning {
            Some(warning) => writeln!(f, "  WARNING: {warning}")?,
            None if training.recorded => writeln!(
                f,
                "  none of the scored rows is a training row of the model: every figure is held out"
            )?,
            None => writeln!(
                f,
                "  the bundle records no training rows: the figures may include rows the model was fitted on"
            )?,
        }
        writeln!(
            f,
            "  this attempt: {} rows from input row {} in {:.2} s = {:.0} rows/s ({} workers x {} intra threads, batch {})",
            self.rows_this_attempt,
            self.resumed_from_row,
            self.wall_seconds,
            self.rows_per_second,
            self.workers,
            self.intra_threads,
            self.batch_size
        )?;
        if let Some(backtest) = &self.backtest {
            writeln!(
                f,
                "  backtest on {} labelled{} rows: ROC AUC {}, average cost {} (5:1) at threshold {}",
                backtest.labelled_rows,
                if training.recorded { " held-out" } else { "" },
                number(backtest.roc_auc),
                number(backtest.average_cost),
                backtest.threshold
            )?;
        }
        if let Some(psi) = &self.psi {
            let verdict = match psi.value {
                v if v < 0.1 => "stable",
                v if v < 0.25 => "some shift",
                _ => "major shift",
            };
            writeln!(
                f,
                "  PSI vs {} ({} rows, {} bins): {:.4} ({verdict})",
                psi.reference, psi.reference_rows, psi.bins, psi.value
            )?;
        }
        if let Some(fairness) = &self.fairness {
            write_fairness(f, fairness)?;
        }
        Ok(())
    }
}

fn write_fairness(f: &mut fmt::Formatter<'_>, report: &FairnessReport) -> fmt::Result {
    writeln!(
        f,
        "  fairness by protected group (approval ratio to the best group; ! under {}):",
        report.four_fifths
    )?;
    for field in &report.fields {
        writeln!(
            f,
            "    {} (reference {}):",
            field.field,
            field.reference_group.as_deref().unwrap_or("none")
        )?;
        let width = field
            .groups
            .iter()
            .map(|g| g.group.len())
            .max()
            .unwrap_or(0);
        for g in &field.groups {
            writeln!(
                f,
                "      {:<width$} {:>7} rows  approved {:>6}  ratio {}{}  bad {:>6}  TPR {:>6} ({})  FPR {:>6} ({})  mean p {} vs bad {}",
                g.group,
                g.count,
                percent(g.approval_rate),
                ratio(g.adverse_impact_ratio),
                if g.below_four_fifths { " !" } else { "  " },
                percent(g.bad_rate),
                percent(g.true_positive_rate),
                gap(g.true_positive_rate_gap),
                percent(g.false_positive_rate),
                gap(g.false_positive_rate_gap),
                ratio(g.mean_probability_bad),
                ratio(g.bad_rate),
            )?;
        }
    }
    Ok(())
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

fn gap(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{:+.1} pt", v * 100.0))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"))
}

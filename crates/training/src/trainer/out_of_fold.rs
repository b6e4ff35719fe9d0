//! Cross-validation's pooled out-of-fold predictions, and what deciding them gives: approvals,
//! cost and fairness by protected group. The cross-validation report decides them at each
//! fold's threshold and at common ones, the impact-ratio floors at the thresholds they pick.

use credit_core::applicant::Applicant;
use credit_core::evaluation::CostMatrix;
use credit_core::fairness::{FairnessReport, ProtectedGroups};
use serde::{Deserialize, Serialize};

/// One pooled out-of-fold prediction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prediction<'a> {
    /// The row of the data it is for.
    pub(crate) row: usize,
    pub(crate) score: f32,
    pub(crate) bad: bool,
    pub(crate) applicant: &'a Applicant,
    /// Which seed's folds, and which fold of them, made it.
    pub(crate) seed: usize,
    pub(crate) fold: usize,
}

/// The pooled out-of-fold decisions at one threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdTradeoff {
    pub threshold: f32,
    pub approval_rate: f64,
    /// Average cost per applicant under the run's cost matrix.
    pub cost: f64,
    /// Per protected field: its group with the lowest adverse-impact ratio, and that ratio.
    pub lowest_ratios: Vec<(String, String, Option<f64>)>,
}

/// Predictions decided, each at its own threshold.
pub(crate) struct Decisions {
    /// Whether each prediction was decided `bad`, in order.
    pub(crate) bad: Vec<bool>,
    pub(crate) approval_rate: f64,
    /// Average cost per applicant under the run's cost matrix.
    pub(crate) cost: f64,
    pub(crate) fairness: FairnessReport,
}

/// `predictions` decided `bad` at or above `threshold_of` each.
pub(crate) fn decide(
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    cost: &CostMatrix,
    threshold_of: impl Fn(&Prediction<'_>) -> f32,
) -> Decisions {
    let rows = predictions.len().max(1) as f64;
    let mut counts = groups.counts();
    let (mut approved, mut total_cost) = (0usize, 0.0);
    let bad = predictions
        .iter()
        .map(|p| {
            let decided_bad = p.score >= threshold_of(p);
            approved += usize::from(!decided_bad);
            total_cost += cost.of(decided_bad, p.bad);
            groups.add(&mut counts, p.applicant, decided_bad, p.score, Some(p.bad));
            decided_bad
        })
        .collect();
    Decisions {
        bad,
        approval_rate: approved as f64 / rows,
        cost: total_cost / rows,
        fairness: counts.report(),
    }
}

/// The pooled probabilities decided at `threshold`.
pub(crate) fn decide_at(
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    cost: &CostMatrix,
    threshold: f32,
) -> ThresholdTradeoff {
    let decisions = decide(groups, predictions, cost, |_| threshold);
    let lowest_ratios = decisions
        .fairness
        .fields
        .iter()
        .map(|field| {
            let lowest = field.lowest_group();
            (
                field.field.clone(),
                lowest.map_or_else(String::new, |g| g.group.clone()),
                lowest.and_then(|g| g.adverse_impact_ratio),
            )
        })
        .collect();
    ThresholdTradeoff {
        threshold,
        approval_rate: decisions.approval_rate,
        cost: decisions.cost,
        lowest_ratios,
    }
}

//! Cross-validation's pooled out-of-fold predictions, and what deciding them at one threshold
//! gives: approvals, cost and each protected field's lowest adverse-impact ratio. Both the
//! cross-validation report and the threshold under the impact-ratio floors decide them.

use credit_core::applicant::Applicant;
use credit_core::evaluation::CostMatrix;
use credit_core::fairness::{GroupFairness, ProtectedGroups};
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

/// The pooled probabilities decided at `threshold`.
pub(crate) fn decide_at(
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    cost: &CostMatrix,
    threshold: f32,
) -> ThresholdTradeoff {
    let rows = predictions.len().max(1) as f64;
    let mut counts = groups.counts();
    let (mut approved, mut total_cost) = (0usize, 0.0);
    for p in predictions {
        let decided_bad = p.score >= threshold;
        approved += usize::from(!decided_bad);
        total_cost += cost.of(decided_bad, p.bad);
        groups.add(&mut counts, p.applicant, decided_bad, p.score, Some(p.bad));
    }
    let lowest_ratios = counts
        .report()
        .fields
        .into_iter()
        .map(|field| {
            let lowest = field.groups.iter().min_by(|a, b| {
                let ratio = |g: &GroupFairness| g.adverse_impact_ratio.unwrap_or(f64::INFINITY);
                ratio(a).total_cmp(&ratio(b))
            });
            (
                field.field.clone(),
                lowest.map_or_else(String::new, |g| g.group.clone()),
                lowest.and_then(|g| g.adverse_impact_ratio),
            )
        })
        .collect();
    ThresholdTradeoff {
        threshold,
        approval_rate: approved as f64 / rows,
        cost: total_cost / rows,
        lowest_ratios,
    }
}

//! The decision threshold under the schema's adverse-impact floors.
//!
//! A protected field with `min_impact_ratio` asks that every one of its groups be approved at
//! no less than that share of the best-approved group's rate. The threshold stays one for all
//! applicants (deciding by group would itself treat them differently by a protected trait);
//! raising it approves more of every group, which lifts the lowest ratio, so the rule takes the
//! lowest threshold at or above the cost-minimising one from which every floor holds, at it and
//! at every higher threshold.
//!
//! A validation split holds a handful of a small group's applicants, so the floors are checked
//! on cross-validation's pooled out-of-fold predictions, each made by a model that did not
//! train on its row. [`nested`] says what the rule does to applicants it did not see: each fold
//! is decided at the threshold the rule picks from the predictions of every other row, over
//! every seed, so that its choice sees nearly as many predictions as the shipped one does.
//! Drawing the applicants again ([`intervals`]) shows how much of that figure is the sample's.

use super::out_of_fold::{decide, decide_at, Prediction, ThresholdTradeoff};
use credit_core::evaluation::{midpoint_above, CostMatrix};
use credit_core::fairness::{FairnessCounts, FairnessReport, ProtectedGroups};
use credit_core::schema::{Role, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples of the applicants behind each [`RatioInterval`], and their seed.
const RESAMPLES: usize = 1000;
const RESAMPLE_SEED: u64 = 2026;

/// The protected fields with a floor on their adverse-impact ratio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Floors(pub Vec<Floor>);

/// One field's floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    pub field: String,
    pub min_impact_ratio: f64,
}

impl Floors {
    /// The floors `schema` declares.
    pub(crate) fn of(schema: &Schema) -> Self {
        Self(
            schema
                .fields()
                .iter()
                .filter(|field| matches!(field.role, Role::Protected { .. }))
                .filter_map(|field| {
                    Some(Floor {
                        field: field.name.clone(),
                        min_impact_ratio: field.min_impact_ratio?,
                    })
                })
                .collect(),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every floor holds for decisions counted in `counts`: each non-empty group of the
    /// field has a ratio, and it is at least the floor.
    fn hold(&self, counts: &FairnessCounts) -> bool {
        let report = counts.report();
        self.0.iter().all(|floor| {
            report
                .fields
                .iter()
                .filter(|field| field.field == floor.field)
                .flat_map(|field| &field.groups)
                .all(|group| {
                    group
                        .adverse_impact_ratio
                        .is_some_and(|ratio| ratio >= floor.min_impact_ratio)
                })
        })
    }
}

/// The lowest threshold at or above `from` from which every floor holds on `predictions`
/// (decided `bad` at or above it) at every higher threshold too; `None` when there are no
/// predictions to check.
///
/// Why not the first threshold at which they hold: a small group's ratio wanders up and down
/// across thresholds, so the first crossing is often a spot where the sample's noise lifts it
/// for a step or two, and the floor fails again just above it, and on new applicants.
pub(crate) fn lowest_steadily_meeting(
    floors: &Floors,
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    from: f32,
) -> Option<f32> {
    if predictions.is_empty() {
        return None;
    }
    let group_of: Vec<Vec<usize>> = predictions
        .iter()
        .map(|p| groups.groups_of(p.applicant))
        .collect();
    let mut counts = groups.counts();
    for (p, g) in predictions.iter().zip(&group_of) {
        counts.add(g, p.score >= from, p.score, None);
    }
    // The lowest threshold seen so far from which the floors have held at every step.
    let mut lowest = floors.hold(&counts).then_some(from);
    // Raise the threshold past one score at a time: its rows become approvals.
    let mut order: Vec<usize> = (0..predictions.len())
        .filter(|&i| predictions[i].score >= from)
        .collect();
    order.sort_by(|&a, &b| predictions[a].score.total_cmp(&predictions[b].score));
    let mut start = 0;
    while start < order.len() {
        let score = predictions[order[start]].score;
        let mut end = start;
        while end < order.len() && predictions[order[end]].score == score {
            approve(&mut counts, &group_of[order[end]]);
            end += 1;
        }
        if !floors.hold(&counts) {
            lowest = None;
        } else if lowest.is_none() {
            lowest = Some(match order.get(end) {
                Some(&next) => midpoint_above(score, predictions[next].score),
                None => score.next_up(),
            });
        }
        start = end;
    }
    lowest
}

/// Turns one counted `bad` decision of a row in `groups` into an approval.
fn approve(counts: &mut FairnessCounts, groups: &[usize]) {
    for (field, &group) in counts.fields.iter_mut().zip(groups) {
        if let Some(group) = field.counts.get_mut(group) {
            group.decided_bad = group.decided_bad.saturating_sub(1);
        }
    }
}

/// The pooled out-of-fold decisions when each fold is decided at the threshold the floors pick
/// from the predictions (of every seed) of the rows outside it, starting from the fold's own
/// cost-minimising threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NestedFloors {
    pub floors: Floors,
    /// Each fold's threshold, seed by seed.
    pub thresholds: Vec<f32>,
    /// How many of them the floors raised above the fold's own.
    pub raised: usize,
    pub approval_rate: f64,
    /// Average cost per applicant under the run's cost matrix.
    pub cost: f64,
    pub fairness: FairnessReport,
    /// Per floor, how its field's lowest ratio varies over resamples of the applicants.
    #[serde(default)]
    pub intervals: Vec<RatioInterval>,
}

/// How a field's lowest adverse-impact ratio varies when the applicants are drawn again with
/// replacement (each with all its predictions), the decisions kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioInterval {
    pub field: String,
    /// On the applicants as they are.
    pub lowest_ratio: Option<f64>,
    /// The 2.5th and 97.5th percentiles over the resamples.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Share of the resamples in which the ratio is at or above the floor.
    pub meets_floor: f64,
    pub resamples: usize,
}

/// [`NestedFloors`] of `predictions`; `own[seed * folds + fold]` is each fold's own threshold.
pub(crate) fn nested(
    floors: &Floors,
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    own: &[f32],
    folds: usize,
    cost: &CostMatrix,
) -> NestedFloors {
    let mut thresholds = Vec::with_capacity(own.len());
    let rows = predictions.iter().map(|p| p.row + 1).max().unwrap_or(0);
    for (index, &own_threshold) in own.iter().enumerate() {
        let (seed, fold) = (index / folds.max(1), index % folds.max(1));
        let mut in_fold = vec![false; rows];
        for p in predictions
            .iter()
            .filter(|p| p.seed == seed && p.fold == fold)
        {
            in_fold[p.row] = true;
        }
        let others: Vec<Prediction<'_>> = predictions
            .iter()
            .filter(|p| !in_fold[p.row])
            .copied()
            .collect();
        thresholds.push(
            lowest_steadily_meeting(floors, groups, &others, own_threshold)
                .unwrap_or(own_threshold),
        );
    }
    let decisions = decide(groups, predictions, cost, |p| {
        thresholds[p.seed * folds + p.fold]
    });
    NestedFloors {
        floors: floors.clone(),
        raised: thresholds.iter().zip(own).filter(|(t, o)| t > o).count(),
        approval_rate: decisions.approval_rate,
        cost: decisions.cost,
        intervals: intervals(
            floors,
            groups,
            predictions,
            &decisions.bad,
            &decisions.fairness,
        ),
        fairness: decisions.fairness,
        thresholds,
    }
}

/// [`RatioInterval`] of each floor over [`RESAMPLES`] draws of the rows of `predictions`,
/// each decided `bad` as `bad` says; `report` is their fairness as they are.
fn intervals(
    floors: &Floors,
    groups: &ProtectedGroups,
    predictions: &[Prediction<'_>],
    bad: &[bool],
    report: &FairnessReport,
) -> Vec<RatioInterval> {
    let group_of: Vec<Vec<usize>> = predictions
        .iter()
        .map(|p| groups.groups_of(p.applicant))
        .collect();
    let rows = predictions.iter().map(|p| p.row + 1).max().unwrap_or(0);
    let mut by_row: Vec<Vec<usize>> = vec![Vec::new(); rows];
    for (i, p) in predictions.iter().enumerate() {
        by_row[p.row].push(i);
    }
    by_row.retain(|predictions| !predictions.is_empty());
    let mut rng = ChaCha8Rng::seed_from_u64(RESAMPLE_SEED);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(RESAMPLES); floors.0.len()];
    for _ in 0..RESAMPLES {
        if by_row.is_empty() {
            break;
        }
        let mut counts = groups.counts();
        for _ in 0..by_row.len() {
            for &i in &by_row[rng.gen_range(0..by_row.len())] {
                counts.add(&group_of[i], bad[i], 0.0, None);
            }
        }
        let resampled = counts.report();
        for (floor, sample) in floors.0.iter().zip(&mut samples) {
            if let Some(ratio) = lowest_ratio(&resampled, &floor.field) {
                sample.push(ratio);
            }
        }
    }
    floors
        .0
        .iter()
        .zip(samples)
        .map(|(floor, mut sample)| {
            sample.sort_by(f64::total_cmp);
            let percentile = |q: f64| {
                let last = sample.len().checked_sub(1)?;
                Some(sample[(last as f64 * q).round() as usize])
            };
            let meeting = sample
                .iter()
                .filter(|&&ratio| ratio >= floor.min_impact_ratio)
                .count();
            RatioInterval {
                field: floor.field.clone(),
                lowest_ratio: lowest_ratio(report, &floor.field),
                low: percentile(0.025),
                high: percentile(0.975),
                meets_floor: meeting as f64 / sample.len().max(1) as f64,
                resamples: sample.len(),
            }
        })
        .collect()
}

/// The lowest adverse-impact ratio among `field`'s groups in `report`.
fn lowest_ratio(report: &FairnessReport, field: &str) -> Option<f64> {
    report
        .fields
        .iter()
        .find(|f| f.field == field)?
        .lowest_group()?
        .adverse_impact_ratio
}

/// How the shipped threshold was chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdChoice {
    /// The threshold that minimises cost on the calibrated validation scores.
    pub cost_minimising: f32,
    pub floors: Floors,
    /// What the floors did to it.
    pub outcome: FloorOutcome,
    /// The threshold the model ships with.
    pub shipped: f32,
    /// The pooled out-of-fold predictions decided at it, when the run cross-validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_fold: Option<ThresholdTradeoff>,
}

/// What the floors did to the cost-minimising threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloorOutcome {
    /// The schema sets none.
    NoFloors,
    /// They hold at the cost-minimising threshold on the pooled out-of-fold predictions.
    AlreadyMet,
    /// The threshold was raised until they held.
    Raised,
    /// Not checked: the run did not cross-validate, and no split is large enough to.
    NotChecked,
}

/// The shipped threshold: `cost_minimising`, raised until every floor holds on `predictions`
/// (cross-validation's pooled out-of-fold predictions; `None` without cross-validation).
pub(crate) fn choose(
    floors: &Floors,
    groups: &ProtectedGroups,
    predictions: Option<&[Prediction<'_>]>,
    cost_minimising: f32,
    cost: &CostMatrix,
) -> ThresholdChoice {
    let lowest =
        predictions.and_then(|p| lowest_steadily_meeting(floors, groups, p, cost_minimising));
    let (outcome, shipped) = match lowest {
        _ if floors.is_empty() => (FloorOutcome::NoFloors, cost_minimising),
        None => (FloorOutcome::NotChecked, cost_minimising),
        Some(t) if t > cost_minimising => (FloorOutcome::Raised, t),
        Some(_) => (FloorOutcome::AlreadyMet, cost_minimising),
    };
    ThresholdChoice {
        cost_minimising,
        floors: floors.clone(),
        outcome,
        shipped,
        out_of_fold: predictions.map(|p| decide_at(groups, p, cost, shipped)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::applicant::{Applicant, AttributeValue};

    const SCHEMA: &str = r#"
        name = "x"
        [[field]]
        name = "income"
        label = "Income"
        type = "number"
        min = 0
        max = 1
        [[field]]
        name = "group"
        label = "Group"
        type = "category"
        role = "protected"
        min_impact_ratio = 0.8
        categories = [{ value = "a", label = "A" }, { value = "b", label = "B" }]
    "#;

    /// The test schema, its one floor and its groups.
    fn floored() -> (Schema, Floors, ProtectedGroups) {
        let schema = Schema::parse(SCHEMA, "test.toml").unwrap();
        let (floors, groups) = (
            Floors::of(&schema),
            ProtectedGroups::new(&schema, &[]).unwrap(),
        );
        (schema, floors, groups)
    }

    fn applicant(schema: &Schema, group: usize) -> Applicant {
        Applicant::from_values(
            schema,
            vec![
                AttributeValue::Numeric(0.5),
                AttributeValue::Categorical(group),
            ],
        )
        .unwrap()
    }

    /// Ten applicants per group; group b scores higher, so a low threshold declines it more.
    fn applicants(schema: &Schema) -> Vec<(f32, Applicant)> {
        (0..20)
            .map(|i| {
                let group = i / 10;
                let score = (i % 10) as f32 / 10.0 + 0.05 + 0.2 * group as f32;
                (score.min(0.99), applicant(schema, group))
            })
            .collect()
    }

    fn predictions(rows: &[(f32, Applicant)]) -> Vec<Prediction<'_>> {
        rows.iter()
            .enumerate()
            .map(|(i, (score, applicant))| Prediction {
                row: i,
                score: *score,
                bad: i % 3 == 0,
                applicant,
                seed: 0,
                fold: i % 2,
            })
            .collect()
    }

    fn ratio_at(rows: &[(f32, Applicant)], threshold: f32) -> f64 {
        let approved = |group: usize| {
            rows[group * 10..group * 10 + 10]
                .iter()
                .filter(|(score, _)| *score < threshold)
                .count() as f64
        };
        approved(1).min(approved(0)) / approved(1).max(approved(0))
    }

    #[test]
    fn the_lowest_threshold_meeting_the_floor_is_found_and_nothing_lower_meets_it() {
        let (schema, floors, groups) = floored();
        assert_eq!(floors.0.len(), 1);
        let rows = applicants(&schema);
        let predictions = predictions(&rows);
        let from = 0.3;
        assert!(ratio_at(&rows, from) < 0.8);
        let chosen = lowest_steadily_meeting(&floors, &groups, &predictions, from).unwrap();
        assert!(chosen > from);
        assert!(ratio_at(&rows, chosen) >= 0.8, "{chosen}");
        // A lower threshold that meets the floor decides every applicant as the choice does.
        for (score, _) in rows.iter().filter(|(s, _)| *s >= from && *s < chosen) {
            let lower = score.next_up();
            let same = rows.iter().all(|(s, _)| (*s >= lower) == (*s >= chosen));
            assert!(ratio_at(&rows, lower) < 0.8 || same, "{score}");
        }
        // A threshold that already meets it is kept.
        assert_eq!(
            lowest_steadily_meeting(&floors, &groups, &predictions, chosen),
            Some(chosen)
        );
    }

    #[test]
    fn a_threshold_where_the_floor_holds_only_until_the_next_dip_is_passed_over() {
        let (schema, floors, groups) = floored();
        // Group b's ratio reaches the floor at 0.32, falls under it again from 0.4 to 0.62 and
        // holds from 0.62 on.
        let a = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55];
        let b = [0.05, 0.06, 0.07, 0.32, 0.33, 0.6, 0.61, 0.62, 0.63, 0.64];
        let rows: Vec<(f32, Applicant)> = a
            .iter()
            .map(|&score| (score, applicant(&schema, 0)))
            .chain(b.iter().map(|&score| (score, applicant(&schema, 1))))
            .collect();
        assert!(ratio_at(&rows, 0.325) >= 0.8 && ratio_at(&rows, 0.45) < 0.8);
        let predictions = predictions(&rows);
        let chosen = lowest_steadily_meeting(&floors, &groups, &predictions, 0.3).unwrap();
        assert!(chosen > 0.62 && chosen <= 0.63, "{chosen}");
        for (score, _) in &rows {
            let above = score.next_up();
            assert!(above < chosen || ratio_at(&rows, above) >= 0.8, "{above}");
        }
    }

    #[test]
    fn the_choice_says_whether_the_floors_raised_the_threshold_or_were_not_checked() {
        let (schema, floors, groups) = floored();
        let rows = applicants(&schema);
        let predictions = predictions(&rows);
        let cost = CostMatrix::GERMAN_CREDIT;
        let raised = choose(&floors, &groups, Some(&predictions), 0.3, &cost);
        assert_eq!(raised.outcome, FloorOutcome::Raised);
        assert!(raised.shipped > 0.3);
        let out_of_fold = raised.out_of_fold.as_ref().unwrap();
        assert_eq!(out_of_fold.threshold, raised.shipped);
        assert!(out_of_fold.lowest_ratios[0].2.unwrap() >= 0.8);
        let met = choose(&floors, &groups, Some(&predictions), raised.shipped, &cost);
        assert_eq!(met.outcome, FloorOutcome::AlreadyMet);
        assert_eq!(met.shipped, raised.shipped);
        let unchecked = choose(&floors, &groups, None, 0.3, &cost);
        assert_eq!(
            (unchecked.outcome, unchecked.shipped),
            (FloorOutcome::NotChecked, 0.3)
        );
        let none = choose(&Floors::default(), &groups, Some(&predictions), 0.3, &cost);
        assert_eq!((none.outcome, none.shipped), (FloorOutcome::NoFloors, 0.3));
    }

    #[test]
    fn nested_decides_each_fold_at_the_threshold_chosen_on_the_other_rows() {
        let (schema, floors, groups) = floored();
        let rows = applicants(&schema);
        let predictions = predictions(&rows);
        let cost = CostMatrix::GERMAN_CREDIT;
        let result = nested(&floors, &groups, &predictions, &[0.3, 0.3], 2, &cost);
        for (fold, &threshold) in result.thresholds.iter().enumerate() {
            let others: Vec<_> = predictions
                .iter()
                .filter(|p| p.fold != fold)
                .copied()
                .collect();
            assert_eq!(
                Some(threshold),
                lowest_steadily_meeting(&floors, &groups, &others, 0.3)
            );
        }
        let expected_cost: f64 = predictions
            .iter()
            .map(|p| cost.of(p.score >= result.thresholds[p.fold], p.bad))
            .sum::<f64>()
            / predictions.len() as f64;
        assert!((result.cost - expected_cost).abs() < 1e-12);
        assert_eq!(result.raised, 2);
        let counted: u64 = result.fairness.fields[0]
            .groups
            .iter()
            .map(|g| g.count)
            .sum();
        assert_eq!(counted, 20);
        let interval = &result.intervals[0];
        assert_eq!(interval.resamples, RESAMPLES);
        assert_eq!(
            interval.lowest_ratio,
            lowest_ratio(&result.fairness, "group")
        );
        let (low, high) = (interval.low.unwrap(), interval.high.unwrap());
        assert!(low <= high && high <= 1.0, "{interval:?}");
    }

    #[test]
    fn resampling_cannot_move_a_ratio_every_group_shares_and_finds_a_group_never_approved() {
        let (schema, floors, groups) = floored();
        let rows = applicants(&schema);
        let predictions = predictions(&rows);
        let interval = |threshold_of: &dyn Fn(&Prediction<'_>) -> f32| {
            let decisions = decide(
                &groups,
                &predictions,
                &CostMatrix::GERMAN_CREDIT,
                threshold_of,
            );
            intervals(
                &floors,
                &groups,
                &predictions,
                &decisions.bad,
                &decisions.fairness,
            )
            .remove(0)
        };
        // Every applicant approved (every score is under 1): every resample's ratio is 1.
        let all = interval(&|_| 1.0);
        assert_eq!(
            (all.low, all.high, all.meets_floor),
            (Some(1.0), Some(1.0), 1.0)
        );
        // Group b (rows 10 to 19) never approved: its ratio is 0 whenever a resample holds it.
        let none_of_b = interval(&|p| if p.row >= 10 { 0.0 } else { 1.0 });
        assert_eq!(none_of_b.lowest_ratio, Some(0.0));
        assert_eq!(none_of_b.high, Some(0.0));
        assert_eq!(none_of_b.meets_floor, 0.0);
    }
}

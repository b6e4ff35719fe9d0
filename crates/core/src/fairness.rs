//! Fairness of decisions by protected group: approval rates and the four-fifths rule, error
//! rates and their gaps, and calibration, per group of each of the schema's protected fields.
//!
//! A protected field's groups are its categories (wire values), `false`/`true` for a boolean,
//! its bands for a banded number (`<25`, `25-34`, ..., `>=65`; `[25, 35)` style for a real
//! number), `all` for an unbanded number, and `missing` for an absent value. The counts are
//! plain sums, so that a caller can keep them across chunks (and checkpoints) and build the
//! report at the end.

use crate::applicant::{Applicant, AttributeValue};
use crate::schema::{check_bands, FieldKind, Role, Schema};
use serde::{Deserialize, Serialize};

/// The four-fifths rule: a group whose approval rate is under this share of the best group's
/// shows adverse impact.
pub const FOUR_FIFTHS: f64 = 0.8;

/// Why the groups could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FairnessError {
    #[error("field `{0}` is not a protected field of the schema")]
    NotProtected(String),
    #[error("field `{field}`: {problem}")]
    Bands { field: String, problem: String },
}

/// How each protected field of a schema splits applicants into groups (none by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProtectedGroups {
    fields: Vec<GroupedField>,
}

#[derive(Debug, Clone, PartialEq)]
struct GroupedField {
    name: String,
    position: usize,
    grouping: Grouping,
    /// Group labels, `missing` last.
    labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Grouping {
    /// Categories and booleans: the value's index is the group.
    Index,
    /// The group is the number of edges at or below the value.
    Bands(Vec<f64>),
}

impl ProtectedGroups {
    /// The groups of `schema`'s protected fields, with `overrides` replacing a field's bands.
    pub fn new(schema: &Schema, overrides: &[(String, Vec<f64>)]) -> Result<Self, FairnessError> {
        for (name, _) in overrides {
            let protected = schema
                .position(name)
                .is_some_and(|i| matches!(schema.fields()[i].role, Role::Protected { .. }));
            if !protected {
                return Err(FairnessError::NotProtected(name.clone()));
            }
        }
        let mut fields = Vec::new();
        for (position, field) in schema.fields().iter().enumerate() {
            if !matches!(field.role, Role::Protected { .. }) {
                continue;
            }
            let bands = overrides
                .iter()
                .rev()
                .find(|(name, _)| name == &field.name)
                .map_or(&field.bands, |(_, bands)| bands);
            let (grouping, mut labels) = match &field.kind {
                FieldKind::Category { categories } => (
                    Grouping::Index,
                    categories.iter().map(|c| c.value.clone()).collect(),
                ),
                FieldKind::Boolean => (Grouping::Index, vec!["false".into(), "true".into()]),
                FieldKind::Integer { .. } | FieldKind::Number { .. } if bands.is_empty() => {
                    (Grouping::Bands(Vec::new()), vec!["all".into()])
                }
                kind @ (FieldKind::Integer { .. } | FieldKind::Number { .. }) => {
                    check_bands(kind, bands).map_err(|problem| FairnessError::Bands {
                        field: field.name.clone(),
                        problem,
                    })?;
                    let integer = matches!(kind, FieldKind::Integer { .. });
                    (Grouping::Bands(bands.clone()), band_labels(bands, integer))
                }
                FieldKind::Text { .. } => continue,
            };
            labels.push("missing".into());
            fields.push(GroupedField {
                name: field.name.clone(),
                position,
                grouping,
                labels,
            });
        }
        Ok(Self { fields })
    }

    /// Whether the schema has no protected field (nothing to report).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// One line per field naming its groups: two runs with the same description count alike.
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("{}: {}", f.name, f.labels.join(" | ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Empty counts for these groups.
    pub fn counts(&self) -> FairnessCounts {
        FairnessCounts {
            fields: self
                .fields
                .iter()
                .map(|f| FieldCounts {
                    field: f.name.clone(),
                    groups: f.labels.clone(),
                    counts: vec![GroupCounts::default(); f.labels.len()],
                })
                .collect(),
        }
    }

    /// Each protected field's name and group labels (`missing` last), in field order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.fields
            .iter()
            .map(|f| (f.name.as_str(), f.labels.as_slice()))
    }

    /// The group index of each protected field for `applicant`.
    pub fn groups_of(&self, applicant: &Applicant) -> Vec<usize> {
        self.group_indices(applicant).collect()
    }

    /// The group index of each protected field for `applicant`, in field order, without
    /// allocating (the worker calls it for every record).
    pub fn group_indices<'a>(
        &'a self,
        applicant: &'a Applicant,
    ) -> impl Iterator<Item = usize> + 'a {
        self.fields.iter().map(|field| {
            let missing = field.labels.len() - 1;
            match (&field.grouping, applicant.values().get(field.position)) {
                (Grouping::Index, Some(&AttributeValue::Categorical(index))) => index.min(missing),
                (Grouping::Bands(edges), Some(&AttributeValue::Numeric(value))) => {
                    edges.iter().filter(|&&edge| edge <= value).count()
                }
                _ => missing,
            }
        })
    }

    /// Counts one decided row into `counts` (which must come from [`Self::counts`]).
    pub fn add(
        &self,
        counts: &mut FairnessCounts,
        applicant: &Applicant,
        decided_bad: bool,
        probability_bad: f32,
        outcome: Option<bool>,
    ) {
        counts.add(
            &self.groups_of(applicant),
            decided_bad,
            probability_bad,
            outcome,
        );
    }
}

fn band_labels(edges: &[f64], integer: bool) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 1);
    if let Some(first) = edges.first() {
        labels.push(format!("<{first}"));
    }
    for pair in edges.windows(2) {
        labels.push(if integer {
            format!("{}-{}", pair[0], pair[1] - 1.0)
        } else {
            format!("[{}, {})", pair[0], pair[1])
        });
    }
    if let Some(last) = edges.last() {
        labels.push(format!(">={last}"));
    }
    labels
}

/// The running sums of one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupCounts {
    pub rows: u64,
    pub decided_bad: u64,
    pub probability_sum: f64,
    /// Rows with a known outcome, and of them: bad ones, bad ones decided bad, good ones
    /// decided bad, and their summed probability.
    pub labelled: u64,
    pub bad: u64,
    pub bad_decided_bad: u64,
    pub good_decided_bad: u64,
    pub labelled_probability_sum: f64,
}

/// The counts of one protected field, one entry per group label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldCounts {
    pub field: String,
    pub groups: Vec<String>,
    pub counts: Vec<GroupCounts>,
}

/// Running sums per protected field and group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FairnessCounts {
    pub fields: Vec<FieldCounts>,
}

impl FairnessCounts {
    /// Counts one decided row whose group in each field is `groups` (in field order).
    pub fn add(
        &mut self,
        groups: &[usize],
        decided_bad: bool,
        probability_bad: f32,
        outcome: Option<bool>,
    ) {
        for (field, &group) in self.fields.iter_mut().zip(groups) {
            let Some(counts) = field.counts.get_mut(group) else {
                continue;
            };
            counts.rows += 1;
            counts.decided_bad += u64::from(decided_bad);
            counts.probability_sum += f64::from(probability_bad);
            if let Some(bad) = outcome {
                counts.labelled += 1;
                counts.bad += u64::from(bad);
                counts.bad_decided_bad += u64::from(bad && decided_bad);
                counts.good_decided_bad += u64::from(!bad && decided_bad);
                counts.labelled_probability_sum += f64::from(probability_bad);
            }
        }
    }

    /// The report: per field, its non-empty groups measured against the best-approved one.
    pub fn report(&self) -> FairnessReport {
        FairnessReport {
            four_fifths: FOUR_FIFTHS,
            fields: self.fields.iter().map(FieldCounts::report).collect(),
        }
    }
}

impl FieldCounts {
    fn report(&self) -> FieldFairness {
        let mut groups: Vec<GroupFairness> = self
            .groups
            .iter()
            .zip(&self.counts)
            .filter(|(_, counts)| counts.rows > 0)
            .map(|(label, counts)| GroupFairness::new(label, counts))
            .collect();
        let reference = groups
            .iter()
            .filter(|g| g.approval_rate.is_some())
            .fold(None::<&GroupFairness>, |best, g| match best {
                Some(b) if b.approval_rate >= g.approval_rate => Some(b),
                _ => Some(g),
            })
            .cloned();
        if let Some(reference) = &reference {
            for group in &mut groups {
                group.adverse_impact_ratio = ratio(group.approval_rate, reference.approval_rate);
                group.below_four_fifths =
                    group.adverse_impact_ratio.is_some_and(|r| r < FOUR_FIFTHS);
                group.true_positive_rate_gap =
                    difference(group.true_positive_rate, reference.true_positive_rate);
                group.false_positive_rate_gap =
                    difference(group.false_positive_rate, reference.false_positive_rate);
            }
        }
        FieldFairness {
            field: self.field.clone(),
            reference_group: reference.map(|g| g.group),
            groups,
        }
    }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn difference(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// The fairness of a run's decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessReport {
    /// The adverse-impact ratio under which a group is flagged.
    pub four_fifths: f64,
    pub fields: Vec<FieldFairness>,
}

/// One protected field's groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldFairness {
    pub field: String,
    /// The group with the highest approval rate, which the ratios and gaps compare against.
    pub reference_group: Option<String>,
    /// Groups with at least one row.
    pub groups: Vec<GroupFairness>,
}

impl FieldFairness {
    /// The group with the lowest adverse-impact ratio (a group without one counts as highest).
    pub fn lowest_group(&self) -> Option<&GroupFairness> {
        self.groups.iter().min_by(|a, b| {
            let ratio = |g: &GroupFairness| g.adverse_impact_ratio.unwrap_or(f64::INFINITY);
            ratio(a).total_cmp(&ratio(b))
        })
    }
}

/// One group's figures; a rate whose denominator is zero is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFairness {
    pub group: String,
    pub count: u64,
    /// Share decided good.
    pub approval_rate: Option<f64>,
    /// Approval rate over the reference group's.
    pub adverse_impact_ratio: Option<f64>,
    /// The ratio is under [`FOUR_FIFTHS`].
    pub below_four_fifths: bool,
    /// Rows with a known outcome.
    pub labelled: u64,
    /// Observed share of bad outcomes.
    pub bad_rate: Option<f64>,
    /// P(decided bad | bad).
    pub true_positive_rate: Option<f64>,
    /// P(decided bad | good): creditworthy applicants turned away.
    pub false_positive_rate: Option<f64>,
    /// This group's rate minus the reference group's.
    pub true_positive_rate_gap: Option<f64>,
    pub false_positive_rate_gap: Option<f64>,
    /// Mean predicted probability of bad over all the group's rows.
    pub mean_probability_bad: Option<f64>,
    /// Mean predicted probability minus observed bad rate, over labelled rows (calibration).
    pub calibration_gap: Option<f64>,
}

impl GroupFairness {
    fn new(group: &str, c: &GroupCounts) -> Self {
        let labelled_mean =
            (c.labelled > 0).then(|| c.labelled_probability_sum / c.labelled as f64);
        let bad_rate = share(c.bad, c.labelled);
        Self {
            group: group.to_string(),
            count: c.rows,
            approval_rate: share(c.rows - c.decided_bad, c.rows),
            adverse_impact_ratio: None,
            below_four_fifths: false,
            labelled: c.labelled,
            bad_rate,
            true_positive_rate: share(c.bad_decided_bad, c.bad),
            false_positive_rate: share(c.good_decided_bad, c.labelled - c.bad),
            true_positive_rate_gap: None,
            false_positive_rate_gap: None,
            mean_probability_bad: (c.rows > 0).then(|| c.probability_sum / c.rows as f64),
            calibration_gap: difference(labelled_mean, bad_rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        name = "x"
        [[field]]
        name = "income"
        label = "Income"
        type = "number"
        min = 0
        max = 1e7
        [[field]]
        name = "sex"
        label = "Sex"
        type = "category"
        role = "protected"
        categories = [{ value = "f", label = "Female" }, { value = "m", label = "Male" }]
        [[field]]
        name = "age"
        label = "Age"
        type = "integer"
        min = 18
        max = 100
        role = "protected"
        bands = [25, 35]
        [[field]]
        name = "score"
        label = "Score"
        type = "number"
        min = 0
        max = 1
        role = "protected"
        [[field]]
        name = "foreign"
        label = "Foreign worker"
        type = "boolean"
        role = "protected"
        required = false
    "#;

    fn schema() -> Schema {
        Schema::parse(SCHEMA, "test.toml").unwrap()
    }

    fn applicant(schema: &Schema, sex: usize, age: f64, foreign: Option<usize>) -> Applicant {
        let foreign = foreign.map_or(AttributeValue::Missing, AttributeValue::Categorical);
        Applicant::from_values(
            schema,
            vec![
                AttributeValue::Numeric(1000.0),
                AttributeValue::Categorical(sex),
                AttributeValue::Numeric(age),
                AttributeValue::Numeric(0.5),
                foreign,
            ],
        )
        .unwrap()
    }

    #[test]
    fn groups_are_categories_bands_one_group_for_an_unbanded_number_and_missing() {
        let groups = ProtectedGroups::new(&schema(), &[]).unwrap();
        assert_eq!(
            groups.describe(),
            "sex: f | m | missing; age: <25 | 25-34 | >=35 | missing; score: all | missing; \
             foreign: false | true | missing"
        );
        let schema = schema();
        assert_eq!(
            groups.groups_of(&applicant(&schema, 1, 25.0, None)),
            vec![1, 1, 0, 2]
        );
        assert_eq!(
            groups.groups_of(&applicant(&schema, 0, 35.0, Some(1))),
            vec![0, 2, 0, 1]
        );
    }

    #[test]
    fn overridden_bands_replace_the_schemas_and_are_checked_like_them() {
        let schema = schema();
        let groups = ProtectedGroups::new(&schema, &[("score".into(), vec![0.25, 0.5])]).unwrap();
        assert!(groups
            .describe()
            .contains("score: <0.25 | [0.25, 0.5) | >=0.5 | missing"));
        assert_eq!(
            ProtectedGroups::new(&schema, &[("income".into(), vec![10.0])]),
            Err(FairnessError::NotProtected("income".into()))
        );
        let error = ProtectedGroups::new(&schema, &[("age".into(), vec![30.0, 20.0])]).unwrap_err();
        assert!(error.to_string().starts_with("field `age`"), "{error}");
    }

    #[test]
    fn the_report_compares_each_group_with_the_best_approved_one() {
        let schema = schema();
        let groups = ProtectedGroups::new(&schema, &[]).unwrap();
        let mut counts = groups.counts();
        let women = applicant(&schema, 0, 40.0, Some(0));
        let men = applicant(&schema, 1, 40.0, Some(0));
        // Women: 4 rows, 2 bad (1 decided bad), 2 good (1 decided bad): approval 0.5.
        for (decided_bad, p, bad) in [
            (true, 0.8, true),
            (false, 0.4, true),
            (true, 0.6, false),
            (false, 0.2, false),
        ] {
            groups.add(&mut counts, &women, decided_bad, p, Some(bad));
        }
        // Men: 4 rows, 1 bad decided bad, 3 good decided good: approval 0.75.
        for (decided_bad, p, bad) in [
            (true, 0.7, true),
            (false, 0.1, false),
            (false, 0.1, false),
            (false, 0.1, false),
        ] {
            groups.add(&mut counts, &men, decided_bad, p, Some(bad));
        }
        let report = counts.report();
        let sex = &report.fields[0];
        assert_eq!(sex.reference_group.as_deref(), Some("m"));
        assert_eq!(sex.groups.len(), 2, "the empty `missing` group is left out");
        let (f, m) = (&sex.groups[0], &sex.groups[1]);
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-6;
        assert_eq!((f.count, m.count), (4, 4));
        assert!(close(f.approval_rate, 0.5) && close(m.approval_rate, 0.75));
        assert!(close(f.adverse_impact_ratio, 2.0 / 3.0) && f.below_four_fifths);
        assert!(close(m.adverse_impact_ratio, 1.0) && !m.below_four_fifths);
        assert!(close(f.bad_rate, 0.5) && close(m.bad_rate, 0.25));
        assert!(close(f.true_positive_rate, 0.5) && close(m.true_positive_rate, 1.0));
        assert!(close(f.false_positive_rate, 0.5) && close(m.false_positive_rate, 0.0));
        assert!(close(f.true_positive_rate_gap, -0.5) && close(f.false_positive_rate_gap, 0.5));
        assert!(close(f.mean_probability_bad, 0.5) && close(f.calibration_gap, 0.0));
        assert!(close(m.mean_probability_bad, 0.25) && close(m.calibration_gap, 0.0));
        // Everyone is 40 and not foreign: one group each, its own reference.
        assert_eq!(report.fields[1].groups[0].group, ">=35");
        assert!(close(report.fields[1].groups[0].adverse_impact_ratio, 1.0));
        assert_eq!(report.fields[3].groups[0].count, 8);
    }

    #[test]
    fn rates_without_a_denominator_are_none() {
        let schema = schema();
        let groups = ProtectedGroups::new(&schema, &[]).unwrap();
        let mut counts = groups.counts();
        groups.add(
            &mut counts,
            &applicant(&schema, 0, 20.0, None),
            true,
            0.9,
            None,
        );
        let report = counts.report();
        let only = &report.fields[0].groups[0];
        assert_eq!(only.approval_rate, Some(0.0));
        assert_eq!(
            only.adverse_impact_ratio, None,
            "no group is approved at all"
        );
        assert_eq!(only.bad_rate, None);
        assert_eq!(only.true_positive_rate, None);
        assert_eq!(only.false_positive_rate, None);
        assert_eq!(only.calibration_gap, None);
        assert_eq!(report.fields[3].groups[0].group, "missing");
    }
}

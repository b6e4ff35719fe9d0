//! Live fairness: decisions counted by protected group, for the dashboard's approval rates and
//! the four-fifths alert (`credit_risk_decisions_by_group_total{field, group, decision}`).
//!
//! The groups are [`credit_core::fairness`]'s, so the worker, the trainer's report and the
//! backfill's summary name them alike: a category's wire value, `false`/`true`, a band of a
//! number (`<25`, `25-34`, ..., `>=65`), `all` for a number without bands, and `missing`. A
//! protected number takes the schema's `bands` when it declares them, else `fairness.bands`
//! from the worker's configuration, so no raw number ever becomes a label value.
//!
//! The label values and their counters are resolved once per schema ([`DecisionGroups::new`]);
//! per record the batcher only stores each field's group index, and the publishing thread
//! increments the counters of the batch's decisions.

use crate::telemetry::metrics::Metrics;
use credit_core::applicant::Applicant;
use credit_core::decision::Class;
use credit_core::fairness::{FairnessError, ProtectedGroups};
use credit_core::schema::{FieldKind, Role, Schema};
use prometheus::IntCounter;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bands by field name, as `fairness.bands` gives them.
pub type Bands = BTreeMap<String, Vec<f64>>;

/// The configured bands that apply to `schema`: those of its protected numbers that declare
/// none themselves. Fields the schema lacks, or has unprotected, are left out, so one
/// configuration can serve the bundles of several lenders.
fn overrides(schema: &Schema, bands: &Bands) -> Vec<(String, Vec<f64>)> {
    schema
        .fields()
        .iter()
        .filter(|field| {
            matches!(field.role, Role::Protected { .. })
                && matches!(
                    field.kind,
                    FieldKind::Integer { .. } | FieldKind::Number { .. }
                )
                && field.bands.is_empty()
        })
        .filter_map(|field| {
            bands
                .get(&field.name)
                .map(|edges| (field.name.clone(), edges.clone()))
        })
        .collect()
}

/// The groups of `schema`'s protected fields with the configured `bands`: an error names a
/// field whose configured bands do not fit it (outside its bounds, fractional for an integer).
pub fn protected_groups(schema: &Schema, bands: &Bands) -> Result<ProtectedGroups, FairnessError> {
    ProtectedGroups::new(schema, &overrides(schema, bands))
}

/// One schema's protected groups and the counters of their decisions.
#[derive(Debug, Default)]
pub(crate) struct DecisionGroups {
    groups: ProtectedGroups,
    /// Per field, where its counters start in `counters` and how many it has: group `g`'s
    /// decision `c` is at `start + g * 2 + c`.
    spans: Vec<(usize, usize)>,
    counters: Vec<IntCounter>,
}

impl DecisionGroups {
    /// Resolves every counter of `schema`'s groups (each series shows from the start, at 0).
    pub(crate) fn new(
        schema: &Schema,
        bands: &Bands,
        metrics: &Metrics,
    ) -> Result<Self, FairnessError> {
        let groups = protected_groups(schema, bands)?;
        let mut spans = Vec::new();
        let mut counters = Vec::new();
        for (field, labels) in groups.fields() {
            spans.push((counters.len(), labels.len() * Class::ALL.len()));
            for group in labels {
                for class in Class::ALL {
                    counters.push(metrics.decisions_by_group.with_label_values(&[
                        field,
                        group,
                        class.as_str(),
                    ]));
                }
            }
        }
        Ok(Self {
            groups,
            spans,
            counters,
        })
    }

    /// Protected fields: how many group indices each record has.
    pub(crate) fn fields(&self) -> usize {
        self.spans.len()
    }

    /// Appends `applicant`'s group index in each protected field to `out`.
    pub(crate) fn push_groups(&self, applicant: &Applicant, out: &mut Vec<u16>) {
        // A group index past u16 (a category list that long) is counted nowhere.
        out.extend(
            self.groups
                .group_indices(applicant)
                .map(|group| u16::try_from(group).unwrap_or(u16::MAX)),
        );
    }

    /// Counts one decision of the record whose group indices are `groups`.
    pub(crate) fn count(&self, groups: &[u16], class: Class) {
        let class = usize::from(class == Class::Bad);
        for (&(start, len), &group) in self.spans.iter().zip(groups) {
            let offset = usize::from(group) * 2 + class;
            // An offset past the field's span is a group this schema does not have.
            if let Some(counter) = self.counters.get(start + offset).filter(|_| offset < len) {
                counter.inc();
            }
        }
    }
}

/// The batcher's groups: those of the schema in service, rebuilt when a reload brings another.
pub(crate) struct GroupCounting {
    bands: Bands,
    metrics: Metrics,
    current: Arc<DecisionGroups>,
}

impl GroupCounting {
    pub(crate) fn new(
        schema: &Schema,
        bands: Bands,
        metrics: Metrics,
    ) -> Result<Self, FairnessError> {
        let current = Arc::new(DecisionGroups::new(schema, &bands, &metrics)?);
        Ok(Self {
            bands,
            metrics,
            current,
        })
    }

    /// The groups of the schema in service.
    pub(crate) fn current(&self) -> &Arc<DecisionGroups> {
        &self.current
    }

    /// Counts by `schema`'s groups from now on. Reloads check the configured bands against a
    /// new schema before it gets here; should they still not fit, its numbers are counted
    /// unbanded (one group) rather than the worker stopping.
    pub(crate) fn switch(&mut self, schema: &Schema) {
        let groups = DecisionGroups::new(schema, &self.bands, &self.metrics).or_else(|error| {
            tracing::warn!(%error, "fairness.bands do not fit the new schema; counting its numbers unbanded");
            DecisionGroups::new(schema, &Bands::new(), &self.metrics)
        });
        // Without configured bands only the schema's own, already checked, are used.
        self.current = Arc::new(groups.unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The German Credit schema without its own age bands, so the configured ones apply.
    fn german_credit() -> Schema {
        let text = credit_core::schema::german_credit().source().replace(
            "role = \"protected\"\nbands = [25]\n",
            "role = \"protected\"\n",
        );
        Schema::parse(&text, "unbanded.toml").unwrap()
    }

    fn age_bands() -> Bands {
        Bands::from([("age_years".to_owned(), vec![25.0, 35.0, 50.0, 65.0])])
    }

    #[test]
    fn every_group_of_every_protected_field_is_exposed_at_zero_with_ages_in_bands() {
        let metrics = Metrics::new().unwrap();
        let groups = DecisionGroups::new(&german_credit(), &age_bands(), &metrics).unwrap();
        assert_eq!(groups.fields(), 3);
        let text = metrics.encode().unwrap();
        for series in [
            r#"credit_risk_decisions_by_group_total{decision="good",field="age_years",group="<25"} 0"#,
            r#"credit_risk_decisions_by_group_total{decision="bad",field="age_years",group=">=65"} 0"#,
            r#"credit_risk_decisions_by_group_total{decision="good",field="age_years",group="missing"} 0"#,
            r#"credit_risk_decisions_by_group_total{decision="bad",field="foreign_worker",group="yes"} 0"#,
            r#"credit_risk_decisions_by_group_total{decision="good",field="personal_status_sex",group="female_single"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        // Only bands, never an age, label the age series.
        let age_groups: Vec<&str> = text
            .lines()
            .filter(|line| line.contains(r#"field="age_years""#))
            .filter_map(|line| line.split("group=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(age_groups.len(), 12, "{age_groups:?}");
        assert!(age_groups
            .iter()
            .all(|g| ["<25", "25-34", "35-49", "50-64", ">=65", "missing"].contains(g)));
    }

    #[test]
    fn a_decision_is_counted_once_in_each_protected_field_by_its_applicants_groups() {
        let metrics = Metrics::new().unwrap();
        let schema = german_credit();
        let groups = DecisionGroups::new(&schema, &age_bands(), &metrics).unwrap();
        let applicants = crate::pipeline::shipped_applicants();
        let mut codes = Vec::new();
        for applicant in &applicants {
            codes.clear();
            groups.push_groups(applicant, &mut codes);
            groups.count(&codes, Class::Bad);
        }
        let count = |field: &str, group: &str, decision: &str| {
            metrics
                .decisions_by_group
                .with_label_values(&[field, group, decision])
                .get()
        };
        let position = schema.position("age_years").unwrap();
        let under_25 = applicants
            .iter()
            .filter(|a| {
                matches!(a.values()[position], credit_core::applicant::AttributeValue::Numeric(age) if age < 25.0)
            })
            .count() as u64;
        assert!(under_25 > 0);
        assert_eq!(count("age_years", "<25", "bad"), under_25);
        assert_eq!(count("age_years", "<25", "good"), 0);
        for (field, labels) in groups.groups.fields() {
            let total: u64 = labels
                .iter()
                .map(|group| count(field, group, "bad") + count(field, group, "good"))
                .sum();
            assert_eq!(total, applicants.len() as u64, "{field}");
        }
    }

    #[test]
    fn the_schemas_own_bands_win_and_configured_bands_for_absent_fields_are_ignored() {
        let text = german_credit().source().replace(
            "transform = \"log1p\"\nrole = \"protected\"",
            "transform = \"log1p\"\nrole = \"protected\"\nbands = [30]",
        );
        let schema = Schema::parse(&text, "test.toml").unwrap();
        let mut bands = age_bands();
        bands.insert("no_such_field".to_owned(), vec![1.0]);
        let groups = protected_groups(&schema, &bands).unwrap();
        assert!(
            groups
                .describe()
                .contains("age_years: <30 | >=30 | missing"),
            "{}",
            groups.describe()
        );
    }

    #[test]
    fn configured_bands_outside_a_fields_bounds_are_refused_naming_it() {
        let bands = Bands::from([("age_years".to_owned(), vec![10.0])]);
        let error = protected_groups(&german_credit(), &bands).unwrap_err();
        assert!(error.to_string().contains("age_years"), "{error}");
    }

    #[test]
    fn a_switch_to_a_schema_the_bands_do_not_fit_counts_its_numbers_unbanded() {
        let metrics = Metrics::new().unwrap();
        let bands = Bands::from([("age_years".to_owned(), vec![110.0])]);
        let mut counting = GroupCounting::new(&german_credit(), bands, metrics).unwrap();
        let text = german_credit()
            .source()
            .replace("min = 18\nmax = 120", "min = 18\nmax = 100");
        let narrower = Schema::parse(&text, "test.toml").unwrap();
        counting.switch(&narrower);
        assert_eq!(counting.current().fields(), 3);
        assert!(counting
            .current()
            .groups
            .describe()
            .contains("age_years: all | missing"));
    }
}

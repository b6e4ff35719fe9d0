//! The fairness part of the backfill summary: decisions per protected group of the model's
//! schema, on German Credit with the shipped bundle and on the retail-loan book with its own,
//! kept across a resumed run like the other running statistics.

use credit_backfill::{BackfillError, BackfillModel, OutputPaths, ScoreOptions, Summary};
use credit_core::fairness::FairnessReport;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn options(input: &Path, output: &Path, bands: &[(&str, &[f64])]) -> ScoreOptions {
    ScoreOptions {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        batch_size: 100,
        workers: 2,
        durable: false,
        fairness_bands: bands
            .iter()
            .map(|(field, edges)| (field.to_string(), edges.to_vec()))
            .collect(),
        ..ScoreOptions::default()
    }
}

/// Every field's groups cover every held-out row once (the shipped bundles record their
/// training rows, which the figures leave out), and each ratio is a share of the best group's.
fn assert_consistent(report: &FairnessReport, rows: u64) {
    for field in &report.fields {
        let counted: u64 = field.groups.iter().map(|g| g.count).sum();
        assert_eq!(counted, rows, "{}", field.field);
        for group in &field.groups {
            let ratio = group.adverse_impact_ratio.unwrap();
            assert!(
                ratio > 0.0 && ratio <= 1.0,
                "{} {}: {ratio}",
                field.field,
                group.group
            );
            assert_eq!(group.below_four_fifths, ratio < 0.8);
            assert_eq!(
                group.labelled, group.count,
                "the file carries every outcome"
            );
        }
        let reference = field.reference_group.as_deref().unwrap();
        let best = field.groups.iter().find(|g| g.group == reference).unwrap();
        assert_eq!(best.adverse_impact_ratio, Some(1.0));
    }
}

#[test]
fn german_credit_is_reported_by_sex_age_band_and_foreign_worker() {
    let model = BackfillModel::load(&root().join("models"), None, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("scored.jsonl");
    let input = root().join("data/german_credit.csv");
    let options = options(&input, &output, &[("age_years", &[25.0])]);
    let summary = credit_backfill::run(&options, &model, &|_| {}).unwrap();
    println!("{summary}");
    let report = summary.fairness.as_ref().unwrap();
    let fields: Vec<&str> = report.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        ["personal_status_sex", "age_years", "foreign_worker"]
    );
    // The 200 test rows of the shipped model's split; its 800 training rows are left out.
    assert_eq!(summary.training_rows.held_out, 200);
    assert_consistent(report, 200);
    let age: Vec<&str> = report.fields[1]
        .groups
        .iter()
        .map(|g| g.group.as_str())
        .collect();
    assert_eq!(age, ["<25", ">=25"]);
    let written: Summary = serde_json::from_str(
        &std::fs::read_to_string(OutputPaths::for_output(&output).summary).unwrap(),
    )
    .unwrap();
    assert_eq!(written.fairness.as_ref(), Some(report));
}

#[test]
fn a_resumed_run_reports_the_same_groups_as_an_uninterrupted_one() {
    let model = BackfillModel::load(&root().join("models"), None, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = root().join("data/german_credit.csv");
    let bands: &[(&str, &[f64])] = &[("age_years", &[25.0, 35.0, 50.0, 65.0])];
    let clean = credit_backfill::run(
        &options(&input, &dir.path().join("clean.jsonl"), bands),
        &model,
        &|_| {},
    )
    .unwrap();

    let crashed = dir.path().join("crashed.jsonl");
    let mut crashing = options(&input, &crashed, bands);
    crashing.stop_after_rows = Some(600);
    let error = credit_backfill::run(&crashing, &model, &|_| {}).unwrap_err();
    assert!(
        matches!(error, BackfillError::SimulatedCrash { .. }),
        "{error}"
    );
    // Other bands would count other groups: the checkpoint refuses them.
    let other = options(&input, &crashed, &[("age_years", &[30.0])]);
    let error = credit_backfill::run(&other, &model, &|_| {}).unwrap_err();
    assert!(error.to_string().contains("protected groups"), "{error}");

    let resumed = credit_backfill::run(&options(&input, &crashed, bands), &model, &|_| {}).unwrap();
    assert!(resumed.resumed_from_row > 0, "{resumed}");
    assert_eq!(resumed.training_rows.held_out, 200, "{resumed}");
    let (clean, resumed) = (clean.fairness.unwrap(), resumed.fairness.unwrap());
    assert_consistent(&resumed, 200);
    for (a, b) in clean.fields.iter().zip(&resumed.fields) {
        for (a, b) in a.groups.iter().zip(&b.groups) {
            assert_eq!(
                (&a.group, a.count, a.labelled),
                (&b.group, b.count, b.labelled)
            );
            assert_eq!(a.approval_rate, b.approval_rate);
            assert_eq!(a.false_positive_rate, b.false_positive_rate);
            let mean = |g: &credit_core::fairness::GroupFairness| g.mean_probability_bad.unwrap();
            assert!((mean(a) - mean(b)).abs() < 1e-9);
        }
    }
    assert_eq!(clean.fields[1].groups.len(), 5, "{clean:?}");
}

#[test]
fn the_retail_loan_book_is_reported_by_its_schemas_age_bands_or_a_runs_own() {
    let model = BackfillModel::load(&root().join("models/retail-loan"), None, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("scored.jsonl");
    let input = root().join("data/retail_loan_book.csv");
    let summary = credit_backfill::run(&options(&input, &output, &[]), &model, &|_| {}).unwrap();
    println!("{summary}");
    let report = summary.fairness.as_ref().unwrap();
    assert_eq!(report.fields.len(), 1);
    assert_eq!(report.fields[0].field, "age_years");
    // The book's 4,000 test rows; the 16,000 the model was fitted or calibrated on are left out.
    assert_eq!(summary.training_rows.held_out, 4_000);
    assert_consistent(report, 4_000);
    let groups = |report: &FairnessReport| -> Vec<String> {
        report.fields[0]
            .groups
            .iter()
            .map(|g| g.group.clone())
            .collect()
    };
    assert_eq!(
        groups(report)[..5],
        ["<25", "25-34", "35-49", "50-64", ">=65"]
    );

    let bands: &[(&str, &[f64])] = &[("age_years", &[30.0, 60.0])];
    let rebanded = credit_backfill::run(
        &options(&input, &dir.path().join("rebanded.jsonl"), bands),
        &model,
        &|_| {},
    )
    .unwrap();
    let report = rebanded.fairness.unwrap();
    assert_consistent(&report, 4_000);
    assert_eq!(groups(&report)[..3], ["<30", "30-59", ">=60"]);
}

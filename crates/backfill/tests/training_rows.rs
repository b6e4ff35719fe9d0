//! Scoring a file that holds the model's own training rows: the summary says how many there
//! were, warns, and judges the model (backtest, fairness) on the held-out rows only, while
//! every row is still decided; a resumed run counts the same.

use credit_backfill::{BackfillError, BackfillModel, ScoreOptions, Summary};
use credit_core::artifacts::TRAINING_ROWS_FILE;
use credit_core::bundle::{self, Manifest};
use credit_core::dataset;
use credit_core::training_rows::TrainingRows;
use std::path::{Path, PathBuf};

/// Rows of data/german_credit.csv the test bundle records as its training rows.
const TRAINED_ON: usize = 300;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn data() -> PathBuf {
    root().join("data/german_credit.csv")
}

fn options(input: &Path, output: &Path) -> ScoreOptions {
    ScoreOptions {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        batch_size: 100,
        workers: 2,
        durable: false,
        ..ScoreOptions::default()
    }
}

/// The shipped bundle copied into `dir`, recording the data set's first TRAINED_ON rows as its
/// training rows (sealed into its manifest like every other file).
fn bundle_trained_on_the_first_rows(dir: &Path) -> BackfillModel {
    shipped_bundle_recording(dir, Some(TRAINED_ON))
}

/// The shipped bundle copied into `dir` without its own fingerprints, recording the data set's
/// first `trained_on` rows instead, or none.
fn shipped_bundle_recording(dir: &Path, trained_on: Option<usize>) -> BackfillModel {
    let shipped = root().join("models");
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("manifest.json")).unwrap())
            .unwrap();
    let mut files: Vec<&str> = Vec::new();
    for entry in manifest
        .files
        .iter()
        .filter(|e| e.name != TRAINING_ROWS_FILE)
    {
        std::fs::copy(shipped.join(&entry.name), dir.join(&entry.name)).unwrap();
        files.push(&entry.name);
    }
    if let Some(trained_on) = trained_on {
        let schema = credit_core::schema::Schema::load(&dir.join("schema.toml")).unwrap();
        let rows = dataset::load_labelled(&schema, &data()).unwrap();
        TrainingRows::of(&schema, rows[..trained_on].iter().map(|row| &row.applicant))
            .write(&dir.join(TRAINING_ROWS_FILE))
            .unwrap();
        files.push(TRAINING_ROWS_FILE);
    }
    bundle::write_manifest(dir, &manifest.model_version, &files).unwrap();
    BackfillModel::load(dir, None, None).unwrap()
}

/// The data set without its first TRAINED_ON rows: the held-out rows alone.
fn held_out_file(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(data()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rest: Vec<&str> = lines.skip(TRAINED_ON).collect();
    let path = dir.join("held_out.csv");
    std::fs::write(&path, format!("{header}\n{}\n", rest.join("\n"))).unwrap();
    path
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn training_rows_are_decided_counted_and_warned_about_and_the_figures_are_held_out_only() {
    let dir = tempfile::tempdir().unwrap();
    let bundle_dir = dir.path().join("bundle");
    std::fs::create_dir(&bundle_dir).unwrap();
    let model = bundle_trained_on_the_first_rows(&bundle_dir);
    assert_eq!(
        model.training_rows.as_ref().map(|rows| rows.len()),
        Some(TRAINED_ON)
    );

    let output = dir.path().join("scored.jsonl");
    let summary = credit_backfill::run(&options(&data(), &output), &model, &|_| {}).unwrap();
    println!("{summary}");
    assert_eq!(summary.rows, 1000);
    assert_eq!(lines(&output), 1000, "every row is decided");
    let training = &summary.training_rows;
    assert!(training.recorded);
    assert_eq!((training.scored, training.held_out), (300, 700));
    let warning = training.warning.as_deref().unwrap();
    assert!(warning.contains("300 of the 1000"), "{warning}");
    assert!(summary.to_string().contains("WARNING: 300 of the 1000"));
    let backtest = summary.backtest.as_ref().unwrap();
    assert_eq!(backtest.labelled_rows, 700);
    for field in &summary.fairness.as_ref().unwrap().fields {
        let counted: u64 = field.groups.iter().map(|g| g.count).sum();
        assert_eq!(counted, 700, "{}", field.field);
    }

    // The same figures as a run on the held-out rows alone, by a bundle that records nothing.
    let unrecorded = dir.path().join("unrecorded");
    std::fs::create_dir(&unrecorded).unwrap();
    let shipped = shipped_bundle_recording(&unrecorded, None);
    assert!(shipped.training_rows.is_none());
    let alone = credit_backfill::run(
        &options(&held_out_file(dir.path()), &dir.path().join("alone.jsonl")),
        &shipped,
        &|_| {},
    )
    .unwrap();
    assert!(!alone.training_rows.recorded);
    assert!(alone
        .to_string()
        .contains("the bundle records no training rows"));
    let alone_backtest = alone.backtest.as_ref().unwrap();
    assert_eq!(alone_backtest.confusion, backtest.confusion);
    assert_eq!(alone_backtest.roc_auc, backtest.roc_auc);
    assert_eq!(alone.fairness, summary.fairness);
}

#[test]
fn a_resumed_run_counts_the_training_rows_of_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let bundle_dir = dir.path().join("bundle");
    std::fs::create_dir(&bundle_dir).unwrap();
    let model = bundle_trained_on_the_first_rows(&bundle_dir);
    let output = dir.path().join("scored.jsonl");
    let mut crashing = options(&data(), &output);
    crashing.stop_after_rows = Some(500);
    let error = credit_backfill::run(&crashing, &model, &|_| {}).unwrap_err();
    assert!(
        matches!(error, BackfillError::SimulatedCrash { .. }),
        "{error}"
    );
    let resumed = credit_backfill::run(&options(&data(), &output), &model, &|_| {}).unwrap();
    assert!(resumed.resumed_from_row >= 300, "{resumed}");
    assert_eq!(
        (resumed.training_rows.scored, resumed.training_rows.held_out),
        (300, 700)
    );
    assert_eq!(resumed.backtest.as_ref().unwrap().labelled_rows, 700);
    let written: Summary = serde_json::from_str(
        &std::fs::read_to_string(credit_backfill::OutputPaths::for_output(&output).summary)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(written.training_rows, resumed.training_rows);
}

//! `trainer --true-probability-column COLUMN` on the synthetic retail loan book: the report sets
//! the AUC of the book's true probabilities next to the models', on the same test rows and on
//! each cross-validation fold's; the shipped retail bundle reproduces the figures it reports.

use credit_core::artifacts::{ArtifactPaths, ModelMetadata};
use credit_core::dataset::{LabelledApplicant, Outcome};
use credit_core::evaluation::roc_auc;
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
use credit_core::scoring::onnx_runtime::{init_runtime, OnnxScorer};
use credit_training::split::stratified_split;
use credit_training::trainer::data;
use credit_training::trainer::report::TrainingReport;
use credit_training::trainer::truth::TrueProbabilities;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

/// The header and the first `rows` rows of the retail loan book.
fn book_slice(dir: &Path, rows: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join("data/retail_loan_book.csv")).unwrap();
    let lines: Vec<&str> = text.lines().take(rows + 1).collect();
    let path = dir.join("book.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn close(a: &serde_json::Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-9
}

#[test]
fn the_report_compares_the_models_auc_with_the_true_probabilities_auc() {
    let dir = tempfile::tempdir().unwrap();
    let data = book_slice(dir.path(), 1500);
    let out = dir.path().join("bundle");
    let output = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(root())
        .args(["--schema", "schemas/retail-loan.toml", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--true-probability-column", "true_pd"])
        .args(["--epochs", "2", "--patience", "1", "--cv", "2"])
        .output()
        .expect("run the trainer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("true probabilities (`true_pd`) on the test split: AUC"),
        "{stdout}"
    );
    assert!(
        stdout.contains("true probabilities over 2 CV folds"),
        "{stdout}"
    );

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ArtifactPaths::new(&out).metrics()).unwrap())
            .unwrap();
    let truth = &metrics["true_probability"];
    assert_eq!(truth["column"], "true_pd");
    let test = &truth["test"];
    assert_eq!(test["rows"], metrics["split"]["test"]);
    assert_eq!(test["lstm_auc"], metrics["lstm"]["test"]["roc_auc"]);
    assert_eq!(
        test["logistic_auc"],
        metrics["logistic_regression"]["test"]["roc_auc"]
    );
    let best = test["true_probability_auc"].as_f64().unwrap();
    assert!(close(
        &test["lstm_gap"],
        best - test["lstm_auc"].as_f64().unwrap()
    ));
    // The folds' test rows together are every row once, so the pooled rates are the slice's.
    let text = std::fs::read_to_string(&data).unwrap();
    let (truth_column, bad): (Vec<f64>, Vec<bool>) = text
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let n = cells.len();
            (cells[n - 1].parse::<f64>().unwrap(), cells[n - 2] == "yes")
        })
        .unzip();
    let folds = &truth["cross_validation"];
    assert_eq!(folds["folds"], 2);
    assert_eq!(folds["rows"], 1500);
    assert_eq!(folds["bad"], bad.iter().filter(|&&b| b).count());
    assert!(close(
        &folds["mean_true_probability"],
        truth_column.iter().sum::<f64>() / 1500.0
    ));
    let per_fold = metrics["cross_validation"]["per_fold"].as_array().unwrap();
    let fold_aucs: Vec<f64> = per_fold
        .iter()
        .map(|fold| {
            fold["true_probability"]["true_probability_auc"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(close(
        &folds["true_probability_auc"]["mean"],
        fold_aucs.iter().sum::<f64>() / 2.0
    ));
    // Each fold's figures are of its own test rows.
    for fold in per_fold {
        assert_eq!(fold["true_probability"]["rows"], fold["test_rows"]);
    }
}

#[test]
fn the_retail_bundle_reproduces_its_reported_test_auc_next_to_the_true_probabilities() {
    let paths = ArtifactPaths::new(root().join("models/retail-loan"));
    let report: TrainingReport =
        serde_json::from_str(&std::fs::read_to_string(paths.metrics()).unwrap()).unwrap();
    let schema = Schema::load(&paths.schema()).unwrap();
    let outcome = Outcome::of(&schema).unwrap();
    let book = data::load(
        &schema,
        &outcome,
        Some("true_pd"),
        &root().join("data/retail_loan_book.csv"),
        false,
    )
    .unwrap();
    let truth = book.true_probabilities.unwrap();
    let labels: Vec<bool> = book.rows.iter().map(|row| row.bad).collect();
    let rows = labels.len() as f64;
    let split = stratified_split(
        &labels,
        report.split.validation as f64 / rows,
        report.split.test as f64 / rows,
        report.split.seed,
    );
    assert_eq!(split.test.len(), report.split.test);

    let test_truth: Vec<f64> = split.test.iter().map(|&i| truth[i]).collect();
    let test_labels: Vec<bool> = split.test.iter().map(|&i| labels[i]).collect();
    let reported = report
        .true_probability
        .expect("the bundle reports the true probabilities");
    let recomputed = TrueProbabilities::of(&test_truth, &test_labels).unwrap();
    let claimed = reported.test.truth;
    assert_eq!(
        (recomputed.rows, recomputed.bad),
        (claimed.rows, claimed.bad)
    );
    for (name, ours, theirs) in [
        (
            "AUC",
            recomputed.true_probability_auc.unwrap(),
            claimed.true_probability_auc.unwrap(),
        ),
        (
            "mean",
            recomputed.mean_true_probability,
            claimed.mean_true_probability,
        ),
    ] {
        // metrics.json holds decimal text, which need not read back to the last bit.
        assert!((ours - theirs).abs() < 1e-12, "{name}: {ours} vs {theirs}");
    }

    let preprocessor = Preprocessor::load(&paths.preprocessor(), &schema).unwrap();
    init_runtime(None).unwrap();
    let mut scorer = OnnxScorer::load(&paths.model(), 1).unwrap();
    let metadata = ModelMetadata::from_map(scorer.metadata(), &paths.model()).unwrap();
    assert_eq!(metadata.version, report.model_version);
    let test_rows: Vec<LabelledApplicant> =
        split.test.iter().map(|&i| book.rows[i].clone()).collect();
    let features = preprocessor
        .transform_batch(
            &test_rows
                .iter()
                .map(|row| row.applicant.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let mut scores = Vec::new();
    scorer
        .score_into(&features, test_rows.len(), &mut scores)
        .unwrap();
    let auc = roc_auc(&scores, &test_labels).unwrap().unwrap();
    let reported_auc = reported.test.lstm_auc.unwrap();
    assert!(
        (auc - reported_auc).abs() < 1e-3,
        "AUC {auc} vs reported {reported_auc}"
    );
}

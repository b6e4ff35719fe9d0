//! `trainer --data FILE`: rows that do not fit the schema stop the run with each one named,
//! unless `--skip-bad-rows` is given; then the bundle is trained on the rest, carries the schema
//! and its JSON Schema, and its report counts what was skipped.

use credit_core::artifacts::{ArtifactPaths, JSON_SCHEMA_FILE, SCHEMA_FILE};
use credit_core::bundle;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

/// The shipped data with three rows that do not fit: an unknown purpose (spreadsheet row 4),
/// an age of 530 (row 6) and an unknown outcome (row 9).
fn data_with_three_bad_rows(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("data/german_credit.csv")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(index, line)| match index + 1 {
            4 => line.replacen("education", "yachting", 1),
            6 => line.replacen(",53,", ",530,", 1),
            9 => line.replacen(",good", ",unsure", 1),
            _ => line.to_owned(),
        })
        .collect();
    let path = dir.join("book.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Runs the trainer from the repository root, so its default schema is found.
fn trainer(args: &[&str], data: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(root())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("run the trainer")
}

#[test]
fn rows_that_do_not_fit_the_schema_stop_the_run_each_named_by_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_with_three_bad_rows(dir.path());
    let out = dir.path().join("bundle");
    let output = trainer(&[], &data, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for expected in [
        "3 of the 1000 rows",
        "row 4, field `purpose`: unknown value `yachting`",
        "row 6, field `age_years` (column `age_in_years`)",
        "row 9, field `creditability`: unknown value `unsure`",
        "--skip-bad-rows",
    ] {
        assert!(stderr.contains(expected), "`{expected}` not in:\n{stderr}");
    }
    assert!(!out.exists(), "a refused run writes nothing");
}

#[test]
fn skip_bad_rows_trains_a_bundle_that_carries_the_schema_and_counts_the_skipped_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_with_three_bad_rows(dir.path());
    let out = dir.path().join("bundle");
    let output = trainer(
        &["--skip-bad-rows", "--epochs", "2", "--patience", "1"],
        &data,
        &out,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let opened = bundle::open(&out).expect("the trainer's bundle opens as the worker opens it");
    let listed: Vec<&str> = opened
        .manifest
        .files
        .iter()
        .map(|entry| entry.name.as_str())
        .collect();
    assert!(listed.contains(&SCHEMA_FILE) && listed.contains(&JSON_SCHEMA_FILE));
    assert_eq!(
        std::fs::read(out.join(SCHEMA_FILE)).unwrap(),
        std::fs::read(root().join("schemas/german-credit.toml")).unwrap()
    );

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ArtifactPaths::new(&out).metrics()).unwrap())
            .unwrap();
    let data = &metrics["data"];
    assert_eq!(data["rows_read"], 1000);
    assert_eq!(data["rows_skipped"], 3);
    assert_eq!(data["rows"], 997);
    assert_eq!(data["schema"]["name"], "german-credit");
    assert_eq!(
        data["schema"]["fingerprint"],
        opened.schema.fingerprint().as_str()
    );
    assert_eq!(data["outcome"]["column"], "creditability");
    // The bundle records the rows the model was fitted on: train and validation, not test.
    let split = &metrics["split"];
    let fitted_on = split["train"].as_u64().unwrap() + split["validation"].as_u64().unwrap();
    assert!(split["test"].as_u64().unwrap() > 0);
    let training_rows = opened
        .training_rows
        .as_ref()
        .expect("training rows recorded");
    assert_eq!(training_rows.len() as u64, fitted_on);
    let skipped: Vec<u64> = data["skipped_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["row"].as_u64().unwrap())
        .collect();
    assert_eq!(skipped, [4, 6, 9]);
}

//! The backfill writes the same adverse-action reasons as the worker: the model's own
//! contributions against the bundle's reference applicant, in JSON Lines, CSV and Parquet alike,
//! on every `bad` row by default, on every row with `--reasons all`, and nowhere with `off`.

use arrow_array::cast::AsArray;
use credit_backfill::{BackfillModel, ScoreOptions};
use credit_core::explain::{Explainer, ReasonsMode, DEFAULT_TOP};
use credit_testkit::scenarios::write_test_model;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/german_credit.csv")
}

fn score(model: &BackfillModel, output: &Path, reasons: ReasonsMode) {
    let options = ScoreOptions {
        input: data(),
        output: output.to_path_buf(),
        batch_size: 128,
        workers: 2,
        durable: false,
        reasons,
        ..ScoreOptions::default()
    };
    credit_backfill::run(&options, model, &|_| {}).unwrap();
}

/// Each row's decision and reasons (`None`: no reasons key), by application id.
type Explained = BTreeMap<String, (String, Option<serde_json::Value>)>;

fn from_jsonl(path: &Path) -> Explained {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = row["application_id"].as_str().unwrap().to_owned();
            let decision = row["decision"].as_str().unwrap().to_owned();
            (id, (decision, row.get("reasons").cloned()))
        })
        .collect()
}

fn from_csv(path: &Path) -> Explained {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (id, decision, reasons) = (
        column("application_id"),
        column("decision"),
        column("reasons"),
    );
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let reasons = reasons.map(|at| serde_json::from_str(&record[at]).unwrap());
            (
                record[id.unwrap()].to_owned(),
                (record[decision.unwrap()].to_owned(), reasons),
            )
        })
        .collect()
}

fn from_parquet(dir: &Path) -> Explained {
    let mut rows = Explained::new();
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    parts.sort();
    for part in parts {
        let file = std::fs::File::open(part).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .map(|c| c.as_string::<i32>().clone())
            };
            let (ids, decisions, reasons) = (
                text("application_id").unwrap(),
                text("decision").unwrap(),
                text("reasons"),
            );
            for row in 0..batch.num_rows() {
                let explained = reasons
                    .as_ref()
                    .map(|r| serde_json::from_str(r.value(row)).unwrap());
                rows.insert(
                    ids.value(row).to_owned(),
                    (decisions.value(row).to_owned(), explained),
                );
            }
        }
    }
    rows
}

#[test]
fn every_format_carries_the_models_own_reasons_for_each_decline() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    write_test_model(&bundle, 0.5, 9).unwrap();
    let model = BackfillModel::load(&bundle, None, None).unwrap();
    let (jsonl, csv, parquet) = (
        dir.path().join("out.jsonl"),
        dir.path().join("out.csv"),
        dir.path().join("out.parquet"),
    );
    for output in [&jsonl, &csv, &parquet] {
        score(&model, output, ReasonsMode::Declines);
    }
    let rows = from_jsonl(&jsonl);
    assert_eq!(rows.len(), 1000);
    assert_eq!(from_csv(&csv), rows);
    assert_eq!(from_parquet(&parquet), rows);

    // The reasons are the model's: recomputed here from the bundle, apart from the run.
    let schema = &model.schema;
    let reference = model.reference.clone().unwrap();
    let mut explainer = Explainer::new(&model.preprocessor, &reference, DEFAULT_TOP).unwrap();
    let mut scorer = model.scorer(1).unwrap();
    let applicants = credit_core::dataset::load_labelled(schema, &data()).unwrap();
    let mut declines = 0;
    for (index, row) in applicants.iter().enumerate() {
        let (decision, reasons) = &rows[&(index + 1).to_string()];
        let reasons = reasons.as_ref().unwrap().as_array().unwrap();
        if decision == "good" {
            assert!(reasons.is_empty(), "row {}: {reasons:?}", index + 1);
            continue;
        }
        declines += 1;
        let features = model
            .preprocessor
            .transform_batch(std::slice::from_ref(&row.applicant))
            .unwrap();
        let expected = explainer.reasons_of_row(&mut scorer, &features).unwrap();
        let got: Vec<(&str, f64)> = reasons
            .iter()
            .map(|r| {
                (
                    r["field"].as_str().unwrap(),
                    r["contribution"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "row {}", index + 1);
        for ((field, contribution), (at, wanted)) in got.iter().zip(&expected) {
            assert_eq!(*field, schema.fields()[*at].name, "row {}", index + 1);
            assert!((contribution - wanted).abs() < 1e-4, "row {}", index + 1);
        }
    }
    assert!(declines > 0, "the test model declined nobody");
}

#[test]
fn reasons_all_explains_approvals_too_and_off_writes_no_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    write_test_model(&bundle, 0.5, 9).unwrap();
    // A threshold no score reaches: every row is approved.
    let model = BackfillModel::load(&bundle, None, Some(1.0)).unwrap();
    let outputs = [ReasonsMode::All, ReasonsMode::Declines, ReasonsMode::Off].map(|mode| {
        let output = dir.path().join(format!("{}.csv", mode.as_str()));
        score(&model, &output, mode);
        from_csv(&output)
    });
    let [all, declines, off] = &outputs;
    assert!(all.values().all(|(decision, _)| decision == "good"));
    let explained = |rows: &Explained| {
        rows.values()
            .filter(|(_, reasons)| !reasons.as_ref().unwrap().as_array().unwrap().is_empty())
            .count()
    };
    assert!(explained(all) > 0, "no approval was explained in mode all");
    assert_eq!(
        explained(declines),
        0,
        "approvals explained in mode declines"
    );
    assert!(off.values().all(|(_, reasons)| reasons.is_none()));
}

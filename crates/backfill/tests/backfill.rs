//! End-to-end tests of the backfill: generate → score → read back, in every format, through
//! crashes, shards and bad rows. They use the shipped model in `models/` (the German Credit
//! schema) and ONNX Runtime from `.onnxruntime/` (see `scripts/setup-onnxruntime.sh`).

use credit_backfill::row::{InputPosition, InputRow, RejectedRow};
use credit_backfill::source;
use credit_backfill::synthetic_files;
use credit_backfill::{
    BackfillError, BackfillModel, Format, OutputPaths, ScoreOptions, Shard, Summary,
};
use credit_core::dataset::shipped_german_credit;
use credit_core::schema::german_credit;
use credit_synthetic::Generator;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn manifest() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn model() -> &'static BackfillModel {
    static MODEL: OnceLock<BackfillModel> = OnceLock::new();
    MODEL.get_or_init(|| BackfillModel::load(&manifest().join("models"), None, None).unwrap())
}

fn generator(seed: u64) -> Generator {
    Generator::new(&german_credit(), shipped_german_credit(), seed).unwrap()
}

/// Writes `rows` synthetic applicants (with outcomes) to `path`.
fn generate(path: &Path, rows: u64, seed: u64) {
    let format = Format::resolve(None, path).unwrap();
    synthetic_files::generate_to_file(&generator(seed), path, format, rows, true, &|_| {}).unwrap();
}

fn options(input: &Path, output: &Path) -> ScoreOptions {
    ScoreOptions {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        include_fields: true,
        batch_size: 512,
        workers: 2,
        part_rows: 2048,
        durable: false,
        reference: Some(manifest().join("data/german_credit.csv")),
        ..ScoreOptions::default()
    }
}

fn score(options: &ScoreOptions) -> Result<Summary, BackfillError> {
    credit_backfill::run(options, model(), &|_| {})
}

/// Every row of a file the backfill can read (its own output with `--include-fields`, too).
fn read_rows(path: &Path) -> Vec<InputRow> {
    let format = Format::resolve(None, path).unwrap();
    let schema = Arc::clone(&model().schema);
    let (mut source, decoder) =
        source::open(schema, path, format, InputPosition::default()).unwrap();
    let mut rows = Vec::new();
    let mut rejections: Vec<RejectedRow> = Vec::new();
    while let Some(chunk) = source.next_chunk(1000).unwrap() {
        decoder
            .decode(&chunk, Shard::ALL, &mut rows, &mut rejections)
            .unwrap();
    }
    assert!(rejections.is_empty(), "{rejections:?}");
    rows
}

/// Scored output as `application_id → (probability_bad, decision)`, checking that no id
/// appears twice.
fn read_scores(path: &Path) -> BTreeMap<String, (f64, String)> {
    let format = Format::resolve(None, path).unwrap();
    let mut out = BTreeMap::new();
    let mut insert = |id: String, probability: f64, decision: String| {
        assert!(
            out.insert(id.clone(), (probability, decision)).is_none(),
            "duplicate {id} in {}",
            path.display()
        );
    };
    match format {
        Format::Csv => {
            let mut reader = csv::Reader::from_path(path).unwrap();
            for record in reader.records() {
                let record = record.unwrap();
                insert(
                    record[0].to_string(),
                    record[2].parse().unwrap(),
                    record[1].to_string(),
                );
            }
        }
        Format::Jsonl => {
            for line in std::fs::read_to_string(path).unwrap().lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                insert(
                    value["application_id"].as_str().unwrap().to_string(),
                    value["probability_bad"].as_f64().unwrap(),
                    value["decision"].as_str().unwrap().to_string(),
                );
            }
        }
        Format::Parquet => {
            use arrow_array::cast::AsArray;
            use arrow_array::types::Float32Type;
            let mut parts: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            parts.sort();
            for part in parts {
                assert!(part.extension().unwrap() == "parquet", "{}", part.display());
                let file = std::fs::File::open(&part).unwrap();
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap()
                        .build()
                        .unwrap();
                for batch in reader {
                    let batch = batch.unwrap();
                    let ids = batch.column(0).as_string::<i32>();
                    let decisions = batch.column(1).as_string::<i32>();
                    let probabilities = batch.column(2).as_primitive::<Float32Type>();
                    for i in 0..batch.num_rows() {
                        insert(
                            ids.value(i).to_string(),
                            f64::from(probabilities.value(i)),
                            decisions.value(i).to_string(),
                        );
                    }
                }
            }
        }
    }
    out
}

fn ids(count: u64) -> HashSet<String> {
    (1..=count).map(|i| format!("gen-{i:09}")).collect()
}

#[test]
fn every_format_round_trips_generate_score_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut reference_scores: Option<BTreeMap<String, (f64, String)>> = None;
    for input_format in Format::ALL {
        let input = dir.path().join(format!("in.{input_format}"));
        generate(&input, 3000, 11);
        let generated = read_rows(&input);
        assert_eq!(generated.len(), 3000);
        for output_format in Format::ALL {
            let output = dir
                .path()
                .join(format!("out-{input_format}.{output_format}"));
            let summary = score(&options(&input, &output)).unwrap();
            assert_eq!((summary.rows, summary.rejects), (3000, 0));
            // The output, with --include-fields, is itself a valid input holding the same loans.
            let read_back = read_rows(&output);
            assert_eq!(read_back.len(), 3000);
            for (original, scored) in generated.iter().zip(&read_back) {
                assert_eq!(original.application_id, scored.application_id);
                assert_eq!(original.applicant, scored.applicant);
                assert_eq!(original.bad, scored.bad);
            }
            let scores = read_scores(&output);
            assert_eq!(scores.keys().cloned().collect::<HashSet<_>>(), ids(3000));
            for (probability, decision) in scores.values() {
                assert!((0.0..=1.0).contains(probability));
                let bad = *probability >= f64::from(model().threshold);
                assert_eq!(decision, if bad { "bad" } else { "good" });
            }
            // Every format and path gives the same scores for the same loans.
            match &reference_scores {
                None => reference_scores = Some(scores),
                Some(reference) => {
                    for (id, (probability, _)) in &scores {
                        assert!((probability - reference[id].0).abs() < 1e-6, "{id}");
                    }
                }
            }
        }
    }
}

#[test]
fn summary_has_backtest_and_psi_of_the_held_out_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("scored.jsonl");
    let summary = score(&options(
        &manifest().join("data/german_credit.csv"),
        &output,
    ))
    .unwrap();
    assert_eq!(summary.rows, 1000);
    // The shipped bundle records its 800 train and validation rows: every row is decided, the
    // figures come from the 200 test rows alone.
    let training = &summary.training_rows;
    assert!(training.recorded);
    assert_eq!((training.scored, training.held_out), (800, 200));
    assert!(training.warning.is_some());
    let backtest = summary.backtest.as_ref().unwrap();
    assert_eq!(backtest.labelled_rows, 200);
    assert!(backtest.roc_auc.unwrap() > 0.75, "{backtest:?}");
    assert!(backtest.average_cost.unwrap() < 0.7, "{backtest:?}");
    // The held-out rows are a sample of the reference file itself: no shift to speak of.
    assert!(
        summary.psi.as_ref().unwrap().value < 0.1,
        "{:?}",
        summary.psi
    );
    let written: Summary = serde_json::from_str(
        &std::fs::read_to_string(OutputPaths::for_output(&output).summary).unwrap(),
    )
    .unwrap();
    assert_eq!(written.rows, 1000);
}

#[test]
fn resume_after_simulated_crash_is_exactly_once_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    // Every input format (resumed by byte offset or by row count) and every output format
    // (cut back by byte length or by part file) once.
    for (input_format, format) in [
        (Format::Jsonl, Format::Csv),
        (Format::Parquet, Format::Jsonl),
        (Format::Csv, Format::Parquet),
    ] {
        let input = dir.path().join(format!("in.{input_format}"));
        generate(&input, 9000, 3);
        let clean = dir.path().join(format!("clean.{format}"));
        score(&options(&input, &clean)).unwrap();

        let crashed = dir.path().join(format!("crashed.{format}"));
        let mut crashing = options(&input, &crashed);
        crashing.stop_after_rows = Some(5000);
        let error = score(&crashing).unwrap_err();
        assert!(
            matches!(error, BackfillError::SimulatedCrash { .. }),
            "{error}"
        );
        let checkpoint = credit_backfill::checkpoint::Checkpoint::load(
            &OutputPaths::for_output(&crashed).checkpoint,
        )
        .unwrap()
        .unwrap();
        assert!(!checkpoint.complete);
        assert!(checkpoint.input.rows > 0 && checkpoint.input.rows < 9000);
        if format != Format::Parquet {
            // The crash left rows beyond the commit, which the resumed run must cut off.
            let length = std::fs::metadata(&crashed).unwrap().len();
            assert!(length > checkpoint.output.bytes, "{format}");
        }

        let resumed = score(&options(&input, &crashed)).unwrap();
        assert_eq!(resumed.resumed_from_row, checkpoint.input.rows);
        assert_eq!(resumed.rows, 9000);
        assert_eq!(
            resumed.rows_this_attempt,
            9000 - checkpoint.stats.rows,
            "{format}"
        );
        let scores = read_scores(&crashed);
        assert_eq!(scores.keys().cloned().collect::<HashSet<_>>(), ids(9000));
        if format == Format::Parquet {
            assert_eq!(scores, read_scores(&clean));
        } else {
            assert_eq!(
                std::fs::read(&crashed).unwrap(),
                std::fs::read(&clean).unwrap(),
                "{format}: resumed output differs from an uninterrupted run's"
            );
        }
        // Statistics carried over the crash match an uninterrupted run's.
        let clean_summary: Summary = serde_json::from_str(
            &std::fs::read_to_string(OutputPaths::for_output(&clean).summary).unwrap(),
        )
        .unwrap();
        // (The JSON summary may differ in the last digit: serde_json parses floats to the
        // nearest representable value only with its `float_roundtrip` feature.)
        let (resumed_backtest, clean_backtest) =
            (resumed.backtest.unwrap(), clean_summary.backtest.unwrap());
        assert_eq!(resumed_backtest.confusion, clean_backtest.confusion);
        let close = |a: Option<f64>, b: Option<f64>| (a.unwrap() - b.unwrap()).abs() < 1e-12;
        assert!(close(resumed_backtest.roc_auc, clean_backtest.roc_auc));
        assert!(close(
            resumed_backtest.average_cost,
            clean_backtest.average_cost
        ));
        assert!(close(
            resumed.psi.map(|p| p.value),
            clean_summary.psi.map(|p| p.value)
        ));

        // Rerunning a finished run redoes nothing.
        let again = score(&options(&input, &crashed)).unwrap();
        assert!(again.already_complete);
        assert_eq!(again.rows, 9000);
    }
}

#[test]
fn kill_9_mid_run_then_rerun_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let rows = 60_000;
    generate(&input, rows, 5);
    let output = dir.path().join("out.csv");
    let checkpoint_path = OutputPaths::for_output(&output).checkpoint;
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_backfill"));
        command
            .current_dir(manifest())
            .args(["score", "--quiet", "--batch-size", "256", "--workers", "2"])
            .arg(&input)
            .arg(&output);
        command
    };
    let mut child = command().spawn().unwrap();
    // Kill once some rows are committed but well before the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let committed = credit_backfill::checkpoint::Checkpoint::load(&checkpoint_path)
            .ok()
            .flatten()
            .map_or(0, |c| c.input.rows);
        if committed >= 2000 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let checkpoint = credit_backfill::checkpoint::Checkpoint::load(&checkpoint_path)
        .unwrap()
        .unwrap();
    assert!(
        !checkpoint.complete,
        "the run finished before it was killed"
    );

    let status = command().status().unwrap();
    assert!(status.success());
    let scores = read_scores(&output);
    assert_eq!(scores.len() as u64, rows);
    assert_eq!(scores.keys().cloned().collect::<HashSet<_>>(), ids(rows));
}

#[test]
fn shards_cover_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    generate(&input, 5000, 9);
    let mut seen = HashSet::new();
    let mut total = 0;
    for index in 0..3 {
        let output = dir.path().join(format!("shard-{index}.jsonl"));
        let mut shard_options = options(&input, &output);
        shard_options.shard = Shard { index, count: 3 };
        let summary = score(&shard_options).unwrap();
        let scores = read_scores(&output);
        assert_eq!(summary.rows as usize, scores.len());
        for id in scores.keys() {
            let number: u64 = id.trim_start_matches("gen-").parse().unwrap();
            assert_eq!((number - 1) % 3, index, "{id} in shard {index}");
            assert!(seen.insert(id.clone()), "{id} in two shards");
        }
        total += scores.len();
    }
    assert_eq!(total, 5000);
    assert_eq!(seen, ids(5000));
}

#[test]
fn bad_rows_are_rejected_with_reasons_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    generate(&input, 100, 2);
    let mut reader = csv::Reader::from_path(&input).unwrap();
    let header = reader.headers().unwrap().clone();
    let mut records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let purpose = header.iter().position(|h| h == "purpose").unwrap();
    let outcome = header.iter().position(|h| h == "creditability").unwrap();
    // Data rows 3, 10, 20 and 30 are broken in different ways.
    let mut fields: Vec<String> = records[2].iter().map(str::to_string).collect();
    fields[purpose] = "yachting".into();
    records[2] = csv::StringRecord::from(fields);
    records[9].truncate(5);
    let mut fields: Vec<String> = records[19].iter().map(str::to_string).collect();
    fields[outcome] = "maybe".into();
    records[19] = csv::StringRecord::from(fields);
    records[29] = csv::StringRecord::from(vec!["gen-x", "not", "a", "row"]);
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_path(&input)
        .unwrap();
    writer.write_record(&header).unwrap();
    for record in &records {
        writer.write_record(record).unwrap();
    }
    writer.flush().unwrap();

    let output = dir.path().join("out.csv");
    let summary = score(&options(&input, &output)).unwrap();
    assert_eq!(summary.rejects, 4);
    assert_eq!(summary.rows, 96);
    let rejections =
        credit_backfill::rejects::read(&OutputPaths::for_output(&output).rejects).unwrap();
    let by_row: BTreeMap<u64, &RejectedRow> = rejections.iter().map(|r| (r.row, r)).collect();
    assert_eq!(by_row.keys().copied().collect::<Vec<_>>(), [3, 10, 20, 30]);
    assert_eq!(by_row[&3].field, "purpose");
    assert!(by_row[&3].reason.contains("yachting"));
    assert!(by_row[&3].raw.starts_with("gen-000000003"));
    assert_eq!(by_row[&10].field, "record");
    assert!(by_row[&10].reason.contains("5 fields"), "{:?}", by_row[&10]);
    assert_eq!(by_row[&20].field, "creditability");
    assert!(by_row[&20].reason.contains("maybe"));
    assert_eq!(by_row[&30].raw, "gen-x,not,a,row");

    // Over the limit, the run fails with a message pointing at the reject file.
    let strict_output = dir.path().join("strict.csv");
    let mut strict = options(&input, &strict_output);
    strict.max_rejects = Some(2);
    let error = score(&strict).unwrap_err();
    assert!(
        matches!(error, BackfillError::TooManyRejects { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("rejects.jsonl"), "{error}");
}

#[test]
fn json_lines_rejections_name_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    generate(&input, 20, 2);
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[4] = lines[4].replace("\"age_years\":", "\"age_years\":900,\"old_age\":");
    lines[6] = "{not json".into();
    lines[8] = String::new(); // blank lines are skipped, not rejected
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output = dir.path().join("out.jsonl");
    let summary = score(&options(&input, &output)).unwrap();
    assert_eq!((summary.rows, summary.rejects), (17, 2));
    let rejections =
        credit_backfill::rejects::read(&OutputPaths::for_output(&output).rejects).unwrap();
    assert_eq!(rejections[0].row, 5);
    assert_eq!(rejections[0].field, "age_years");
    assert!(rejections[0].reason.contains("900"));
    assert_eq!(rejections[1].row, 7);
    assert_eq!(rejections[1].raw, "{not json");
}

#[test]
fn resume_refuses_a_different_input_and_an_unknown_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    generate(&input, 2000, 4);
    let output = dir.path().join("out.csv");
    let mut crashing = options(&input, &output);
    crashing.stop_after_rows = Some(1000);
    assert!(score(&crashing).is_err());

    // The input changed since the checkpoint: refuse, naming what differs.
    generate(&input, 2100, 4);
    let error = score(&options(&input, &output)).unwrap_err();
    assert!(
        matches!(error, BackfillError::Fingerprint { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("input size"), "{error}");

    // An output that exists without a checkpoint is not overwritten unless forced.
    let stray = dir.path().join("stray.csv");
    std::fs::write(&stray, "precious\n").unwrap();
    let error = score(&options(&input, &stray)).unwrap_err();
    assert!(
        matches!(error, BackfillError::OutputExists { .. }),
        "{error}"
    );
    let mut forced = options(&input, &stray);
    forced.force = true;
    assert_eq!(score(&forced).unwrap().rows, 2100);
}

#[test]
fn generator_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    for format in Format::ALL {
        let a = dir.path().join(format!("a.{format}"));
        let b = dir.path().join(format!("b.{format}"));
        let c = dir.path().join(format!("c.{format}"));
        generate(&a, 5000, 77);
        generate(&b, 5000, 77);
        generate(&c, 5000, 78);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_ne!(read_rows(&a), read_rows(&c));
    }
}

#[test]
fn psi_is_small_for_generated_data_and_large_for_a_shifted_population() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    generate(&input, 20_000, 21);
    let summary = score(&options(&input, &dir.path().join("out.csv"))).unwrap();
    let psi = summary.psi.unwrap().value;
    assert!(psi < 0.1, "generated data PSI {psi}");

    // The same applicants, but every one with long loans, large amounts and an overdrawn
    // checking account: a riskier population the scores must shift for.
    let shifted = dir.path().join("shifted.jsonl");
    let text = std::fs::read_to_string(&input).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        value["checking_account"] = "below_0_dm".into();
        value["duration_months"] = 60.into();
        value["credit_amount_dm"] = 15_000.into();
        value["savings"] = "below_100_dm".into();
        out.push_str(&value.to_string());
        out.push('\n');
    }
    std::fs::write(&shifted, out).unwrap();
    let summary = score(&options(&shifted, &dir.path().join("shifted.csv"))).unwrap();
    let psi = summary.psi.unwrap().value;
    assert!(psi > 0.25, "shifted data PSI {psi}");
}

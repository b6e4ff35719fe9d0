//! The served model is the trained model: ONNX Runtime agrees with the trainer's own forward
//! pass, and the shipped artifacts reproduce the figures their report claims.

use credit_core::artifacts::{ArtifactPaths, ModelMetadata};
use credit_core::dataset::{shipped_german_credit, LabelledApplicant};
use credit_core::evaluation::{roc_auc, ClassificationReport, CostMatrix};
use credit_core::model::onnx_export::export_onnx;
use credit_core::preprocess::Preprocessor;
use credit_core::schema::german_credit;
use credit_core::scoring::onnx_runtime::{init_runtime, OnnxScorer};
use credit_training::split::stratified_split;
use credit_training::trainer::fit::{fit, FitOptions, SplitIndices};
use credit_training::trainer::report::TrainingReport;
use credit_training::training::TrainingConfig;
use onnx_protobuf::{Message, ModelProto};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn features(preprocessor: &Preprocessor, rows: &[LabelledApplicant]) -> Vec<f32> {
    preprocessor
        .transform_batch(
            &rows
                .iter()
                .map(|row| row.applicant.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap()
}

#[test]
fn freshly_trained_network_and_onnx_runtime_agree_within_1e_5_on_1000_applicants() {
    let rows = shipped_german_credit();
    let labels: Vec<bool> = rows.iter().map(|row| row.bad).collect();
    let split = stratified_split(&labels, 0.2, 0.2, 7);
    let options = FitOptions {
        training: TrainingConfig {
            max_epochs: 3,
            ..TrainingConfig::default()
        },
        ..FitOptions::default()
    };
    let result = fit(
        &german_credit(),
        &rows,
        &SplitIndices {
            train: split.train,
            validation: split.validation,
            test: split.test.clone(),
        },
        &options,
        &CostMatrix::GERMAN_CREDIT,
        &mut |_| {},
    )
    .unwrap();
    let weights = result.network.to_weights().unwrap();
    let onnx = export_onnx(&weights, &[]).unwrap();
    init_runtime(None).unwrap();
    let mut scorer = OnnxScorer::from_bytes(&onnx, 1).unwrap();

    let x = features(&result.preprocessor, &rows);
    let mut from_onnx = Vec::new();
    scorer.score_into(&x, rows.len(), &mut from_onnx).unwrap();
    let from_trainer = result.network.predict(&x).unwrap();
    assert_eq!(from_onnx.len(), 1000);
    let max_diff = from_onnx
        .iter()
        .zip(&from_trainer)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-5, "max |ONNX - trainer| = {max_diff}");
    // And the scores are not degenerate: the parity would be trivial for a constant model.
    let spread = from_onnx.iter().cloned().fold(f32::MIN, f32::max)
        - from_onnx.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 0.1, "scores barely vary: spread {spread}");

    // The exported model outputs the calibrated probabilities the threshold was chosen on:
    // Platt scaling fitted on validation is folded into it, so validation's mean probability
    // is its bad rate (Platt's targets move it by less than one row's share, 1/200).
    assert!(result.lstm.platt.is_some());
    let calibration = result.lstm.calibration.as_ref().unwrap();
    let validation = &calibration.validation;
    assert!(
        (validation.mean_predicted - validation.observed_bad_rate).abs() < 0.005,
        "{validation:?}"
    );
    for (position, &i) in split.test.iter().enumerate() {
        let (onnx, reported) = (from_onnx[i], result.test_scores.lstm[position]);
        assert!(
            (onnx - reported).abs() < 1e-5,
            "row {i}: {onnx} vs {reported}"
        );
    }
}

#[test]
fn shipped_model_uses_native_lstm_operators_and_a_dynamic_batch() {
    let bytes = std::fs::read(ArtifactPaths::new(root().join("models")).model()).unwrap();
    let model = ModelProto::parse_from_bytes(&bytes).unwrap();
    let graph = model.graph.as_ref().unwrap();
    let lstm_nodes = graph
        .node
        .iter()
        .filter(|node| node.op_type == "LSTM")
        .count();
    assert!(
        lstm_nodes >= 2,
        "expected a stacked LSTM, found {lstm_nodes} LSTM nodes"
    );
    let input = &graph.input[0];
    let shape = input.type_.tensor_type().shape.dim.clone();
    assert!(
        !shape[0].dim_param().is_empty(),
        "batch dimension must be symbolic"
    );
}

#[test]
fn shipped_artifacts_reproduce_the_reported_test_metrics() {
    let paths = ArtifactPaths::new(root().join("models"));
    let report: TrainingReport =
        serde_json::from_str(&std::fs::read_to_string(paths.metrics()).unwrap()).unwrap();
    let preprocessor = Preprocessor::load(&paths.preprocessor(), &german_credit()).unwrap();
    init_runtime(None).unwrap();
    let mut scorer = OnnxScorer::load(&paths.model(), 1).unwrap();
    let metadata = ModelMetadata::from_map(scorer.metadata(), &paths.model()).unwrap();
    assert_eq!(metadata.version, report.model_version);
    assert_eq!(metadata.threshold, report.lstm.threshold);
    assert_eq!(
        metadata.preprocessor_sha256.as_deref(),
        Some(preprocessor.fingerprint().as_str())
    );

    let rows = shipped_german_credit();
    let labels: Vec<bool> = rows.iter().map(|row| row.bad).collect();
    let test_fraction = report.split.test as f64 / rows.len() as f64;
    let validation_fraction = report.split.validation as f64 / rows.len() as f64;
    let split = stratified_split(
        &labels,
        validation_fraction,
        test_fraction,
        report.split.seed,
    );
    assert_eq!(split.test.len(), report.split.test);
    let test_rows: Vec<LabelledApplicant> = split.test.iter().map(|&i| rows[i].clone()).collect();
    let test_labels: Vec<bool> = test_rows.iter().map(|row| row.bad).collect();
    let mut scores = Vec::new();
    scorer
        .score_into(
            &features(&preprocessor, &test_rows),
            test_rows.len(),
            &mut scores,
        )
        .unwrap();

    let auc = roc_auc(&scores, &test_labels).unwrap().unwrap();
    let reported_auc = report.lstm.test.roc_auc.unwrap();
    assert!(
        (auc - reported_auc).abs() < 1e-3,
        "AUC {auc} vs reported {reported_auc}"
    );
    let recomputed = ClassificationReport::evaluate(
        &scores,
        &test_labels,
        metadata.threshold,
        &CostMatrix::GERMAN_CREDIT,
    )
    .unwrap();
    assert!(
        (recomputed.average_cost - report.lstm.test.average_cost).abs() < 0.011,
        "cost {} vs reported {}",
        recomputed.average_cost,
        report.lstm.test.average_cost
    );
}

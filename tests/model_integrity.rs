//! A model bundle altered after training is refused by the worker and the backfill, at start-up
//! and on reload, and the version a decision carries is always the hash of the weights that made
//! it.
//!
//! The tampering is the one that used to pass every check: the signs of the output layer's
//! weights flipped in place (64 bytes), which gives a valid model that scores sanely but decides
//! differently, still labelled with the trained model's version. The tests use the shipped
//! bundle in `models/` and ONNX Runtime from `ORT_DYLIB_PATH` or `.onnxruntime/`.

// Each test file uses its own part of the worker-process helpers.
use credit_testkit::worker_process;

use credit_backfill::BackfillModel;
use credit_core::artifacts::{MANIFEST_FILE, MODEL_FILE, PREPROCESSOR_FILE, ROC_FILE};
use credit_core::bundle::{self, BundleError, Manifest};
use credit_core::loader::ModelError;
use credit_core::scoring::onnx_runtime::OnnxScorer;
use credit_worker::config::{Config, ModelConfig, ReasonsConfig};
use credit_worker::service::model::{self, LoadError};
use onnx_protobuf::{Message, ModelProto};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use worker_process::{
    closed_port, flip_output_layer, reseal, send_signal, shipped_models_copy, wait_for_metrics,
    Running,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifest_of(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).expect("manifest"))
        .expect("manifest json")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn worker_config(dir: &Path) -> (ModelConfig, ReasonsConfig) {
    let config = Config::from_toml_with_env("", HashMap::new()).expect("default configuration");
    let mut model = config.model;
    model.dir = dir.to_path_buf();
    (model, config.reasons)
}

fn worker_load(dir: &Path) -> Result<credit_worker::pipeline::ServedModel, LoadError> {
    let (model, reasons) = worker_config(dir);
    model::load(&model, reasons)
}

/// The worker's and the backfill's errors for the bundle in `dir` (one loader, two entry
/// points), which must be refused.
fn refusals(dir: &Path) -> (BundleError, BundleError) {
    let worker = match worker_load(dir) {
        Err(LoadError::Model(ModelError::Bundle(error))) => error,
        Err(other) => panic!("the worker refused for another reason: {other}"),
        Ok(served) => panic!("the worker loaded version {}", served.version),
    };
    let backfill = match BackfillModel::load(dir, None, None) {
        Err(ModelError::Bundle(error)) => error,
        Err(other) => panic!("the backfill refused for another reason: {other}"),
        Ok(loaded) => panic!("the backfill loaded version {}", loaded.version),
    };
    (worker, backfill)
}

#[test]
fn the_untouched_shipped_bundle_loads_in_both_loaders_under_its_manifests_version() {
    let models = root().join("models");
    let version = manifest_of(&models).model_version;
    let worker = worker_load(&models).expect("the worker loads models/");
    assert_eq!(worker.version, version);
    let backfill = BackfillModel::load(&models, None, None).expect("the backfill loads models/");
    assert_eq!(backfill.version, version);
    let opened = bundle::open(&models).expect("models/ verifies");
    let names: Vec<&str> = opened
        .manifest
        .files
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        names.contains(&MODEL_FILE) && names.contains(&PREPROCESSOR_FILE),
        "{names:?}"
    );
}

#[test]
fn flipping_the_output_layer_is_refused_by_both_loaders_naming_the_file_and_hashes() {
    let dir = shipped_models_copy();
    let expected = manifest_of(dir.path())
        .files
        .into_iter()
        .find(|e| e.name == MODEL_FILE)
        .expect("the model is listed")
        .sha256;
    let tampered = flip_output_layer(dir.path());
    // Still a valid model that ONNX Runtime runs: only the integrity check can tell.
    OnnxScorer::from_bytes(&tampered, 1).expect("the tampered model is valid ONNX");
    let actual = sha256_hex(&tampered);
    let (worker, backfill) = refusals(dir.path());
    for error in [worker, backfill] {
        let message = error.to_string();
        assert!(matches!(error, BundleError::Mismatch { .. }), "{error:?}");
        assert!(
            message.contains("credit_lstm.onnx")
                && message.contains(&expected)
                && message.contains(&actual),
            "{message}"
        );
    }
}

#[test]
fn a_tampered_model_under_a_rewritten_manifest_is_refused_as_not_the_version_of_its_weights() {
    let dir = shipped_models_copy();
    let manifest = manifest_of(dir.path());
    flip_output_layer(dir.path());
    reseal(dir.path());
    let (worker, backfill) = refusals(dir.path());
    for error in [worker, backfill] {
        assert!(
            matches!(&error, BundleError::VersionNotOfWeights { claimed, .. } if *claimed == manifest.model_version),
            "{error:?}"
        );
        assert!(error.to_string().contains("credit_lstm.onnx"), "{error}");
    }
    // Nor does sealing (`trainer manifest`) accept it.
    let refused = bundle::seal(dir.path()).expect_err("a tampered model is not sealed");
    assert!(refused.to_string().contains("hash to"), "{refused}");
}

#[test]
fn an_edited_graph_under_a_rewritten_manifest_is_refused_by_both_loaders() {
    let dir = shipped_models_copy();
    let path = dir.path().join(MODEL_FILE);
    let mut model =
        ModelProto::parse_from_bytes(&std::fs::read(&path).expect("model")).expect("an ONNX model");
    let graph = model.graph.mut_or_insert_default();
    let relu = graph
        .node
        .iter_mut()
        .find(|node| node.op_type == "Relu")
        .expect("the head's ReLU");
    relu.op_type = "Abs".to_owned();
    let edited = model.write_to_bytes().expect("serialise");
    // The weights, and so the version, are untouched, and ONNX Runtime runs the edited graph.
    OnnxScorer::from_bytes(&edited, 1).expect("the edited model is valid ONNX");
    std::fs::write(&path, &edited).expect("write the edited model");
    reseal(dir.path());
    let (worker, backfill) = refusals(dir.path());
    for error in [worker, backfill] {
        assert!(matches!(error, BundleError::Model { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("credit_lstm.onnx") && message.contains("not an export"),
            "{message}"
        );
    }
}

#[test]
fn a_changed_preprocessor_is_refused_by_both_loaders() {
    let dir = shipped_models_copy();
    let path = dir.path().join(PREPROCESSOR_FILE);
    let mut artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("preprocessor")).expect("json");
    let mean = artifact
        .pointer_mut("/attributes/1/encoding/mean")
        .expect("duration_months' fitted mean");
    *mean = serde_json::json!(mean.as_f64().expect("a number") + 1.0);
    std::fs::write(&path, serde_json::to_vec_pretty(&artifact).expect("json")).expect("write");
    let (worker, backfill) = refusals(dir.path());
    for error in [worker, backfill] {
        assert!(matches!(error, BundleError::Mismatch { .. }), "{error:?}");
        assert!(error.to_string().contains("preprocessor.json"), "{error}");
    }
}

#[test]
fn a_missing_manifest_or_a_missing_listed_file_is_refused_by_both_loaders() {
    let dir = shipped_models_copy();
    std::fs::remove_file(dir.path().join(ROC_FILE)).expect("remove the ROC plot");
    let (worker, backfill) = refusals(dir.path());
    for error in [worker, backfill] {
        assert!(
            matches!(error, BundleError::FileMissing { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("roc.svg"), "{error}");
    }
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).expect("remove the manifest");
    let (worker, backfill) = refusals(dir.path());
    for error in [worker, backfill] {
        assert!(
            matches!(error, BundleError::ManifestMissing { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("manifest.json"), "{error}");
    }
}

// The worker binary, reloaded with SIGHUP.

#[test]
fn a_sighup_reload_of_a_tampered_bundle_is_refused_and_the_old_model_keeps_serving() {
    let dir = shipped_models_copy();
    let manifest = manifest_of(dir.path());
    let metrics_port = closed_port();
    let mut running = Running(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .current_dir(root())
            .env(
                "CREDIT_RISK__KAFKA__BROKERS",
                format!("127.0.0.1:{}", closed_port()),
            )
            .env(
                "CREDIT_RISK__METRICS__ADDRESS",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("CREDIT_RISK__MODEL__DIR", dir.path())
            .env("CREDIT_RISK__LOGGING__FORMAT", "json")
            .env("CREDIT_RISK__LOGGING__LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the worker"),
    );
    let readers = [
        running.0.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = out.read_to_string(&mut text);
                text
            })
        }),
        running.0.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text);
                text
            })
        }),
    ];
    let serving = format!(
        "credit_risk_model_info{{version=\"{}\"}} 1",
        manifest.model_version
    );
    wait_for_metrics(&mut running, metrics_port, &[&serving]);

    // The output layer flipped in place: refused by the manifest, the old model stays.
    flip_output_layer(dir.path());
    send_signal(&running.0, "-HUP");
    wait_for_metrics(
        &mut running,
        metrics_port,
        &[
            "credit_risk_model_reloads_total{result=\"failed\"} 1",
            &serving,
        ],
    );
    // The manifest rewritten to match: refused as not the version of its weights.
    reseal(dir.path());
    send_signal(&running.0, "-HUP");
    let metrics = wait_for_metrics(
        &mut running,
        metrics_port,
        &[
            "credit_risk_model_reloads_total{result=\"failed\"} 2",
            &serving,
        ],
    );
    assert!(
        metrics.contains("credit_risk_model_reloads_total{result=\"ok\"} 0"),
        "{metrics}"
    );

    send_signal(&running.0, "-TERM");
    let started = Instant::now();
    while running.0.try_wait().expect("poll").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: String = readers
        .into_iter()
        .flatten()
        .map(|reader| reader.join().unwrap_or_default())
        .collect();
    assert!(
        logs.contains("model reload failed")
            && logs.contains("credit_lstm.onnx")
            && logs.contains("does not match the manifest")
            && logs.contains("hash to"),
        "both refusals are logged naming the file:\n{logs}"
    );
}

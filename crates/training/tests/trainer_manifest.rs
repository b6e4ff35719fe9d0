//! `trainer manifest --dir DIR`: seals a bundle without retraining, and only the bundle this
//! build would have written.

use credit_core::artifacts::{JSON_SCHEMA_FILE, MANIFEST_FILE};
use credit_testkit::paths::repo_root;
use credit_testkit::worker_process::{flip_output_layer, shipped_models_copy};
use std::path::Path;
use std::process::{Command, Output};

fn trainer_manifest(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["manifest", "--dir"])
        .arg(dir)
        .output()
        .expect("run the trainer")
}

#[test]
fn trainer_manifest_reproduces_the_shipped_manifest_and_json_schema_without_retraining() {
    let dir = shipped_models_copy();
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).expect("remove the manifest");
    std::fs::remove_file(dir.path().join(JSON_SCHEMA_FILE)).expect("remove the JSON Schema");
    let output = trainer_manifest(dir.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in [MANIFEST_FILE, JSON_SCHEMA_FILE] {
        assert_eq!(
            std::fs::read(dir.path().join(file)).expect("written file"),
            std::fs::read(repo_root().join("models").join(file)).expect("shipped file"),
            "{file} differs from the shipped one"
        );
    }
}

#[test]
fn trainer_manifest_refuses_to_seal_a_model_whose_weights_were_altered() {
    let dir = shipped_models_copy();
    flip_output_layer(dir.path());
    let output = trainer_manifest(dir.path());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && text.contains("hash to"),
        "{text}"
    );
}

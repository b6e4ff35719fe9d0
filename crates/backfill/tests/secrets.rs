//! The backfill keeps client secrets out of what it prints, as the worker does.

use credit_testkit::paths::repo_root;
use std::process::Command;

const CANARY: &str = "CANARY";

#[test]
fn a_malformed_backfill_kafka_setting_is_reported_without_its_value() {
    let output = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .current_dir(repo_root())
        .args([
            "score",
            "kafka://127.0.0.1:1/loans",
            "scored.csv",
            "--kafka-config",
            &format!("={CANARY}-backfill-x9"),
        ])
        .output()
        .expect("run the backfill");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("expected KEY=VALUE"), "{text}");
    assert!(
        !text.contains(CANARY),
        "a canary leaked into the backfill's error:\n{text}"
    );
}

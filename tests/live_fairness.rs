//! Live fairness end to end: records scored through the worker on the mock cluster show up in
//! `/metrics` as decisions by protected group, ages in the bands the German Credit schema
//! declares (`bands = [25]`), which win over the configured default.

use credit_core::applicant::AttributeValue;
use credit_core::dataset;
use credit_kafka::mock::EmbeddedCluster;
use credit_testkit::paths::repo_root;
use credit_testkit::scenarios::{self, sample, RunningWorker, Topics};
use std::time::Duration;

const RECORDS: usize = 300;

/// The group label the schema's `bands = [25]` gives an age.
fn age_band(age: f64) -> &'static str {
    if age < 25.0 {
        "<25"
    } else {
        ">=25"
    }
}

fn series(field: &str, group: &str, decision: &str) -> String {
    format!(
        "credit_risk_decisions_by_group_total{{decision=\"{decision}\",field=\"{field}\",group=\"{group}\"}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scored_records_are_counted_by_protected_group_with_ages_in_bands() {
    let cluster = EmbeddedCluster::start(1).expect("mock cluster");
    let dir = tempfile::tempdir().expect("temporary directory");
    scenarios::write_test_model(dir.path(), 0.5, 7).expect("test model");
    let topics = Topics::unique("fairness");
    topics.create(&cluster, 1).await.expect("topics");
    let bootstrap = cluster.bootstrap_servers();
    let config = scenarios::scenario_config(bootstrap, &topics, dir.path()).expect("config");
    assert!(
        config.fairness.bands.contains_key("age_years"),
        "ages are banded by default"
    );

    // The records fed are the data set's first RECORDS applicants, in order.
    let schema = scenarios::shipped_schema().expect("schema");
    let rows = dataset::load_labelled(&schema, &repo_root().join("data/german_credit.csv"))
        .expect("data set");
    let age = schema.position("age_years").expect("age field");
    let mut expected_by_band = std::collections::BTreeMap::<&str, u64>::new();
    for row in rows.iter().take(RECORDS) {
        let AttributeValue::Numeric(years) = row.applicant.values()[age] else {
            panic!("every shipped applicant has an age");
        };
        *expected_by_band.entry(age_band(years)).or_default() += 1;
    }

    let worker = RunningWorker::start(config).await.expect("worker");
    scenarios::feed(
        bootstrap,
        &topics.input,
        scenarios::applicant_records(RECORDS).expect("records"),
    )
    .await
    .expect("feed");
    let decided = |body: &str| {
        ["good", "bad"]
            .iter()
            .map(|d| {
                sample(
                    body,
                    &format!("credit_risk_decisions_total{{decision=\"{d}\"}}"),
                )
            })
            .map(|value| value.unwrap_or(0.0))
            .sum::<f64>()
    };
    let started = tokio::time::Instant::now();
    let body = loop {
        let (_, body) = worker.get("/metrics").await.expect("metrics");
        if decided(&body) >= RECORDS as f64 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {RECORDS} decided",
            decided(&body)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.stop().await.expect("clean stop");

    let value = |field: &str, group: &str, decision: &str| {
        sample(&body, &series(field, group, decision)).unwrap_or(0.0) as u64
    };
    for (band, expected) in &expected_by_band {
        assert_eq!(
            value("age_years", band, "good") + value("age_years", band, "bad"),
            *expected,
            "age band {band}"
        );
    }
    assert_eq!(
        value("age_years", "missing", "good") + value("age_years", "missing", "bad"),
        0
    );

    // Each protected field splits the same decisions: its groups add up to the totals.
    let bad = sample(&body, "credit_risk_decisions_total{decision=\"bad\"}").unwrap_or(0.0) as u64;
    assert!(
        bad > 0 && bad < RECORDS as u64,
        "the test model decides both ways"
    );
    for field in ["age_years", "foreign_worker", "personal_status_sex"] {
        let of_field: Vec<(String, u64)> = body
            .lines()
            .filter(|line| line.starts_with("credit_risk_decisions_by_group_total{"))
            .filter(|line| line.contains(&format!("field=\"{field}\"")))
            .filter_map(|line| {
                let (labels, value) = line.rsplit_once(' ')?;
                Some((labels.to_owned(), value.parse::<f64>().ok()? as u64))
            })
            .collect();
        let all: u64 = of_field.iter().map(|(_, n)| n).sum();
        let bad_of_field: u64 = of_field
            .iter()
            .filter(|(labels, _)| labels.contains("decision=\"bad\""))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(all, RECORDS as u64, "{field}: {of_field:?}");
        assert_eq!(bad_of_field, bad, "{field}: {of_field:?}");
    }
    // No age is a label value: only bands and `missing`.
    let age_groups: Vec<&str> = body
        .lines()
        .filter(|line| line.contains("field=\"age_years\""))
        .filter_map(|line| line.split("group=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(age_groups.len(), 6, "{age_groups:?}");
    assert!(
        age_groups
            .iter()
            .all(|g| ["<25", ">=25", "missing"].contains(g)),
        "{age_groups:?}"
    );
}

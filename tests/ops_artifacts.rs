//! The operations artefacts agree with the worker: every `credit_risk_*` metric (and label) the
//! Grafana dashboard, the Prometheus alert rules and their unit tests use is one the worker
//! actually registers; the dashboard parses and has its panels; every alert has a firing unit
//! test; and the compose file and the Dockerfile refer only to files that exist.
//!
//! No external tools: the metric names come from the worker's own registry
//! (`Metrics::new().encode()`), everything else is read as text. `scripts/check-ops.sh` adds
//! the checks that need tools (promtool, PyYAML, docker compose).

use credit_worker::telemetry::metrics::Metrics;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const PREFIX: &str = "credit_risk_";
const DASHBOARD: &str = "ops/grafana/dashboards/credit-risk.json";
const DATASOURCE: &str = "ops/grafana/provisioning/datasources/prometheus.yml";
const ALERTS: &str = "ops/prometheus/alerts.yml";
const ALERT_TESTS: &str = "ops/prometheus/alerts_test.yml";
const PROMETHEUS: &str = "ops/prometheus/prometheus.yml";
const COMPOSE: &str = "docker-compose.yml";
const DOCKERFILE: &str = "Dockerfile";

/// Labels Prometheus attaches at scrape time, not the worker.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// Labels whose values come from the data (Kafka partitions, the model version, the served
/// schema's protected fields and groups) rather than from a fixed set the worker declares;
/// their values are not checked.
const DYNAMIC_LABELS: &[&str] = &["partition", "version", "field", "group"];

/// The dashboard's panels, in order.
const PANEL_TITLES: &[&str] = &[
    "Workers up",
    "Model version",
    "Assigned partitions",
    "Consumer lag",
    "End-to-end p99 (5m)",
    "Throughput in and out",
    "Decisions by class",
    "Dead letters by reason",
    "Dead-letter ratio",
    "End-to-end latency",
    "Inference and reasons latency",
    "Batch size",
    "Consumer lag per partition",
    "Assigned partitions per worker",
    "Worker up",
    "Delivery failures",
    "Offset commits by result",
    "Model version per worker",
    "Model reloads by result",
    "Broker connections per worker",
    "Transactions by result (exactly-once mode)",
    "Approval rate by protected group (1h)",
    "Approval-rate ratio to the best group (1h)",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

// ---- the worker's exposition ----------------------------------------------------------------

/// The label names of a sample and its `(label, value)` pairs.
type Labels = (BTreeSet<String>, BTreeSet<(String, String)>);

/// What the worker exposes: every sample name (`..._bucket` included) with its label names and
/// `label=value` pairs, and the metric families (`# TYPE` lines) with their types.
struct Exposition {
    samples: BTreeMap<String, Labels>,
    families: BTreeMap<String, String>,
    text: String,
}

impl Exposition {
    /// Builds the worker's registry and touches every metric once, so that labelled and
    /// observed metrics show up with their labels.
    fn of_worker() -> Self {
        let metrics = Metrics::new().expect("the worker's metrics register");
        metrics.records_consumed.inc();
        metrics.decisions.with_label_values(&["good"]).inc();
        for decision in ["good", "bad"] {
            metrics
                .decisions_by_group
                .with_label_values(&["age_years", "<25", decision])
                .inc();
        }
        metrics
            .dead_lettered
            .with_label_values(&["invalid_json"])
            .inc();
        metrics.delivery_failures.inc();
        metrics.offset_commits.with_label_values(&["ok"]).inc();
        metrics.batch_size.observe(8.0);
        metrics.inference_latency.observe(0.000_3);
        metrics.observe_latency(Some(0.004), 0.002);
        metrics.consumer_lag.with_label_values(&["0"]).set(5);
        metrics.assigned_partitions.set(3);
        metrics.set_model_version("lstm-test");
        Self::parse(&metrics.encode().expect("the worker's metrics encode"))
    }

    fn parse(text: &str) -> Self {
        let mut samples: BTreeMap<String, Labels> = BTreeMap::new();
        let mut families = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    families.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let entry = samples.entry(line[..name_end].to_owned()).or_default();
            if line[name_end..].starts_with('{') {
                let close = line.rfind('}').expect("closing brace of a label set");
                for (label, value) in parse_label_pairs(&line[name_end + 1..close]) {
                    entry.0.insert(label.clone());
                    entry.1.insert((label, value));
                }
            }
        }
        Self {
            samples,
            families,
            text: text.to_owned(),
        }
    }

    /// The family a sample name belongs to: `x_bucket`/`x_sum`/`x_count` of a histogram or
    /// summary `x`, otherwise the name itself.
    fn family_of(name: &str) -> &str {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name)
    }
}

/// `a="x",b="y\"z"` → [(a, x), (b, y"z)].
fn parse_label_pairs(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| is_ident(*c))).collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(
            chars.next(),
            Some('='),
            "label {name} without a value in {text}"
        );
        assert_eq!(
            chars.next(),
            Some('"'),
            "unquoted value of {name} in {text}"
        );
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                other => value.push(other),
            }
        }
        pairs.push((name, value));
    }
    pairs
}

// ---- PromQL, tokenised (no regex, no parser) ------------------------------------------------

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Every identifier starting with `credit_risk_` in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !is_ident(c))
        .filter(|token| token.starts_with(PREFIX) && token.len() > PREFIX.len())
        .map(str::to_owned)
        .collect()
}

/// A label used by an expression: in `by (...)` / `without (...)`, or in a matcher
/// `{label op "value"}` of a `credit_risk_*` selector (with the value when `op` is `=`).
#[derive(Debug)]
struct LabelUse {
    label: String,
    /// The metric of the selector, for matchers; `None` for grouping labels.
    metric: Option<String>,
    equals: Option<String>,
}

fn label_uses(expr: &str) -> Vec<LabelUse> {
    let chars: Vec<char> = expr.chars().collect();
    let mut uses = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && is_ident(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if (word == "by" || word == "without") && chars.get(j) == Some(&'(') {
            let close = j + chars[j..]
                .iter()
                .position(|c| *c == ')')
                .expect("closing )");
            let list: String = chars[j + 1..close].iter().collect();
            uses.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|label| !label.is_empty())
                    .map(|label| LabelUse {
                        label: label.to_owned(),
                        metric: None,
                        equals: None,
                    }),
            );
            i = close;
        } else if word.starts_with(PREFIX) && chars.get(j) == Some(&'{') {
            let close = j + chars[j..]
                .iter()
                .position(|c| *c == '}')
                .expect("closing }");
            let matchers: String = chars[j + 1..close].iter().collect();
            for matcher in matchers.split(',') {
                let Some(op_at) = matcher.find(['=', '!']) else {
                    continue;
                };
                let label = matcher[..op_at].trim().to_owned();
                let rest = &matcher[op_at..];
                let equals = (rest.starts_with('=') && !rest.starts_with("=~"))
                    .then(|| rest[1..].trim().trim_matches('"').to_owned());
                uses.push(LabelUse {
                    label,
                    metric: Some(word.clone()),
                    equals,
                });
            }
            i = close;
        }
    }
    uses
}

/// Asserts that every `credit_risk_*` name and label in `expr` is exposed by the worker.
fn check_expression(exposition: &Exposition, source: &str, expr: &str) -> BTreeSet<String> {
    let names = metric_names(expr);
    for name in &names {
        let family = Exposition::family_of(name);
        assert!(
            exposition.families.contains_key(family) || exposition.families.contains_key(name),
            "{source}: `{name}` (family `{family}`) is not registered by the worker; it \
             registers {:?}\nexpression: {expr}",
            exposition.families.keys().collect::<Vec<_>>()
        );
        assert!(
            exposition.samples.contains_key(name.as_str()),
            "{source}: `{name}` is not a sample name of the worker's exposition (a histogram \
             is queried through _bucket/_sum/_count, a counter or gauge by its name)\n\
             expression: {expr}\nexposition:\n{}",
            exposition.text
        );
    }
    if names.is_empty() {
        return names;
    }
    for usage in label_uses(expr) {
        if TARGET_LABELS.contains(&usage.label.as_str()) {
            continue;
        }
        let candidates: Vec<&String> = match &usage.metric {
            Some(metric) => vec![metric],
            None => names.iter().collect(),
        };
        let found = candidates.iter().any(|name| {
            exposition
                .samples
                .get(name.as_str())
                .is_some_and(|(labels, _)| labels.contains(&usage.label))
        });
        assert!(
            found,
            "{source}: label `{}` is not a label of {candidates:?} in the worker's exposition\n\
             expression: {expr}",
            usage.label
        );
        if DYNAMIC_LABELS.contains(&usage.label.as_str()) {
            continue;
        }
        if let (Some(metric), Some(value)) = (&usage.metric, &usage.equals) {
            let pairs = &exposition.samples[metric.as_str()].1;
            assert!(
                pairs.contains(&(usage.label.clone(), value.clone())),
                "{source}: `{metric}` never has {}=\"{value}\" (known values: {pairs:?})",
                usage.label
            );
        }
    }
    names
}

// ---- the dashboard ----------------------------------------------------------------------------

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// (panel title, expression) of every query of the dashboard.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push((title.clone(), expr.to_owned()));
            }
        }
    }
    queries
}

#[test]
fn dashboard_parses_and_has_its_panels() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "credit-risk");
    assert_eq!(dashboard["title"], "Credit-risk scoring");
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");

    let panels = dashboard["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    assert_eq!(titles, PANEL_TITLES);

    let datasource_uid = provisioned_datasource_uid();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        let kind = panel["type"].as_str().unwrap_or("?");
        assert!(
            ["timeseries", "stat", "table"].contains(&kind),
            "{title}: panel type {kind}"
        );
        assert_eq!(
            panel["datasource"]["uid"],
            datasource_uid.as_str(),
            "{title}"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(
                target["datasource"]["uid"],
                datasource_uid.as_str(),
                "{title}"
            );
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{title}: empty query");
            assert_balanced(title, expr);
        }
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && grid["h"].as_u64().unwrap() > 0,
            "{title}: gridPos {grid}"
        );
    }
    assert_no_overlap(panels);
}

fn assert_balanced(title: &str, expr: &str) {
    let mut stack = Vec::new();
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = stack.pop();
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                assert_eq!(open, Some(expected), "{title}: unbalanced `{expr}`");
            }
            _ => {}
        }
    }
    assert!(
        stack.is_empty() && !in_string,
        "{title}: unbalanced `{expr}`"
    );
}

fn assert_no_overlap(panels: &[Value]) {
    let rect = |p: &Value| {
        let g = &p["gridPos"];
        let v = |k: &str| g[k].as_u64().unwrap();
        (v("x"), v("y"), v("x") + v("w"), v("y") + v("h"))
    };
    for (i, a) in panels.iter().enumerate() {
        for b in &panels[i + 1..] {
            let (ra, rb) = (rect(a), rect(b));
            let apart = ra.2 <= rb.0 || rb.2 <= ra.0 || ra.3 <= rb.1 || rb.3 <= ra.1;
            assert!(apart, "panels {} and {} overlap", a["title"], b["title"]);
        }
    }
}

/// `uid:` of the provisioned Prometheus data source.
fn provisioned_datasource_uid() -> String {
    read(DATASOURCE)
        .lines()
        .find_map(|line| line.trim().strip_prefix("uid:"))
        .map(|uid| uid.trim().trim_matches('"').to_owned())
        .expect("the data source has a uid")
}

#[test]
fn dashboard_queries_use_only_metrics_the_worker_registers() {
    let exposition = Exposition::of_worker();
    let mut used = BTreeSet::new();
    for (title, expr) in dashboard_queries(&dashboard()) {
        used.extend(check_expression(
            &exposition,
            &format!("{DASHBOARD}, panel {title:?}"),
            &expr,
        ));
    }
    // The dashboard shows every metric the worker has.
    let used_families: BTreeSet<&str> = used.iter().map(|n| Exposition::family_of(n)).collect();
    for family in exposition.families.keys() {
        assert!(
            used_families.contains(family.as_str()),
            "the dashboard has no panel for `{family}`"
        );
    }
}

// ---- the alert rules ---------------------------------------------------------------------------

/// (alert name, expression) of every rule of alerts.yml, read as text: `expr:` on one line or
/// as a `|` block.
fn alert_rules() -> Vec<(String, String)> {
    let text = read(ALERTS);
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = Vec::new();
    let mut current: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expr) = trimmed.strip_prefix("expr:") {
            let name = current.take().expect("expr: after - alert:");
            let expr = expr.trim();
            if expr == "|" || expr == "|-" || expr == ">" || expr == ">-" {
                let indent = lines[i].len() - trimmed.len();
                let mut block = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                rules.push((name, block.join("\n")));
            } else {
                rules.push((name, expr.to_owned()));
            }
        }
        i += 1;
    }
    rules
}

/// The text of a YAML file without its comments (whole-line comments only).
fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn alert_rules_use_only_metrics_the_worker_registers() {
    let exposition = Exposition::of_worker();
    let rules = alert_rules();
    let names: Vec<&str> = rules.iter().map(|(name, _)| name.as_str()).collect();
    for required in [
        "WorkerDown",
        "ConsumerLagGrowing",
        "EndToEndLatencyP99High",
        "DeadLetterRateSpike",
        "DeliveryFailures",
    ] {
        assert!(names.contains(&required), "{ALERTS} lacks {required}");
    }
    for (name, expr) in &rules {
        check_expression(&exposition, &format!("{ALERTS}, alert {name}"), expr);
    }
    // Also the annotations and anything else that names a metric.
    for name in metric_names(&without_comments(&read(ALERTS))) {
        check_expression(&exposition, ALERTS, &name);
    }
    assert!(
        rules
            .iter()
            .any(|(_, expr)| expr.contains("0.025") && expr.contains("0.99")),
        "the 25 ms p99 objective is not in the rules"
    );
}

#[test]
fn alert_unit_tests_use_the_worker_metrics_and_fire_every_alert() {
    let exposition = Exposition::of_worker();
    let text = read(ALERT_TESTS);
    // Series of the unit tests: `'name{labels}'` after `series:`.
    for line in text.lines() {
        if let Some(series) = line.trim().strip_prefix("- series:") {
            let series = series.trim().trim_matches('\'').trim_matches('"');
            if series.starts_with(PREFIX) {
                check_expression(&exposition, ALERT_TESTS, series);
            }
        }
    }
    // Each alert has a test case in which it fires (a non-empty exp_alerts).
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (alert, _) in alert_rules() {
        let fires = lines.windows(3).any(|w| {
            w[0] == format!("alertname: {alert}")
                && w[1] == "exp_alerts:"
                && w[2].starts_with("- exp_labels:")
        });
        assert!(fires, "{ALERT_TESTS} has no case in which {alert} fires");
        let silent = lines
            .windows(2)
            .any(|w| w[0] == format!("alertname: {alert}") && w[1] == "exp_alerts: []")
            || text.contains(&format!("alertname: {alert}, exp_alerts: []"));
        assert!(
            silent,
            "{ALERT_TESTS} has no case in which {alert} stays silent"
        );
    }
}

// ---- compose, Prometheus targets, Dockerfile -------------------------------------------------

/// Host paths (`./...` or `.`) the compose file mounts or builds from.
fn compose_paths() -> Vec<String> {
    let text = without_comments(&read(COMPOSE));
    let mut paths = Vec::new();
    for line in text.lines() {
        let item = line.trim().trim_start_matches("- ").trim();
        if let Some(context) = item
            .strip_prefix("build:")
            .or_else(|| item.strip_prefix("context:"))
            .or_else(|| item.strip_prefix("dockerfile:"))
            .or_else(|| item.strip_prefix("env_file:"))
            .or_else(|| item.strip_prefix("file:"))
        {
            let context = context.trim().trim_matches('"');
            if !context.is_empty() {
                paths.push(context.to_owned());
            }
        } else if item.starts_with("./") || item.starts_with("\"./") {
            // A bind mount `./host:/container[:mode]`.
            let item = item.trim_matches('"');
            paths.push(item.split(':').next().unwrap_or(item).to_owned());
        }
    }
    paths
}

#[test]
fn compose_refers_only_to_existing_files() {
    let paths = compose_paths();
    for required in [".", "./ops/prometheus", "./ops/grafana/provisioning"] {
        assert!(
            paths.iter().any(|p| p == required),
            "{COMPOSE} does not use {required}: {paths:?}"
        );
    }
    for path in &paths {
        assert!(
            root().join(path).exists(),
            "{COMPOSE} refers to {path}, which does not exist"
        );
    }
    // The image is built from a Dockerfile in the build context.
    assert!(root().join(DOCKERFILE).is_file());
}

/// Service names of the compose file (keys indented by two spaces under `services:`).
fn compose_services() -> BTreeSet<String> {
    let text = read(COMPOSE);
    let mut services = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == "services:";
            continue;
        }
        if inside && line.starts_with("  ") && !line.starts_with("   ") {
            let key = line.trim();
            if let Some(name) = key.split(':').next().filter(|_| !key.starts_with('#')) {
                services.insert(name.to_owned());
            }
        }
    }
    services
}

#[test]
fn prometheus_scrapes_the_compose_workers() {
    let services = compose_services();
    let workers: BTreeSet<&String> = services
        .iter()
        .filter(|s| s.starts_with("worker"))
        .collect();
    assert!(workers.len() >= 2, "workers in {COMPOSE}: {services:?}");
    let config = without_comments(&read(PROMETHEUS));
    let targets: BTreeSet<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|t| t.ends_with(":9464"))
        .map(|t| t.trim_end_matches(":9464").to_owned())
        .collect();
    for worker in workers {
        assert!(targets.contains(worker.as_str()), "{worker} is not scraped");
    }
    for target in &targets {
        assert!(services.contains(target), "target {target} is no service");
    }
    for service in ["kafka", "kafka-init", "prometheus", "grafana", "loadgen"] {
        assert!(services.contains(service), "{COMPOSE} lacks {service}");
    }
    assert!(config.contains("rule_files:") && config.contains("alerts.yml"));
    assert!(config.contains("scrape_interval: 5s"));
}

#[test]
fn dockerfile_copies_only_existing_files() {
    let text = read(DOCKERFILE);
    let mut sources = 0;
    for line in text.lines() {
        let Some(rest) = line
            .trim()
            .strip_prefix("COPY ")
            .or_else(|| line.trim().strip_prefix("ADD "))
        else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue; // from another stage
        }
        let words: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
        for source in &words[..words.len() - 1] {
            assert!(
                Path::new(&root()).join(source).exists(),
                "{DOCKERFILE} copies {source}, which does not exist"
            );
            sources += 1;
        }
    }
    assert!(sources > 0, "no COPY found in {DOCKERFILE}");
    assert!(text.contains("HEALTHCHECK") && text.contains("/healthz"));
    assert!(text.contains("scripts/setup.sh") && text.contains("cargo build --release"));
}

// ---- the tokeniser itself ----------------------------------------------------------------------

#[test]
fn tokeniser_finds_names_and_labels() {
    let expr = "histogram_quantile(0.99, sum by (le, instance) \
                (rate(credit_risk_x_seconds_bucket{instance=~\"$instance\", result=\"error\"}[5m])))";
    assert_eq!(
        metric_names(expr).into_iter().collect::<Vec<_>>(),
        ["credit_risk_x_seconds_bucket"]
    );
    let uses = label_uses(expr);
    let labels: Vec<&str> = uses.iter().map(|u| u.label.as_str()).collect();
    assert_eq!(labels, ["le", "instance", "instance", "result"]);
    assert_eq!(uses[3].equals.as_deref(), Some("error"));
    assert_eq!(uses[2].equals, None);
    assert_eq!(
        Exposition::family_of("credit_risk_x_seconds_bucket"),
        "credit_risk_x_seconds"
    );
    let exposition = Exposition::parse(
        "# TYPE credit_risk_a counter\ncredit_risk_a{reason=\"x\\\"y\",b=\"2\"} 1\n",
    );
    let (labels, pairs) = &exposition.samples["credit_risk_a"];
    assert!(labels.contains("reason") && labels.contains("b"));
    assert!(pairs.contains(&("reason".to_owned(), "x\"y".to_owned())));
}

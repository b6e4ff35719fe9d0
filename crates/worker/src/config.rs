//! Configuration of the scoring worker.
//!
//! Three layers, later ones winning: `config/default.toml` (compiled into the binary, so the
//! worker starts with sane values from any directory), an optional file given with `--config`,
//! and environment variables `CREDIT_RISK__<SECTION>__<KEY>` (e.g.
//! `CREDIT_RISK__KAFKA__BROKERS`), which is how containers are usually configured.
//!
//! [`Config::load`] validates every value before anything starts: a worker that would only
//! discover `max_batch = 0` on its first Kafka message is a worker that crash-loops in
//! production. Every message names the key it is about, so the operator knows what to fix.
//!
//! `kafka.client` is passed verbatim to librdkafka (security and tuning). Secrets live there,
//! so the [`fmt::Display`] and [`fmt::Debug`] forms of the configuration — the only forms that
//! are ever logged — redact every key that looks like a secret ([`credit_core::redact::is_secret_key`]).

use credit_core::explain::ReasonsMode;
use credit_core::logging::LoggingConfig;
use credit_core::redact::{normalise_client_key, without_role_prefix};
use credit_kafka::settings::redacted_client;
use credit_kafka::settings::RESERVED_CLIENT_KEYS;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The built-in defaults (`config/default.toml`).
pub(crate) const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");
/// Prefix of the environment variables that override configuration keys.
pub(crate) const ENV_PREFIX: &str = "CREDIT_RISK";
/// Separator between the prefix, sections and keys of an environment variable name.
pub(crate) const ENV_SEPARATOR: &str = "__";
/// Largest accepted `batching.max_batch`.
pub(crate) const MAX_BATCH_LIMIT: usize = 65_536;
/// Most edges of one field's `fairness.bands`: each edge adds a group, and two series, per
/// field to `/metrics`.
pub(crate) const MAX_FAIRNESS_BANDS: usize = 16;
/// Largest accepted `batching.max_wait_ms`.
pub(crate) const MAX_WAIT_LIMIT_MS: u64 = 60_000;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type (the message names the key).
    /// The message never quotes a value that could be a secret.
    #[error("cannot load configuration: {0}")]
    Load(String),
    /// Values of the right type but outside what the worker accepts, one message per key.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The whole worker configuration.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub batching: BatchingConfig,
    pub model: ModelConfig,
    pub reasons: ReasonsConfig,
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
    pub fairness: FairnessConfig,
}

/// `[kafka]`: where records come from and go to.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers; empty selects embedded mode.
    pub brokers: String,
    pub group_id: String,
    pub input_topic: String,
    pub output_topic: String,
    pub dead_letter_topic: String,
    pub commit_interval_ms: u64,
    pub lag_refresh_ms: u64,
    pub drain_timeout_ms: u64,
    /// Exactly-once mode: each batch's outputs and input offsets in one Kafka transaction.
    #[serde(default, deserialize_with = "strict_bool")]
    pub exactly_once: bool,
    /// The producer's `transactional.id` in exactly-once mode: stable per replica.
    #[serde(default)]
    pub transactional_id: String,
    /// The most an output copies of its input record, in bytes ([`credit_kafka::bounds`]).
    pub max_copied_bytes: usize,
    /// librdkafka properties for both clients; keys normalised by [`normalise_client_key`].
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

/// `[batching]`: how records are grouped into one inference.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingConfig {
    pub max_batch: usize,
    pub max_wait_ms: u64,
}

/// `[model]`: the artifacts and how to run them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub dir: PathBuf,
    /// Overrides the model's stored decision threshold.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// The ONNX Runtime shared library, if not the default search.
    #[serde(default)]
    pub ort_dylib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads of the inference thread (0 = ONNX Runtime decides).
    pub inference_threads: usize,
    /// Runs the inference thread on a core of its own, every other thread off it
    /// ([`crate::pipeline::placement`]).
    #[serde(deserialize_with = "strict_bool")]
    pub reserve_inference_core: bool,
}

/// `[reasons]`: the adverse-action reasons decisions carry ([`credit_core::explain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonsConfig {
    pub mode: ReasonsMode,
    /// Reasons per decision, at most.
    pub top: usize,
}

/// Most reasons one decision may carry.
const MAX_REASONS: usize = 16;

impl ReasonsConfig {
    fn check(&self, problems: &mut Vec<String>) {
        check_range(problems, "reasons.top", self.top, 1, MAX_REASONS);
    }
}

/// `[metrics]`: the HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` for `/metrics`, `/healthz` and `/readyz`.
    pub address: String,
    /// HTTP connections open at once; beyond it the least recently active idle one is closed.
    pub max_connections: usize,
}

/// `[fairness]`: how decisions are grouped for the live fairness metrics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessConfig {
    /// Band edges of protected numbers by field name, for schemas that declare none
    /// ([`crate::telemetry::fairness`]).
    #[serde(default)]
    pub bands: BTreeMap<String, Vec<f64>>,
}

impl FairnessConfig {
    /// The edges' shape; whether they fit a field's bounds is checked against the schema when
    /// a model is loaded.
    fn check(&self, problems: &mut Vec<String>) {
        for (field, edges) in &self.bands {
            let key = format!("fairness.bands.{field}");
            if edges.is_empty() {
                problems.push(format!("{key} must list at least one edge"));
            } else if edges.iter().any(|edge| !edge.is_finite()) {
                problems.push(format!("{key} must be finite numbers, got {edges:?}"));
            } else if edges.windows(2).any(|pair| pair[0] >= pair[1]) {
                problems.push(format!("{key} must be strictly increasing, got {edges:?}"));
            } else if edges.len() > MAX_FAIRNESS_BANDS {
                problems.push(format!(
                    "{key} has {} edges; at most {MAX_FAIRNESS_BANDS} keep the metric's groups few",
                    edges.len()
                ));
            }
        }
    }
}

/// `[logging]`.
impl Config {
    /// The built-in defaults alone, validated (no file, no environment).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::build(None, None, Some(HashMap::new()))
    }

    /// Defaults, then `file` if given, then the process environment; validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::build(file, None, None)
    }

    /// Like [`Config::load`], with the environment given as a map (names as in the process
    /// environment, e.g. `CREDIT_RISK__KAFKA__BROKERS`), so tests need not touch the real one.
    #[cfg(test)]
    pub(crate) fn load_with_env(
        file: Option<&Path>,
        env: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        Self::build(file, None, Some(env))
    }

    /// Defaults, then the TOML text `overrides`, then the environment map; validated.
    pub fn from_toml_with_env(
        overrides: &str,
        env: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        Self::build(None, Some(overrides), Some(env))
    }

    fn build(
        file: Option<&Path>,
        overrides: Option<&str>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        use ::config::{Environment, File, FileFormat};

        // Every source is read and its TOML syntax checked here rather than by the `config`
        // crate, whose messages quote the offending line or value, secrets included.
        let file_text = file.map(read_config_file).transpose()?;
        let env = match env {
            Some(env) => env,
            None => process_environment()?,
        };
        let mut builder = ::config::Config::builder();
        for (origin, text) in [
            (Some("the built-in defaults".to_owned()), Some(DEFAULT_TOML)),
            (
                file.map(|file| file.display().to_string()),
                file_text.as_deref(),
            ),
            (Some("the overrides".to_owned()), overrides),
        ] {
            if let (Some(origin), Some(text)) = (origin, text) {
                check_toml_syntax(&origin, text)?;
                builder = builder.add_source(File::from_str(text, FileFormat::Toml));
            }
        }
        let environment = Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(env));
        let mut config: Config = builder
            .add_source(environment)
            .build()
            .and_then(::config::Config::try_deserialize)
            .map_err(load_error)?;
        config.kafka.client = std::mem::take(&mut config.kafka.client)
            .into_iter()
            .map(|(key, value)| (normalise_client_key(&key), value))
            .collect();
        config.validate()?;
        Ok(config)
    }

    /// Checks every value, reporting all problems at once, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.kafka.check(&mut problems);
        self.batching.check(&mut problems);
        self.model.check(&mut problems);
        self.reasons.check(&mut problems);
        self.metrics.check(&mut problems);
        check_logging(&self.logging, &mut problems);
        self.fairness.check(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every key with its value, secrets redacted: the form in which configuration is logged.
    pub(crate) fn redacted_entries(&self) -> Vec<(String, String)> {
        let k = &self.kafka;
        let mut entries = vec![
            ("kafka.brokers".to_owned(), k.brokers.clone()),
            ("kafka.group_id".to_owned(), k.group_id.clone()),
            ("kafka.input_topic".to_owned(), k.input_topic.clone()),
            ("kafka.output_topic".to_owned(), k.output_topic.clone()),
            (
                "kafka.dead_letter_topic".to_owned(),
                k.dead_letter_topic.clone(),
            ),
            (
                "kafka.commit_interval_ms".to_owned(),
                k.commit_interval_ms.to_string(),
            ),
            (
                "kafka.lag_refresh_ms".to_owned(),
                k.lag_refresh_ms.to_string(),
            ),
            (
                "kafka.drain_timeout_ms".to_owned(),
                k.drain_timeout_ms.to_string(),
            ),
            ("kafka.exactly_once".to_owned(), k.exactly_once.to_string()),
            (
                "kafka.transactional_id".to_owned(),
                k.transactional_id.clone(),
            ),
            (
                "kafka.max_copied_bytes".to_owned(),
                k.max_copied_bytes.to_string(),
            ),
        ];
        for (key, value) in redacted_client(&k.client) {
            entries.push((format!("kafka.client.{key}"), value));
        }
        let m = &self.model;
        entries.extend([
            (
                "batching.max_batch".to_owned(),
                self.batching.max_batch.to_string(),
            ),
            (
                "batching.max_wait_ms".to_owned(),
                self.batching.max_wait_ms.to_string(),
            ),
            ("model.dir".to_owned(), m.dir.display().to_string()),
            (
                "model.threshold".to_owned(),
                m.threshold
                    .map_or_else(|| "(from model)".to_owned(), |t| t.to_string()),
            ),
            (
                "model.ort_dylib".to_owned(),
                m.ort_dylib.as_ref().map_or_else(
                    || "(default search)".to_owned(),
                    |p| p.display().to_string(),
                ),
            ),
            (
                "model.inference_threads".to_owned(),
                m.inference_threads.to_string(),
            ),
            (
                "model.reserve_inference_core".to_owned(),
                m.reserve_inference_core.to_string(),
            ),
            (
                "reasons.mode".to_owned(),
                self.reasons.mode.as_str().to_owned(),
            ),
            ("reasons.top".to_owned(), self.reasons.top.to_string()),
            ("metrics.address".to_owned(), self.metrics.address.clone()),
            (
                "metrics.max_connections".to_owned(),
                self.metrics.max_connections.to_string(),
            ),
            ("logging.format".to_owned(), self.logging.format.to_string()),
            ("logging.level".to_owned(), self.logging.level.clone()),
        ]);
        for (field, edges) in &self.fairness.bands {
            entries.push((format!("fairness.bands.{field}"), format!("{edges:?}")));
        }
        entries
    }
}

impl fmt::Display for Config {
    /// `key=value` pairs with secrets redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.redacted_entries().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value:?}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("kafka", &self.kafka)
            .field("batching", &self.batching)
            .field("model", &self.model)
            .field("metrics", &self.metrics)
            .field("logging", &self.logging)
            .field("fairness", &self.fairness)
            .finish()
    }
}

impl fmt::Debug for KafkaConfig {
    /// Redacts secrets in `client`: a `{:?}` of the configuration must be safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("input_topic", &self.input_topic)
            .field("output_topic", &self.output_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("lag_refresh_ms", &self.lag_refresh_ms)
            .field("drain_timeout_ms", &self.drain_timeout_ms)
            .field("exactly_once", &self.exactly_once)
            .field("transactional_id", &self.transactional_id)
            .field("max_copied_bytes", &self.max_copied_bytes)
            .field("client", &redacted_client(&self.client))
            .finish()
    }
}

impl KafkaConfig {
    /// True when no brokers are configured: the worker runs against an embedded mock cluster.
    pub fn embedded(&self) -> bool {
        self.brokers.trim().is_empty()
    }

    pub(crate) fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    pub(crate) fn lag_refresh(&self) -> Duration {
        Duration::from_millis(self.lag_refresh_ms)
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    fn check(&self, problems: &mut Vec<String>) {
        if self.group_id.trim().is_empty() {
            problems.push("kafka.group_id must not be empty".to_owned());
        }
        let topics = [
            ("kafka.input_topic", &self.input_topic),
            ("kafka.output_topic", &self.output_topic),
            ("kafka.dead_letter_topic", &self.dead_letter_topic),
        ];
        for (key, topic) in topics {
            if let Err(problem) = check_topic_name(topic) {
                problems.push(format!("{key} {problem}, got `{topic}`"));
            }
        }
        for (i, (key_a, a)) in topics.iter().enumerate() {
            for (key_b, b) in &topics[i + 1..] {
                if a == b {
                    problems.push(format!("{key_b} must differ from {key_a}, both are `{a}`"));
                }
            }
        }
        for (key, value, min) in [
            ("kafka.commit_interval_ms", self.commit_interval_ms, 10),
            ("kafka.lag_refresh_ms", self.lag_refresh_ms, 100),
            ("kafka.drain_timeout_ms", self.drain_timeout_ms, 100),
        ] {
            check_range(problems, key, value, min, 3_600_000);
        }
        self.check_max_copied(problems);
        if self.exactly_once && self.transactional_id.trim().is_empty() {
            problems.push(
                "kafka.transactional_id must be set when kafka.exactly_once is true: a stable id \
                 per replica (its pod name, say), so that a restarted replica aborts the \
                 transaction its predecessor left open"
                    .to_owned(),
            );
        }
        for (key, value) in &self.client {
            if key.is_empty() {
                problems.push("kafka.client has an empty key".to_owned());
            } else if RESERVED_CLIENT_KEYS.contains(&without_role_prefix(key)) {
                problems.push(format!(
                    "kafka.client.{key} is set by the worker and cannot be overridden \
                     (use the kafka.* keys; the delivery guarantee depends on it)"
                ));
            } else if value.contains('\0') {
                problems.push(format!("kafka.client.{key} contains a NUL character"));
            }
        }
    }
}

impl KafkaConfig {
    /// The producer's `message.max.bytes` (`producer.` prefixed or not, the prefixed one
    /// winning as in [`crate::delivery::clients`]), if set and a number; librdkafka rejects any
    /// other value itself.
    pub(crate) fn producer_message_max_bytes(&self) -> Option<usize> {
        ["producer.message.max.bytes", "message.max.bytes"]
            .iter()
            .find_map(|key| self.client.get(*key))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Every output must fit the producer's limit, or a large record would stop the worker.
    fn check_max_copied(&self, problems: &mut Vec<String>) {
        use credit_kafka::bounds::{
            DEFAULT_MESSAGE_MAX_BYTES, MIN_COPIED_BYTES, OUTPUT_OVERHEAD_BYTES,
        };
        let limit = self
            .producer_message_max_bytes()
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let max = limit.saturating_sub(OUTPUT_OVERHEAD_BYTES);
        if self.max_copied_bytes < MIN_COPIED_BYTES || self.max_copied_bytes > max {
            problems.push(format!(
                "kafka.max_copied_bytes must be between {MIN_COPIED_BYTES} and {max} (the \
                 producer's message.max.bytes, {limit}, less {OUTPUT_OVERHEAD_BYTES} for the \
                 worker's own headers), got {}",
                self.max_copied_bytes
            ));
        }
    }
}

impl BatchingConfig {
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }

    fn check(&self, problems: &mut Vec<String>) {
        check_range(
            problems,
            "batching.max_batch",
            self.max_batch,
            1,
            MAX_BATCH_LIMIT,
        );
        check_range(
            problems,
            "batching.max_wait_ms",
            self.max_wait_ms,
            0,
            MAX_WAIT_LIMIT_MS,
        );
    }
}

impl ModelConfig {
    fn check(&self, problems: &mut Vec<String>) {
        if self.dir.as_os_str().is_empty() {
            problems.push("model.dir must not be empty".to_owned());
        }
        if let Some(threshold) = self.threshold {
            if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
                problems.push(format!(
                    "model.threshold must be a probability between 0 and 1, got {threshold}"
                ));
            }
        }
        if let Some(path) = &self.ort_dylib {
            if path.as_os_str().is_empty() {
                problems.push("model.ort_dylib must not be empty when set".to_owned());
            }
        }
        check_range(
            problems,
            "model.inference_threads",
            self.inference_threads,
            0,
            256,
        );
    }
}

impl MetricsConfig {
    /// The parsed address (validated at load, so this only fails on a hand-built config).
    pub(crate) fn socket_addr(&self) -> Result<SocketAddr, String> {
        self.address.parse().map_err(|error| {
            format!(
                "metrics.address must be host:port with an IP host (e.g. 0.0.0.0:9464), \
                 got `{}`: {error}",
                self.address
            )
        })
    }

    fn check(&self, problems: &mut Vec<String>) {
        if let Err(problem) = self.socket_addr() {
            problems.push(problem);
        }
        check_range(
            problems,
            "metrics.max_connections",
            self.max_connections,
            1,
            65_536,
        );
    }
}

/// `[logging]`: the level must be a filter `tracing` accepts.
fn check_logging(logging: &LoggingConfig, problems: &mut Vec<String>) {
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&logging.level) {
        problems.push(format!(
            "logging.level must be a level (error, warn, info, debug, trace) or tracing \
             filter directives, got `{}`: {error}",
            logging.level
        ));
    }
}

fn check_range<T: PartialOrd + fmt::Display>(
    problems: &mut Vec<String>,
    key: &str,
    value: T,
    min: T,
    max: T,
) {
    if value < min || value > max {
        problems.push(format!(
            "{key} must be between {min} and {max}, got {value}"
        ));
    }
}

/// Kafka's rules for topic names: 1-249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
fn check_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("must not be empty");
    }
    if topic.len() > 249 {
        return Err("must be at most 249 characters");
    }
    if topic == "." || topic == ".." {
        return Err("must not be `.` or `..`");
    }
    if !topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("may only contain ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// Reads the `--config` file, telling a directory, a missing file and other failures apart.
fn read_config_file(file: &Path) -> Result<String, ConfigError> {
    let shown = file.display();
    if file.is_dir() {
        return Err(ConfigError::Load(format!(
            "configuration file {shown} is a directory, not a file"
        )));
    }
    std::fs::read_to_string(file).map_err(|error| {
        ConfigError::Load(match error.kind() {
            std::io::ErrorKind::NotFound => format!("configuration file {shown} not found"),
            std::io::ErrorKind::InvalidData => {
                format!("configuration file {shown} is not UTF-8 text")
            }
            _ => format!("cannot read configuration file {shown}: {error}"),
        })
    })
}

/// The `CREDIT_RISK__*` variables of the process environment. A value that is not valid
/// UTF-8 is an error naming the variable only (it may be a secret).
fn process_environment() -> Result<HashMap<String, String>, ConfigError> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        // The `config` crate skips names that are not Unicode too.
        let Ok(name) = name.into_string() else {
            continue;
        };
        if !name
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(&prefix))
        {
            continue;
        }
        match value.into_string() {
            Ok(value) => {
                env.insert(name, value);
            }
            Err(_) => {
                return Err(ConfigError::Load(format!(
                    "environment variable {name} is not valid UTF-8 (its value is not shown)"
                )))
            }
        }
    }
    Ok(env)
}

/// Checks that `text` is TOML; the error gives the line, column and problem, not the text.
fn check_toml_syntax(origin: &str, text: &str) -> Result<(), ConfigError> {
    let Err(error) = toml::de::DeTable::parse(text) else {
        return Ok(());
    };
    let position = error
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    Err(ConfigError::Load(format!(
        "{origin}: not valid TOML{position}: {}",
        error.message()
    )))
}

/// A `config` crate error as a message. It names the key and may quote the value, except
/// under `kafka.client`, where a value of the wrong type is described by its key only (only
/// tables and arrays can be: other values become strings).
fn load_error(error: ::config::ConfigError) -> ConfigError {
    match error {
        ::config::ConfigError::Type {
            key: Some(key),
            expected,
            ..
        } if key.starts_with("kafka.client") => ConfigError::Load(format!(
            "`{key}` must be {expected} (its value is not shown)"
        )),
        other => ConfigError::Load(other.to_string()),
    }
}

/// Booleans are `true` or `false`: a TOML boolean or, since environment variables are text,
/// the string `true` or `false` in any case. `"yes"`, `"on"`, `1` and the like are refused
/// (the `config` crate would take them for a boolean).
fn strict_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct StrictBool;

    impl serde::de::Visitor<'_> for StrictBool {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false")
        }

        fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<bool, E> {
            if value.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if value.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Str(value), &self))
            }
        }
    }

    deserializer.deserialize_any(StrictBool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::logging::LogFormat;
    use credit_core::redact::is_secret_key;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn invalid(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid(problems)) => problems.join("; "),
            Err(other) => panic!("expected a validation error, got {other}"),
            Ok(config) => panic!("expected a validation error, got {config}"),
        }
    }

    fn load_message(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(ConfigError::Load(message)) => message,
            Err(other) => panic!("expected a load error, got {other}"),
            Ok(config) => panic!("expected a load error, got {config}"),
        }
    }

    #[test]
    fn defaults_load_and_select_embedded_mode() {
        let config = Config::defaults().unwrap();
        assert!(config.kafka.embedded());
        assert_eq!(config.kafka.group_id, "credit-risk-worker");
        assert_eq!(config.batching.max_batch, 128);
        assert_eq!(config.model.dir, PathBuf::from("models"));
        assert_eq!(config.model.threshold, None);
        assert!(!config.model.reserve_inference_core);
        assert_eq!(config.metrics.address, "0.0.0.0:9464");
        assert_eq!(config.logging.format, LogFormat::Text);
        assert!(config.kafka.client.is_empty());
    }

    #[test]
    fn ages_are_banded_by_default_and_a_file_adds_bands_for_other_fields() {
        let defaults = Config::defaults().unwrap();
        assert_eq!(
            defaults.fairness.bands.get("age_years"),
            Some(&vec![25.0, 35.0, 50.0, 65.0])
        );
        let config = Config::from_toml_with_env(
            "[fairness.bands]\nannual_income = [20000, 50000.5]\n",
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(config.fairness.bands.len(), 2, "{:?}", config.fairness);
        assert_eq!(
            config.fairness.bands.get("annual_income"),
            Some(&vec![20000.0, 50000.5])
        );
    }

    #[test]
    fn fairness_bands_that_are_empty_unordered_or_too_many_are_refused_naming_the_key() {
        let many: Vec<String> = (1..=17).map(|edge| edge.to_string()).collect();
        let message = invalid(Config::from_toml_with_env(
            &format!(
                "[fairness.bands]\nage_years = [35, 25]\nincome = []\ndebt = [{}]\n",
                many.join(", ")
            ),
            HashMap::new(),
        ));
        for words in [
            "fairness.bands.age_years must be strictly increasing",
            "fairness.bands.income must list at least one edge",
            "fairness.bands.debt has 17 edges",
        ] {
            assert!(message.contains(words), "{words}: {message}");
        }
        let message = load_message(Config::from_toml_with_env(
            "[fairness.bands]\nage_years = \"young\"\n",
            HashMap::new(),
        ));
        assert!(message.contains("fairness.bands.age_years"), "{message}");
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(
            &file,
            "[kafka]\nbrokers = \"from-file:9092\"\ngroup_id = \"g-file\"\n\
             [kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\
             [batching]\nmax_batch = 64\n[model]\nthreshold = 0.3\n",
        )
        .unwrap();
        let config = Config::load_with_env(
            Some(&file),
            env(&[
                ("CREDIT_RISK__KAFKA__BROKERS", "from-env:9092"),
                ("CREDIT_RISK__BATCHING__MAX_WAIT_MS", "25"),
                ("CREDIT_RISK__KAFKA__CLIENT__SASL_PASSWORD", "hunter2"),
                ("CREDIT_RISK__LOGGING__FORMAT", "json"),
                ("CREDIT_RISK__MODEL__RESERVE_INFERENCE_CORE", "true"),
                ("UNRELATED__KAFKA__BROKERS", "ignored"),
            ]),
        )
        .unwrap();
        assert!(config.model.reserve_inference_core);
        assert_eq!(config.kafka.brokers, "from-env:9092");
        assert!(!config.kafka.embedded());
        assert_eq!(config.kafka.group_id, "g-file");
        assert_eq!(config.batching.max_batch, 64);
        assert_eq!(config.batching.max_wait(), Duration::from_millis(25));
        assert_eq!(config.model.threshold, Some(0.3));
        assert_eq!(config.logging.format, LogFormat::Json);
        // Defaults not mentioned anywhere survive the deep merge.
        assert_eq!(config.kafka.input_topic, "credit-applications");
        assert_eq!(
            config
                .kafka
                .client
                .get("security.protocol")
                .map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(
            config.kafka.client.get("sasl.password").map(String::as_str),
            Some("hunter2")
        );
    }

    #[test]
    fn client_values_of_other_types_become_strings() {
        let config = Config::from_toml_with_env(
            "[kafka.client]\n\"enable.ssl.certificate.verification\" = false\n\
             \"message.timeout.ms\" = 5000\n",
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            config.kafka.client["enable.ssl.certificate.verification"],
            "false"
        );
        assert_eq!(config.kafka.client["message.timeout.ms"], "5000");
    }

    #[test]
    fn zero_max_batch_is_rejected_naming_the_key_and_range() {
        let message = invalid(Config::from_toml_with_env(
            "[batching]\nmax_batch = 0\n",
            HashMap::new(),
        ));
        assert_eq!(
            message,
            "batching.max_batch must be between 1 and 65536, got 0"
        );
    }

    #[test]
    fn zero_http_connections_is_rejected_naming_the_key_and_range() {
        let message = invalid(Config::from_toml_with_env(
            "[metrics]\nmax_connections = 0\n",
            HashMap::new(),
        ));
        assert_eq!(
            message,
            "metrics.max_connections must be between 1 and 65536, got 0"
        );
    }

    #[test]
    fn all_problems_are_reported_together() {
        let message = invalid(Config::load_with_env(
            None,
            env(&[
                ("CREDIT_RISK__BATCHING__MAX_WAIT_MS", "60001"),
                ("CREDIT_RISK__MODEL__THRESHOLD", "1.5"),
                ("CREDIT_RISK__METRICS__ADDRESS", "localhost"),
                ("CREDIT_RISK__KAFKA__OUTPUT_TOPIC", "credit-applications"),
                ("CREDIT_RISK__KAFKA__DEAD_LETTER_TOPIC", "bad topic"),
                ("CREDIT_RISK__KAFKA__GROUP_ID", " "),
                ("CREDIT_RISK__LOGGING__LEVEL", "info,=[bad"),
            ]),
        ));
        for expected in [
            "batching.max_wait_ms must be between 0 and 60000, got 60001",
            "model.threshold must be a probability between 0 and 1, got 1.5",
            "metrics.address must be host:port",
            "kafka.output_topic must differ from kafka.input_topic",
            "kafka.dead_letter_topic may only contain",
            "kafka.group_id must not be empty",
            "logging.level must be",
        ] {
            assert!(message.contains(expected), "`{expected}` not in: {message}");
        }
    }

    #[test]
    fn reserved_client_keys_are_rejected() {
        let message = invalid(Config::load_with_env(
            None,
            env(&[("CREDIT_RISK__KAFKA__CLIENT__ENABLE_AUTO_COMMIT", "true")]),
        ));
        assert!(
            message.starts_with("kafka.client.enable.auto.commit is set by the worker"),
            "{message}"
        );
        let message = invalid(Config::load_with_env(
            None,
            env(&[(
                "CREDIT_RISK__KAFKA__CLIENT__PRODUCER_ENABLE_IDEMPOTENCE",
                "false",
            )]),
        ));
        assert!(
            message.starts_with("kafka.client.producer.enable.idempotence is set by the worker"),
            "{message}"
        );
    }

    #[test]
    fn exactly_once_needs_a_transactional_id_of_its_own_key() {
        let message = invalid(Config::load_with_env(
            None,
            env(&[("CREDIT_RISK__KAFKA__EXACTLY_ONCE", "true")]),
        ));
        assert!(
            message.starts_with("kafka.transactional_id must be set when kafka.exactly_once"),
            "{message}"
        );
        let config = Config::load_with_env(
            None,
            env(&[
                ("CREDIT_RISK__KAFKA__EXACTLY_ONCE", "true"),
                ("CREDIT_RISK__KAFKA__TRANSACTIONAL_ID", "worker-0"),
            ]),
        )
        .unwrap();
        assert!(config.kafka.exactly_once);
        assert_eq!(config.kafka.transactional_id, "worker-0");
        let message = invalid(Config::load_with_env(
            None,
            env(&[("CREDIT_RISK__KAFKA__CLIENT__TRANSACTIONAL_ID", "sneaky")]),
        ));
        assert!(
            message.starts_with("kafka.client.transactional.id is set by the worker"),
            "{message}"
        );
    }

    #[test]
    fn type_errors_name_the_key() {
        let error =
            Config::load_with_env(None, env(&[("CREDIT_RISK__BATCHING__MAX_BATCH", "lots")]))
                .unwrap_err()
                .to_string();
        assert!(error.contains("batching.max_batch"), "{error}");
        let error = Config::from_toml_with_env("[logging]\nformat = \"xml\"\n", HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("xml"), "{error}");
        assert!(error.contains("logging.format"), "{error}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = Config::from_toml_with_env("[batching]\nmax_bach = 3\n", HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("max_bach"), "{error}");
    }

    #[test]
    fn missing_config_file_is_an_error_naming_it() {
        let error = Config::load_with_env(Some(Path::new("/nonexistent/w.toml")), HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/w.toml"), "{error}");
    }

    #[test]
    fn secrets_are_redacted_in_every_logged_form() {
        let config = Config::load_with_env(
            None,
            env(&[
                ("CREDIT_RISK__KAFKA__CLIENT__SASL_PASSWORD", "hunter2"),
                ("CREDIT_RISK__KAFKA__CLIENT__SSL_KEY_PEM", "-----BEGIN KEY"),
                (
                    "CREDIT_RISK__KAFKA__CLIENT__SASL_OAUTHBEARER_CLIENT_SECRET",
                    "s3cr3t",
                ),
                ("CREDIT_RISK__KAFKA__CLIENT__SASL_USERNAME", "worker"),
            ]),
        )
        .unwrap();
        let shown = format!("{config} {config:?}");
        for secret in ["hunter2", "BEGIN KEY", "s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(
            shown.contains("kafka.client.sasl.password=\"<redacted>\""),
            "{shown}"
        );
        assert!(
            shown.contains("kafka.client.sasl.username=\"<redacted>\""),
            "{shown}"
        );
        assert!(is_secret_key("sasl.jaas.config"));
        assert!(is_secret_key("ssl.keystore.password"));
        assert!(!is_secret_key("security.protocol"));
        assert!(!is_secret_key("ssl.ca.location"));
    }

    #[test]
    fn every_librdkafka_property_that_can_hold_a_credential_is_secret() {
        for key in [
            "sasl.username",
            "sasl.password",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
            "sasl.oauthbearer.assertion.private.key.file",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.oauthbearer.assertion.file",
            "sasl.oauthbearer.assertion.claim.sub",
            "sasl.oauthbearer.extensions",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.kerberos.keytab",
            "sasl.kerberos.kinit.cmd",
            "sasl.jaas.config",
            "ssl.key.location",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.location",
            "ssl.keystore.password",
            "ssl.certificate.pem",
            "ssl.ca.pem",
            "https.ca.pem",
            // Role prefixes, environment spelling, and names of future versions.
            "consumer.sasl.password",
            "PRODUCER_SSL_KEY_PEM",
            "sasl.aws.secret.access.key",
            "sasl.aws.access.key.id",
            "sasl.somethingnew",
            "https.client.key.pem",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "security.protocol",
            "sasl.mechanisms",
            "sasl.mechanism",
            "sasl.kerberos.service.name",
            "sasl.oauthbearer.method",
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.endpoint.identification.algorithm",
            "enable.ssl.certificate.verification",
            "client.id",
            "debug",
            "producer.linger.ms",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn booleans_are_true_or_false_only_from_files_and_the_environment() {
        for key in ["kafka.exactly_once", "model.reserve_inference_core"] {
            let (section, name) = key.split_once('.').unwrap();
            let variable = format!("CREDIT_RISK__{}__{}", section, name).to_uppercase();
            for refused in ["\"yes\"", "\"on\"", "\"1\"", "1", "\"\""] {
                let error = Config::from_toml_with_env(
                    &format!("[{section}]\n{name} = {refused}\n"),
                    HashMap::new(),
                )
                .map(|_| ())
                .unwrap_err()
                .to_string();
                assert!(error.contains(key), "{key} = {refused}: {error}");
            }
            for refused in ["yes", "no", "1", "0", "on", ""] {
                let error = Config::load_with_env(None, env(&[(&variable, refused)]))
                    .map(|_| ())
                    .unwrap_err()
                    .to_string();
                assert!(error.contains(key), "{variable}={refused}: {error}");
            }
            for (text, expected) in [
                ("true", true),
                ("false", false),
                ("TRUE", true),
                ("False", false),
            ] {
                let mut pairs = vec![(variable.as_str(), text)];
                if section == "kafka" {
                    pairs.push(("CREDIT_RISK__KAFKA__TRANSACTIONAL_ID", "worker-0"));
                }
                let config = Config::load_with_env(None, env(&pairs)).unwrap();
                let value = match section {
                    "kafka" => config.kafka.exactly_once,
                    _ => config.model.reserve_inference_core,
                };
                assert_eq!(value, expected, "{variable}={text}");
            }
        }
        let config = Config::from_toml_with_env(
            "[kafka]\nexactly_once = true\ntransactional_id = \"w\"\n\
             [model]\nreserve_inference_core = true\n",
            HashMap::new(),
        )
        .unwrap();
        assert!(config.kafka.exactly_once && config.model.reserve_inference_core);
    }

    #[test]
    fn a_toml_syntax_error_gives_its_place_but_not_the_text() {
        let error = Config::from_toml_with_env(
            "[kafka.client]\n\"sasl.password\" = \"hunter2-unterminated\n",
            HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with(
                "cannot load configuration: the overrides: not valid TOML at line 2, column "
            ),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn a_directory_given_as_the_config_file_is_said_to_be_one() {
        let dir = tempfile::tempdir().unwrap();
        let error = Config::load_with_env(Some(dir.path()), HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("{} is a directory", dir.path().display())),
            "{error}"
        );
        assert!(!error.contains("not found"), "{error}");
    }

    #[test]
    fn a_client_value_of_the_wrong_type_is_named_by_its_key_only() {
        let error = Config::from_toml_with_env(
            "[kafka.client]\n\"sasl.password\" = [\"hunter2\"]\n",
            HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("sasl.password"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn max_copied_bytes_must_fit_under_the_producers_message_max_bytes() {
        assert_eq!(
            Config::defaults().unwrap().kafka.max_copied_bytes,
            512 * 1024
        );
        let message = invalid(Config::load_with_env(
            None,
            env(&[("CREDIT_RISK__KAFKA__MAX_COPIED_BYTES", "999000")]),
        ));
        assert!(
            message.starts_with("kafka.max_copied_bytes must be between 1024 and 983616"),
            "{message}"
        );
        let message = invalid(Config::load_with_env(
            None,
            env(&[(
                "CREDIT_RISK__KAFKA__CLIENT__PRODUCER_MESSAGE_MAX_BYTES",
                "100000",
            )]),
        ));
        assert!(message.contains("message.max.bytes, 100000"), "{message}");
        let config = Config::load_with_env(
            None,
            env(&[
                ("CREDIT_RISK__KAFKA__CLIENT__MESSAGE_MAX_BYTES", "100000"),
                ("CREDIT_RISK__KAFKA__MAX_COPIED_BYTES", "65536"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.producer_message_max_bytes(), Some(100_000));
    }

    #[test]
    fn log_format_parses_case_insensitively() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}

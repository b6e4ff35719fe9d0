//! librdkafka settings of the worker's consumer and producer.
//!
//! Three layers: the worker's defaults (overridable), the operator's `kafka.client` table, and
//! the settings the delivery guarantee rests on (never overridable; [`crate::config`] rejects
//! them in `kafka.client`). A `kafka.client` key prefixed `consumer.` or `producer.` applies to
//! that client only (prefix removed), so producer tuning does not make librdkafka warn about
//! unknown properties on the consumer and vice versa.

use crate::config::KafkaConfig;
use credit_core::redact;
use credit_core::redact::{is_secret_key, REDACTED};
use credit_kafka::settings::layered;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// Prefix of `kafka.client` keys meant for the consumer only.
pub(crate) const CONSUMER_PREFIX: &str = "consumer.";
/// Prefix of `kafka.client` keys meant for the producer only.
pub(crate) const PRODUCER_PREFIX: &str = "producer.";

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Consumer,
    Producer,
}

/// The `kafka.client` entries that apply to `role`, with role prefixes removed.
pub(crate) fn client_overrides(kafka: &KafkaConfig, role: Role) -> Vec<(String, String)> {
    let (own, other) = match role {
        Role::Consumer => (CONSUMER_PREFIX, PRODUCER_PREFIX),
        Role::Producer => (PRODUCER_PREFIX, CONSUMER_PREFIX),
    };
    kafka
        .client
        .iter()
        .filter(|(key, _)| !key.starts_with(other))
        .map(|(key, value)| {
            let key = key.strip_prefix(own).unwrap_or(key);
            (key.to_owned(), value.clone())
        })
        .collect()
}

/// The consumer: a member of `kafka.group_id`, committing only what the worker commits.
///
/// `enable.auto.commit` and `enable.auto.offset.store` are off: offsets are committed from the
/// [`OffsetTracker`](crate::delivery::offsets::OffsetTracker), i.e. only once outputs are
/// acknowledged. `auto.offset.reset` defaults to `earliest`: a new group must score the
/// backlog, not silently skip it.
pub(crate) fn consumer_config(kafka: &KafkaConfig, bootstrap: &str) -> ClientConfig {
    let mut guarantees = vec![
        ("bootstrap.servers", bootstrap),
        ("group.id", kafka.group_id.as_str()),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
    ];
    if kafka.exactly_once {
        // Inputs written by transactional producers: only their committed records.
        guarantees.push(("isolation.level", "read_committed"));
    }
    let mut config = layered(
        &[
            ("auto.offset.reset", "earliest"),
            ("client.id", "credit-risk-worker"),
            // Broker reachability for /readyz comes from these (see
            // crate::delivery::context).
            ("statistics.interval.ms", "1000"),
            // Prefetch at most 16 MiB (librdkafka's default is 64 MiB): at 100k records a
            // second that is still a quarter of a second of work, and it keeps a worker reading
            // a backlog well inside its memory budget. A partition whose fetch finds the queue
            // full retries after 10 ms rather than librdkafka's default 1 s, which with a small
            // queue left the worker idle between fetches.
            ("queued.max.messages.kbytes", "16384"),
            ("fetch.queue.backoff.ms", "10"),
        ],
        client_overrides(kafka, Role::Consumer),
        &guarantees,
    );
    let level = log_level(&config);
    config.set_log_level(level);
    config
}

/// librdkafka's own debug contexts (`kafka.client.debug`) are only useful if their output is
/// not filtered away: enable debug-level logs when they are set.
fn log_level(config: &ClientConfig) -> RDKafkaLogLevel {
    if config.get("debug").is_some_and(|debug| !debug.is_empty()) {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Info
    }
}

/// The producer: idempotent, so retries neither duplicate nor reorder a partition's records,
/// which together with producing in consumption order keeps per-key order.
///
/// `partitioner` defaults to `murmur2_random`, the Java client's key hashing, so decisions for
/// a key land in the same partition number as a Java producer would put them.
///
/// In exactly-once mode it is also transactional (`kafka.transactional_id`); librdkafka then
/// wants `message.timeout.ms` no longer than `transaction.timeout.ms`, both 60 s by default.
pub(crate) fn producer_config(kafka: &KafkaConfig, bootstrap: &str) -> ClientConfig {
    let mut guarantees = vec![
        ("bootstrap.servers", bootstrap),
        ("enable.idempotence", "true"),
    ];
    if kafka.exactly_once {
        guarantees.push(("transactional.id", kafka.transactional_id.as_str()));
    }
    let message_timeout_ms = if kafka.exactly_once {
        "60000"
    } else {
        "120000"
    };
    let mut config = layered(
        &[
            ("client.id", "credit-risk-worker"),
            ("partitioner", "murmur2_random"),
            // 2 ms, not librdkafka's 5 ms: a batch's outputs are already gathered and produced
            // back to back, so under light load a longer linger is only latency (the A/B runs
            // behind this value are in docs/).
            ("linger.ms", "2"),
            ("message.timeout.ms", message_timeout_ms),
        ],
        client_overrides(kafka, Role::Producer),
        &guarantees,
    );
    let level = log_level(&config);
    config.set_log_level(level);
    config
}

/// `error`, from creating a client with the librdkafka `settings`, with no secret value of
/// them left in it: rust-rdkafka's configuration errors repeat the refused value, and
/// librdkafka's messages may quote one. A refused secret setting is still named by its key.
pub(crate) fn without_secrets(
    error: KafkaError,
    settings: &BTreeMap<String, String>,
) -> KafkaError {
    let mut secrets = redact::secret_values(settings);
    match error {
        KafkaError::ClientConfig(result, description, key, value) => {
            let value = if is_secret_key(&key) {
                // Hidden however short: it is the value of a secret key.
                secrets.push(value);
                REDACTED.to_owned()
            } else {
                redact::scrub_with(&value, &secrets).into_owned()
            };
            let description = redact::scrub_with(&description, &secrets).into_owned();
            KafkaError::ClientConfig(result, description, key, value)
        }
        KafkaError::ClientCreation(message) => {
            KafkaError::ClientCreation(redact::scrub_with(&message, &secrets).into_owned())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::HashMap;

    fn kafka(client: &[(&str, &str)]) -> KafkaConfig {
        let mut kafka = Config::defaults().unwrap().kafka;
        kafka.client = client
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        kafka
    }

    #[test]
    fn guarantees_cannot_be_overridden_and_defaults_can() {
        let kafka = kafka(&[
            ("auto.offset.reset", "latest"),
            ("security.protocol", "SASL_SSL"),
        ]);
        let consumer = consumer_config(&kafka, "b:9092");
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("credit-risk-worker"));
        assert_eq!(consumer.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("latest"));
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        let producer = producer_config(&kafka, "b:9092");
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(producer.get("partitioner"), Some("murmur2_random"));
    }

    #[test]
    fn exactly_once_makes_the_producer_transactional_and_the_consumer_read_committed() {
        let mut config = kafka(&[]);
        assert_eq!(producer_config(&config, "b").get("transactional.id"), None);
        assert_eq!(
            consumer_config(&config, "b").get("statistics.interval.ms"),
            Some("1000")
        );
        config.exactly_once = true;
        config.transactional_id = "worker-0".to_owned();
        let producer = producer_config(&config, "b");
        assert_eq!(producer.get("transactional.id"), Some("worker-0"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("message.timeout.ms"), Some("60000"));
        assert_eq!(
            consumer_config(&config, "b").get("isolation.level"),
            Some("read_committed")
        );
    }

    #[test]
    fn role_prefixes_route_keys_to_one_client() {
        let kafka = kafka(&[
            ("producer.message.timeout.ms", "2000"),
            ("consumer.session.timeout.ms", "6000"),
        ]);
        let consumer = consumer_config(&kafka, "b");
        let producer = producer_config(&kafka, "b");
        assert_eq!(producer.get("message.timeout.ms"), Some("2000"));
        assert_eq!(consumer.get("message.timeout.ms"), None);
        assert_eq!(consumer.get("session.timeout.ms"), Some("6000"));
        assert_eq!(producer.get("session.timeout.ms"), None);
    }

    #[test]
    fn role_prefixed_keys_come_from_the_environment_too() {
        let config = Config::load_with_env(
            None,
            HashMap::from([(
                "CREDIT_RISK__KAFKA__CLIENT__PRODUCER_LINGER_MS".to_owned(),
                "20".to_owned(),
            )]),
        )
        .unwrap();
        assert_eq!(
            producer_config(&config.kafka, "b").get("linger.ms"),
            Some("20")
        );
    }

    /// librdkafka here is built without OIDC support, so it refuses these settings; the
    /// refusal must name the key without the value.
    #[test]
    fn a_refused_secret_setting_is_named_without_its_value() {
        for key in [
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.jaas.config",
            // Misspelt: an unknown property, refused too.
            "sasl.pasword",
        ] {
            let canary = format!("canary-{}", key.len());
            let kafka = kafka(&[(key, &canary)]);
            let config = producer_config(&kafka, "b:9092");
            let error = config
                .create::<rdkafka::producer::BaseProducer>()
                .map(drop)
                .expect_err("librdkafka refuses the setting");
            assert!(
                error.to_string().contains(&canary),
                "the raw error leaks: {error}"
            );
            let error = without_secrets(error, &kafka.client);
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(&canary), "{key}: {shown}");
            assert!(shown.contains(key), "{shown}");
        }
    }
}

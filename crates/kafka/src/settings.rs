//! librdkafka settings that worker and backfill treat alike: the keys the delivery guarantee
//! rests on, which no operator setting may override, and how settings are shown in logs.

use credit_core::redact::{is_secret_key, REDACTED};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// librdkafka properties the worker sets itself: its delivery guarantee depends on them (or,
/// for the first two, they have their own configuration keys), so `kafka.client` may not
/// override them.
pub const RESERVED_CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "transactional.id",
];

/// `client` with secret values replaced by [`REDACTED`].
pub fn redacted_client(client: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    client
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_key(key) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

/// A librdkafka configuration in three layers, later ones winning: the client's `defaults`
/// (tuning the operator may change), the operator's `settings`, and the `guarantees` the
/// delivery guarantee rests on, which no setting can change (their keys are refused where
/// settings are read: [`RESERVED_CLIENT_KEYS`]).
pub fn layered<K: AsRef<str>, V: AsRef<str>>(
    defaults: &[(&str, &str)],
    settings: impl IntoIterator<Item = (K, V)>,
    guarantees: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in settings {
        config.set(key.as_ref(), value.as_ref());
    }
    for (key, value) in guarantees {
        config.set(*key, *value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_override_defaults_and_guarantees_override_settings() {
        let config = layered(
            &[("linger.ms", "2"), ("client.id", "default")],
            [("linger.ms", "20"), ("enable.idempotence", "false")],
            &[("enable.idempotence", "true")],
        );
        assert_eq!(config.get("linger.ms"), Some("20"));
        assert_eq!(config.get("client.id"), Some("default"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
    }
}

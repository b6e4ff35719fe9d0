//! librdkafka settings that worker and backfill treat alike: the keys the delivery guarantee
//! rests on, which no operator setting may override, and how settings are shown in logs.

use credit_core::redact::{is_secret_key, REDACTED};
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

//! Kafka topics as backfill input and output: `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`.
//!
//! A Kafka input is read over a fixed range of offsets per partition, resolved once when the
//! run starts (`--from earliest|offset:N|time:T`, `--until end|time:T`; `end` is each
//! partition's high watermark at that moment) and stored in the checkpoint. A resumed run
//! reads the stored range, not a new one, so records that arrived since do not change what
//! "the same run" means, and the run ends even though the topic keeps growing.
//!
//! Partitions are read one after another in partition order, so the input position is one
//! `(partition, next offset)` pair: the checkpoint stays a single consistent point, exactly as
//! for a file. `--shard K/N` takes the partitions `p` with `p mod N = K`, so N machines split a
//! topic without coordination and each partition is scored by exactly one of them; see
//! [`super::shard`] for why the backfill splits statically rather than by group rebalancing.
//! The run's consumer group (`--kafka-group`) receives the committed position after every
//! checkpoint, so the usual Kafka tooling shows the backfill's progress and lag.

use super::shard::Shard;
use credit_kafka::settings::{layered, RESERVED_CLIENT_KEYS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The scheme that marks an input or output as a Kafka topic.
pub(crate) const SCHEME: &str = "kafka://";

/// How long metadata, watermark and offset lookups may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAddress {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topic: String,
}

impl TopicAddress {
    /// `Some` when `text` names a Kafka topic (starts with `kafka://`), with its parse result.
    pub(crate) fn detect(text: &str) -> Option<Result<TopicAddress, TopicError>> {
        text.strip_prefix(SCHEME).map(|rest| {
            let invalid = || TopicError::Address(text.to_string());
            let (brokers, topic) = rest.rsplit_once('/').ok_or_else(invalid)?;
            let valid_topic = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if brokers.is_empty() || !valid_topic {
                return Err(invalid());
            }
            Ok(TopicAddress {
                brokers: brokers.to_string(),
                topic: topic.to_string(),
            })
        })
    }
}

impl fmt::Display for TopicAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.brokers, self.topic)
    }
}

/// Where a Kafka input's range starts in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RangeStart {
    /// The oldest record still in the partition.
    #[default]
    Earliest,
    /// This offset (or the oldest one still there, if it was deleted).
    Offset(i64),
    /// The records with a timestamp at or after this (milliseconds since the epoch).
    Time(i64),
}

/// Where a Kafka input's range ends (exclusive) in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RangeEnd {
    /// The high watermark when the run starts.
    #[default]
    End,
    /// The first record with a timestamp at or after this (milliseconds since the epoch).
    Time(i64),
}

fn parse_time(text: &str, whole: &str) -> Result<i64, TopicError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|error| TopicError::Range {
            text: whole.to_string(),
            problem: format!("`{text}` is not an RFC 3339 time ({error})"),
        })
}

impl FromStr for RangeStart {
    type Err = TopicError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem = |problem: &str| TopicError::Range {
            text: text.to_string(),
            problem: problem.to_string(),
        };
        match text.split_once(':') {
            None if text == "earliest" => Ok(RangeStart::Earliest),
            Some(("offset", n)) => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(RangeStart::Offset(n)),
                _ => Err(problem("the offset must be a non-negative integer")),
            },
            Some(("time", time)) => Ok(RangeStart::Time(parse_time(time, text)?)),
            _ => Err(problem(
                "expected earliest, offset:N or time:RFC3339 (e.g. time:2026-11-01T00:00:00Z)",
            )),
        }
    }
}

impl FromStr for RangeEnd {
    type Err = TopicError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None if text == "end" => Ok(RangeEnd::End),
            Some(("time", time)) => Ok(RangeEnd::Time(parse_time(time, text)?)),
            _ => Err(TopicError::Range {
                text: text.to_string(),
                problem: "expected end or time:RFC3339 (e.g. time:2026-11-28T00:00:00Z)"
                    .to_string(),
            }),
        }
    }
}

/// The offsets of one partition a run reads: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    pub partition: i32,
    pub start: i64,
    /// Exclusive.
    pub end: i64,
}

impl PartitionRange {
    /// Offsets in the range (records, unless some offsets hold transaction markers).
    pub fn len(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a Kafka input stands: the next offset to read in a partition. Partitions before it
/// (in range order) are done, partitions after it not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaPosition {
    pub partition: i32,
    pub offset: i64,
}

/// Why a topic cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(
        "`{0}` is not a Kafka address: expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC \
         (topic names use letters, digits, `.`, `_` and `-`)"
    )]
    Address(String),
    #[error("invalid Kafka range `{text}`: {problem}")]
    Range { text: String, problem: String },
    #[error("invalid Kafka client setting `{0}...`: expected KEY=VALUE")]
    Setting(String),
    #[error("Kafka client setting `{0}` is set by the backfill itself and cannot be overridden")]
    ReservedSetting(String),
    #[error("cannot create a Kafka client for {address}: {message}")]
    Client { address: String, message: String },
    #[error("cannot read the metadata of {address}: {source}")]
    Metadata { address: String, source: KafkaError },
    #[error("topic `{topic}` does not exist on {brokers} (or has no partitions)")]
    NoSuchTopic { brokers: String, topic: String },
    #[error("cannot look up the offsets of {address} partition {partition}: {source}")]
    Offsets {
        address: String,
        partition: i32,
        source: KafkaError,
    },
}

/// Why a client could not be created, without the setting's value: librdkafka's own message
/// repeats the value, and a refused `sasl.password` must not end up in a log.
pub(crate) fn client_error(address: &TopicAddress, error: &KafkaError) -> TopicError {
    let message = match error {
        KafkaError::ClientConfig(_, description, key, value) => {
            let description = if value.is_empty() {
                description.clone()
            } else {
                description.replace(value.as_str(), credit_core::redact::REDACTED)
            };
            format!("setting `{key}` is refused: {description}")
        }
        // librdkafka's own message may quote a secret; the run registered its settings' ones.
        other => credit_core::redact::scrub(&other.to_string()).into_owned(),
    };
    TopicError::Client {
        address: address.to_string(),
        message,
    }
}

/// True for settings the backfill's Kafka clients rely on, which `--kafka-config` cannot
/// change: the worker's reserved keys ([`RESERVED_CLIENT_KEYS`], `transactional.id` among them:
/// a transactional producer refuses every record sent outside a transaction, and the backfill
/// runs none) plus the end-of-partition signal the reader stops on.
fn is_reserved(key: &str) -> bool {
    RESERVED_CLIENT_KEYS.contains(&key) || key == "enable.partition.eof"
}

/// Parses `--kafka-config KEY=VALUE` pass-through settings (security.protocol, sasl.*,
/// ssl.*, tuning), refusing the ones the backfill's guarantees rest on.
pub fn parse_setting(text: &str) -> Result<(String, String), TopicError> {
    // The error repeats the key only: a value may be a password.
    let (key, value) = text
        .split_once('=')
        .filter(|(key, _)| !key.trim().is_empty())
        .ok_or_else(|| TopicError::Setting(key_shown(text)))?;
    let key = key.trim();
    if is_reserved(key) {
        return Err(TopicError::ReservedSetting(key.to_string()));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The leading key characters of a malformed setting: with no `=`, where the key ends and a
/// secret value begins (`sasl.password:hunter2`) cannot be told, so nothing past them is shown.
fn key_shown(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

/// The consumer of a Kafka input: assigned partitions (no rebalancing), manual commits of
/// the checkpointed position to `group`, and an end-of-partition signal, on which (as on an
/// idle poll) the reader checks whether the partition's range is done.
pub fn consumer_config(
    address: &TopicAddress,
    group: &str,
    settings: &BTreeMap<String, String>,
) -> ClientConfig {
    layered(
        &[
            ("client.id", "credit-risk-backfill"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            // Partitions are read one after another: when one is done, its last (empty) fetch
            // holds the connection for up to this long before the next partition's data flows.
            ("fetch.wait.max.ms", "50"),
        ],
        settings,
        &[
            ("bootstrap.servers", &address.brokers),
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
        ],
    )
}

/// The producer of a Kafka output: idempotent, Java-compatible key hashing (a key's
/// decisions land in the partition the worker would put them in).
pub fn producer_config(
    address: &TopicAddress,
    settings: &BTreeMap<String, String>,
) -> ClientConfig {
    layered(
        &[
            ("client.id", "credit-risk-backfill"),
            ("partitioner", "murmur2_random"),
            ("linger.ms", "20"),
            ("compression.type", "lz4"),
            ("message.timeout.ms", "120000"),
        ],
        settings,
        &[
            ("bootstrap.servers", &address.brokers),
            ("enable.idempotence", "true"),
        ],
    )
}

/// The partitions of `address` that belong to `shard` (partition `p` to shard `p mod N`),
/// in partition order.
pub(crate) fn shard_partitions(
    consumer: &BaseConsumer,
    address: &TopicAddress,
    shard: Shard,
) -> Result<Vec<i32>, TopicError> {
    let metadata = consumer
        .fetch_metadata(Some(&address.topic), LOOKUP_TIMEOUT)
        .map_err(|source| TopicError::Metadata {
            address: address.to_string(),
            source,
        })?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|topic| topic.name() == address.topic && topic.error().is_none())
        .flat_map(|topic| topic.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(TopicError::NoSuchTopic {
            brokers: address.brokers.clone(),
            topic: address.topic.clone(),
        });
    }
    partitions.sort_unstable();
    Ok(partitions
        .into_iter()
        .filter(|&p| shard.contains(u64::from(p.unsigned_abs())))
        .collect())
}

/// Resolves `start..end` into offsets for every partition of `partitions`. Time bounds
/// resolve to the whole retained log (`low..high`): they are applied to record timestamps while
/// reading (see [`super::source::kafka`]), because the brokers at hand cannot be trusted with
/// timestamp lookups.
pub(crate) fn resolve_ranges(
    consumer: &BaseConsumer,
    address: &TopicAddress,
    partitions: &[i32],
    start: RangeStart,
    end: RangeEnd,
) -> Result<Vec<PartitionRange>, TopicError> {
    let mut ranges = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&address.topic, partition, LOOKUP_TIMEOUT)
            .map_err(|source| TopicError::Offsets {
                address: address.to_string(),
                partition,
                source,
            })?;
        let first = match start {
            RangeStart::Earliest | RangeStart::Time(_) => low,
            RangeStart::Offset(n) => n.max(low),
        };
        let last = match end {
            RangeEnd::End | RangeEnd::Time(_) => high,
        };
        let first = first.clamp(low, high);
        ranges.push(PartitionRange {
            partition,
            start: first,
            end: last.clamp(first, high),
        });
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_addresses_are_recognised_and_checked() {
        assert!(TopicAddress::detect("loans.csv").is_none());
        let address = TopicAddress::detect("kafka://a:9092,b:9092/loans.history")
            .unwrap()
            .unwrap();
        assert_eq!(address.brokers, "a:9092,b:9092");
        assert_eq!(address.topic, "loans.history");
        assert_eq!(address.to_string(), "kafka://a:9092,b:9092/loans.history");
        for bad in [
            "kafka://a:9092",
            "kafka:///topic",
            "kafka://a:9092/",
            "kafka://a/b c",
        ] {
            let error = TopicAddress::detect(bad).unwrap().unwrap_err();
            assert!(error.to_string().contains("HOST:PORT"), "{bad}: {error}");
        }
    }

    #[test]
    fn range_bounds_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            "earliest".parse::<RangeStart>().unwrap(),
            RangeStart::Earliest
        );
        assert_eq!(
            "offset:42".parse::<RangeStart>().unwrap(),
            RangeStart::Offset(42)
        );
        assert_eq!(
            "time:1970-01-01T00:00:01Z".parse::<RangeStart>().unwrap(),
            RangeStart::Time(1000)
        );
        assert_eq!("end".parse::<RangeEnd>().unwrap(), RangeEnd::End);
        assert_eq!(
            "time:1970-01-01T00:00:02+00:00"
                .parse::<RangeEnd>()
                .unwrap(),
            RangeEnd::Time(2000)
        );
        let error = "offset:-1".parse::<RangeStart>().unwrap_err();
        assert!(error.to_string().contains("non-negative"), "{error}");
        let error = "time:yesterday".parse::<RangeEnd>().unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
        assert!("latest".parse::<RangeStart>().is_err());
        assert!("earliest".parse::<RangeEnd>().is_err());
    }

    #[test]
    fn a_refused_setting_is_named_without_its_value() {
        let address = TopicAddress::detect("kafka://b:1/t").unwrap().unwrap();
        let error = consumer_config(
            &address,
            "g",
            &BTreeMap::from([("security.protocol".into(), "hunter2-not-a-protocol".into())]),
        )
        .create::<BaseConsumer>()
        .map(drop)
        .unwrap_err();
        let message = client_error(&address, &error).to_string();
        assert!(message.contains("security.protocol"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn pass_through_settings_cannot_touch_the_guarantees() {
        assert_eq!(
            parse_setting("security.protocol=SASL_SSL").unwrap(),
            ("security.protocol".to_string(), "SASL_SSL".to_string())
        );
        assert_eq!(
            parse_setting("sasl.password=a=b").unwrap().1,
            "a=b",
            "only the first `=` separates"
        );
        assert!(matches!(
            parse_setting("enable.auto.commit=true"),
            Err(TopicError::ReservedSetting(_))
        ));
        // Everything the worker reserves is reserved here too.
        for key in RESERVED_CLIENT_KEYS {
            assert!(
                matches!(
                    parse_setting(&format!("{key}=x")),
                    Err(TopicError::ReservedSetting(named)) if named == *key
                ),
                "{key} is accepted"
            );
        }
        assert!(matches!(
            parse_setting("no-equals-sign"),
            Err(TopicError::Setting(_))
        ));
        for mistyped in [
            "sasl.password:hunter2",
            "sasl.password hunter2",
            " sasl.password",
        ] {
            let error = parse_setting(mistyped).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("`sasl.password...`"), "{error}");
        }
        let config = consumer_config(
            &TopicAddress::detect("kafka://b:1/t").unwrap().unwrap(),
            "nightly",
            &BTreeMap::from([("isolation.level".into(), "read_uncommitted".into())]),
        );
        assert_eq!(config.get("isolation.level"), Some("read_uncommitted"));
        assert_eq!(config.get("group.id"), Some("nightly"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
    }
}

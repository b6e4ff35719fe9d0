//! Reading topics from the beginning without joining a group, and looking up a group's
//! committed offsets: how embedded mode and the test scenarios check the worker's outputs.

use crate::feed::now_micros;
use crate::headers::to_pairs;
use crate::log::LoggingContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long metadata and offset look-ups may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A record read from a topic, owning its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tailed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: Option<i64>,
    /// When this reader received it, microseconds since the epoch.
    pub received_at_us: i64,
}

impl Tailed {
    /// The value of the last header named `key`, as text.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .and_then(|(_, value)| value.as_deref())
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The key as text.
    pub fn key_text(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|key| std::str::from_utf8(key).ok())
    }
}

/// Partition count of each topic.
fn partition_counts<C: Consumer<LoggingContext>>(
    consumer: &C,
    topics: &[&str],
) -> KafkaResult<Vec<(String, i32)>> {
    topics
        .iter()
        .map(|topic| {
            let metadata = consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT)?;
            let count = metadata
                .topics()
                .iter()
                .find(|t| t.name() == *topic)
                .map_or(0, |t| t.partitions().len());
            if count == 0 {
                return Err(KafkaError::MetadataFetch(
                    rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition,
                ));
            }
            Ok((
                (*topic).to_owned(),
                i32::try_from(count).unwrap_or(i32::MAX),
            ))
        })
        .collect()
}

/// A reader of whole topics (every partition, from the beginning).
pub struct Tail {
    consumer: StreamConsumer<LoggingContext>,
}

impl Tail {
    /// Opens a reader of `topics`. Blocking (metadata round trip), and it must run inside a
    /// tokio runtime: call it from `spawn_blocking`.
    pub(crate) fn open_blocking(bootstrap: &str, topics: &[&str]) -> KafkaResult<Self> {
        let consumer: StreamConsumer<LoggingContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "credit-risk-tail")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(LoggingContext)?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partitions) in partition_counts(&consumer, topics)? {
            for partition in 0..partitions {
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
            }
        }
        consumer.assign(&assignment)?;
        Ok(Self { consumer })
    }

    /// Opens a reader (see [`Tail::open_blocking`]) from async code.
    pub async fn open(bootstrap: &str, topics: &[&str]) -> KafkaResult<Self> {
        let bootstrap = bootstrap.to_owned();
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            Self::open_blocking(&bootstrap, &topics)
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// The next record of any of the topics.
    pub async fn next(&self) -> KafkaResult<Tailed> {
        let message = self.consumer.recv().await?;
        Ok(Tailed {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map(to_pairs).unwrap_or_default(),
            timestamp_ms: message.timestamp().to_millis(),
            received_at_us: now_micros(),
        })
    }

    /// Appends records to `into` until `done(into)` holds or `timeout` passes; returns whether
    /// `done` was reached.
    pub async fn collect_until(
        &self,
        into: &mut Vec<Tailed>,
        mut done: impl FnMut(&[Tailed]) -> bool,
        timeout: Duration,
    ) -> KafkaResult<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(into) {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Ok(record)) => into.push(record),
                // librdkafka reconnects by itself; a reader outlives a broker outage.
                Ok(Err(error)) if is_transient(&error) => {}
                Ok(Err(error)) => return Err(error),
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// Connection errors that librdkafka reports to the reader but recovers from on its own.
fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
    )
}

/// The positions committed by `group` for each partition of `topic` (partitions without a
/// commit are absent). Blocking.
pub fn committed_offsets_blocking(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> KafkaResult<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer<LoggingContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(LoggingContext)?;
    let mut list = TopicPartitionList::new();
    for (topic, partitions) in partition_counts(&consumer, &[topic])? {
        for partition in 0..partitions {
            list.add_partition(&topic, partition);
        }
    }
    let committed = consumer.committed_offsets(list, LOOKUP_TIMEOUT)?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(position) => Some((element.partition(), position)),
            _ => None,
        })
        .collect())
}

/// The high watermark (end offset) of each partition of `topic`. Blocking.
pub fn high_watermarks_blocking(bootstrap: &str, topic: &str) -> KafkaResult<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer<LoggingContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(LoggingContext)?;
    partition_counts(&consumer, &[topic])?
        .into_iter()
        .flat_map(|(topic, partitions)| (0..partitions).map(move |p| (topic.clone(), p)))
        .map(|(topic, partition)| {
            let (_, high) = consumer.fetch_watermarks(&topic, partition, LOOKUP_TIMEOUT)?;
            Ok((partition, high))
        })
        .collect()
}

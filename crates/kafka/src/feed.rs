//! Producing records into a topic, for embedded mode and the test scenarios: the "other team"
//! that sends applications to the worker.

use crate::log::{forward_log, LoggingContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Header the feeder stamps on every record: microseconds since the epoch at produce time.
/// Outputs carry the input's headers, so a reader of the output topic can measure end-to-end
/// latency with microsecond resolution (Kafka timestamps are milliseconds).
pub const FED_AT_HEADER: &str = "fed-at-us";

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where a fed record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fed {
    pub key: Option<Vec<u8>>,
    pub partition: i32,
    pub offset: i64,
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// A record's delivery report, once it has arrived: where it landed.
type Report = Option<KafkaResult<(i32, i64)>>;

/// Collects delivery reports by record index.
struct FeedContext {
    reports: Mutex<Vec<Report>>,
}

impl ClientContext for FeedContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }
}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let report = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = reports.get_mut(index) {
            *slot = Some(report);
        }
    }
}

/// Produces `records` to `topic` in order (idempotent producer: per-partition order kept),
/// at most `rate` records per second if given, and waits for every delivery report.
/// Blocking: call it from a blocking thread.
pub fn feed_blocking(
    bootstrap: &str,
    topic: &str,
    records: &[FeedRecord],
    rate: Option<f64>,
) -> KafkaResult<Vec<Fed>> {
    let producer: ThreadedProducer<FeedContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "2")
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(FeedContext {
            reports: Mutex::new(vec![None; records.len()]),
        })?;
    let started = Instant::now();
    for (index, record) in records.iter().enumerate() {
        if let Some(rate) = rate.filter(|rate| *rate > 0.0) {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let fed_at = now_micros().to_string();
        let headers = record
            .headers
            .iter()
            .fold(
                OwnedHeaders::new_with_capacity(record.headers.len() + 1),
                |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(v),
                    })
                },
            )
            .insert(Header {
                key: FED_AT_HEADER,
                value: Some(&fed_at),
            });
        let mut base: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, index).headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key);
        }
        if let Some(payload) = &record.payload {
            base = base.payload(payload);
        }
        loop {
            match producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let reports = std::mem::take(
        &mut *producer
            .context()
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    reports
        .into_iter()
        .zip(records)
        .map(|(report, record)| {
            let (partition, offset) = report.unwrap_or(Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut,
            )))?;
            Ok(Fed {
                key: record.key.clone(),
                partition,
                offset,
            })
        })
        .collect()
}

/// Creates topics through the admin API (real brokers; the mock cluster has no CreateTopics).
/// A topic that already exists is not an error.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> KafkaResult<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<LoggingContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create_with_context(LoggingContext)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

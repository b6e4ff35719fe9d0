//! Publishing decisions and dead letters, and learning when the broker has them.
//!
//! The producer is a `ThreadedProducer`: `send` only enqueues (no await, so the publishing
//! thread can call it), and librdkafka's delivery report for each record arrives on the
//! producer's polling thread, in [`DeliveryContext::delivery`]. That callback is where an input
//! offset becomes committable (rust-rdkafka's at-least-once example stores offsets at the same
//! point): the output is on the broker, with the replication the producer asked for.

use crate::kafka::context::forward_log;
use crate::kafka::headers;
use crate::kafka::offsets::SharedOffsets;
use crate::pipeline::batch::Source;
use crate::pipeline::decision::Class;
use crate::pipeline::decode::{RejectReason, Rejection};
use crate::pipeline::stop::Stop;
use crate::service::metrics::Metrics;
use prometheus::IntCounter;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What an output is, for the metrics counted on its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Decision(Class),
    DeadLetter(RejectReason),
}

/// Travels with each produced record and comes back in its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryToken {
    pub source: Source,
    pub kind: OutputKind,
}

/// Why an output could not be handed to the producer.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot produce to {topic}: {source}")]
    Produce {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("the worker is stopping after a failure; output not produced")]
    Stopped,
}

/// The producer's context: settles input offsets and counts outputs as reports arrive.
pub struct DeliveryContext {
    pub input_topic: String,
    pub offsets: Arc<SharedOffsets>,
    pub metrics: Metrics,
    pub stop: Stop,
    /// Whether a delivery report settles its input offset (at-least-once). In exactly-once
    /// mode the batch's transaction commit does (see [`crate::kafka::transaction`]).
    settle_on_delivery: bool,
    /// The labelled counters, looked up once rather than per report.
    counters: OutputCounters,
}

/// `decisions_total` per class and `dead_lettered_total` per reason, resolved once.
struct OutputCounters {
    decisions: [IntCounter; Class::ALL.len()],
    dead_lettered: [IntCounter; RejectReason::ALL.len()],
}

impl OutputCounters {
    fn of(metrics: &Metrics) -> Self {
        Self {
            decisions: Class::ALL
                .map(|class| metrics.decisions.with_label_values(&[class.as_str()])),
            dead_lettered: RejectReason::ALL
                .map(|reason| metrics.dead_lettered.with_label_values(&[reason.as_str()])),
        }
    }

    fn count(&self, kind: OutputKind) {
        let counter = match kind {
            OutputKind::Decision(class) => Class::ALL
                .iter()
                .position(|c| *c == class)
                .and_then(|i| self.decisions.get(i)),
            OutputKind::DeadLetter(reason) => RejectReason::ALL
                .iter()
                .position(|r| *r == reason)
                .and_then(|i| self.dead_lettered.get(i)),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
    }
}

impl DeliveryContext {
    pub fn new(
        input_topic: String,
        offsets: Arc<SharedOffsets>,
        metrics: Metrics,
        stop: Stop,
    ) -> Self {
        Self {
            input_topic,
            offsets,
            settle_on_delivery: true,
            counters: OutputCounters::of(&metrics),
            metrics,
            stop,
        }
    }

    /// Exactly-once mode: input offsets are settled when their transaction commits, not on
    /// delivery (a delivered output may still be aborted).
    pub fn settled_by_transactions(mut self) -> Self {
        self.settle_on_delivery = false;
        self
    }

    /// An output that will never be delivered: pin its input offset (never committed, so it is
    /// scored again after a restart) and stop the worker. Continuing would only pile up more
    /// records behind an offset that can no longer be committed.
    fn failed(&self, token: &DeliveryToken, error: &KafkaError) {
        self.offsets
            .fail(token.source.partition, token.source.offset);
        self.metrics.delivery_failures.inc();
        let cause = format!(
            "output of {} partition {} offset {} was not delivered: {error}",
            self.input_topic, token.source.partition, token.source.offset
        );
        tracing::error!("{cause}");
        self.stop.fail(cause);
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<DeliveryToken>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                if self.settle_on_delivery {
                    self.offsets
                        .ack(token.source.partition, token.source.offset);
                }
                self.counters.count(token.kind);
                self.metrics.observe_latency(
                    token.source.timestamp_ms.and_then(seconds_since),
                    token.source.consumed_at.elapsed().as_secs_f64(),
                );
            }
            Err((error, _)) => self.failed(&token, error),
        }
    }
}

/// Seconds from a Kafka timestamp (milliseconds since the epoch) until now; never negative
/// (clocks of producer and worker may disagree a little). `None` for unset timestamps.
fn seconds_since(timestamp_ms: i64) -> Option<f64> {
    if timestamp_ms <= 0 {
        return None;
    }
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_micros();
    let now_us = i128::try_from(now_us).ok()?;
    let elapsed_us = now_us - i128::from(timestamp_ms) * 1000;
    Some((elapsed_us.max(0) as f64) / 1e6)
}

/// The worker's producer and output topics.
pub struct Publisher {
    producer: ThreadedProducer<DeliveryContext>,
    output_topic: String,
    dead_letter_topic: String,
}

impl Publisher {
    pub fn new(
        config: &ClientConfig,
        context: DeliveryContext,
        output_topic: &str,
        dead_letter_topic: &str,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: config.create_with_context(context)?,
            output_topic: output_topic.to_owned(),
            dead_letter_topic: dead_letter_topic.to_owned(),
        })
    }

    fn context(&self) -> &DeliveryContext {
        self.producer.context()
    }

    /// The producer itself, for the transaction calls of exactly-once mode.
    pub fn producer(&self) -> &ThreadedProducer<DeliveryContext> {
        &self.producer
    }

    /// Produces a decision keyed by the application id.
    pub fn decision(
        &self,
        application_id: &str,
        payload: &[u8],
        headers: OwnedHeaders,
        token: DeliveryToken,
    ) -> Result<(), PublishError> {
        let record = BaseRecord::with_opaque_to(&self.output_topic, Box::new(token))
            .key(application_id.as_bytes())
            .payload(payload)
            .headers(headers);
        self.send(record, &self.output_topic)
    }

    /// Produces a dead letter: the original key and payload (either may be absent), the
    /// original headers plus the error and source headers.
    pub fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        input_headers: Option<OwnedHeaders>,
        rejection: &Rejection,
        token: DeliveryToken,
    ) -> Result<(), PublishError> {
        let headers = headers::dead_letter_headers(
            input_headers,
            rejection,
            &self.context().input_topic,
            &token.source,
        );
        let mut record: BaseRecord<'_, [u8], [u8], Box<DeliveryToken>> =
            BaseRecord::with_opaque_to(&self.dead_letter_topic, Box::new(token)).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.send(record, &self.dead_letter_topic)
    }

    /// Enqueues a record, waiting while librdkafka's queue is full (backpressure: the
    /// publishing thread slows down, the batch channels fill, consumption pauses).
    fn send(
        &self,
        mut record: BaseRecord<'_, [u8], [u8], Box<DeliveryToken>>,
        topic: &str,
    ) -> Result<(), PublishError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    if self.context().stop.failure().is_some() {
                        let source = returned.delivery_opaque.source;
                        self.context().offsets.fail(source.partition, source.offset);
                        return Err(PublishError::Stopped);
                    }
                    record = returned;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, returned)) => {
                    self.context().failed(&returned.delivery_opaque, &error);
                    return Err(PublishError::Produce {
                        topic: topic.to_owned(),
                        source: error,
                    });
                }
            }
        }
    }

    /// Waits until every produced record has a delivery report (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Records produced and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_measured_from_kafka_timestamps_and_never_negative() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let latency = seconds_since(now_ms - 1500).unwrap();
        assert!((1.4..5.0).contains(&latency), "{latency}");
        assert_eq!(seconds_since(now_ms + 60_000), Some(0.0));
        assert_eq!(seconds_since(0), None);
        assert_eq!(seconds_since(-1), None);
    }
}

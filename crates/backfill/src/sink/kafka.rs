//! Kafka output: one decision per loan on a topic, in the worker's decision format
//! ([`credit_core::decision`]) with its `model-version` header, keyed by application id.
//!
//! Committing means "every record written so far is acknowledged by the brokers" (a flush
//! that checks the delivery reports). A topic cannot be cut back like a file, so a run killed
//! between publishing a chunk and saving its checkpoint publishes that chunk again when it
//! resumes: a Kafka output is at-least-once, with at most the last uncommitted chunk repeated,
//! the same decision for the same key, which a reader keyed by application id absorbs.

use super::{OutputSpec, OutputState, Sink, SinkError};
use crate::row::ScoredRow;
use crate::topic::{self, TopicAddress};
use credit_core::decision::{Class, DecisionRecord};
use credit_kafka::headers::decision_headers;
use credit_kafka::log::forward_log;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How long a commit waits for the brokers to acknowledge what was published.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(180);

/// Counts acknowledgements and keeps the first failure.
#[derive(Default)]
pub(crate) struct DeliveryReports {
    delivered: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReports {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }
}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                let mut first = self
                    .first_failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Publishes decisions to a topic.
pub(crate) struct KafkaSink {
    producer: BaseProducer<DeliveryReports>,
    address: TopicAddress,
    spec: OutputSpec,
    payload: Vec<u8>,
    /// Decisions of one chunk share a scoring time.
    scored_at: String,
}

impl KafkaSink {
    /// A producer for `address` with the pass-through `settings`.
    pub(crate) fn open(
        address: &TopicAddress,
        settings: &std::collections::BTreeMap<String, String>,
        spec: OutputSpec,
    ) -> Result<Self, SinkError> {
        let producer = topic::producer_config(address, settings)
            .create_with_context(DeliveryReports::default())
            .map_err(|error| SinkError::Kafka {
                address: address.to_string(),
                message: format!(
                    "cannot create the producer: {}",
                    topic::client_error(address, &error)
                ),
            })?;
        Ok(Self {
            producer,
            address: address.clone(),
            spec,
            payload: Vec::with_capacity(256),
            scored_at: String::new(),
        })
    }

    fn error(&self, message: impl Into<String>) -> SinkError {
        SinkError::Kafka {
            address: self.address.to_string(),
            message: message.into(),
        }
    }

    fn publish(&mut self, row: &ScoredRow) -> Result<(), SinkError> {
        let record = DecisionRecord {
            application_id: &row.row.application_id,
            decision: Class::from_probability(row.probability_bad, self.spec.threshold),
            probability_bad: row.probability_bad,
            threshold: self.spec.threshold,
            model_version: &self.spec.model_version,
            scored_at: &self.scored_at,
            reasons: self.spec.reasons_of(row),
        };
        record
            .encode_into(&mut self.payload)
            .map_err(|error| self.error(format!("cannot encode a decision: {error}")))?;
        let mut pending = BaseRecord::to(&self.address.topic)
            .key(row.row.application_id.as_bytes())
            .payload(self.payload.as_slice())
            .headers(decision_headers(None, &self.spec.model_version));
        loop {
            match self.producer.send(pending) {
                Ok(()) => return Ok(()),
                // The local queue is full: serve delivery reports until there is room.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    self.producer.poll(Duration::from_millis(50));
                    pending = record;
                }
                Err((error, _)) => {
                    return Err(SinkError::Kafka {
                        address: self.address.to_string(),
                        message: format!(
                            "cannot publish the decision for {}: {error}",
                            row.row.application_id
                        ),
                    })
                }
            }
        }
    }

    /// Waits until everything published is acknowledged, and fails if anything was not.
    fn settle(&mut self) -> Result<OutputState, SinkError> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|error| {
            self.error(format!("not acknowledged in {FLUSH_TIMEOUT:?}: {error}"))
        })?;
        let reports = self.producer.context();
        let failure = reports
            .first_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(failure) = failure {
            return Err(self.error(format!("a decision was not delivered: {failure}")));
        }
        Ok(OutputState {
            bytes: 0,
            parts: 0,
            messages: reports.delivered.load(Ordering::Relaxed),
        })
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, rows: &[ScoredRow]) -> Result<(), SinkError> {
        self.scored_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for row in rows {
            self.publish(row)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn commit_due(&self) -> bool {
        true
    }

    fn commit(&mut self) -> Result<OutputState, SinkError> {
        self.settle()
    }

    fn flush_uncommitted(&mut self) -> Result<(), SinkError> {
        self.settle().map(drop)
    }

    fn finish(mut self: Box<Self>) -> Result<OutputState, SinkError> {
        self.settle()
    }
}

//! Fetching from Kafka: the batcher's [`RecordSource`] in the worker.
//!
//! Each fetched message is decoded here, on the borrowed message, so a valid record's payload
//! is parsed in place and never copied; only a record bound for the dead-letter topic keeps its
//! bytes, and of a large one only what its dead letter holds ([`credit_kafka::bounds`]). The
//! offset is registered as in flight *before* the record goes to the batcher, so no commit can
//! pass it until its output is acknowledged.
//!
//! Polling also serves the consumer's callbacks (rebalances, commit results, statistics): they
//! run inside [`ConsumerSource::next`], on the intake thread.

use crate::delivery::origin::Origin;
use crate::delivery::WorkerConsumer;
use crate::pipeline::batch::{Body, Consumed};
use crate::pipeline::intake::{Polled, RecordSource};
use credit_core::decode::{decode, RejectReason, Rejection, MAX_KEY_BYTES};
use credit_core::schema::Schema;
use credit_kafka::bounds::{dead_letter_copy, decision_headers_copy, DeadLetterCopy};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause after a consumer error, at most: a persistent one (unknown topic, broker down) must
/// not spin the intake thread, and a batch waiting for its deadline should not wait much
/// longer than that.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Pause after a consumer error, at least.
const MIN_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// A rejected record's key as logged: at most [`MAX_KEY_BYTES`] of it, so a huge key cannot
/// turn one warning into half a megabyte of log.
fn key_for_log(key: &[u8]) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return String::from_utf8_lossy(key).into_owned();
    }
    format!(
        "{}... ({} bytes)",
        String::from_utf8_lossy(&key[..MAX_KEY_BYTES]),
        key.len()
    )
}

/// Turns a fetched message into a [`Consumed`] record decoded with `schema`, copying at most
/// `max_copied` bytes of it (`kafka.max_copied_bytes`).
pub(crate) fn to_consumed(
    message: &BorrowedMessage<'_>,
    schema: &Schema,
    max_copied: usize,
) -> Consumed {
    let source = Origin {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        consumed_at: Instant::now(),
    };
    match decode(schema, message.key(), message.payload()) {
        Ok((application_id, applicant)) => Consumed {
            source,
            headers: decision_headers_copy(message.headers(), max_copied),
            body: Body::Valid {
                application_id,
                applicant,
            },
        },
        Err(rejection) => {
            let DeadLetterCopy {
                key,
                payload,
                headers,
                cut,
            } = dead_letter_copy(
                message.key(),
                message.payload(),
                message.headers(),
                max_copied,
            );
            let rejection = match cut {
                None => rejection,
                Some(original) => Rejection::new(
                    RejectReason::Oversize,
                    "record",
                    format!(
                        "the record's key ({} bytes), payload ({} bytes) and headers ({} \
                         bytes) exceed the {max_copied}-byte limit of a dead letter, which \
                         holds a prefix of each; it was rejected as {rejection}",
                        original.key,
                        original.payload.unwrap_or_default(),
                        original.headers,
                    ),
                ),
            };
            Consumed {
                source,
                headers,
                body: Body::Invalid {
                    rejection,
                    key,
                    payload,
                },
            }
        }
    }
}

/// The worker's consumer as a record source.
pub(crate) struct ConsumerSource {
    consumer: Arc<WorkerConsumer>,
    /// `kafka.max_copied_bytes`.
    max_copied: usize,
}

impl ConsumerSource {
    pub(crate) fn new(consumer: Arc<WorkerConsumer>, max_copied: usize) -> Self {
        Self {
            consumer,
            max_copied,
        }
    }
}

/// `timeout` rounded up to whole milliseconds, librdkafka's unit. rust-rdkafka truncates: a
/// batch 0.9 ms from its deadline would be polled with no wait at all, again and again, and
/// the intake thread would spin until the deadline passed, up to a millisecond per batch.
/// Under light load, where batches close on their deadline, that spin was most of the
/// thread's CPU. Rounding up sends such a batch under a millisecond late instead. (rdkafka's
/// poll loop still truncates what is left after serving a log or statistics event, a rare
/// case.)
fn whole_millis_up(timeout: Duration) -> Duration {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

impl RecordSource for ConsumerSource {
    fn next(&mut self, timeout: Duration, schema: &Schema) -> Polled {
        let consumed = match self.consumer.poll(whole_millis_up(timeout)) {
            None => return Polled::Idle,
            Some(Ok(message)) => to_consumed(&message, schema, self.max_copied),
            Some(Err(error)) => {
                // A persistent error (unknown topic, broker down) must not spin the thread.
                tracing::warn!(%error, "consumer error");
                std::thread::sleep(ERROR_BACKOFF.min(timeout.max(MIN_ERROR_BACKOFF)));
                return Polled::Idle;
            }
        };
        let context = self.consumer.context();
        let source = consumed.source;
        tracing::trace!(
            partition = source.partition,
            offset = source.offset,
            "consumed"
        );
        context.offsets.register(source.partition, source.offset);
        context.metrics.records_consumed.inc();
        if let Body::Invalid { rejection, key, .. } = &consumed.body {
            tracing::warn!(
                partition = source.partition,
                offset = source.offset,
                key = %key_for_log(key.as_deref().unwrap_or_default()),
                reason = rejection.reason.as_str(),
                field = rejection.field,
                problem = rejection.message,
                "record rejected; sending it to the dead-letter topic"
            );
        }
        Polled::Record(consumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_round_up_to_whole_milliseconds_so_a_near_deadline_does_not_spin() {
        assert_eq!(whole_millis_up(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            whole_millis_up(Duration::from_nanos(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            whole_millis_up(Duration::from_micros(900)),
            Duration::from_millis(1)
        );
        assert_eq!(
            whole_millis_up(Duration::from_millis(2)),
            Duration::from_millis(2)
        );
        assert_eq!(
            whole_millis_up(Duration::from_micros(1100)),
            Duration::from_millis(2)
        );
        assert_eq!(
            whole_millis_up(Duration::MAX),
            Duration::from_millis(u64::MAX)
        );
    }

    #[test]
    fn a_rejected_records_key_is_logged_whole_up_to_the_key_limit_and_cut_beyond_it() {
        assert_eq!(key_for_log(b"app-1"), "app-1");
        let limit = [b'k'; MAX_KEY_BYTES];
        assert_eq!(key_for_log(&limit), "k".repeat(MAX_KEY_BYTES));
        let huge = vec![b'k'; 1_000_000];
        let logged = key_for_log(&huge);
        assert_eq!(
            logged,
            format!("{}... (1000000 bytes)", "k".repeat(MAX_KEY_BYTES))
        );
    }
}

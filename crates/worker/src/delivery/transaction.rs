//! Exactly-once mode: each batch's outputs and its input offsets in one Kafka transaction.
//!
//! At-least-once (the default) commits input offsets after the outputs are acknowledged, so a
//! crash between the two answers some records twice. With `kafka.exactly_once` the worker's
//! producer is transactional and the publishing thread wraps every batch in a transaction:
//! `begin`, produce the batch's decisions and dead letters, send the batch's next input
//! positions to the transaction (`send_offsets_to_transaction`, with the consumer's group
//! metadata, so a fenced or revoked generation cannot commit), `commit`. Either all of it
//! becomes visible to `read_committed` readers and the group's offsets move, or none of it: a
//! crash mid-batch leaves an open transaction that the replica's successor (same
//! `kafka.transactional_id`) aborts when it starts, and the successor scores the batch again.
//!
//! Consequences elsewhere: the consumer never commits on its own in this mode (no periodic,
//! revocation or shutdown commit: a plain commit of a position whose transaction was aborted
//! would lose records), and an input offset is settled in the tracker only once its
//! transaction committed, so revocation and shutdown wait for whole transactions.
//!
//! A failed transaction stops the worker, as a failed delivery does in at-least-once mode: the
//! consumer has already fetched past the batch, and starting over from the committed positions
//! is what a restart does. Except when the transaction failed only because the broker refused
//! some of its outputs for a reason of their records (too large, invalid): a restart would fail
//! on them again. The transaction is aborted (librdkafka refuses its later outputs, or fails its
//! commit), and the publishing thread produces the batch again in a new transaction with those
//! outputs replaced by dead letters ([`crate::pipeline::publishing`]); a producer that cannot
//! abort (fenced) fails the next `begin`, which stops the worker.

use crate::delivery::origin::Origin;
use crate::delivery::publish::Publisher;
use crate::delivery::WorkerConsumer;
use crate::telemetry::metrics::Metrics;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// Why a transaction could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("cannot initialise the transactional producer (transactional.id `{id}`): {source}")]
    Init {
        id: String,
        #[source]
        source: KafkaError,
    },
    #[error("transaction {step} failed: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("the consumer has no group metadata to commit offsets in a transaction")]
    NoGroupMetadata,
}

impl TransactionError {
    /// Whether aborting the transaction leaves the producer usable (librdkafka's
    /// `txn_requires_abort`, not fatal): the batch can then be produced again in a new one. A
    /// produce request refused for its records leaves sequence numbers unused, and the next
    /// transaction's commit fails this way.
    pub(crate) fn is_abortable(&self) -> bool {
        match self {
            Self::Step {
                source: KafkaError::Transaction(error),
                ..
            } => error.txn_requires_abort() && !error.is_fatal(),
            _ => false,
        }
    }
}

/// The exactly-once machinery the publishing thread drives.
pub(crate) struct Transactions {
    publisher: Arc<Publisher>,
    consumer: Arc<WorkerConsumer>,
    input_topic: String,
    timeout: Duration,
    metrics: Metrics,
}

impl Transactions {
    /// Initialises the transactional producer: registers `transactional.id` with the
    /// transaction coordinator, which aborts any transaction a predecessor with the same id
    /// left open and fences that predecessor. Blocking (broker round trips).
    pub(crate) fn init(
        publisher: Arc<Publisher>,
        consumer: Arc<WorkerConsumer>,
        input_topic: String,
        transactional_id: &str,
        timeout: Duration,
        metrics: Metrics,
    ) -> Result<Self, TransactionError> {
        publisher
            .producer()
            .init_transactions(timeout)
            .map_err(|source| TransactionError::Init {
                id: transactional_id.to_owned(),
                source,
            })?;
        tracing::info!(
            transactional_id,
            "exactly-once mode: transactional producer initialised"
        );
        Ok(Self {
            publisher,
            consumer,
            input_topic,
            timeout,
            metrics,
        })
    }

    /// Opens the transaction of the next batch.
    pub(crate) fn begin(&self) -> Result<(), TransactionError> {
        self.publisher
            .producer()
            .begin_transaction()
            .map_err(|source| TransactionError::Step {
                step: "begin",
                source,
            })
    }

    /// Adds the batch's next input positions to the open transaction and commits it; on
    /// failure the transaction is aborted (if the producer still can) and the error returned.
    pub(crate) fn commit(&self, sources: &[Origin]) -> Result<(), TransactionError> {
        let committed = self.send_offsets(sources).and_then(|()| {
            self.publisher
                .producer()
                .commit_transaction(self.timeout)
                .map_err(|source| TransactionError::Step {
                    step: "commit",
                    source,
                })
        });
        match committed {
            Ok(()) => {
                self.metrics.count_transaction(true);
                Ok(())
            }
            Err(error) => {
                self.metrics.count_transaction(false);
                if let Err(abort) = self.publisher.producer().abort_transaction(self.timeout) {
                    tracing::warn!(%abort, "abort of the failed transaction failed too");
                }
                Err(error)
            }
        }
    }

    /// Aborts the open transaction after a failure before its commit (best effort: the worker
    /// is stopping, and a transaction left open is aborted by the successor's `init`).
    pub(crate) fn abort(&self) {
        self.metrics.count_transaction(false);
        if let Err(error) = self.publisher.producer().abort_transaction(self.timeout) {
            tracing::warn!(%error, "abort of the unfinished transaction failed");
        }
    }

    fn send_offsets(&self, sources: &[Origin]) -> Result<(), TransactionError> {
        let positions = next_positions(sources);
        if positions.is_empty() {
            return Ok(());
        }
        let step = |source| TransactionError::Step {
            step: "send_offsets",
            source,
        };
        let mut list = TopicPartitionList::with_capacity(positions.len());
        for (partition, position) in positions {
            list.add_partition_offset(&self.input_topic, partition, Offset::Offset(position))
                .map_err(step)?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or(TransactionError::NoGroupMetadata)?;
        self.publisher
            .producer()
            .send_offsets_to_transaction(&list, &metadata, self.timeout)
            .map_err(step)
    }
}

/// The position to commit per partition after a batch: one past the highest offset the batch
/// consumed there (offsets may have gaps, e.g. transaction markers in the input).
pub(crate) fn next_positions(sources: &[Origin]) -> Vec<(i32, i64)> {
    let mut positions: Vec<(i32, i64)> = Vec::new();
    for source in sources {
        let next = source.offset + 1;
        match positions
            .iter_mut()
            .find(|(partition, _)| *partition == source.partition)
        {
            Some((_, position)) => *position = (*position).max(next),
            None => positions.push((source.partition, next)),
        }
    }
    positions.sort_unstable();
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(partition: i32, offset: i64) -> Origin {
        Origin {
            partition,
            offset,
            timestamp_ms: None,
            consumed_at: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_batch_commits_one_past_its_highest_offset_per_partition() {
        let sources = [
            source(1, 7),
            source(0, 3),
            source(1, 8),
            source(0, 5),
            source(2, 0),
        ];
        assert_eq!(next_positions(&sources), vec![(0, 6), (1, 9), (2, 1)]);
    }

    #[test]
    fn an_empty_batch_commits_nothing() {
        assert!(next_positions(&[]).is_empty());
    }
}

//! librdkafka callbacks: logging, the consumer's reaction to rebalances and commits, and
//! broker reachability from its statistics.
//!
//! librdkafka's log lines go to `tracing` through [`credit_kafka::log::forward_log`].
//!
//! Reachability: librdkafka retries a lost broker on its own, forever, and keeps the partition
//! assignment meanwhile, so nothing in the consumer API says "cut off". Its statistics do: every
//! `statistics.interval.ms` they list each broker connection with its state. [`brokers_up`]
//! reads the few fields needed (not the whole document) and the consumer context feeds the
//! answer to `/readyz` and `credit_risk_brokers_up`.

use crate::delivery::commit::{commit_tracked, Scope};
use crate::delivery::offsets::SharedOffsets;
use crate::stop::Stop;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use credit_kafka::log::forward_log;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// The part of librdkafka's statistics JSON that says which brokers are connected.
#[derive(Debug, Deserialize)]
struct BrokerStatistics {
    #[serde(default)]
    brokers: HashMap<String, BrokerState>,
}

#[derive(Debug, Deserialize)]
struct BrokerState {
    /// `UP` when connected (others: `INIT`, `DOWN`, `CONNECT`, `AUTH`, `TRY_CONNECT`, ...).
    state: String,
    /// `configured` (bootstrap), `learned` (from metadata), `internal` or `logical` (not
    /// connections to a broker).
    #[serde(default)]
    source: String,
}

/// How many real broker connections are up, from one librdkafka statistics document; `None`
/// if it cannot be read (then nothing is concluded).
pub(crate) fn brokers_up(statistics: &[u8]) -> Option<usize> {
    let statistics: BrokerStatistics = serde_json::from_slice(statistics).ok()?;
    Some(
        statistics
            .brokers
            .values()
            .filter(|broker| {
                broker.state == "UP" && !matches!(broker.source.as_str(), "internal" | "logical")
            })
            .count(),
    )
}

/// Runs `wait`, a blocking call, from inside a librdkafka callback.
///
/// The worker's rebalance callback runs inside the intake thread's poll, outside any runtime,
/// and simply blocks. Should a consumer be polled from a task instead (a runtime worker
/// thread), blocking there would also stall the tasks being waited for: on the multi-thread
/// runtime `block_in_place` hands this thread's other tasks to another worker first; on a
/// current-thread runtime nothing else could run while we block, so there is no point in
/// waiting: `None`.
fn block_if_possible<R>(wait: impl FnOnce() -> R) -> Option<R> {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Some(tokio::task::block_in_place(wait))
        }
        Ok(_) => None,
        Err(_) => Some(wait()),
    }
}

/// Records consumed but not yet handed on to scoring (the batch being filled), which a
/// revocation must send on before it can wait for their outputs. The pipeline implements it;
/// delivery does not depend on how batches are built.
pub(crate) trait Unsent: Send + Sync {
    /// Hands whatever is held on now.
    fn flush(&self);
}

/// The worker consumer's context: drains and commits revoked partitions, keeps readiness and
/// the assigned-partitions gauge current, and re-arms failed commits.
pub(crate) struct WorkerConsumerContext {
    /// The input topic (the only one the worker subscribes to).
    pub topic: String,
    pub offsets: Arc<SharedOffsets>,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    /// How long a revocation waits for in-flight records.
    pub drain_timeout: Duration,
    /// The batch being filled: a revocation sends it on at once rather than after
    /// `max_wait`, since the callback runs on the intake thread that would otherwise send it.
    pub open_batch: Arc<dyn Unsent>,
    /// Once the worker is stopping, its own shutdown drains and commits; a revocation then
    /// (the consumer leaving the group) has nothing to wait for.
    pub stop: Stop,
    /// Whether the consumer commits offsets itself (at-least-once). In exactly-once mode the
    /// batch transactions commit them, and a revocation only waits for those in flight.
    pub commits: bool,
}

impl WorkerConsumerContext {
    /// Before partitions are taken away: let their in-flight records finish, then commit
    /// synchronously, so the next owner starts exactly after what this worker delivered.
    fn on_revoke(&self, consumer: &BaseConsumer<Self>, revoked: &TopicPartitionList) {
        let partitions: Vec<i32> = revoked
            .elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect();
        if partitions.is_empty() {
            return;
        }
        tracing::info!(
            ?partitions,
            "partitions revoked; draining in-flight records"
        );
        self.open_batch.flush();
        let offsets = Arc::clone(&self.offsets);
        let timeout = if self.stop.is_stopping() {
            Duration::ZERO
        } else {
            self.drain_timeout
        };
        match block_if_possible(|| offsets.wait_drained(Some(&partitions), timeout)) {
            Some(0) => {}
            Some(left) => tracing::warn!(
                left,
                ?partitions,
                "records still in flight when the drain timed out; the next owner of these \
                 partitions will score them again"
            ),
            None => tracing::warn!(
                "not draining revoked partitions: the worker runs on a current-thread runtime"
            ),
        }
        if !self.commits {
            self.forget(&partitions);
            return;
        }
        match commit_tracked(
            consumer,
            &self.topic,
            &self.offsets,
            Some(&partitions),
            Scope::All,
            CommitMode::Sync,
        ) {
            Ok(committed) => {
                if !committed.is_empty() {
                    self.metrics.count_commit(true);
                }
                tracing::info!(?committed, "committed revoked partitions")
            }
            Err(error) => {
                self.metrics.count_commit(false);
                tracing::warn!(%error, "commit of revoked partitions failed; the next owner \
                               may score some records again")
            }
        }
        self.forget(&partitions);
    }

    /// Drops the revoked partitions' offsets and lag gauges: another consumer owns them now.
    fn forget(&self, partitions: &[i32]) {
        let mut tracker = self.offsets.lock();
        for partition in partitions {
            tracker.remove(*partition);
            let _ = self
                .metrics
                .consumer_lag
                .remove_label_values(&[&partition.to_string()]);
        }
    }
}

impl ClientContext for WorkerConsumerContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    /// Broker reachability for `/readyz`: not ready while no broker connection is up.
    fn stats_raw(&self, statistics: &[u8]) {
        let Some(up) = brokers_up(statistics) else {
            tracing::debug!("unreadable librdkafka statistics; reachability unchanged");
            return;
        };
        self.metrics
            .brokers_up
            .set(i64::try_from(up).unwrap_or(i64::MAX));
        let reachable = up > 0;
        let was = self.health.set_broker_reachable(reachable);
        if was && !reachable {
            tracing::warn!("no broker connection is up: not ready until one is back");
        } else if !was && reachable {
            tracing::info!(brokers_up = up, "broker connection back: ready again");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for WorkerConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) => {
                self.health.set_assigned_partitions(0);
                self.on_revoke(consumer, revoked);
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|list| {
                list.elements_for_topic(&self.topic)
                    .iter()
                    .map(|element| element.partition())
                    .collect()
            })
            .unwrap_or_default();
        self.health.set_assigned_partitions(assigned.len());
        self.metrics
            .assigned_partitions
            .set(i64::try_from(assigned.len()).unwrap_or(i64::MAX));
        tracing::info!(partitions = ?assigned, "partition assignment changed");
    }

    /// Commit results that librdkafka reports on its own (the worker's commits are synchronous
    /// and counted where they are made, see [`crate::delivery::commit`]): a failure re-arms the
    /// positions so the next round commits them again.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                tracing::warn!(%error, "offset commit failed; it will be retried");
                let mut tracker = self.offsets.lock();
                for element in offsets.elements_for_topic(&self.topic) {
                    if let Offset::Offset(position) = element.offset() {
                        tracker.commit_failed(element.partition(), position);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real librdkafka 2.12 consumer's statistics.
    fn statistics(first: &str, second: &str) -> String {
        format!(
            r#"{{"name":"credit-risk-worker#consumer-1","type":"consumer","brokers":{{
                "127.0.0.1:9092/bootstrap":{{"name":"127.0.0.1:9092/bootstrap","nodeid":-1,
                    "source":"configured","state":"{first}","stateage":100}},
                "127.0.0.1:9092/1":{{"name":"127.0.0.1:9092/1","nodeid":1,"source":"learned",
                    "state":"{second}","stateage":100}},
                "GroupCoordinator":{{"name":"GroupCoordinator","nodeid":-1,
                    "source":"logical","state":"UP"}}}},
                "topics":{{}}}}"#
        )
    }

    #[test]
    fn counts_connected_brokers_and_ignores_logical_ones() {
        assert_eq!(brokers_up(statistics("UP", "UP").as_bytes()), Some(2));
        assert_eq!(brokers_up(statistics("INIT", "UP").as_bytes()), Some(1));
    }

    #[test]
    fn a_cluster_with_every_connection_down_has_no_broker_up() {
        assert_eq!(
            brokers_up(statistics("DOWN", "TRY_CONNECT").as_bytes()),
            Some(0)
        );
    }

    #[test]
    fn unreadable_statistics_conclude_nothing() {
        assert_eq!(brokers_up(b"not json"), None);
        assert_eq!(brokers_up(br#"{"brokers": 3}"#), None);
    }
}

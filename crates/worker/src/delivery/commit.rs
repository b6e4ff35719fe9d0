//! Committing the positions the offset tracker allows.
//!
//! Called from three places: the periodic committer, the rebalance callback before partitions
//! are revoked, and shutdown. All three commit synchronously (the periodic one on a blocking
//! thread) and one at a time (the offsets' commit-order lock is held from reading the positions
//! until the broker answers), so a periodic commit computed before a revocation can never be
//! sent after the revocation's own commit and move a position backwards.
//!
//! Why not asynchronous commits: rust-rdkafka 0.39 never calls
//! `ConsumerContext::commit_callback` for a manual `CommitMode::Async` commit
//! (fede1024/rust-rdkafka#856), so its failures would go unseen and uncounted. A synchronous
//! commit once per `commit_interval_ms` costs one round trip per second on a blocking thread
//! and gives every commit a known result for `credit_risk_offset_commits_total`.

use crate::delivery::offsets::SharedOffsets;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// Which positions a commit sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only positions that changed since the last commit (periodic commits).
    Changed,
    /// Every position (the commits before revocation and at shutdown, which must not rely on
    /// an earlier asynchronous commit having succeeded).
    All,
}

/// Commits the committable position of the tracked partitions of `topic` (of `only`, if
/// given). Returns what was committed (for async commits: handed to librdkafka; a later
/// failure is reported to `commit_callback`, which re-arms it).
pub(crate) fn commit_tracked<C, K>(
    consumer: &K,
    topic: &str,
    offsets: &SharedOffsets,
    only: Option<&[i32]>,
    scope: Scope,
    mode: CommitMode,
) -> KafkaResult<Vec<(i32, i64)>>
where
    C: ConsumerContext,
    K: Consumer<C> + ?Sized,
{
    let _order = offsets.commit_order();
    let candidates = {
        let tracker = offsets.lock();
        match scope {
            Scope::Changed => tracker.commit_candidates(only),
            Scope::All => tracker.positions(only),
        }
    };
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let mut list = TopicPartitionList::with_capacity(candidates.len());
    for &(partition, position) in &candidates {
        list.add_partition_offset(topic, partition, Offset::Offset(position))?;
    }
    consumer.commit(&list, mode)?;
    let mut tracker = offsets.lock();
    for &(partition, position) in &candidates {
        tracker.mark_committed(partition, position);
    }
    Ok(candidates)
}

/// Commits every `interval` until `stop` (synchronously, on a blocking thread): bounds how
/// much is scored again after a crash, without a broker round trip per record. Every commit
/// that sends positions is counted in `credit_risk_offset_commits_total` by its result.
pub(crate) async fn commit_periodically(
    consumer: std::sync::Arc<crate::delivery::WorkerConsumer>,
    topic: String,
    offsets: std::sync::Arc<SharedOffsets>,
    interval: std::time::Duration,
    stop: crate::stop::Stop,
    metrics: crate::telemetry::metrics::Metrics,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.stopped() => break,
            _ = ticker.tick() => {}
        }
        let (consumer, topic, offsets) = (
            std::sync::Arc::clone(&consumer),
            topic.clone(),
            std::sync::Arc::clone(&offsets),
        );
        let result = tokio::task::spawn_blocking(move || {
            commit_tracked(
                &*consumer,
                &topic,
                &offsets,
                None,
                Scope::Changed,
                CommitMode::Sync,
            )
        })
        .await;
        match result {
            Ok(Ok(committed)) if !committed.is_empty() => {
                metrics.count_commit(true);
                tracing::debug!(?committed, "offsets committed")
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                metrics.count_commit(false);
                tracing::warn!(%error, "offset commit failed; retrying next round")
            }
            Err(error) => tracing::warn!(%error, "offset commit task failed"),
        }
    }
}

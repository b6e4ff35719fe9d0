//! Committing the positions the offset tracker allows.
//!
//! Called from three places: the periodic committer (async commit), the rebalance callback
//! before partitions are revoked (sync), and shutdown (sync). The tracker stays locked for the
//! duration of the call, so a periodic commit computed before a revocation can never be sent
//! after the revocation's own commit and move a position backwards.

use crate::kafka::offsets::SharedOffsets;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// Which positions a commit sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only positions that changed since the last commit (periodic commits).
    Changed,
    /// Every position (the commits before revocation and at shutdown, which must not rely on
    /// an earlier asynchronous commit having succeeded).
    All,
}

/// Commits the committable position of the tracked partitions of `topic` (of `only`, if
/// given). Returns what was committed (for async commits: handed to librdkafka; a later
/// failure is reported to `commit_callback`, which re-arms it).
pub fn commit_tracked<C, K>(
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
    let mut tracker = offsets.lock();
    let candidates = match scope {
        Scope::Changed => tracker.commit_candidates(only),
        Scope::All => tracker.positions(only),
    };
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let mut list = TopicPartitionList::with_capacity(candidates.len());
    for &(partition, position) in &candidates {
        list.add_partition_offset(topic, partition, Offset::Offset(position))?;
    }
    consumer.commit(&list, mode)?;
    for &(partition, position) in &candidates {
        tracker.mark_committed(partition, position);
    }
    Ok(candidates)
}

/// Commits (asynchronously) every `interval` until `stop`: bounds how much is scored again
/// after a crash, without a broker round trip per record.
pub async fn commit_periodically(
    consumer: std::sync::Arc<crate::kafka::WorkerConsumer>,
    topic: String,
    offsets: std::sync::Arc<SharedOffsets>,
    interval: std::time::Duration,
    stop: crate::pipeline::stop::Stop,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.stopped() => break,
            _ = ticker.tick() => {}
        }
        match commit_tracked(
            &*consumer,
            &topic,
            &offsets,
            None,
            Scope::Changed,
            CommitMode::Async,
        ) {
            Ok(committed) if !committed.is_empty() => {
                tracing::debug!(?committed, "offsets committed")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "offset commit failed; retrying next round"),
        }
    }
}

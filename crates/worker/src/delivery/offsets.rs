//! Which input offsets may be committed: the heart of the at-least-once guarantee.
//!
//! A record's offset may only be committed once its output (decision or dead letter) has been
//! acknowledged by the broker. Outputs are acknowledged out of order (different output
//! partitions, retries), but a Kafka commit is a single position per partition meaning
//! "everything before this is done". So, per partition, the tracker keeps the set of offsets
//! still in flight; the committable position is the lowest of them, or one past the highest
//! offset seen when none is in flight.
//!
//! A record whose delivery *failed* stays in flight for good: the position can never pass it,
//! so after a restart the record is consumed and scored again. Duplicates are possible (that is
//! what at-least-once means); losses are not.
//!
//! [`OffsetTracker`] is plain bookkeeping, unit-tested on its own; [`SharedOffsets`] wraps it
//! for the three threads that touch it: the intake thread registers offsets, librdkafka's
//! producer thread acknowledges them, and the rebalance callback waits for them to drain.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// In-flight offsets of one partition.
///
/// Offsets arrive in increasing order, so they are kept in a window in that order: a
/// registration appends, an acknowledgement is a binary search, and the committable position
/// is the front once acknowledged offsets are released from it. No allocation per record, and
/// this runs for every record on the intake thread and in every delivery report. The rare
/// offset registered out of order (a seek back) goes to a set instead.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct PartitionState {
    /// Offsets in increasing order, each with whether its output is still awaited. The front
    /// is always awaited: acknowledged offsets are released from the front at once.
    window: VecDeque<(i64, Awaited)>,
    /// In flight, registered at or below an offset already seen and not in `window`.
    stragglers: BTreeSet<i64>,
    /// In flight (window or stragglers) but with an output that could not be delivered.
    failed: BTreeSet<i64>,
    /// Offsets in flight, including `failed`.
    in_flight: usize,
    /// One past the highest offset registered: the position when nothing is in flight.
    next: i64,
    /// The last position handed to a commit, to skip commits that would change nothing.
    committed: Option<i64>,
}

/// Whether an offset's output is still awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    Yes,
    No,
}

impl PartitionState {
    fn register(&mut self, offset: i64) {
        self.next = self.next.max(offset.saturating_add(1));
        if self.stragglers.contains(&offset) {
            return;
        }
        if self.window.back().is_none_or(|&(last, _)| offset > last) {
            self.window.push_back((offset, Awaited::Yes));
            self.in_flight += 1;
            return;
        }
        match self.find(offset) {
            Some(index) => {
                if self.window[index].1 == Awaited::No {
                    self.window[index].1 = Awaited::Yes;
                    self.in_flight += 1;
                }
            }
            None => {
                if self.stragglers.insert(offset) {
                    self.in_flight += 1;
                }
            }
        }
    }

    fn ack(&mut self, offset: i64) -> bool {
        if self.failed.contains(&offset) {
            return false;
        }
        let known = match self.find(offset) {
            Some(index) if self.window[index].1 == Awaited::Yes => {
                self.window[index].1 = Awaited::No;
                while self
                    .window
                    .front()
                    .is_some_and(|&(_, awaited)| awaited == Awaited::No)
                {
                    self.window.pop_front();
                }
                true
            }
            Some(_) => false,
            None => self.stragglers.remove(&offset),
        };
        if known {
            self.in_flight -= 1;
        }
        known
    }

    fn fail(&mut self, offset: i64) -> bool {
        let in_flight = match self.find(offset) {
            Some(index) => self.window[index].1 == Awaited::Yes,
            None => self.stragglers.contains(&offset),
        };
        in_flight && self.failed.insert(offset)
    }

    /// The index of `offset` in the window.
    fn find(&self, offset: i64) -> Option<usize> {
        self.window
            .binary_search_by_key(&offset, |&(offset, _)| offset)
            .ok()
    }

    fn committable(&self) -> i64 {
        let front = self.window.front().map(|&(offset, _)| offset);
        match (front, self.stragglers.first().copied()) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => self.next,
        }
    }

    fn pending(&self) -> usize {
        self.in_flight - self.failed.len()
    }
}

/// Per-partition in-flight offsets of the input topic, and the commit positions they allow.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionState>,
}

impl OffsetTracker {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` of `partition` was consumed and its output is not yet delivered.
    ///
    /// Offsets normally arrive in increasing order per partition, with gaps (compaction,
    /// transaction markers) that need no special handling. An offset at or below one already
    /// seen (a seek back after a fetch error) is tracked like any other.
    pub(crate) fn register(&mut self, partition: i32, offset: i64) {
        self.partitions
            .entry(partition)
            .or_default()
            .register(offset);
    }

    /// Records that the output of `offset` was acknowledged. Returns false for an offset that
    /// was not in flight (unknown, already acknowledged, or of a partition since revoked).
    pub(crate) fn ack(&mut self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get_mut(&partition)
            .is_some_and(|state| state.ack(offset))
    }

    /// Records that the output of `offset` could not be delivered: the offset stays in flight,
    /// so no commit of this partition will ever pass it. Returns false if it was not in flight.
    pub(crate) fn fail(&mut self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get_mut(&partition)
            .is_some_and(|state| state.fail(offset))
    }

    #[cfg(test)]
    /// The position that may be committed for `partition` (the next offset to consume after a
    /// restart), or `None` if nothing of it was ever registered.
    pub(crate) fn committable(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .map(PartitionState::committable)
    }

    /// Offsets of `partition` in flight and not failed: what a drain still waits for.
    pub(crate) fn pending(&self, partition: i32) -> usize {
        self.partitions
            .get(&partition)
            .map_or(0, PartitionState::pending)
    }

    /// [`OffsetTracker::pending`] summed over all partitions.
    pub(crate) fn total_pending(&self) -> usize {
        self.partitions.values().map(PartitionState::pending).sum()
    }

    #[cfg(test)]
    /// Offsets whose delivery failed, over all partitions.
    pub(crate) fn total_failed(&self) -> usize {
        self.partitions.values().map(|s| s.failed.len()).sum()
    }

    /// Partitions with tracked offsets.
    pub(crate) fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }

    /// `(partition, position)` for every partition (of `only`, if given) whose committable
    /// position differs from the one last handed to a commit.
    pub(crate) fn commit_candidates(&self, only: Option<&[i32]>) -> Vec<(i32, i64)> {
        self.positions(only)
            .into_iter()
            .filter(|(partition, position)| self.last_committed(*partition) != Some(*position))
            .collect()
    }

    /// `(partition, position)` for every partition (of `only`, if given), changed or not: what
    /// a final commit sends, since an earlier asynchronous commit of the same position may
    /// still be in flight or may have failed without its report having been seen yet.
    pub(crate) fn positions(&self, only: Option<&[i32]>) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter(|(partition, _)| only.is_none_or(|only| only.contains(partition)))
            .map(|(&partition, state)| (partition, state.committable()))
            .collect()
    }

    /// Records that `position` was handed to a commit of `partition`.
    pub(crate) fn mark_committed(&mut self, partition: i32, position: i64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.committed = Some(position);
        }
    }

    /// Records that the commit of `position` failed, so the next round commits it again.
    pub(crate) fn commit_failed(&mut self, partition: i32, position: i64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            if state.committed == Some(position) {
                state.committed = None;
            }
        }
    }

    /// The last position handed to a commit of `partition`.
    pub(crate) fn last_committed(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition).and_then(|s| s.committed)
    }

    /// Forgets `partition` (revoked: its offsets are another consumer's business now).
    pub(crate) fn remove(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }
}

/// An [`OffsetTracker`] shared between threads, with a way to wait until partitions drain.
#[derive(Debug, Default)]
pub(crate) struct SharedOffsets {
    tracker: Mutex<OffsetTracker>,
    /// Signalled when an offset is acknowledged or fails while someone waits for a drain.
    settled: Condvar,
    /// Threads in [`wait_drained`](Self::wait_drained), changed only under the tracker's lock.
    /// A notification is a `futex` system call even when nobody waits, and delivery reports
    /// settle every record: without this count the worker made one such call per record.
    drain_waiters: AtomicUsize,
    /// Held by a commit from reading the positions until the broker has answered, so commits
    /// are sent one at a time in the order their positions were read (see
    /// [`commit_tracked`](crate::delivery::commit::commit_tracked)). Separate from `tracker` so
    /// that a slow commit never holds up delivery reports.
    commits: Mutex<()>,
}

impl SharedOffsets {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Locks the tracker. A panic elsewhere while holding the lock cannot leave the tracker
    /// half-updated (every method is a single collection operation), so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serialises commits; see the `commits` field.
    pub(crate) fn commit_order(&self) -> MutexGuard<'_, ()> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, partition: i32, offset: i64) {
        self.lock().register(partition, offset);
    }

    pub(crate) fn ack(&self, partition: i32, offset: i64) -> bool {
        self.settle(|tracker| tracker.ack(partition, offset))
    }

    pub(crate) fn fail(&self, partition: i32, offset: i64) -> bool {
        self.settle(|tracker| tracker.fail(partition, offset))
    }

    /// Applies a settlement and wakes the drain waiters, if any. The waiter count is read
    /// under the same lock the waiters change it under, so a waiter either sees this
    /// settlement when it checks the tracker or is counted here and woken.
    fn settle(&self, apply: impl FnOnce(&mut OffsetTracker) -> bool) -> bool {
        let mut tracker = self.lock();
        let known = apply(&mut tracker);
        let waited_on = self.drain_waiters.load(Ordering::Relaxed) > 0;
        drop(tracker);
        if waited_on {
            self.settled.notify_all();
        }
        known
    }

    #[cfg(test)]
    /// A copy of the current state (for reports and tests).
    pub(crate) fn snapshot(&self) -> OffsetTracker {
        self.lock().clone()
    }

    /// Blocks until no offset of `partitions` (all, if `None`) is pending, or `timeout` passes.
    /// Returns the number still pending (0 = drained).
    ///
    /// Blocking: call it from a thread that may block (the rebalance callback, via
    /// `block_in_place`), never directly on the async reactor.
    pub(crate) fn wait_drained(&self, partitions: Option<&[i32]>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let pending = |tracker: &OffsetTracker| match partitions {
            Some(list) => list.iter().map(|p| tracker.pending(*p)).sum(),
            None => tracker.total_pending(),
        };
        let mut tracker = self.lock();
        // Counted out by a guard, so that even a panic here leaves the count right; declared
        // after the lock's guard, it is dropped first, still under the lock.
        let _waiting = DrainWaiter::enter(&self.drain_waiters);
        loop {
            let left = pending(&tracker);
            let now = Instant::now();
            if left == 0 || now >= deadline {
                return left;
            }
            tracker = self
                .settled
                .wait_timeout(tracker, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A thread inside [`SharedOffsets::wait_drained`], counted in `drain_waiters` while it lives.
struct DrainWaiter<'a>(&'a AtomicUsize);

impl<'a> DrainWaiter<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for DrainWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nothing_registered_means_nothing_to_commit() {
        let tracker = OffsetTracker::new();
        assert_eq!(tracker.committable(0), None);
        assert!(tracker.commit_candidates(None).is_empty());
        assert_eq!(tracker.total_pending(), 0);
    }

    #[test]
    fn position_is_the_lowest_unacknowledged_offset() {
        let mut tracker = OffsetTracker::new();
        for offset in 10..15 {
            tracker.register(0, offset);
        }
        assert_eq!(tracker.committable(0), Some(10));
        // Out-of-order acknowledgements do not move the position past a hole.
        assert!(tracker.ack(0, 12));
        assert!(tracker.ack(0, 11));
        assert_eq!(tracker.committable(0), Some(10));
        assert!(tracker.ack(0, 10));
        assert_eq!(tracker.committable(0), Some(13));
        assert!(tracker.ack(0, 14));
        assert_eq!(tracker.committable(0), Some(13));
        assert!(tracker.ack(0, 13));
        // All done: one past the highest offset seen.
        assert_eq!(tracker.committable(0), Some(15));
        assert_eq!(tracker.pending(0), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::new();
        tracker.register(0, 5);
        tracker.register(1, 100);
        tracker.register(1, 101);
        assert!(tracker.ack(1, 100));
        assert_eq!(tracker.committable(0), Some(5));
        assert_eq!(tracker.committable(1), Some(101));
        assert_eq!(tracker.pending(0), 1);
        assert_eq!(tracker.pending(1), 1);
        assert_eq!(tracker.total_pending(), 2);
        assert_eq!(tracker.partitions().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn gaps_in_offsets_are_skipped() {
        // Compacted topics and transaction markers leave holes in the offset sequence.
        let mut tracker = OffsetTracker::new();
        for offset in [3, 7, 8, 20] {
            tracker.register(2, offset);
        }
        assert!(tracker.ack(2, 3));
        assert_eq!(tracker.committable(2), Some(7));
        for offset in [7, 8, 20] {
            assert!(tracker.ack(2, offset));
        }
        assert_eq!(tracker.committable(2), Some(21));
    }

    #[test]
    fn unknown_and_repeated_acknowledgements_are_ignored() {
        let mut tracker = OffsetTracker::new();
        tracker.register(0, 1);
        assert!(!tracker.ack(0, 0));
        assert!(!tracker.ack(9, 1));
        assert!(tracker.ack(0, 1));
        assert!(!tracker.ack(0, 1));
        assert_eq!(tracker.committable(0), Some(2));
    }

    #[test]
    fn a_failed_delivery_pins_the_position_forever() {
        let mut tracker = OffsetTracker::new();
        for offset in 0..4 {
            tracker.register(0, offset);
        }
        assert!(tracker.ack(0, 0));
        assert!(tracker.fail(0, 1));
        assert!(tracker.ack(0, 2));
        assert!(tracker.ack(0, 3));
        assert_eq!(tracker.committable(0), Some(1));
        // A failed offset is not pending (nothing will acknowledge it) ...
        assert_eq!(tracker.pending(0), 0);
        assert_eq!(tracker.total_failed(), 1);
        // ... and a late acknowledgement cannot release it.
        assert!(!tracker.ack(0, 1));
        assert_eq!(tracker.committable(0), Some(1));
        assert!(!tracker.fail(0, 7), "unknown offsets cannot fail");
    }

    #[test]
    fn seek_back_is_tracked() {
        let mut tracker = OffsetTracker::new();
        tracker.register(0, 10);
        tracker.register(0, 11);
        tracker.ack(0, 10);
        tracker.ack(0, 11);
        // Redelivery of an older offset (seek back after an error): position goes back too.
        tracker.register(0, 9);
        assert_eq!(tracker.committable(0), Some(9));
        tracker.ack(0, 9);
        assert_eq!(tracker.committable(0), Some(12));
    }

    #[test]
    fn first_offset_sets_the_initial_position() {
        let mut tracker = OffsetTracker::new();
        tracker.register(3, 500);
        assert!(tracker.ack(3, 500));
        assert_eq!(tracker.committable(3), Some(501));
        let mut from_zero = OffsetTracker::new();
        from_zero.register(0, 0);
        assert_eq!(from_zero.committable(0), Some(0));
    }

    #[test]
    fn commit_candidates_skip_unchanged_positions_and_retry_failed_commits() {
        let mut tracker = OffsetTracker::new();
        tracker.register(0, 0);
        tracker.register(1, 0);
        tracker.ack(0, 0);
        assert_eq!(tracker.commit_candidates(None), vec![(0, 1), (1, 0)]);
        assert_eq!(tracker.commit_candidates(Some(&[1])), vec![(1, 0)]);
        tracker.mark_committed(0, 1);
        tracker.mark_committed(1, 0);
        assert!(tracker.commit_candidates(None).is_empty());
        // A final commit sends every position regardless.
        assert_eq!(tracker.positions(None), vec![(0, 1), (1, 0)]);
        assert_eq!(tracker.positions(Some(&[1])), vec![(1, 0)]);
        assert_eq!(tracker.last_committed(0), Some(1));
        tracker.register(0, 1);
        tracker.ack(0, 1);
        assert_eq!(tracker.commit_candidates(None), vec![(0, 2)]);
        tracker.mark_committed(0, 2);
        // The broker rejected that commit: it is offered again.
        tracker.commit_failed(0, 2);
        assert_eq!(tracker.commit_candidates(None), vec![(0, 2)]);
        // A stale failure report (an older position) changes nothing.
        tracker.mark_committed(0, 2);
        tracker.commit_failed(0, 1);
        assert!(tracker.commit_candidates(None).is_empty());
    }

    #[test]
    fn removed_partitions_are_forgotten() {
        let mut tracker = OffsetTracker::new();
        tracker.register(0, 0);
        tracker.register(1, 0);
        tracker.remove(0);
        assert_eq!(tracker.committable(0), None);
        assert!(!tracker.ack(0, 0));
        assert_eq!(tracker.commit_candidates(None), vec![(1, 0)]);
        // Reassigned later: starts afresh from what is consumed then.
        tracker.register(0, 40);
        assert_eq!(tracker.committable(0), Some(40));
    }

    #[test]
    fn interleaved_random_acknowledgements_never_pass_a_pending_offset() {
        // A small deterministic shuffle (no rand dependency needed for an LCG).
        let mut tracker = OffsetTracker::new();
        let mut order: Vec<i64> = (0..500).collect();
        let mut state = 12345u64;
        for i in (1..order.len()).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        for offset in 0..500 {
            tracker.register(0, offset);
        }
        let mut acked = BTreeSet::new();
        for offset in order {
            tracker.ack(0, offset);
            acked.insert(offset);
            let position = tracker.committable(0).unwrap();
            // Everything below the position is acknowledged; the position itself is not.
            assert!((0..position).all(|o| acked.contains(&o)));
            assert!(position == 500 || !acked.contains(&position));
        }
        assert_eq!(tracker.committable(0), Some(500));
    }

    /// The definition the window implements: a set of in-flight offsets and a set of failed
    /// ones; the position is the lowest in flight, else one past the highest registered.
    #[derive(Default)]
    struct SetModel {
        in_flight: BTreeSet<i64>,
        failed: BTreeSet<i64>,
        next: i64,
    }

    impl SetModel {
        fn register(&mut self, offset: i64) {
            self.in_flight.insert(offset);
            self.next = self.next.max(offset + 1);
        }
        fn ack(&mut self, offset: i64) -> bool {
            !self.failed.contains(&offset) && self.in_flight.remove(&offset)
        }
        fn fail(&mut self, offset: i64) -> bool {
            self.in_flight.contains(&offset) && self.failed.insert(offset)
        }
        fn committable(&self) -> i64 {
            self.in_flight.first().copied().unwrap_or(self.next)
        }
    }

    #[test]
    fn the_window_answers_as_the_set_definition_under_seek_backs_and_failures() {
        let mut state = 987654321u64;
        let mut random = |bound: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % bound
        };
        let mut tracker = OffsetTracker::new();
        let mut model = SetModel::default();
        let mut fetched = 0i64;
        tracker.register(0, 0);
        model.register(0);
        for step in 0..20_000 {
            match random(100) {
                // Mostly the next offsets in order, with gaps (compaction, markers).
                0..=44 => {
                    fetched += 1 + random(3) as i64;
                    tracker.register(0, fetched);
                    model.register(fetched);
                }
                // Now and then a seek back redelivers recent offsets.
                45..=46 => {
                    let back = fetched - random(20) as i64;
                    for offset in back.max(0)..=fetched {
                        tracker.register(0, offset);
                        model.register(offset);
                    }
                }
                47..=48 => {
                    let offset = fetched - random(30) as i64;
                    assert_eq!(tracker.fail(0, offset), model.fail(offset), "step {step}");
                }
                _ => {
                    let offset = fetched - random(40) as i64;
                    assert_eq!(tracker.ack(0, offset), model.ack(offset), "step {step}");
                }
            }
            assert_eq!(
                tracker.committable(0),
                Some(model.committable()),
                "step {step}"
            );
            assert_eq!(
                tracker.pending(0),
                model.in_flight.len() - model.failed.len(),
                "step {step}"
            );
        }
        assert!(model.failed.len() > 10 && model.in_flight.len() > 10);
    }

    #[test]
    fn wait_drained_returns_when_another_thread_acknowledges() {
        let shared = Arc::new(SharedOffsets::new());
        shared.register(0, 0);
        shared.register(1, 0);
        let acker = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                shared.ack(0, 0);
            })
        };
        let started = Instant::now();
        assert_eq!(shared.wait_drained(Some(&[0]), Duration::from_secs(5)), 0);
        assert!(started.elapsed() < Duration::from_secs(4));
        acker.join().unwrap();
        // Partition 1 never drains: the wait gives up after the timeout.
        assert_eq!(shared.wait_drained(None, Duration::from_millis(30)), 1);
        // A failed offset does not hold a drain up.
        shared.fail(1, 0);
        assert_eq!(shared.wait_drained(None, Duration::from_secs(1)), 0);
        assert_eq!(shared.snapshot().committable(1), Some(0));
        // Every wait has left: settlements go back to not notifying anyone.
        assert_eq!(shared.drain_waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_drain_waiter_is_woken_by_a_settlement_not_by_its_timeout() {
        let shared = Arc::new(SharedOffsets::new());
        for offset in 0..200 {
            shared.register(0, offset);
        }
        let timeout = Duration::from_secs(60);
        let waiter = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let started = Instant::now();
                (shared.wait_drained(None, timeout), started.elapsed())
            })
        };
        // Settle only once the waiter is inside the wait, so the wake-up path is what is
        // tested (not a waiter that finds everything settled on its first look).
        while shared.drain_waiters.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        for offset in 0..200 {
            if offset % 2 == 0 {
                shared.ack(0, offset);
            } else {
                shared.fail(0, offset);
            }
        }
        let (left, waited) = waiter.join().unwrap();
        assert_eq!(left, 0);
        // Woken by the last settlement, not released by the timeout a minute later.
        assert!(waited < timeout / 2, "waited {waited:?}");
        assert_eq!(shared.drain_waiters.load(Ordering::Relaxed), 0);
    }
}

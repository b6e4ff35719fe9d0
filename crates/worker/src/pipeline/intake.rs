//! The intake thread: takes consumed records from a [`RecordSource`] and gathers them into
//! micro-batches.
//!
//! A batch goes to the inference thread when it holds `max_batch` records, when `max_wait` has
//! passed since its first record and nothing more is ready, or when a partition revocation asks
//! for it ([`OpenBatch::flush`]). Batches come from a small pool that the publishing thread
//! refills, so feature buffers are allocated once; an empty pool means scoring or publishing is
//! behind, and waiting for it is the backpressure that eventually pauses consumption.
//!
//! Why a thread of its own and not tokio tasks: fetching, decoding and batching used to be two
//! tasks joined by a channel, and a profile of the full-load benchmark showed those tasks
//! spending most of their CPU parking and waking each other (epoll, futex, wakers) rather than
//! on the records. Here one thread blocks in librdkafka's poll until a record or its batch's
//! deadline, and a record goes from the consumer's queue to a feature row without a hand-over.
//!
//! The rebalance callback runs inside that poll, on this thread, while a batch may be half
//! full. It must wait until the revoked partitions' records are delivered, so it first sends the
//! open batch on: the batch lives in [`OpenBatch`], where the callback can reach it.
//!
//! A reloaded model arrives here, not at the inference thread: the batcher owns the
//! preprocessor, so it is the one place that can switch preprocessing and scoring together. It
//! puts a new model in service only when it *starts* a batch, attaching the scorer to that
//! batch ([`Batch::attach_swap`]); a batch is never preprocessed by two preprocessors, and
//! never scored by a model other than the one whose preprocessor filled it.

use crate::delivery::context::Unsent;
use crate::delivery::offsets::SharedOffsets;
use crate::pipeline::batch::{Batch, Consumed, ModelSwap};
use crate::pipeline::inference::abandon;
use crate::pipeline::ServedModel;
use crate::stop::Stop;
use crate::telemetry::fairness::GroupCounting;
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long an idle batcher waits for a record before it looks at the stop signal and for a
/// reloaded model again: the bound on how late either is noticed without traffic.
const IDLE_POLL: Duration = Duration::from_millis(50);

impl Unsent for OpenBatch {
    fn flush(&self) {
        OpenBatch::flush(self);
    }
}

/// What a [`RecordSource`] answers when asked for a record.
pub(crate) enum Polled {
    Record(Consumed),
    /// Nothing arrived within the timeout.
    Idle,
    /// The source has ended: no record will ever come (a test's channel; Kafka never ends).
    #[cfg(test)]
    Closed,
}

/// Where the batcher's records come from: the Kafka consumer in the worker
/// ([`crate::pipeline::consume::ConsumerSource`]), a channel in tests.
pub(crate) trait RecordSource {
    /// The next record, decoded with `schema`, waiting at most `timeout` for one.
    fn next(&mut self, timeout: Duration, schema: &Schema) -> Polled;
}

/// The batch being filled, and the channel it goes to, shared between the batcher and the
/// consumer's rebalance callback (see the module docs). Both run on the intake thread, so the
/// lock is never contended; it makes the sharing safe, not slower.
///
/// Records that can no longer be scored (the inference thread is gone after a failure, or the
/// intake thread panicked) are settled as failed in `offsets` rather than dropped silently: their
/// offsets are never committed, so they are consumed again after a restart, and neither a
/// revocation nor the shutdown drain waits for outputs that will never come.
pub(crate) struct OpenBatch {
    state: Mutex<OpenState>,
}

struct OpenState {
    filling: Option<Filling>,
    /// `None` once the batcher has ended, so the inference thread sees the channel close.
    batches: Option<mpsc::Sender<Batch>>,
    /// Where the records' offsets were registered when consumed.
    offsets: Arc<SharedOffsets>,
}

struct Filling {
    batch: Batch,
    /// When the batch goes even if not full (once nothing more is ready).
    deadline: Instant,
}

impl OpenBatch {
    pub(crate) fn new(batches: mpsc::Sender<Batch>, offsets: Arc<SharedOffsets>) -> Self {
        Self {
            state: Mutex::new(OpenState {
                filling: None,
                batches: Some(batches),
                offsets,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OpenState> {
        // Nothing panics while holding it; if something did, the batch is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the batch being filled (if any) to the inference thread now. The rebalance
    /// callback calls it before waiting for the revoked partitions' records. Returns `false`
    /// once the inference thread (or the batcher) is gone.
    pub(crate) fn flush(&self) -> bool {
        let mut state = self.lock();
        let Some(filling) = state.filling.take() else {
            return state.batches.is_some();
        };
        state.send(filling.batch)
    }

    /// The open batch's deadline, `None` when no batch is open.
    fn deadline(&self) -> Option<Instant> {
        self.lock().filling.as_ref().map(|filling| filling.deadline)
    }

    fn is_open(&self) -> bool {
        self.lock().filling.is_some()
    }

    fn open(&self, batch: Batch, deadline: Instant) {
        self.lock().filling = Some(Filling { batch, deadline });
    }

    /// Adds `record` to the open batch (there is one: [`Batcher`] opens it first) and sends the
    /// batch on if that filled it. Returns `false` once the inference thread is gone.
    fn push(&self, record: Consumed, schema: &Schema, preprocessor: &Preprocessor) -> bool {
        let mut state = self.lock();
        let Some(filling) = state.filling.as_mut() else {
            state.abandon(&record);
            return state.batches.is_some();
        };
        // Cannot fail: a batch is sent on as soon as it is full.
        let _ = filling.batch.push(record, schema, preprocessor);
        if !filling.batch.is_full() {
            return true;
        }
        match state.filling.take() {
            Some(filling) => state.send(filling.batch),
            None => true,
        }
    }

    /// Sends a batch straight on (a model change on an empty batch).
    fn send(&self, batch: Batch) -> bool {
        self.lock().send(batch)
    }

    /// Sends the open batch on and closes the channel: the batcher has ended (or never
    /// started).
    pub(crate) fn close(&self) {
        self.flush();
        self.lock().batches = None;
    }

    /// Settles a record that will not be batched as failed (see the type's docs).
    fn abandon(&self, record: &Consumed) {
        self.lock().abandon(record);
    }

    /// After a panic on the intake thread: settles the open batch as failed and closes the
    /// channel without sending it.
    fn abandon_and_close(&self) {
        let mut state = self.lock();
        if let Some(mut filling) = state.filling.take() {
            abandon(&state.offsets, filling.batch.drain());
        }
        state.batches = None;
    }
}

impl OpenState {
    fn abandon(&self, record: &Consumed) {
        let source = &record.source;
        self.offsets.fail(source.partition, source.offset);
    }

    /// Sends `batch` to the inference thread; if it is gone, settles the batch's records as
    /// failed and returns `false`.
    fn send(&mut self, batch: Batch) -> bool {
        let Some(batches) = &self.batches else {
            abandon_batch(&self.offsets, batch);
            return false;
        };
        match batches.blocking_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::SendError(batch)) => {
                self.batches = None;
                abandon_batch(&self.offsets, batch);
                false
            }
        }
    }
}

fn abandon_batch(offsets: &SharedOffsets, mut batch: Batch) {
    abandon(offsets, batch.drain());
}

/// Ends the batcher however [`Batcher::run`] ends. Normally the open batch is sent on and the
/// batch channel closed. If the thread panics, nothing else would notice that records are no
/// longer read: the pipeline is failed, and the channel closed without sending the batch (its
/// records are settled as failed and re-read after a restart), so the inference thread still
/// ends and shutdown does not wait for it forever.
struct Ending {
    open: Arc<OpenBatch>,
    stop: Stop,
}

impl Drop for Ending {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop.fail("the intake thread panicked");
            self.open.abandon_and_close();
        } else {
            self.open.close();
        }
    }
}

/// The batcher's inputs and outputs.
pub(crate) struct Batcher {
    /// The batch being filled, and where full batches go (the inference thread).
    pub open: Arc<OpenBatch>,
    /// Empty batches returned by the publishing thread.
    pub pool: mpsc::UnboundedReceiver<Batch>,
    /// The schema records are decoded with, and the preprocessor that encodes them: the
    /// model in service's.
    pub schema: Arc<Schema>,
    pub preprocessor: Arc<Preprocessor>,
    /// Reloaded models, already loaded and checked, to serve from the next batch on. A closed
    /// channel just means no more reloads.
    pub models: mpsc::Receiver<ServedModel>,
    /// The protected groups of `schema`, which records are counted by.
    pub groups: GroupCounting,
    pub max_wait: Duration,
    /// Once stopping, the batcher sends its open batch on and ends.
    pub stop: Stop,
}

impl Batcher {
    /// Starts the intake thread on `source`. It ends when the pipeline stops, the source
    /// closes, or the inference thread is gone; its last batch is sent on and the batch
    /// channel closed, so the inference thread ends after it.
    pub(crate) fn spawn(
        self,
        source: impl RecordSource + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("intake".to_owned())
            .spawn(move || self.run(source))
    }

    /// Runs the batcher on the calling thread (see [`Batcher::spawn`]).
    pub(crate) fn run(mut self, mut source: impl RecordSource) {
        let _ending = Ending {
            open: Arc::clone(&self.open),
            stop: self.stop.clone(),
        };
        let mut model: Option<ServedModel> = None;
        while !self.stop.is_stopping() {
            if model.is_none() {
                model = self.models.try_recv().ok();
            }
            let deadline = self.open.deadline();
            // With a new model and no open batch, only look at what is already there: if
            // nothing is, the model goes into service at once (below).
            let timeout = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None if model.is_some() => Duration::ZERO,
                None => IDLE_POLL,
            }
            .min(IDLE_POLL);
            // A record that opens a batch puts a waiting model in service, so it must be read
            // with that model's schema; one that may join the open batch, with the current one.
            // (Should a rebalance send the open batch on during the poll, the record opens a
            // batch of the current model and the new one waits for the next.)
            let swap_next = !self.open.is_open();
            let schema = match &model {
                Some(model) if swap_next => &model.schema,
                _ => &self.schema,
            };
            match source.next(timeout, schema) {
                Polled::Record(record) => {
                    if !self.open.is_open() {
                        let swap = if swap_next { model.take() } else { None };
                        let Some(batch) = self.start(swap) else {
                            self.open.abandon(&record);
                            break;
                        };
                        self.open.open(batch, Instant::now() + self.max_wait);
                    }
                    if !self.open.push(record, &self.schema, &self.preprocessor) {
                        break;
                    }
                }
                Polled::Idle => {
                    if let Some(at) = deadline {
                        // Nothing more is ready: a batch past its deadline goes now (before
                        // it, the poll was only cut short to look at the stop signal).
                        if Instant::now() >= at && !self.open.flush() {
                            break;
                        }
                    } else if let Some(model) = model.take() {
                        // Idle with a new model: put it in service at once, on an empty batch,
                        // so `model_info` and the logs do not wait for traffic to show it.
                        let Some(batch) = self.start(Some(model)) else {
                            break;
                        };
                        if !self.open.send(batch) {
                            break;
                        }
                    }
                }
                #[cfg(test)]
                Polled::Closed => break,
            }
        }
        tracing::debug!("batcher stopped");
    }

    /// Takes an empty batch from the pool for the next records, putting `model` in service on
    /// it if one arrived. `None` if the publishing thread is gone.
    fn start(&mut self, model: Option<ServedModel>) -> Option<Batch> {
        let mut batch = self.pool.blocking_recv()?;
        if let Some(model) = model {
            self.groups.switch(&model.schema);
            self.schema = Arc::clone(&model.schema);
            self.preprocessor = Arc::clone(&model.preprocessor);
            tracing::debug!(version = %model.version, "next batch scored by the new model");
            // Every build's preprocessors have the same width; reallocating keeps a mismatch
            // from turning records into dead letters anyway.
            if batch.width() != self.preprocessor.width {
                batch = Batch::new(batch.capacity(), self.preprocessor.width);
            }
            let (scorer, reasoner, label) = model.into_parts();
            batch.attach_swap(ModelSwap {
                scorer,
                reasoner,
                label,
            });
        } else if batch.width() != self.preprocessor.width {
            // A pooled batch from before a swap to a different width.
            batch = Batch::new(batch.capacity(), self.preprocessor.width);
        }
        batch.group_by(self.groups.current());
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::origin::Origin;
    use crate::pipeline::batch::Body;
    use credit_core::applicant::Applicant;
    use std::time::Instant;

    /// A running batcher (on its own thread) and its channels.
    struct Harness {
        /// Each send arrives at once, as one fetched chunk.
        records: std::sync::mpsc::Sender<Vec<Consumed>>,
        models: mpsc::Sender<ServedModel>,
        batches: mpsc::Receiver<Batch>,
        open: Arc<OpenBatch>,
        /// Where dropped records are settled (the harness registers none itself).
        offsets: Arc<SharedOffsets>,
        stop: Stop,
        applicants: Vec<Applicant>,
        thread: std::thread::JoinHandle<()>,
        /// The pool's sender (the batches it queued stay available even once it is dropped).
        _pool: mpsc::UnboundedSender<Batch>,
    }

    /// Records sent through a channel in chunks (like a fetch); dropping the sender closes the
    /// source once its records are taken.
    struct ChannelSource {
        chunks: std::sync::mpsc::Receiver<Vec<Consumed>>,
        fetched: std::collections::VecDeque<Consumed>,
    }

    impl RecordSource for ChannelSource {
        fn next(&mut self, timeout: Duration, _: &Schema) -> Polled {
            if self.fetched.is_empty() {
                match self.chunks.recv_timeout(timeout) {
                    Ok(chunk) => self.fetched.extend(chunk),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Polled::Idle,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Polled::Closed,
                }
            }
            self.fetched
                .pop_front()
                .map_or(Polled::Idle, Polled::Record)
        }
    }

    /// Group counting by the shipped schema, into metrics of its own.
    fn group_counting() -> GroupCounting {
        let metrics = crate::telemetry::metrics::Metrics::new().unwrap();
        GroupCounting::new(
            &credit_core::schema::german_credit(),
            Default::default(),
            metrics,
        )
        .unwrap()
    }

    /// A batcher whose source already holds records at offsets `0..queued` when it starts.
    fn setup(max_batch: usize, max_wait: Duration, queued: i64) -> Harness {
        let applicants = crate::pipeline::shipped_applicants();
        let preprocessor = Arc::new(crate::pipeline::fitted(&applicants));
        let (records_tx, records_rx) = std::sync::mpsc::channel();
        let (batches_tx, batches_rx) = mpsc::channel(8);
        let (pool_tx, pool_rx) = mpsc::unbounded_channel();
        for _ in 0..8 {
            pool_tx
                .send(Batch::new(max_batch, preprocessor.width))
                .unwrap();
        }
        let offsets = Arc::new(SharedOffsets::new());
        let open = Arc::new(OpenBatch::new(batches_tx, Arc::clone(&offsets)));
        let stop = Stop::new();
        let (models_tx, models_rx) = mpsc::channel(1);
        let batcher = Batcher {
            open: Arc::clone(&open),
            pool: pool_rx,
            schema: Arc::new(credit_core::schema::german_credit()),
            preprocessor,
            models: models_rx,
            groups: group_counting(),
            max_wait,
            stop: stop.clone(),
        };
        records_tx
            .send(
                (0..queued)
                    .map(|offset| record(offset, applicants[offset as usize].clone()))
                    .collect(),
            )
            .unwrap();
        let thread = batcher
            .spawn(ChannelSource {
                chunks: records_rx,
                fetched: Default::default(),
            })
            .unwrap();
        Harness {
            records: records_tx,
            models: models_tx,
            batches: batches_rx,
            open,
            offsets,
            stop,
            applicants,
            thread,
            _pool: pool_tx,
        }
    }

    /// Waits until the batcher has opened a batch (it took a sent record).
    fn wait_open(open: &OpenBatch) {
        let started = std::time::Instant::now();
        while !open.is_open() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no batch opened"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn record(offset: i64, applicant: Applicant) -> Consumed {
        Consumed {
            source: Origin {
                partition: 0,
                offset,
                timestamp_ms: None,
                consumed_at: std::time::Instant::now(),
            },
            headers: None,
            body: Body::Valid {
                application_id: format!("app-{offset}"),
                applicant,
            },
        }
    }

    fn offsets(batch: &Batch) -> Vec<i64> {
        batch.entries().iter().map(|e| e.source.offset).collect()
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_after_max_wait() {
        let started = Instant::now();
        let Harness {
            records,
            mut batches,
            thread,
            ..
        } = setup(4, Duration::from_millis(50), 10);
        assert_eq!(offsets(&batches.recv().await.unwrap()), vec![0, 1, 2, 3]);
        assert_eq!(offsets(&batches.recv().await.unwrap()), vec![4, 5, 6, 7]);
        assert!(started.elapsed() < Duration::from_millis(50));
        // The remainder waits for max_wait.
        assert_eq!(offsets(&batches.recv().await.unwrap()), vec![8, 9]);
        assert!(started.elapsed() >= Duration::from_millis(45));
        drop(records);
        thread.join().unwrap();
        assert!(batches.recv().await.is_none());
    }

    #[tokio::test]
    async fn closing_the_input_flushes_the_partial_batch_immediately() {
        let Harness {
            records,
            mut batches,
            applicants,
            thread,
            ..
        } = setup(100, Duration::from_secs(3600), 0);
        records
            .send(vec![record(0, applicants[0].clone())])
            .unwrap();
        records
            .send(vec![record(1, applicants[1].clone())])
            .unwrap();
        drop(records);
        let batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offsets(&batch), vec![0, 1]);
        assert_eq!(batch.rows(), 2);
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn a_flush_request_sends_the_partial_batch() {
        let Harness {
            records,
            mut batches,
            open,
            applicants,
            ..
        } = setup(100, Duration::from_secs(3600), 0);
        records
            .send(vec![record(0, applicants[0].clone())])
            .unwrap();
        wait_open(&open);
        // The rebalance callback calls it from the intake thread, never from a task.
        let flushing = Arc::clone(&open);
        assert!(tokio::task::spawn_blocking(move || flushing.flush())
            .await
            .unwrap());
        let batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offsets(&batch), vec![0]);
    }

    #[tokio::test]
    async fn zero_max_wait_batches_what_is_already_queued() {
        let Harness { mut batches, .. } = setup(100, Duration::ZERO, 5);
        let batch = batches.recv().await.unwrap();
        assert_eq!(offsets(&batch), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_stop_sends_the_open_batch_on_and_closes_the_channel() {
        let Harness {
            records,
            mut batches,
            open,
            stop,
            applicants,
            thread,
            ..
        } = setup(100, Duration::from_secs(3600), 0);
        records
            .send(vec![record(0, applicants[0].clone())])
            .unwrap();
        wait_open(&open);
        stop.request();
        let batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offsets(&batch), vec![0]);
        thread.join().unwrap();
        assert!(
            batches.recv().await.is_none(),
            "the batch channel is closed"
        );
        assert!(
            !tokio::task::spawn_blocking(move || open.flush())
                .await
                .unwrap(),
            "nothing can be flushed once the batcher has ended"
        );
    }

    #[tokio::test]
    async fn records_the_inference_thread_can_no_longer_take_are_settled_as_failed() {
        let Harness {
            records,
            batches,
            offsets,
            thread,
            applicants,
            ..
        } = setup(2, Duration::from_secs(3600), 0);
        // Taken from the consumer, so registered; the third stays in the consumer's queue.
        for offset in 0..2 {
            offsets.register(0, offset);
        }
        drop(batches);
        records
            .send(
                (0..3)
                    .map(|offset| record(offset, applicants[0].clone()))
                    .collect(),
            )
            .unwrap();
        thread.join().unwrap();
        let tracker = offsets.snapshot();
        assert_eq!(
            tracker.total_pending(),
            0,
            "nothing left for a drain to wait on"
        );
        assert_eq!(tracker.total_failed(), 2);
        assert_eq!(tracker.committable(0), Some(0), "never committed past");
    }

    /// A source that yields one record at offset 0, then panics.
    struct Panicking {
        yielded: bool,
    }

    impl RecordSource for Panicking {
        fn next(&mut self, _: Duration, _: &Schema) -> Polled {
            if std::mem::replace(&mut self.yielded, true) {
                panic!("poll failed");
            }
            Polled::Record(record(
                0,
                crate::pipeline::shipped_applicants().swap_remove(0),
            ))
        }
    }

    #[tokio::test]
    async fn a_panicking_intake_fails_the_pipeline_settles_its_open_batch_and_closes_the_channel() {
        let (batches_tx, mut batches) = mpsc::channel(1);
        let (pool_tx, pool) = mpsc::unbounded_channel();
        let (_models_tx, models) = mpsc::channel(1);
        let preprocessor = Arc::new(crate::pipeline::fitted(
            &crate::pipeline::shipped_applicants(),
        ));
        pool_tx.send(Batch::new(4, preprocessor.width)).unwrap();
        let stop = Stop::new();
        let offsets = Arc::new(SharedOffsets::new());
        offsets.register(0, 0);
        // Held elsewhere too, as the consumer's context does: dropping the batcher's handle
        // alone does not close the channel.
        let open = Arc::new(OpenBatch::new(batches_tx, Arc::clone(&offsets)));
        let batcher = Batcher {
            open: Arc::clone(&open),
            pool,
            schema: Arc::new(credit_core::schema::german_credit()),
            preprocessor,
            models,
            groups: group_counting(),
            max_wait: Duration::from_secs(3600),
            stop: stop.clone(),
        };
        let intake = batcher.spawn(Panicking { yielded: false }).unwrap();
        assert!(intake.join().is_err());
        assert!(
            batches.recv().await.is_none(),
            "the batch channel is closed"
        );
        assert_eq!(
            stop.failure().as_deref(),
            Some("the intake thread panicked")
        );
        let tracker = offsets.snapshot();
        assert_eq!(tracker.total_pending(), 0);
        assert_eq!(tracker.total_failed(), 1, "the open batch's record failed");
    }

    /// A stand-in model (the batcher never scores).
    struct Unused;

    impl credit_core::scoring::Scorer for Unused {
        fn input_width(&self) -> usize {
            0
        }

        fn score_into(
            &mut self,
            _: &[f32],
            _: usize,
            _: &mut Vec<f32>,
        ) -> Result<(), credit_core::scoring::onnx_runtime::ScoringError> {
            Ok(())
        }
    }

    /// A model whose preprocessor was fitted on the first `rows` applicants only, so its
    /// features differ from the harness's.
    fn model(applicants: &[Applicant], rows: usize, version: &str) -> ServedModel {
        ServedModel {
            scorer: Box::new(Unused),
            schema: Arc::new(credit_core::schema::german_credit()),
            preprocessor: Arc::new(crate::pipeline::fitted(&applicants[..rows])),
            version: version.to_owned(),
            threshold: 0.25,
            explaining: None,
        }
    }

    #[tokio::test]
    async fn a_model_arriving_mid_batch_takes_over_at_the_next_batch_with_its_preprocessor() {
        let Harness {
            records,
            models,
            mut batches,
            open,
            applicants,
            thread,
            ..
        } = setup(4, Duration::from_secs(3600), 0);
        let old = crate::pipeline::fitted(&applicants);
        let new = model(&applicants, 100, "v2");
        let new_preprocessor = Arc::clone(&new.preprocessor);
        assert_ne!(*new_preprocessor, old);
        records
            .send(vec![record(0, applicants[0].clone())])
            .unwrap();
        records
            .send(vec![record(1, applicants[1].clone())])
            .unwrap();
        // Let the batcher start the batch before the model arrives.
        wait_open(&open);
        models.send(new).await.unwrap();
        // Records 2-5 arrive together: the batch the model waits for is not idle.
        records
            .send(
                (2..6)
                    .map(|offset| record(offset, applicants[offset as usize].clone()))
                    .collect(),
            )
            .unwrap();
        // Closing the input flushes the second batch.
        drop(records);
        let first = batches.recv().await.unwrap();
        assert_eq!(offsets(&first), vec![0, 1, 2, 3]);
        assert!(!first.has_swap(), "the batch being filled keeps its model");
        assert_eq!(
            first.features(),
            &old.transform_batch(&applicants[..4]).unwrap()[..]
        );
        let mut second = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        let swap = second
            .take_swap()
            .expect("the next batch carries the new model");
        assert_eq!(
            (swap.label.version.as_str(), swap.label.threshold),
            ("v2", 0.25)
        );
        assert_eq!(offsets(&second), vec![4, 5]);
        assert_eq!(
            second.features(),
            &new_preprocessor.transform_batch(&applicants[4..6]).unwrap()[..],
            "preprocessed by the new model's preprocessor"
        );
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn an_idle_batcher_delivers_a_new_model_at_once_on_an_empty_batch() {
        let Harness {
            records,
            models,
            mut batches,
            applicants,
            ..
        } = setup(4, Duration::from_millis(1), 0);
        models.send(model(&applicants, 100, "v2")).await.unwrap();
        let mut batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(batch.is_empty());
        assert_eq!(batch.take_swap().unwrap().label.version, "v2");
        // Later batches carry no swap and keep flowing.
        records
            .send(vec![record(0, applicants[0].clone())])
            .unwrap();
        let batch = batches.recv().await.unwrap();
        assert_eq!(offsets(&batch), vec![0]);
        assert!(!batch.has_swap());
    }
}

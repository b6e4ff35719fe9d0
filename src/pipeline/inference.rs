//! The inference thread: one ONNX Runtime run per batch, then every output of the batch
//! produced in consumption order.
//!
//! A plain `std::thread` owns the scorer. An inference is milliseconds of CPU-bound work
//! inside a C++ library; on the async reactor it would stall every other task (consumer,
//! HTTP, timers) for that long. A bounded channel feeds the thread, so a slow model slows
//! consumption instead of growing a queue. One thread also means one producer call sequence in
//! consumption order, which with the idempotent producer keeps per-key order on the output.

use crate::kafka::headers;
use crate::kafka::offsets::SharedOffsets;
use crate::kafka::publish::{DeliveryToken, OutputKind, PublishError, Publisher};
use crate::kafka::transaction::{next_positions, TransactionError, Transactions};
use crate::pipeline::batch::{Batch, Entry, ModelSwap, Outcome, Source};
use crate::pipeline::decision::{write_timestamp, Class, DecisionRecord};
use crate::pipeline::stop::Stop;
use crate::scoring::onnx_runtime::{OnnxScorer, ScoringError};
use crate::service::metrics::Metrics;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A model that scores a row-major batch of features: the ONNX scorer in production; the
/// seam lets tests exercise the pipeline with a stand-in.
pub trait Scorer: Send {
    /// Features per row.
    fn input_width(&self) -> usize;
    /// Replaces `out` with the probability of `bad` of each of the `batch` rows.
    fn score_into(
        &mut self,
        features: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), ScoringError>;
}

impl Scorer for OnnxScorer {
    fn input_width(&self) -> usize {
        OnnxScorer::input_width(self)
    }

    fn score_into(
        &mut self,
        features: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), ScoringError> {
        OnnxScorer::score_into(self, features, batch, out)
    }
}

/// Why a batch could not be finished. All are fatal for the worker: the batch's records stay
/// uncommitted and are scored again after a restart.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error("the model returned {got} probabilities for {rows} rows")]
    OutputCount { rows: usize, got: usize },
    #[error("the model returned a non-finite probability ({0}) for application `{1}`")]
    NotFinite(f32, String),
    #[error("cannot encode a decision: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

/// Everything the inference thread owns.
pub struct Inference {
    pub scorer: Box<dyn Scorer>,
    pub batches: mpsc::Receiver<Batch>,
    /// Where emptied batches go back to the batcher.
    pub pool: mpsc::UnboundedSender<Batch>,
    pub publisher: Arc<Publisher>,
    pub offsets: Arc<SharedOffsets>,
    pub model_version: String,
    pub threshold: f32,
    pub metrics: Metrics,
    pub stop: Stop,
    /// Exactly-once mode: one transaction per batch (`None`: at-least-once).
    pub transactions: Option<Transactions>,
}

/// Buffers reused across batches.
#[derive(Default)]
struct Scratch {
    probabilities: Vec<f32>,
    payload: Vec<u8>,
    scored_at: String,
    /// The inputs of the batch being published (exactly-once mode commits their positions).
    sources: Vec<Source>,
}

impl Inference {
    /// Starts the thread. It ends when the batch channel closes, or after a fatal error
    /// (reported through [`Stop::fail`]).
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("inference".to_owned())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut scratch = Scratch::default();
        while let Some(mut batch) = self.batches.blocking_recv() {
            if let Err(error) = self.process(&mut batch, &mut scratch) {
                let cause = format!("scoring stopped: {error}");
                tracing::error!("{cause}");
                self.stop.fail(cause);
                break;
            }
            // The batcher may already be gone (it exits after sending its last batch); the
            // batches it left in the channel must still be scored, so keep going.
            let _ = self.pool.send(batch);
        }
        // Anything still queued will not be scored; settle it as failed so drains do not
        // wait for it (its offsets are never committed).
        self.batches.close();
        while let Ok(mut batch) = self.batches.try_recv() {
            self.abandon(batch.drain());
        }
        tracing::debug!("inference thread stopped");
    }

    /// Puts a reloaded model in service. From here on, decisions carry its version (payload
    /// and header) and threshold, and `model_info` shows it alone.
    fn swap_model(&mut self, swap: ModelSwap) {
        let ModelSwap {
            scorer,
            version,
            threshold,
        } = swap;
        self.scorer = scorer;
        self.threshold = threshold;
        let old = std::mem::replace(&mut self.model_version, version);
        self.metrics.set_model_version(&self.model_version);
        tracing::info!(
            old = %old,
            new = %self.model_version,
            threshold,
            "model swapped"
        );
    }

    fn abandon(&self, entries: impl Iterator<Item = Entry>) {
        for entry in entries {
            self.offsets
                .fail(entry.source.partition, entry.source.offset);
        }
    }

    /// Scores `batch` and produces its outputs (in exactly-once mode inside one transaction);
    /// on error, the unfinished entries are settled as failed.
    fn process(&mut self, batch: &mut Batch, scratch: &mut Scratch) -> Result<(), InferenceError> {
        // Before scoring: the batcher preprocessed this batch for the new model (an idle
        // batcher sends the swap alone, on an empty batch).
        if let Some(swap) = batch.take_swap() {
            self.swap_model(*swap);
        }
        if batch.is_empty() {
            return Ok(());
        }
        // Taken out for the batch, so scoring can borrow `self` mutably meanwhile.
        let Some(transactions) = self.transactions.take() else {
            return self.score_and_publish(batch, scratch);
        };
        let result = self.in_transaction(&transactions, batch, scratch);
        self.transactions = Some(transactions);
        result
    }

    /// [`Self::score_and_publish`] inside one transaction that also commits the batch's input
    /// positions.
    fn in_transaction(
        &mut self,
        transactions: &Transactions,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) -> Result<(), InferenceError> {
        if let Err(error) = transactions.begin() {
            self.abandon(batch.drain());
            return Err(error.into());
        }
        if let Err(error) = self.score_and_publish(batch, scratch) {
            transactions.abort();
            return Err(error);
        }
        // Outputs and input positions become visible together, or not at all.
        match transactions.commit(&scratch.sources) {
            Ok(()) => {
                for source in &scratch.sources {
                    self.offsets.ack(source.partition, source.offset);
                }
                let mut tracker = self.offsets.lock();
                for (partition, position) in next_positions(&scratch.sources) {
                    tracker.mark_committed(partition, position);
                }
                Ok(())
            }
            Err(error) => {
                for source in &scratch.sources {
                    self.offsets.fail(source.partition, source.offset);
                }
                Err(error.into())
            }
        }
    }

    /// Scores `batch` and produces its outputs (recording their inputs in
    /// `scratch.sources`); on error, the unfinished entries are settled as failed.
    fn score_and_publish(
        &mut self,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) -> Result<(), InferenceError> {
        scratch.sources.clear();
        let rows = batch.rows();
        if rows > 0 {
            let started = Instant::now();
            let scored = self
                .scorer
                .score_into(batch.features(), rows, &mut scratch.probabilities);
            if let Err(error) = scored {
                self.abandon(batch.drain());
                return Err(error.into());
            }
            self.metrics
                .inference_latency
                .observe(started.elapsed().as_secs_f64());
            self.metrics.batch_size.observe(rows as f64);
            if scratch.probabilities.len() != rows {
                self.abandon(batch.drain());
                return Err(InferenceError::OutputCount {
                    rows,
                    got: scratch.probabilities.len(),
                });
            }
        }
        write_timestamp(chrono::Utc::now(), &mut scratch.scored_at);
        let mut entries = batch.drain();
        while let Some(entry) = entries.next() {
            let source = entry.source;
            scratch.sources.push(source);
            if let Err(error) = self.publish(entry, scratch) {
                // Settle this entry (a no-op if the producer's error path already did) and
                // every one after it.
                self.offsets.fail(source.partition, source.offset);
                self.abandon(entries);
                return Err(error);
            }
        }
        Ok(())
    }

    fn publish(&self, entry: Entry, scratch: &mut Scratch) -> Result<(), InferenceError> {
        let Entry {
            source,
            headers: input_headers,
            outcome,
        } = entry;
        match outcome {
            Outcome::Scored {
                application_id,
                row,
            } => {
                let probability = scratch.probabilities.get(row).copied().unwrap_or(f32::NAN);
                if !probability.is_finite() {
                    return Err(InferenceError::NotFinite(probability, application_id));
                }
                let class = Class::from_probability(probability, self.threshold);
                DecisionRecord {
                    application_id: &application_id,
                    decision: class,
                    probability_bad: probability,
                    threshold: self.threshold,
                    model_version: &self.model_version,
                    scored_at: &scratch.scored_at,
                }
                .encode_into(&mut scratch.payload)?;
                let token = DeliveryToken {
                    source,
                    kind: OutputKind::Decision(class),
                };
                self.publisher.decision(
                    &application_id,
                    &scratch.payload,
                    headers::decision_headers(input_headers, &self.model_version),
                    token,
                )?;
            }
            Outcome::Rejected {
                rejection,
                key,
                payload,
            } => {
                let token = DeliveryToken {
                    source,
                    kind: OutputKind::DeadLetter(rejection.reason),
                };
                self.publisher.dead_letter(
                    key.as_deref(),
                    payload.as_deref(),
                    input_headers,
                    &rejection,
                    token,
                )?;
            }
        }
        Ok(())
    }
}

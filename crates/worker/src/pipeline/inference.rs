//! The scoring thread: one ONNX Runtime run per batch, then the batch goes on to the
//! publishing thread ([`crate::pipeline::publishing`]).
//!
//! A plain `std::thread` owns the scorer. An inference is milliseconds of CPU-bound work
//! inside a C++ library; on the async reactor it would stall every other task (consumer,
//! HTTP, timers) for that long. A bounded channel feeds the thread, so a slow model slows
//! consumption instead of growing a queue.
//!
//! Scoring and publishing are two threads rather than one because the inference is the
//! worker's bottleneck: encoding and producing a batch's outputs took about a sixth of the
//! one thread's time, during which ONNX Runtime sat idle. Now the next batch is scored while
//! the last one is published, on the other core.

use crate::delivery::offsets::SharedOffsets;
use crate::pipeline::batch::{Batch, Entry, Reasoner};
use crate::pipeline::placement;
use crate::stop::Stop;
use crate::telemetry::metrics::Metrics;
use credit_core::explain::ExplainError;
use credit_core::scoring::onnx_runtime::ScoringError;
use credit_core::scoring::Scorer;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Why a batch could not be scored. Fatal for the worker: the batch's records stay
/// uncommitted and are scored again after a restart.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InferenceError {
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error("the model returned {got} probabilities for {rows} rows")]
    OutputCount { rows: usize, got: usize },
    #[error("reasons: {0}")]
    Explain(#[from] ExplainError),
}

/// Everything the scoring thread owns.
pub(crate) struct Inference {
    pub scorer: Box<dyn Scorer>,
    /// The scorer's explainer, when decisions carry reasons.
    pub reasoner: Option<Reasoner>,
    pub batches: mpsc::Receiver<Batch>,
    /// Scored batches, in order, for the publishing thread.
    pub scored: mpsc::Sender<Batch>,
    pub offsets: Arc<SharedOffsets>,
    pub metrics: Metrics,
    pub stop: Stop,
    /// The core reserved for this thread, if any ([`crate::pipeline::placement`]).
    pub core: Option<usize>,
}

impl Inference {
    /// Starts the thread. It ends when the batch channel closes (dropping its sender of
    /// scored batches, so the publishing thread ends after it), or after a fatal error
    /// (reported through [`Stop::fail`]).
    pub(crate) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("inference".to_owned())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        if let Some(core) = self.core {
            match placement::run_calling_thread_on(core) {
                Ok(()) => tracing::info!(core, "inference thread runs on its reserved core"),
                // Scoring still works, only on shared cores.
                Err(error) => {
                    tracing::warn!(%error, core, "inference thread stays on shared cores")
                }
            }
        }
        while let Some(mut batch) = self.batches.blocking_recv() {
            if let Err(error) = self.score(&mut batch) {
                abandon(&self.offsets, batch.drain());
                let cause = format!("scoring stopped: {error}");
                tracing::error!("{cause}");
                self.stop.fail(cause);
                break;
            }
            // The batcher may already be gone (it exits after sending its last batch); the
            // batches it left in the channel must still be scored, so keep going.
            if let Err(mpsc::error::SendError(mut batch)) = self.scored.blocking_send(batch) {
                // The publishing thread stopped after a failure.
                abandon(&self.offsets, batch.drain());
                break;
            }
        }
        // Anything still queued will not be scored; settle it as failed so drains do not
        // wait for it (its offsets are never committed).
        self.batches.close();
        while let Ok(mut batch) = self.batches.try_recv() {
            abandon(&self.offsets, batch.drain());
        }
        tracing::debug!("inference thread stopped");
    }

    /// Puts the batch's new model in service if it carries one (the batcher preprocessed it
    /// for that model; an idle batcher sends the swap alone, on an empty batch), then scores
    /// it.
    fn score(&mut self, batch: &mut Batch) -> Result<(), InferenceError> {
        if let Some(swap) = batch.take_swap() {
            let swap = *swap;
            self.scorer = swap.scorer;
            self.reasoner = swap.reasoner;
            // Decisions carry the new label from this batch on.
            batch.relabel(swap.label);
        }
        let rows = batch.rows();
        if rows == 0 {
            return Ok(());
        }
        let started = Instant::now();
        batch.score(self.scorer.as_mut())?;
        self.metrics
            .inference_latency
            .observe(started.elapsed().as_secs_f64());
        self.metrics.batch_size.observe(rows as f64);
        let got = batch.probabilities().len();
        if got != rows {
            return Err(InferenceError::OutputCount { rows, got });
        }
        if let Some(reasoner) = self.reasoner.as_mut() {
            // The same scorer, so the reasons are the model's that just decided.
            let started = Instant::now();
            batch.explain(self.scorer.as_mut(), reasoner)?;
            self.metrics
                .explanation_latency
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

/// Settles `entries` as failed: their offsets are never committed, so they are scored again
/// after a restart, and drains stop waiting for them.
pub(crate) fn abandon(offsets: &SharedOffsets, entries: impl Iterator<Item = Entry>) {
    for entry in entries {
        offsets.fail(entry.source.partition, entry.source.offset);
    }
}

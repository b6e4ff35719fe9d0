//! The publishing thread: every output of a scored batch produced in consumption order.
//!
//! It receives batches from the scoring thread ([`crate::pipeline::inference`]) in the order
//! they were filled, and applies the decision rule, encodes the decisions and hands decisions
//! and dead letters to the producer. One thread means one producer call sequence in
//! consumption order, which with the idempotent producer keeps per-key order on the output.
//! Emptied batches go back to the batcher's pool.
//!
//! In exactly-once mode each batch's outputs and input positions are committed here, in one
//! transaction ([`crate::kafka::transaction`]).

use crate::kafka::headers;
use crate::kafka::offsets::SharedOffsets;
use crate::kafka::publish::{DeliveryToken, OutputKind, PublishError, Publisher};
use crate::kafka::transaction::{next_positions, TransactionError, Transactions};
use crate::pipeline::batch::{Batch, Entry, ModelLabel, Outcome, Source};
use crate::pipeline::decision::{write_timestamp, Class, DecisionRecord};
use crate::pipeline::inference::abandon;
use crate::pipeline::stop::Stop;
use crate::service::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why a batch's outputs could not be published. All are fatal for the worker: the batch's
/// unpublished records stay uncommitted and are scored again after a restart.
#[derive(Debug, thiserror::Error)]
pub enum PublishingError {
    #[error("the model returned a non-finite probability ({0}) for application `{1}`")]
    NotFinite(f32, String),
    #[error("cannot encode a decision: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

/// Everything the publishing thread owns.
pub struct Publishing {
    /// Scored batches, in consumption order.
    pub scored: mpsc::Receiver<Batch>,
    /// Where emptied batches go back to the batcher.
    pub pool: mpsc::UnboundedSender<Batch>,
    pub publisher: Arc<Publisher>,
    pub offsets: Arc<SharedOffsets>,
    /// The model version and threshold decisions carry (until a batch brings a new label).
    pub label: ModelLabel,
    pub metrics: Metrics,
    pub stop: Stop,
    /// Exactly-once mode: one transaction per batch (`None`: at-least-once).
    pub transactions: Option<Transactions>,
}

/// Buffers reused across batches.
#[derive(Default)]
struct Scratch {
    payload: Vec<u8>,
    scored_at: String,
    /// The inputs of the batch being published (exactly-once mode commits their positions).
    sources: Vec<Source>,
}

impl Publishing {
    /// Starts the thread. It ends when the scoring thread is gone and every batch it scored is
    /// published, or after a fatal error (reported through [`Stop::fail`]).
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("publishing".to_owned())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut scratch = Scratch::default();
        while let Some(mut batch) = self.scored.blocking_recv() {
            if let Err(error) = self.process(&mut batch, &mut scratch) {
                let cause = format!("publishing stopped: {error}");
                tracing::error!("{cause}");
                self.stop.fail(cause);
                break;
            }
            // The batcher may be gone already (it ends after its last batch).
            let _ = self.pool.send(batch);
        }
        // Anything still queued will not be published; settle it as failed so drains do not
        // wait for it (its offsets are never committed).
        self.scored.close();
        while let Ok(mut batch) = self.scored.try_recv() {
            abandon(&self.offsets, batch.drain());
        }
        tracing::debug!("publishing thread stopped");
    }

    /// Labels decisions with a reloaded model from here on. From this batch, decisions carry
    /// its version (payload and header) and threshold, and `model_info` shows it alone.
    fn relabel(&mut self, label: ModelLabel) {
        let old = std::mem::replace(&mut self.label, label);
        self.metrics.set_model_version(&self.label.version);
        tracing::info!(
            old = %old.version,
            new = %self.label.version,
            threshold = self.label.threshold,
            "model swapped"
        );
    }

    /// Produces `batch`'s outputs (in exactly-once mode inside one transaction); on error, the
    /// unfinished entries are settled as failed.
    fn process(&mut self, batch: &mut Batch, scratch: &mut Scratch) -> Result<(), PublishingError> {
        if let Some(label) = batch.take_label() {
            self.relabel(label);
        }
        if batch.is_empty() {
            return Ok(());
        }
        // Taken out for the batch, so publishing can borrow `self` meanwhile.
        let Some(transactions) = self.transactions.take() else {
            return self.publish_batch(batch, scratch);
        };
        let result = self.in_transaction(&transactions, batch, scratch);
        self.transactions = Some(transactions);
        result
    }

    /// [`Self::publish_batch`] inside one transaction that also commits the batch's input
    /// positions.
    fn in_transaction(
        &self,
        transactions: &Transactions,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) -> Result<(), PublishingError> {
        if let Err(error) = transactions.begin() {
            abandon(&self.offsets, batch.drain());
            return Err(error.into());
        }
        if let Err(error) = self.publish_batch(batch, scratch) {
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

    /// Produces the outputs of `batch` (recording their inputs in `scratch.sources`); on
    /// error, the unfinished entries are settled as failed.
    fn publish_batch(
        &self,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) -> Result<(), PublishingError> {
        scratch.sources.clear();
        write_timestamp(chrono::Utc::now(), &mut scratch.scored_at);
        let (mut entries, probabilities) = batch.drain_scored();
        while let Some(entry) = entries.next() {
            let source = entry.source;
            scratch.sources.push(source);
            let published = self.publish(entry, probabilities, scratch);
            if let Err(error) = published {
                // Settle this entry (a no-op if the producer's error path already did) and
                // every one after it.
                self.offsets.fail(source.partition, source.offset);
                abandon(&self.offsets, entries);
                return Err(error);
            }
        }
        Ok(())
    }

    fn publish(
        &self,
        entry: Entry,
        probabilities: &[f32],
        scratch: &mut Scratch,
    ) -> Result<(), PublishingError> {
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
                let probability = probabilities.get(row).copied().unwrap_or(f32::NAN);
                if !probability.is_finite() {
                    return Err(PublishingError::NotFinite(probability, application_id));
                }
                let ModelLabel { version, threshold } = &self.label;
                let class = Class::from_probability(probability, *threshold);
                DecisionRecord {
                    application_id: &application_id,
                    decision: class,
                    probability_bad: probability,
                    threshold: *threshold,
                    model_version: version,
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
                    headers::decision_headers(input_headers, version),
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

//! The publishing thread: every output of a scored batch produced in consumption order.
//!
//! It receives batches from the scoring thread ([`crate::pipeline::inference`]) in the order
//! they were filled, and applies the decision rule, encodes the decisions and hands decisions
//! and dead letters to the producer. One thread means one producer call sequence in
//! consumption order, which with the idempotent producer keeps per-key order on the output.
//! Emptied batches go back to the batcher's pool.
//!
//! In exactly-once mode each batch's outputs and input positions are committed here, in one
//! transaction ([`crate::delivery::transaction`]).
//!
//! An output refused for a reason of its record ([`crate::delivery::publish::Fault`]) is replaced
//! here too. At-least-once: the thread produces the replacements as soon as the delivery
//! reports ask for them, between batches. Exactly-once: a refused output makes librdkafka
//! abort the transaction, and with it the batch's other outputs; the batch is produced again
//! in a new transaction, the refused outputs replaced, until it commits. Each retry moves a
//! refused record one step down [`crate::delivery::publish::Attempt`], so a batch is retried a
//! few times at most; a record refused at its last attempt stops the worker.

use crate::delivery::offsets::SharedOffsets;
use crate::delivery::origin::Origin;
use crate::delivery::publish::{DeliveryToken, Output, OutputKind, PublishError, Publisher};
use crate::delivery::transaction::{next_positions, TransactionError, Transactions};
use crate::pipeline::batch::{Batch, ModelLabel, Outcome};
use crate::pipeline::inference::abandon;
use crate::stop::Stop;
use crate::telemetry::metrics::Metrics;
use credit_core::decision::{write_timestamp, Class, DecisionRecord, PublishedReasons};
use credit_core::explain::Reasons;
use credit_kafka::headers;
use rdkafka::message::OwnedHeaders;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Retries of one batch's transaction after refused outputs, at most: more than the steps of
/// [`crate::delivery::publish::Attempt`], which end each refused record's retries.
const MAX_TRANSACTION_RETRIES: usize = 8;
/// How long to wait for the delivery reports of a transaction that has ended; librdkafka has
/// them all by then, so only the producer thread's callbacks are awaited.
const REPORTS_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a batch's outputs could not be published. All are fatal for the worker: the batch's
/// unpublished records stay uncommitted and are scored again after a restart.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishingError {
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
pub(crate) struct Publishing {
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
    sources: Vec<Origin>,
}

impl Publishing {
    /// Starts the thread. It ends when the scoring thread is gone and every batch it scored is
    /// published, or after a fatal error (reported through [`Stop::fail`]).
    pub(crate) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("publishing".to_owned())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut scratch = Scratch::default();
        while let Some(mut batch) = self.next_batch() {
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

    /// The next scored batch (`None` once the scoring thread is gone), producing meanwhile the
    /// replacements of outputs that delivery reports refused.
    fn next_batch(&mut self) -> Option<Batch> {
        loop {
            if let Err(error) = self.publisher.redeliver_refused() {
                let cause = format!("publishing stopped: {error}");
                tracing::error!("{cause}");
                self.stop.fail(cause);
                return None;
            }
            let (publisher, scored) = (&self.publisher, &mut self.scored);
            let next = futures::executor::block_on(async {
                tokio::select! {
                    biased;
                    () = publisher.refused_ready() => None,
                    batch = scored.recv() => Some(batch),
                }
            });
            if let Some(batch) = next {
                return batch;
            }
        }
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
            batch.count_by_group(self.label.threshold);
            return self.publish_batch(batch, scratch);
        };
        let result = self.in_transaction(&transactions, batch, scratch);
        self.transactions = Some(transactions);
        result
    }

    /// The batch's outputs inside one transaction that also commits the batch's input
    /// positions; retried with replacements for outputs refused for their record's fault.
    fn in_transaction(
        &self,
        transactions: &Transactions,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) -> Result<(), PublishingError> {
        let mut replacements: Vec<Output> = Vec::new();
        let mut retry = 0;
        loop {
            if let Err(error) = transactions.begin() {
                abandon(&self.offsets, batch.drain());
                return Err(error.into());
            }
            let (error, retryable, abortable) =
                match self.publish_kept(batch, scratch, &replacements) {
                    Err(error) => {
                        transactions.abort();
                        self.publisher.wait_reported(REPORTS_TIMEOUT);
                        self.publisher.settle_tally(false);
                        let refused_midway = matches!(
                            error,
                            PublishingError::Publish(PublishError::TransactionRefused(_))
                        );
                        (error, refused_midway, false)
                    }
                    Ok(()) => {
                        // Outputs and input positions become visible together, or not at all.
                        let committed = transactions.commit(&scratch.sources);
                        // Every report of the transaction has run: its counts and refusals are
                        // complete.
                        self.publisher.wait_reported(REPORTS_TIMEOUT);
                        self.publisher.settle_tally(committed.is_ok());
                        match committed {
                            Ok(()) => {
                                batch.count_by_group(self.label.threshold);
                                for source in &scratch.sources {
                                    self.offsets.ack(source.partition, source.offset);
                                }
                                let mut tracker = self.offsets.lock();
                                for (partition, position) in next_positions(&scratch.sources) {
                                    tracker.mark_committed(partition, position);
                                }
                                drop(tracker);
                                batch.drain();
                                return Ok(());
                            }
                            // Whatever the commit's error (librdkafka may only time out flushing
                            // outputs held back behind a refused one), refused outputs mean the
                            // batch can be produced again with them replaced; an abortable error
                            // means it can be produced again as it is.
                            Err(error) => {
                                let abortable = error.is_abortable();
                                (error.into(), true, abortable)
                            }
                        }
                    }
                };
            let refused = self.publisher.take_refused();
            let retry_batch = (!refused.is_empty() || abortable)
                && retryable
                && retry < MAX_TRANSACTION_RETRIES
                && self.stop.failure().is_none();
            if !retry_batch {
                abandon(&self.offsets, batch.drain());
                return Err(error);
            }
            tracing::warn!(
                %error,
                refused = refused.len(),
                retry = retry + 1,
                "transaction aborted; producing the batch again, outputs refused by their \
                 records' fault replaced"
            );
            for output in refused {
                let source = output.token().source;
                replacements.retain(|kept| !same_record(&kept.token().source, &source));
                replacements.push(output);
            }
            retry += 1;
        }
    }

    /// Exactly-once mode: produces the outputs of `batch`, keeping its entries for a retry of
    /// the transaction, with `replacements` instead of the outputs of their records.
    fn publish_kept(
        &self,
        batch: &Batch,
        scratch: &mut Scratch,
        replacements: &[Output],
    ) -> Result<(), PublishingError> {
        scratch.sources.clear();
        write_timestamp(chrono::Utc::now(), &mut scratch.scored_at);
        let scores = (batch.probabilities(), batch.reasons());
        for entry in batch.entries() {
            scratch.sources.push(entry.source);
            let replacement = replacements
                .iter()
                .find(|output| same_record(&output.token().source, &entry.source));
            match replacement {
                Some(output) => self.publisher.resend(output.clone())?,
                None => self.publish(
                    entry.source,
                    entry.headers.clone(),
                    &entry.outcome,
                    scores,
                    scratch,
                )?,
            }
        }
        Ok(())
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
        let (mut entries, probabilities, reasons) = batch.drain_scored();
        while let Some(entry) = entries.next() {
            let source = entry.source;
            scratch.sources.push(source);
            let published = self.publish(
                source,
                entry.headers,
                &entry.outcome,
                (probabilities, reasons),
                scratch,
            );
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
        source: Origin,
        input_headers: Option<OwnedHeaders>,
        outcome: &Outcome,
        (probabilities, reasons): (&[f32], &Reasons),
        scratch: &mut Scratch,
    ) -> Result<(), PublishingError> {
        match outcome {
            Outcome::Scored {
                application_id,
                row,
                applicant,
            } => {
                let probability = probabilities.get(*row).copied().unwrap_or(f32::NAN);
                if !probability.is_finite() {
                    return Err(PublishingError::NotFinite(
                        probability,
                        application_id.clone(),
                    ));
                }
                let ModelLabel {
                    version,
                    threshold,
                    schema,
                    reference,
                } = &self.label;
                let class = Class::from_probability(probability, *threshold);
                DecisionRecord {
                    application_id,
                    decision: class,
                    probability_bad: probability,
                    threshold: *threshold,
                    model_version: version,
                    scored_at: &scratch.scored_at,
                    reasons: reference.as_ref().map(|reference| PublishedReasons {
                        schema,
                        applicant,
                        reference: reference.applicant(),
                        reasons: reasons.of_row(*row),
                    }),
                }
                .encode_into(&mut scratch.payload)?;
                let token = DeliveryToken::first(source, OutputKind::Decision(class));
                self.publisher.decision(
                    application_id,
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
                let token = DeliveryToken::first(source, OutputKind::DeadLetter(rejection.reason));
                self.publisher.dead_letter(
                    key.as_deref(),
                    payload.as_deref(),
                    input_headers,
                    rejection,
                    token,
                )?;
            }
        }
        Ok(())
    }
}

/// Whether two outputs answer the same input record.
fn same_record(a: &Origin, b: &Origin) -> bool {
    a.partition == b.partition && a.offset == b.offset
}

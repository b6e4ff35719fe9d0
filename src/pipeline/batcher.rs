//! The batcher task: gathers consumed records into micro-batches.
//!
//! A batch is sent to the inference thread when it holds `max_batch` records, when `max_wait`
//! has passed since its first record, or when a rebalance asks for an immediate flush. Batches
//! come from a small pool that the publishing thread refills, so feature buffers are allocated
//! once; an empty pool means scoring or publishing is behind, and waiting for it is the
//! backpressure that eventually pauses consumption.
//!
//! A reloaded model arrives here, not at the inference thread: the batcher owns the
//! preprocessor, so it is the one place that can switch preprocessing and scoring together. It
//! puts a new model in service only when it *starts* a batch, attaching the scorer to that
//! batch ([`Batch::attach_swap`]); a batch is never preprocessed by two preprocessors, and
//! never scored by a model other than the one whose preprocessor filled it.

use crate::pipeline::batch::{Batch, Consumed, ModelLabel, ModelSwap};
use crate::pipeline::ServedModel;
use crate::preprocess::Preprocessor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// The batcher's inputs and outputs.
pub struct Batcher {
    pub records: mpsc::Receiver<Consumed>,
    /// Empty batches returned by the publishing thread.
    pub pool: mpsc::UnboundedReceiver<Batch>,
    /// Full (or timed-out) batches for the inference thread.
    pub batches: mpsc::Sender<Batch>,
    pub preprocessor: Arc<Preprocessor>,
    /// Reloaded models, already loaded and checked, to serve from the next batch on. A closed
    /// channel just means no more reloads.
    pub models: mpsc::Receiver<ServedModel>,
    pub max_wait: Duration,
    /// Flush the current batch now (partition revocation).
    pub flush: Arc<Notify>,
}

impl Batcher {
    /// Runs until the record channel closes (after flushing the last batch) or the inference
    /// thread is gone.
    pub async fn run(mut self) {
        loop {
            // Wait for the first record of the next batch, or for a new model: when idle, a
            // reload goes into service at once (on an empty batch), so `model_info` and the
            // logs do not wait for traffic to show it.
            let (mut next, mut model) = tokio::select! {
                biased;
                record = self.records.recv() => match record {
                    Some(record) => (Some(record), None),
                    None => break,
                },
                // Disabled (for this wait) once the channel is closed.
                Some(model) = self.models.recv() => (None, Some(model)),
            };
            if model.is_none() {
                model = self.models.try_recv().ok();
            }
            let Some(mut batch) = self.pool.recv().await else {
                break;
            };
            if let Some(model) = model {
                self.preprocessor = model.preprocessor;
                tracing::debug!(version = %model.version, "next batch scored by the new model");
                // Every build's preprocessors have the same width; reallocating keeps a
                // mismatch from turning records into dead letters anyway.
                if batch.width() != self.preprocessor.width {
                    batch = Batch::new(batch.capacity(), self.preprocessor.width);
                }
                batch.attach_swap(ModelSwap {
                    scorer: model.scorer,
                    label: ModelLabel {
                        version: model.version,
                        threshold: model.threshold,
                    },
                });
            } else if batch.width() != self.preprocessor.width {
                // A pooled batch from before a swap to a different width.
                batch = Batch::new(batch.capacity(), self.preprocessor.width);
            }
            if next.is_none() {
                // Only a model change: deliver it now, on an empty batch.
                if self.batches.send(batch).await.is_err() {
                    break;
                }
                continue;
            }
            let mut closed = false;
            // One timer per batch, not one per record.
            let deadline = tokio::time::sleep_until(Instant::now() + self.max_wait);
            tokio::pin!(deadline);
            'fill: loop {
                if let Some(record) = next.take() {
                    // Cannot fail: the loop stops before the batch is full.
                    let _ = batch.push(record, &self.preprocessor);
                }
                // Take what is already queued without going through the scheduler.
                while !batch.is_full() {
                    match self.records.try_recv() {
                        Ok(record) => {
                            let _ = batch.push(record, &self.preprocessor);
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break 'fill;
                        }
                    }
                }
                if batch.is_full() {
                    break;
                }
                tokio::select! {
                    biased;
                    record = self.records.recv() => match record {
                        Some(record) => next = Some(record),
                        None => {
                            closed = true;
                            break;
                        }
                    },
                    () = &mut deadline => break,
                    () = self.flush.notified() => break,
                }
            }
            if self.batches.send(batch).await.is_err() || closed {
                break;
            }
        }
        tracing::debug!("batcher stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applicant::Applicant;
    use crate::data::german_credit;
    use crate::pipeline::batch::{Body, Source};
    use std::path::Path;

    /// A running batcher and its channels.
    struct Harness {
        records: mpsc::Sender<Consumed>,
        models: mpsc::Sender<ServedModel>,
        batches: mpsc::Receiver<Batch>,
        flush: Arc<Notify>,
        applicants: Vec<Applicant>,
        task: tokio::task::JoinHandle<()>,
        /// The pool's sender (the batches it queued stay available even once it is dropped).
        _pool: mpsc::UnboundedSender<Batch>,
    }

    fn setup(max_batch: usize, max_wait: Duration) -> Harness {
        let applicants: Vec<Applicant> = german_credit::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/german_credit.csv"),
        )
        .unwrap()
        .into_iter()
        .map(|row| row.applicant)
        .collect();
        let preprocessor = Arc::new(Preprocessor::fit(&applicants).unwrap());
        let (records_tx, records_rx) = mpsc::channel(64);
        let (batches_tx, batches_rx) = mpsc::channel(8);
        let (pool_tx, pool_rx) = mpsc::unbounded_channel();
        for _ in 0..8 {
            pool_tx
                .send(Batch::new(max_batch, preprocessor.width))
                .unwrap();
        }
        let flush = Arc::new(Notify::new());
        let (models_tx, models_rx) = mpsc::channel(1);
        let batcher = Batcher {
            records: records_rx,
            pool: pool_rx,
            batches: batches_tx,
            preprocessor,
            models: models_rx,
            max_wait,
            flush: Arc::clone(&flush),
        };
        let task = tokio::spawn(batcher.run());
        Harness {
            records: records_tx,
            models: models_tx,
            batches: batches_rx,
            flush,
            applicants,
            task,
            _pool: pool_tx,
        }
    }

    fn record(offset: i64, applicant: Applicant) -> Consumed {
        Consumed {
            source: Source {
                partition: 0,
                offset,
                timestamp_ms: None,
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
        let Harness {
            records,
            mut batches,
            applicants,
            task,
            ..
        } = setup(4, Duration::from_millis(50));
        for offset in 0..10 {
            records
                .send(record(offset, applicants[offset as usize]))
                .await
                .unwrap();
        }
        let started = Instant::now();
        assert_eq!(offsets(&batches.recv().await.unwrap()), vec![0, 1, 2, 3]);
        assert_eq!(offsets(&batches.recv().await.unwrap()), vec![4, 5, 6, 7]);
        assert!(started.elapsed() < Duration::from_millis(50));
        // The remainder waits for max_wait.
        assert_eq!(offsets(&batches.recv().await.unwrap()), vec![8, 9]);
        assert!(started.elapsed() >= Duration::from_millis(45));
        drop(records);
        task.await.unwrap();
        assert!(batches.recv().await.is_none());
    }

    #[tokio::test]
    async fn closing_the_input_flushes_the_partial_batch_immediately() {
        let Harness {
            records,
            mut batches,
            applicants,
            task,
            ..
        } = setup(100, Duration::from_secs(3600));
        records.send(record(0, applicants[0])).await.unwrap();
        records.send(record(1, applicants[1])).await.unwrap();
        drop(records);
        let batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offsets(&batch), vec![0, 1]);
        assert_eq!(batch.rows(), 2);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_flush_request_sends_the_partial_batch() {
        let Harness {
            records,
            mut batches,
            flush,
            applicants,
            ..
        } = setup(100, Duration::from_secs(3600));
        records.send(record(0, applicants[0])).await.unwrap();
        tokio::task::yield_now().await;
        flush.notify_one();
        let batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offsets(&batch), vec![0]);
    }

    #[tokio::test]
    async fn zero_max_wait_batches_what_is_already_queued() {
        let Harness {
            records,
            mut batches,
            applicants,
            ..
        } = setup(100, Duration::ZERO);
        for offset in 0..5 {
            records
                .send(record(offset, applicants[offset as usize]))
                .await
                .unwrap();
        }
        let batch = batches.recv().await.unwrap();
        assert_eq!(offsets(&batch), vec![0, 1, 2, 3, 4]);
    }

    /// A stand-in model (the batcher never scores).
    struct Unused;

    impl crate::pipeline::inference::Scorer for Unused {
        fn input_width(&self) -> usize {
            0
        }

        fn score_into(
            &mut self,
            _: &[f32],
            _: usize,
            _: &mut Vec<f32>,
        ) -> Result<(), crate::scoring::onnx_runtime::ScoringError> {
            Ok(())
        }
    }

    /// A model whose preprocessor was fitted on the first `rows` applicants only, so its
    /// features differ from the harness's.
    fn model(applicants: &[Applicant], rows: usize, version: &str) -> ServedModel {
        ServedModel {
            scorer: Box::new(Unused),
            preprocessor: Arc::new(Preprocessor::fit(&applicants[..rows]).unwrap()),
            version: version.to_owned(),
            threshold: 0.25,
        }
    }

    #[tokio::test]
    async fn a_model_arriving_mid_batch_takes_over_at_the_next_batch_with_its_preprocessor() {
        let Harness {
            records,
            models,
            mut batches,
            applicants,
            task,
            ..
        } = setup(4, Duration::from_secs(3600));
        let old = Preprocessor::fit(&applicants).unwrap();
        let new = model(&applicants, 100, "v2");
        let new_preprocessor = Arc::clone(&new.preprocessor);
        assert_ne!(*new_preprocessor, old);
        records.send(record(0, applicants[0])).await.unwrap();
        records.send(record(1, applicants[1])).await.unwrap();
        // Let the batcher start the batch before the model arrives.
        tokio::task::yield_now().await;
        models.send(new).await.unwrap();
        for offset in 2..6 {
            records
                .send(record(offset, applicants[offset as usize]))
                .await
                .unwrap();
        }
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
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_idle_batcher_delivers_a_new_model_at_once_on_an_empty_batch() {
        let Harness {
            records,
            models,
            mut batches,
            applicants,
            ..
        } = setup(4, Duration::from_millis(1));
        models.send(model(&applicants, 100, "v2")).await.unwrap();
        let mut batch = tokio::time::timeout(Duration::from_secs(1), batches.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(batch.is_empty());
        assert_eq!(batch.take_swap().unwrap().label.version, "v2");
        // Later batches carry no swap and keep flowing.
        records.send(record(0, applicants[0])).await.unwrap();
        let batch = batches.recv().await.unwrap();
        assert_eq!(offsets(&batch), vec![0]);
        assert!(!batch.has_swap());
    }
}

//! The batcher task: gathers consumed records into micro-batches.
//!
//! A batch is sent to the inference thread when it holds `max_batch` records, when `max_wait`
//! has passed since its first record, or when a rebalance asks for an immediate flush. Batches
//! come from a small pool that the inference thread refills, so feature buffers are allocated
//! once; an empty pool means the inference thread is behind, and waiting for it is the
//! backpressure that eventually pauses consumption.

use crate::pipeline::batch::{Batch, Consumed};
use crate::preprocess::Preprocessor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// The batcher's inputs and outputs.
pub struct Batcher {
    pub records: mpsc::Receiver<Consumed>,
    /// Empty batches returned by the inference thread.
    pub pool: mpsc::UnboundedReceiver<Batch>,
    /// Full (or timed-out) batches for the inference thread.
    pub batches: mpsc::Sender<Batch>,
    pub preprocessor: Arc<Preprocessor>,
    pub max_wait: Duration,
    /// Flush the current batch now (partition revocation).
    pub flush: Arc<Notify>,
}

impl Batcher {
    /// Runs until the record channel closes (after flushing the last batch) or the inference
    /// thread is gone.
    pub async fn run(mut self) {
        while let Some(first) = self.records.recv().await {
            let Some(mut batch) = self.pool.recv().await else {
                break;
            };
            let mut closed = false;
            let mut next = Some(first);
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
        let batcher = Batcher {
            records: records_rx,
            pool: pool_rx,
            batches: batches_tx,
            preprocessor,
            max_wait,
            flush: Arc::clone(&flush),
        };
        let task = tokio::spawn(batcher.run());
        Harness {
            records: records_tx,
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
}

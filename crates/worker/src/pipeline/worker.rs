//! Assembling the pipeline, running it, and taking it down in order.
//!
//! ```text
//!  Kafka ──► intake thread ──────────batches──► inference thread
//!            (poll, decode, register   ▲        (ONNX Runtime)
//!             offset, preprocess,      │              │ scored batches
//!             micro-batch)             │              ▼
//!                  ▲                   └─ pool ◄── publishing thread
//!                  │                             (encode, produce) ──► producer
//!   commits ◄── offset tracker ◄───── delivery reports (producer thread) ◄──┘
//! ```
//!
//! Shutdown is explicit and ordered (as in mini-redis): the intake thread stops fetching,
//! sends its last batch on and closes the batch channel; the inference
//! thread scores what is left and ends, closing the channel of scored batches; the publishing
//! thread produces what is left and ends; the producer is flushed, so every output has its
//! delivery report; then the positions those reports allow are committed synchronously, and
//! only then does the consumer leave the group.
//!
//! In exactly-once mode (`kafka.exactly_once`) the publishing thread commits each batch's
//! outputs and input positions in one transaction ([`crate::delivery::transaction`]); the
//! consumer-side commits (periodic, on revocation, at shutdown) are then not made at all.

use crate::config::Config;
use crate::delivery::clients::{consumer_config, producer_config, without_secrets};
use crate::delivery::commit::{commit_periodically, commit_tracked, Scope};
use crate::delivery::context::{Unsent, WorkerConsumerContext};
use crate::delivery::offsets::SharedOffsets;
use crate::delivery::publish::{DeliveryContext, Publisher};
use crate::delivery::transaction::{TransactionError, Transactions};
use crate::delivery::{lag, WorkerConsumer};
use crate::pipeline::batch::{Batch, ModelLabel};
use crate::pipeline::batcher::{Batcher, OpenBatch};
use crate::pipeline::consume::ConsumerSource;
use crate::pipeline::inference::Inference;
use crate::pipeline::placement::CoreReservation;
use crate::pipeline::publishing::Publishing;
use crate::stop::Stop;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use credit_core::preprocess::Preprocessor;
use credit_core::scoring::Scorer;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Batches in circulation: one filling, one queued for scoring, one being scored, one queued
/// for publishing, one being published.
const BATCH_POOL: usize = 5;

/// A model ready to serve: the scorer, the preprocessor it was trained with, and the decision
/// rule.
pub struct ServedModel {
    pub scorer: Box<dyn Scorer>,
    pub preprocessor: Arc<Preprocessor>,
    pub version: String,
    /// The threshold in force (the model's own, or the configured override).
    pub threshold: f32,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub consumed: u64,
    /// Decisions acknowledged by the broker.
    pub decided: u64,
    /// Dead letters acknowledged by the broker.
    pub dead_lettered: u64,
    pub delivery_failures: u64,
    /// The last position committed per input partition still assigned at the end.
    pub committed: BTreeMap<i32, i64>,
    pub elapsed: Duration,
}

/// Why the pipeline could not start or did not finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot create the Kafka {client}: {source}")]
    Client {
        client: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("cannot subscribe to {topic}: {source}")]
    Subscribe {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("the model reads {model} features per row but the preprocessor writes {preprocessor}")]
    Width { model: usize, preprocessor: usize },
    #[error("cannot start the inference thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("exactly-once mode cannot start: {0}")]
    Transactions(#[source] TransactionError),
    /// A fatal failure during the run; outputs delivered before it were committed.
    #[error("worker stopped after a failure: {cause}")]
    Failed { cause: String, report: RunReport },
}

/// Counter values at the start of a run, so a report counts this run only.
struct Baseline {
    consumed: u64,
    decided: u64,
    dead_lettered: u64,
    delivery_failures: u64,
}

impl Baseline {
    fn of(metrics: &Metrics) -> Self {
        Self {
            consumed: metrics.records_consumed.get(),
            decided: metrics.decisions_total(),
            dead_lettered: metrics.dead_lettered_total(),
            delivery_failures: metrics.delivery_failures.get(),
        }
    }
}

/// Runs the pipeline against `bootstrap` until `shutdown` resolves or a fatal failure, then
/// drains and commits. Fetching, scoring and publishing run on threads of their own; the
/// runtime carries the periodic commits, the lag gauge and the shutdown sequence.
///
/// `reloads` delivers models to serve instead of `model`, already loaded and checked (see
/// [`crate::service::reload`]); the batcher switches to each at its next batch boundary. Pass
/// a receiver whose sender is dropped to serve `model` for the whole run.
pub async fn run(
    config: &Config,
    bootstrap: &str,
    model: ServedModel,
    reloads: mpsc::Receiver<ServedModel>,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let baseline = Baseline::of(&metrics);
    let kafka = &config.kafka;
    if model.scorer.input_width() != model.preprocessor.width {
        return Err(PipelineError::Width {
            model: model.scorer.input_width(),
            preprocessor: model.preprocessor.width,
        });
    }
    let stop = Stop::new();
    let offsets = Arc::new(SharedOffsets::new());
    let max_batch = config.batching.max_batch;
    let (batches_tx, batches_rx) = mpsc::channel(1);
    // The batch being filled, where the revocation callback can send it on.
    let open_batch = Arc::new(OpenBatch::new(batches_tx, Arc::clone(&offsets)));

    let exactly_once = kafka.exactly_once;
    let delivery = DeliveryContext::new(
        kafka.input_topic.clone(),
        Arc::clone(&offsets),
        metrics.clone(),
        stop.clone(),
        kafka.max_copied_bytes,
    );
    let publisher = Arc::new(
        Publisher::new(
            &producer_config(kafka, bootstrap),
            if exactly_once {
                delivery.settled_by_transactions()
            } else {
                delivery
            },
            &kafka.output_topic,
            &kafka.dead_letter_topic,
        )
        .map_err(|source| PipelineError::Client {
            client: "producer",
            source: without_secrets(source, &kafka.client),
        })?,
    );
    let consumer: Arc<WorkerConsumer> = Arc::new(
        consumer_config(kafka, bootstrap)
            .create_with_context(WorkerConsumerContext {
                topic: kafka.input_topic.clone(),
                offsets: Arc::clone(&offsets),
                metrics: metrics.clone(),
                health: Arc::clone(&health),
                drain_timeout: kafka.drain_timeout(),
                open_batch: Arc::clone(&open_batch) as Arc<dyn Unsent>,
                stop: stop.clone(),
                commits: !exactly_once,
            })
            .map_err(|source| PipelineError::Client {
                client: "consumer",
                source: without_secrets(source, &kafka.client),
            })?,
    );
    consumer
        .subscribe(&[&kafka.input_topic])
        .map_err(|source| PipelineError::Subscribe {
            topic: kafka.input_topic.clone(),
            source,
        })?;

    let transactions = if exactly_once {
        let (publisher, consumer, topic, id, timeout, metrics) = (
            Arc::clone(&publisher),
            Arc::clone(&consumer),
            kafka.input_topic.clone(),
            kafka.transactional_id.clone(),
            kafka.drain_timeout(),
            metrics.clone(),
        );
        let initialised = tokio::task::spawn_blocking(move || {
            Transactions::init(publisher, consumer, topic, &id, timeout, metrics)
        })
        .await
        .map_err(|error| PipelineError::Thread(std::io::Error::other(error.to_string())))?;
        Some(initialised.map_err(PipelineError::Transactions)?)
    } else {
        None
    };

    // Before the pipeline's threads start, so that they (and librdkafka's later threads) start
    // off the reserved core; held until the run ends.
    let reservation = if config.model.reserve_inference_core {
        match CoreReservation::reserve() {
            Ok(reservation) => Some(reservation),
            Err(error) => {
                tracing::warn!(%error, "no core reserved for the inference thread");
                None
            }
        }
    } else {
        None
    };

    let (scored_tx, scored_rx) = mpsc::channel(1);
    let (pool_tx, pool_rx) = mpsc::unbounded_channel();
    for _ in 0..BATCH_POOL {
        // The receiver is alive: cannot fail.
        let _ = pool_tx.send(Batch::new(max_batch, model.preprocessor.width));
    }
    // Publishing first: if the inference thread cannot start, dropping its channels ends
    // this one.
    let publishing = Publishing {
        scored: scored_rx,
        pool: pool_tx,
        publisher: Arc::clone(&publisher),
        offsets: Arc::clone(&offsets),
        label: ModelLabel {
            version: model.version.clone(),
            threshold: model.threshold,
        },
        metrics: metrics.clone(),
        stop: stop.clone(),
        transactions,
    }
    .spawn()
    .map_err(PipelineError::Thread)?;
    let inference = Inference {
        scorer: model.scorer,
        batches: batches_rx,
        scored: scored_tx,
        offsets: Arc::clone(&offsets),
        metrics: metrics.clone(),
        stop: stop.clone(),
        core: reservation.as_ref().map(CoreReservation::core),
    }
    .spawn()
    .map_err(PipelineError::Thread)?;
    let intake = Batcher {
        open: Arc::clone(&open_batch),
        pool: pool_rx,
        preprocessor: Arc::clone(&model.preprocessor),
        models: reloads,
        max_wait: config.batching.max_wait(),
        stop: stop.clone(),
    }
    .spawn(ConsumerSource::new(
        Arc::clone(&consumer),
        kafka.max_copied_bytes,
    ))
    .map_err(|error| {
        // Nothing will close the batch channel otherwise (the consumer's context holds it),
        // and the inference and publishing threads would wait on it for good.
        open_batch.close();
        PipelineError::Thread(error)
    })?;
    let committer = (!exactly_once).then(|| {
        tokio::spawn(commit_periodically(
            Arc::clone(&consumer),
            kafka.input_topic.clone(),
            Arc::clone(&offsets),
            kafka.commit_interval(),
            stop.clone(),
            metrics.clone(),
        ))
    });
    let lag_refresher = tokio::spawn(lag::refresh_periodically(
        Arc::clone(&consumer),
        kafka.input_topic.clone(),
        metrics.clone(),
        kafka.lag_refresh(),
        stop.clone(),
    ));
    tracing::info!(
        input = %kafka.input_topic,
        output = %kafka.output_topic,
        dead_letter = %kafka.dead_letter_topic,
        group = %kafka.group_id,
        model_version = %model.version,
        threshold = model.threshold,
        max_batch,
        max_wait_ms = config.batching.max_wait_ms,
        guarantee = if exactly_once { "exactly-once" } else { "at-least-once" },
        "worker started"
    );

    tokio::select! {
        () = shutdown => stop.request(),
        () = stop.stopped() => {}
    }
    tracing::info!("stopping: no new records; finishing those in flight");

    // 1. Stop fetching; the batcher sends its last batch on, the inference thread scores what
    // is left and the publishing thread produces it.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = intake.join();
        let _ = inference.join();
        publishing.join()
    })
    .await;
    // 2. Every produced output gets its delivery report.
    let drain_timeout = kafka.drain_timeout();
    let flushing = Arc::clone(&publisher);
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || flushing.flush(drain_timeout)).await
    {
        tracing::warn!(%error, in_flight = publisher.in_flight(), "producer flush incomplete");
    }
    // librdkafka counts a report as done when its event is dequeued, a moment before the
    // producer thread has run our callback for it: wait for the callbacks themselves, and
    // produce what replaces an output they refused.
    let settle_timeout = if stop.failure().is_some() {
        Duration::from_secs(1)
    } else {
        drain_timeout
    };
    let (settling, draining) = (Arc::clone(&offsets), Arc::clone(&publisher));
    if let Ok(left @ 1..) =
        tokio::task::spawn_blocking(move || draining.drain(&settling, settle_timeout)).await
    {
        tracing::warn!(
            left,
            "records without a delivery report; they will be consumed again"
        );
    }
    // 3. Commit what those reports allow, synchronously (exactly-once mode: the transactions
    // did).
    if let Some(committer) = committer {
        let _ = committer.await;
    }
    let _ = lag_refresher.await;
    if !exactly_once {
        let (committing, offsets_ref, topic) = (
            Arc::clone(&consumer),
            Arc::clone(&offsets),
            kafka.input_topic.clone(),
        );
        match tokio::task::spawn_blocking(move || {
            commit_tracked(
                &*committing,
                &topic,
                &offsets_ref,
                None,
                Scope::All,
                CommitMode::Sync,
            )
        })
        .await
        {
            Ok(Ok(committed)) => {
                if !committed.is_empty() {
                    metrics.count_commit(true);
                }
                tracing::info!(?committed, "final offsets committed")
            }
            Ok(Err(error)) => {
                metrics.count_commit(false);
                tracing::warn!(%error, "final offset commit failed")
            }
            Err(error) => tracing::warn!(%error, "final offset commit did not run"),
        }
    }
    let committed: BTreeMap<i32, i64> = {
        let tracker = offsets.lock();
        tracker
            .partitions()
            .filter_map(|partition| Some((partition, tracker.last_committed(partition)?)))
            .collect()
    };
    // 4. Leave the group (the revocation callback finds nothing left to do) and close the
    // producer, off the reactor: both block on broker round trips.
    health.set_assigned_partitions(0);
    let _ = tokio::task::spawn_blocking(move || {
        drop(consumer);
        drop(publisher);
    })
    .await;

    let report = RunReport {
        consumed: metrics.records_consumed.get() - baseline.consumed,
        decided: metrics.decisions_total() - baseline.decided,
        dead_lettered: metrics.dead_lettered_total() - baseline.dead_lettered,
        delivery_failures: metrics.delivery_failures.get() - baseline.delivery_failures,
        committed,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        consumed = report.consumed,
        decided = report.decided,
        dead_lettered = report.dead_lettered,
        delivery_failures = report.delivery_failures,
        committed = ?report.committed,
        "worker stopped"
    );
    match stop.failure() {
        Some(cause) => Err(PipelineError::Failed { cause, report }),
        None => Ok(report),
    }
}

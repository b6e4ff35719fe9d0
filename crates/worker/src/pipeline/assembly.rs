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

use crate::config::{Config, KafkaConfig};
use crate::delivery::clients::{consumer_config, producer_config, without_secrets};
use crate::delivery::commit::{commit_periodically, commit_tracked, Scope};
use crate::delivery::context::{Unsent, WorkerConsumerContext};
use crate::delivery::offsets::SharedOffsets;
use crate::delivery::publish::{DeliveryContext, Publisher};
use crate::delivery::transaction::{TransactionError, Transactions};
use crate::delivery::{lag, WorkerConsumer};
use crate::pipeline::batch::{Batch, ModelLabel, Reasoner};
use crate::pipeline::consume::ConsumerSource;
use crate::pipeline::inference::Inference;
use crate::pipeline::intake::{Batcher, OpenBatch};
use crate::pipeline::placement::CoreReservation;
use crate::pipeline::publishing::Publishing;
use crate::stop::Stop;
use crate::telemetry::fairness::GroupCounting;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use credit_core::explain::{Explainer, ReasonsMode, Reference};
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
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

/// A model ready to serve: the scorer, the schema its records are decoded with, the
/// preprocessor it was trained with, and the decision rule.
pub struct ServedModel {
    pub scorer: Box<dyn Scorer>,
    pub schema: Arc<Schema>,
    pub preprocessor: Arc<Preprocessor>,
    pub version: String,
    /// The threshold in force (the model's own, or the configured override).
    pub threshold: f32,
    /// How its decisions get reasons; `None` when reasons are off.
    pub explaining: Option<Explaining>,
}

/// What a model's decisions need to get their reasons.
pub struct Explaining {
    pub explainer: Explainer,
    /// The applicant contributions are measured against, which decisions quote.
    pub reference: Arc<Reference>,
    /// Which decisions get reasons.
    pub mode: ReasonsMode,
}

impl ServedModel {
    /// Splits the model into what the scoring thread runs and what decisions are labelled with.
    pub(crate) fn into_parts(self) -> (Box<dyn Scorer>, Option<Reasoner>, ModelLabel) {
        let label = ModelLabel {
            version: self.version,
            threshold: self.threshold,
            schema: self.schema,
            reference: self
                .explaining
                .as_ref()
                .map(|explaining| Arc::clone(&explaining.reference)),
        };
        let reasoner = self.explaining.map(|explaining| Reasoner {
            explainer: explaining.explainer,
            mode: explaining.mode,
            threshold: self.threshold,
        });
        (self.scorer, reasoner, label)
    }
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
    #[error("fairness.bands do not fit the served schema: {0}")]
    Fairness(#[source] credit_core::fairness::FairnessError),
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

    /// What the counters gained since the baseline, with the run's final positions.
    fn report(
        &self,
        metrics: &Metrics,
        committed: BTreeMap<i32, i64>,
        elapsed: Duration,
    ) -> RunReport {
        RunReport {
            consumed: metrics.records_consumed.get() - self.consumed,
            decided: metrics.decisions_total() - self.decided,
            dead_lettered: metrics.dead_lettered_total() - self.dead_lettered,
            delivery_failures: metrics.delivery_failures.get() - self.delivery_failures,
            committed,
            elapsed,
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
    check_width(&model)?;
    let groups = GroupCounting::new(
        &model.schema,
        config.fairness.bands.clone(),
        metrics.clone(),
    )
    .map_err(PipelineError::Fairness)?;
    let stop = Stop::new();
    let offsets = Arc::new(SharedOffsets::new());
    let (batches_tx, batches_rx) = mpsc::channel(1);
    let shared = Shared {
        stop,
        open_batch: Arc::new(OpenBatch::new(batches_tx, Arc::clone(&offsets))),
        offsets,
        metrics,
    };
    let clients = Clients::connect(kafka, bootstrap, &shared, &health)?;
    let transactions = clients.init_transactions(kafka, &shared.metrics).await?;
    // Before the pipeline's threads start, so that they (and librdkafka's later threads) start
    // off the reserved core; held until the run ends.
    let reservation = reserve_inference_core(config);

    let (scored_tx, scored_rx) = mpsc::channel(1);
    let (pool_tx, pool_rx) = batch_pool(config.batching.max_batch, model.preprocessor.width);
    // Publishing first: if the inference thread cannot start, dropping its channels ends
    // this one.
    let encoding = (Arc::clone(&model.schema), Arc::clone(&model.preprocessor));
    let (version, threshold) = (model.version.clone(), model.threshold);
    let (scorer, reasoner, label) = model.into_parts();
    let publishing = spawn_publishing(&shared, &clients, scored_rx, pool_tx, label, transactions)?;
    let core = reservation.as_ref().map(CoreReservation::core);
    let inference = spawn_inference(&shared, (scorer, reasoner), batches_rx, scored_tx, core)?;
    let intake = spawn_intake(
        config, &shared, &clients, pool_rx, encoding, reloads, groups,
    )?;
    let threads = Threads {
        intake,
        inference,
        publishing,
    };
    let tasks = Tasks::spawn(kafka, &clients.consumer, &shared);
    log_started(config, &version, threshold);

    tokio::select! {
        () = shutdown => shared.stop.request(),
        () = shared.stop.stopped() => {}
    }
    tracing::info!("stopping: no new records; finishing those in flight");
    let committed = shut_down(kafka, &health, &shared, threads, tasks, clients).await;

    let report = baseline.report(&shared.metrics, committed, started.elapsed());
    log_stopped(&report);
    match shared.stop.failure() {
        Some(cause) => Err(PipelineError::Failed { cause, report }),
        None => Ok(report),
    }
}

/// The ordered shutdown; returns the last position committed per partition.
async fn shut_down(
    kafka: &KafkaConfig,
    health: &Health,
    shared: &Shared,
    threads: Threads,
    tasks: Tasks,
    clients: Clients,
) -> BTreeMap<i32, i64> {
    // 1. Stop fetching; the batcher sends its last batch on, the inference thread scores what
    // is left and the publishing thread produces it.
    threads.join().await;
    // 2. Every produced output gets its delivery report.
    flush_producer(&clients.publisher, kafka.drain_timeout()).await;
    settle_deliveries(&clients.publisher, shared, kafka.drain_timeout()).await;
    // 3. Commit what those reports allow, synchronously (exactly-once mode: the transactions
    // did).
    tasks.join().await;
    if !kafka.exactly_once {
        commit_final(&clients.consumer, &kafka.input_topic, shared).await;
    }
    let committed = last_committed(&shared.offsets);
    // 4. Leave the group (the revocation callback finds nothing left to do) and close the
    // producer, off the reactor: both block on broker round trips.
    health.set_assigned_partitions(0);
    clients.close().await;
    committed
}

fn check_width(model: &ServedModel) -> Result<(), PipelineError> {
    if model.scorer.input_width() != model.preprocessor.width {
        return Err(PipelineError::Width {
            model: model.scorer.input_width(),
            preprocessor: model.preprocessor.width,
        });
    }
    Ok(())
}

/// What the pipeline's threads, tasks and client callbacks hold a handle to.
struct Shared {
    stop: Stop,
    offsets: Arc<SharedOffsets>,
    metrics: Metrics,
    /// The batch being filled, where the revocation callback can send it on.
    open_batch: Arc<OpenBatch>,
}

/// The run's Kafka clients; the consumer is declared first so that it is dropped (leaves the
/// group) before the producer, as the shutdown does.
struct Clients {
    consumer: Arc<WorkerConsumer>,
    publisher: Arc<Publisher>,
}

impl Clients {
    /// Creates the producer, then the consumer, and subscribes the consumer to the input.
    fn connect(
        kafka: &KafkaConfig,
        bootstrap: &str,
        shared: &Shared,
        health: &Arc<Health>,
    ) -> Result<Self, PipelineError> {
        let publisher = Arc::new(create_publisher(kafka, bootstrap, shared)?);
        let consumer: Arc<WorkerConsumer> = Arc::new(
            consumer_config(kafka, bootstrap)
                .create_with_context(WorkerConsumerContext {
                    topic: kafka.input_topic.clone(),
                    offsets: Arc::clone(&shared.offsets),
                    metrics: shared.metrics.clone(),
                    health: Arc::clone(health),
                    drain_timeout: kafka.drain_timeout(),
                    open_batch: Arc::clone(&shared.open_batch) as Arc<dyn Unsent>,
                    stop: shared.stop.clone(),
                    commits: !kafka.exactly_once,
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
        Ok(Self {
            consumer,
            publisher,
        })
    }

    /// In exactly-once mode, the producer's transactions, initialised off the reactor since
    /// they wait on the broker.
    async fn init_transactions(
        &self,
        kafka: &KafkaConfig,
        metrics: &Metrics,
    ) -> Result<Option<Transactions>, PipelineError> {
        if !kafka.exactly_once {
            return Ok(None);
        }
        let (publisher, consumer, topic, id, timeout, metrics) = (
            Arc::clone(&self.publisher),
            Arc::clone(&self.consumer),
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
        Ok(Some(initialised.map_err(PipelineError::Transactions)?))
    }

    async fn close(self) {
        let Self {
            consumer,
            publisher,
        } = self;
        let _ = tokio::task::spawn_blocking(move || {
            drop(consumer);
            drop(publisher);
        })
        .await;
    }
}

fn create_publisher(
    kafka: &KafkaConfig,
    bootstrap: &str,
    shared: &Shared,
) -> Result<Publisher, PipelineError> {
    let delivery = DeliveryContext::new(
        kafka.input_topic.clone(),
        Arc::clone(&shared.offsets),
        shared.metrics.clone(),
        shared.stop.clone(),
        kafka.max_copied_bytes,
    );
    Publisher::new(
        &producer_config(kafka, bootstrap),
        if kafka.exactly_once {
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
    })
}

fn reserve_inference_core(config: &Config) -> Option<CoreReservation> {
    if !config.model.reserve_inference_core {
        return None;
    }
    match CoreReservation::reserve() {
        Ok(reservation) => Some(reservation),
        Err(error) => {
            tracing::warn!(%error, "no core reserved for the inference thread");
            None
        }
    }
}

/// The empty batches in circulation, ready for the intake thread to fill.
fn batch_pool(
    max_batch: usize,
    width: usize,
) -> (mpsc::UnboundedSender<Batch>, mpsc::UnboundedReceiver<Batch>) {
    let (pool_tx, pool_rx) = mpsc::unbounded_channel();
    for _ in 0..BATCH_POOL {
        // The receiver is alive: cannot fail.
        let _ = pool_tx.send(Batch::new(max_batch, width));
    }
    (pool_tx, pool_rx)
}

fn spawn_publishing(
    shared: &Shared,
    clients: &Clients,
    scored: mpsc::Receiver<Batch>,
    pool: mpsc::UnboundedSender<Batch>,
    label: ModelLabel,
    transactions: Option<Transactions>,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    Publishing {
        scored,
        pool,
        publisher: Arc::clone(&clients.publisher),
        offsets: Arc::clone(&shared.offsets),
        label,
        metrics: shared.metrics.clone(),
        stop: shared.stop.clone(),
        transactions,
    }
    .spawn()
    .map_err(PipelineError::Thread)
}

fn spawn_inference(
    shared: &Shared,
    (scorer, reasoner): (Box<dyn Scorer>, Option<Reasoner>),
    batches: mpsc::Receiver<Batch>,
    scored: mpsc::Sender<Batch>,
    core: Option<usize>,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    Inference {
        scorer,
        reasoner,
        batches,
        scored,
        offsets: Arc::clone(&shared.offsets),
        metrics: shared.metrics.clone(),
        stop: shared.stop.clone(),
        core,
    }
    .spawn()
    .map_err(PipelineError::Thread)
}

fn spawn_intake(
    config: &Config,
    shared: &Shared,
    clients: &Clients,
    pool: mpsc::UnboundedReceiver<Batch>,
    (schema, preprocessor): (Arc<Schema>, Arc<Preprocessor>),
    reloads: mpsc::Receiver<ServedModel>,
    groups: GroupCounting,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    Batcher {
        open: Arc::clone(&shared.open_batch),
        pool,
        schema,
        preprocessor,
        models: reloads,
        groups,
        max_wait: config.batching.max_wait(),
        stop: shared.stop.clone(),
    }
    .spawn(ConsumerSource::new(
        Arc::clone(&clients.consumer),
        config.kafka.max_copied_bytes,
    ))
    .map_err(|error| {
        // Nothing will close the batch channel otherwise (the consumer's context holds it),
        // and the inference and publishing threads would wait on it for good.
        shared.open_batch.close();
        PipelineError::Thread(error)
    })
}

/// The pipeline's threads, in the order they end.
struct Threads {
    intake: std::thread::JoinHandle<()>,
    inference: std::thread::JoinHandle<()>,
    publishing: std::thread::JoinHandle<()>,
}

impl Threads {
    /// Joins the threads off the reactor, each after the one that feeds it.
    async fn join(self) {
        let Self {
            intake,
            inference,
            publishing,
        } = self;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = intake.join();
            let _ = inference.join();
            publishing.join()
        })
        .await;
    }
}

/// The runtime's periodic tasks; both end once the pipeline is stopping.
struct Tasks {
    committer: Option<tokio::task::JoinHandle<()>>,
    lag_refresher: tokio::task::JoinHandle<()>,
}

impl Tasks {
    /// The periodic commits run in at-least-once mode only: in exactly-once mode the
    /// transactions commit.
    fn spawn(kafka: &KafkaConfig, consumer: &Arc<WorkerConsumer>, shared: &Shared) -> Self {
        let committer = (!kafka.exactly_once).then(|| {
            tokio::spawn(commit_periodically(
                Arc::clone(consumer),
                kafka.input_topic.clone(),
                Arc::clone(&shared.offsets),
                kafka.commit_interval(),
                shared.stop.clone(),
                shared.metrics.clone(),
            ))
        });
        let lag_refresher = tokio::spawn(lag::refresh_periodically(
            Arc::clone(consumer),
            kafka.input_topic.clone(),
            shared.metrics.clone(),
            kafka.lag_refresh(),
            shared.stop.clone(),
        ));
        Self {
            committer,
            lag_refresher,
        }
    }

    async fn join(self) {
        if let Some(committer) = self.committer {
            let _ = committer.await;
        }
        let _ = self.lag_refresher.await;
    }
}

fn log_started(config: &Config, model_version: &str, threshold: f32) {
    let kafka = &config.kafka;
    tracing::info!(
        input = %kafka.input_topic,
        output = %kafka.output_topic,
        dead_letter = %kafka.dead_letter_topic,
        group = %kafka.group_id,
        model_version = %model_version,
        threshold,
        max_batch = config.batching.max_batch,
        max_wait_ms = config.batching.max_wait_ms,
        guarantee = if kafka.exactly_once { "exactly-once" } else { "at-least-once" },
        "worker started"
    );
}

async fn flush_producer(publisher: &Arc<Publisher>, timeout: Duration) {
    let flushing = Arc::clone(publisher);
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || flushing.flush(timeout)).await {
        tracing::warn!(%error, in_flight = publisher.in_flight(), "producer flush incomplete");
    }
}

/// librdkafka counts a report as done when its event is dequeued, a moment before the
/// producer thread has run our callback for it: wait for the callbacks themselves, and
/// produce what replaces an output they refused.
async fn settle_deliveries(publisher: &Arc<Publisher>, shared: &Shared, drain_timeout: Duration) {
    let settle_timeout = if shared.stop.failure().is_some() {
        Duration::from_secs(1)
    } else {
        drain_timeout
    };
    let (settling, draining) = (Arc::clone(&shared.offsets), Arc::clone(publisher));
    if let Ok(left @ 1..) =
        tokio::task::spawn_blocking(move || draining.drain(&settling, settle_timeout)).await
    {
        tracing::warn!(
            left,
            "records without a delivery report; they will be consumed again"
        );
    }
}

async fn commit_final(consumer: &Arc<WorkerConsumer>, topic: &str, shared: &Shared) {
    let (committing, offsets, topic) = (
        Arc::clone(consumer),
        Arc::clone(&shared.offsets),
        topic.to_owned(),
    );
    match tokio::task::spawn_blocking(move || {
        commit_tracked(
            &*committing,
            &topic,
            &offsets,
            None,
            Scope::All,
            CommitMode::Sync,
        )
    })
    .await
    {
        Ok(Ok(committed)) => {
            if !committed.is_empty() {
                shared.metrics.count_commit(true);
            }
            tracing::info!(?committed, "final offsets committed")
        }
        Ok(Err(error)) => {
            shared.metrics.count_commit(false);
            tracing::warn!(%error, "final offset commit failed")
        }
        Err(error) => tracing::warn!(%error, "final offset commit did not run"),
    }
}

/// The last position committed per partition still tracked at the end.
fn last_committed(offsets: &SharedOffsets) -> BTreeMap<i32, i64> {
    let tracker = offsets.lock();
    tracker
        .partitions()
        .filter_map(|partition| Some((partition, tracker.last_committed(partition)?)))
        .collect()
}

fn log_stopped(report: &RunReport) {
    tracing::info!(
        consumed = report.consumed,
        decided = report.decided,
        dead_lettered = report.dead_lettered,
        delivery_failures = report.delivery_failures,
        committed = ?report.committed,
        "worker stopped"
    );
}

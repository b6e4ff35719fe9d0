//! One backfill run: reader thread → worker threads → ordered writer, with checkpoints.
//!
//! ```text
//!  reader ──RawChunk──▶ worker 1 (decode, preprocess, own ONNX session) ──┐
//!  (finds rows,         worker 2 ...                                      ├──▶ writer (this thread):
//!   seq-numbers them)   worker N ...                                      ┘    reorders by sequence,
//!                                                                              writes, commits,
//!                                                                              checkpoints
//! ```
//!
//! Memory is bounded whatever the input size: both channels are bounded, and the reader may
//! run at most [`WINDOW_PER_WORKER`] chunks per worker ahead of the writer, so the reorder
//! buffer cannot grow behind one slow chunk. The writer is the only thread that touches the
//! output, the reject file and the checkpoint, and it commits in input order, which is what
//! makes "the checkpoint's input position ↔ the output's committed length" a consistent pair.

use super::checkpoint::{Checkpoint, Fingerprint, FORMAT_VERSION};
use super::fields::Layout;
use super::format::Format;
use super::model::BackfillModel;
use super::psi::{PsiReference, BINS};
use super::rejects::RejectFile;
use super::row::{InputPosition, InputRow, RejectedRow, ScoredChunk, ScoredRow};
use super::shard::Shard;
use super::sink::{self, OutputSpec, OutputState, Sink};
use super::source::{self, Decoder, Extent, RawChunk};
use super::stats::{RunningStats, TrainingCheck};
use super::summary::{Summary, TrainingRowsSummary};
use super::topic::{self, PartitionRange, RangeEnd, RangeStart, TopicAddress};
use super::{BackfillError, OutputPaths};
use credit_core::explain::{ExplainError, Explainer, Reasons, ReasonsMode, DEFAULT_TOP};
use credit_core::fairness::ProtectedGroups;
use credit_core::scoring::onnx_runtime::OnnxScorer;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many chunks per worker the reader may be ahead of the writer.
pub(crate) const WINDOW_PER_WORKER: u64 = 3;

/// Settings of a Kafka input or output (see [`super::topic`]).
#[derive(Clone, Default)]
pub struct KafkaOptions {
    /// The consumer group that receives the input position at every checkpoint.
    pub group: String,
    /// Start of the input range in every partition.
    pub from: RangeStart,
    /// End of the input range in every partition.
    pub until: RangeEnd,
    /// Pass-through librdkafka settings (security, tuning) for both clients.
    pub settings: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaOptions {
    /// Secret settings (`sasl.password`, `ssl.key.password`...) are redacted, as the
    /// worker's `kafka.client` table is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("group", &self.group)
            .field("from", &self.from)
            .field("until", &self.until)
            .field(
                "settings",
                &credit_kafka::settings::redacted_client(&self.settings),
            )
            .finish()
    }
}

/// Settings of a `score` run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// A file, or `kafka://BROKERS/TOPIC`.
    pub input: PathBuf,
    /// Input format; from the extension when `None`.
    pub input_format: Option<Format>,
    /// A file or Parquet directory, or `kafka://BROKERS/TOPIC`.
    pub output: PathBuf,
    /// Where the checkpoint, reject file and summary go (`<state>.checkpoint.json`...); the
    /// output path when `None`. Required for a Kafka output.
    pub state: Option<PathBuf>,
    /// Kafka input and output settings.
    pub kafka: KafkaOptions,
    /// Output format; from the extension when `None`.
    pub output_format: Option<Format>,
    /// Append the applicant's fields and outcome to each output row.
    pub include_fields: bool,
    pub shard: Shard,
    /// Rows per chunk (one inference per chunk).
    pub batch_size: usize,
    /// Worker threads, each with its own ONNX session; 0 for one per core.
    pub workers: usize,
    /// ONNX Runtime threads inside each session.
    pub intra_threads: usize,
    /// Fail once more than this many rows were rejected.
    pub max_rejects: Option<u64>,
    /// `fsync` output, rejects and checkpoint at each commit.
    pub durable: bool,
    /// Rows per Parquet part file.
    pub part_rows: usize,
    /// Training data scored for the PSI reference (`None`, or a missing file: no PSI).
    pub reference: Option<PathBuf>,
    /// Start over even though the output exists without a checkpoint.
    pub force: bool,
    /// Band edges per protected numeric field for the fairness report, replacing the
    /// schema's `bands` (`--fairness-bands FIELD=25,35`).
    pub fairness_bands: Vec<(String, Vec<f64>)>,
    /// Which rows get adverse-action reasons, and how many each.
    pub reasons: ReasonsMode,
    pub reasons_top: usize,
    /// Test hook: after writing this many rows, stop as a crash would (output written but
    /// not committed) and fail with [`BackfillError::SimulatedCrash`].
    pub stop_after_rows: Option<u64>,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            input: PathBuf::new(),
            input_format: None,
            output: PathBuf::new(),
            state: None,
            kafka: KafkaOptions {
                group: "credit-risk-backfill".into(),
                ..KafkaOptions::default()
            },
            output_format: None,
            include_fields: false,
            shard: Shard::ALL,
            batch_size: 4096,
            workers: 0,
            intra_threads: 1,
            max_rejects: None,
            durable: true,
            part_rows: 1 << 20,
            reference: None,
            fairness_bands: Vec::new(),
            reasons: ReasonsMode::Declines,
            reasons_top: DEFAULT_TOP,
            force: false,
            stop_after_rows: None,
        }
    }
}

/// Where a run is, reported after every chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Position in the input, in the unit of `extent`.
    pub position: u64,
    pub extent: Extent,
    /// Rows scored over every attempt.
    pub rows: u64,
    /// Rows rejected over every attempt.
    pub rejects: u64,
    /// Rows scored by this attempt.
    pub rows_this_attempt: u64,
    pub elapsed: Duration,
}

/// Back-pressure between the writer and the reader, and the stop flag.
struct Flow {
    written: Mutex<u64>,
    advanced: Condvar,
    stop: AtomicBool,
}

impl Flow {
    fn advance(&self, written: u64) {
        *self.written.lock().unwrap_or_else(PoisonError::into_inner) = written;
        self.advanced.notify_all();
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.advanced.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits until chunk `sequence` is within `window` of the writer; false when stopping.
    fn wait_for_room(&self, sequence: u64, window: u64) -> bool {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        while sequence >= *written + window {
            if self.stopping() {
                return false;
            }
            written = self
                .advanced
                .wait_timeout(written, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        !self.stopping()
    }
}

/// Runs a backfill; `progress` is called after every chunk.
pub fn run(
    options: &ScoreOptions,
    model: &BackfillModel,
    progress: &dyn Fn(&Progress),
) -> Result<Summary, BackfillError> {
    let started = Instant::now();
    let endpoints = Endpoints::resolve(options)?;
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let batch_size = options.batch_size.max(1);
    let groups = ProtectedGroups::new(&model.schema, &options.fairness_bands)?;
    let mut fingerprint = fingerprint(options, model, &endpoints)?;
    fingerprint.fairness_groups = groups.describe();
    if options.reasons != ReasonsMode::Off {
        fingerprint.reasons = format!("{}:{}", options.reasons.as_str(), options.reasons_top);
    }
    let kafka_input = match &endpoints.input_topic {
        Some(address) => Some(KafkaInput::connect(address.clone(), &options.kafka)?),
        None => None,
    };

    // Resume, refuse, or start afresh.
    let previous = Checkpoint::load(&endpoints.paths.checkpoint)?;
    check_resumable(options, &endpoints, &fingerprint, previous.as_ref())?;
    let reference = psi_reference(options, model, workers, batch_size)?;
    let explainer = explainer(options, model)?;
    let run = Run {
        options,
        model,
        paths: &endpoints.paths,
        reference: reference.as_ref(),
        groups: &groups,
        explainer,
        started,
        workers,
        batch_size,
    };
    let checkpoint = match previous {
        Some(checkpoint) if checkpoint.complete => {
            let attempt = Attempt {
                resumed_from_row: checkpoint.input.rows,
                rows: 0,
                already_complete: true,
            };
            return Ok(run.summary(&checkpoint.stats, attempt));
        }
        Some(checkpoint) => checkpoint,
        None => run.start_afresh(fingerprint, kafka_input.as_ref())?,
    };
    run.score(checkpoint, &endpoints, kafka_input, progress)
}

/// Where a run reads and writes, in which formats, and where it keeps its state.
struct Endpoints {
    input_topic: Option<TopicAddress>,
    output_topic: Option<TopicAddress>,
    input_format: Format,
    output_format: Format,
    paths: OutputPaths,
}

impl Endpoints {
    fn resolve(options: &ScoreOptions) -> Result<Self, BackfillError> {
        let input_topic = topic_of(&options.input)?;
        let output_topic = topic_of(&options.output)?;
        // Kafka records and decisions are JSON: for the fingerprint, they are JSON Lines.
        let input_format = match input_topic {
            Some(_) => Format::Jsonl,
            None => Format::resolve(options.input_format, &options.input)?,
        };
        let output_format = match output_topic {
            Some(_) => Format::Jsonl,
            None => Format::resolve(options.output_format, &options.output)?,
        };
        if output_topic.is_some() && options.include_fields {
            return Err(BackfillError::KafkaOutput(
                "--include-fields does not apply to a Kafka output: decisions are published in \
                 the worker's decision format"
                    .into(),
            ));
        }
        let paths = match (&options.state, &output_topic) {
            (Some(state), _) => OutputPaths::for_output(state),
            (None, None) => OutputPaths::for_output(&options.output),
            (None, Some(_)) => {
                return Err(BackfillError::KafkaOutput(
                    "a Kafka output needs --state PATH: where the checkpoint, reject file and \
                     summary are kept (PATH.checkpoint.json, ...)"
                        .into(),
                ))
            }
        };
        Ok(Self {
            input_topic,
            output_topic,
            input_format,
            output_format,
            paths,
        })
    }
}

/// What a checkpoint must have been written with for this run to resume it.
fn fingerprint(
    options: &ScoreOptions,
    model: &BackfillModel,
    endpoints: &Endpoints,
) -> Result<Fingerprint, BackfillError> {
    match &endpoints.input_topic {
        Some(address) => Ok(Fingerprint {
            input_path: address.to_string(),
            input_bytes: 0,
            input_modified_ns: 0,
            input_format: endpoints.input_format,
            model_version: model.version.clone(),
            threshold: model.threshold,
            shard: options.shard,
            output_format: endpoints.output_format,
            include_fields: options.include_fields,
            kafka_range: Some(format!(
                "{:?}..{:?}",
                options.kafka.from, options.kafka.until
            )),
            fairness_groups: String::new(),
            reasons: String::new(),
        }),
        None => Fingerprint::of_input(
            &options.input,
            endpoints.input_format,
            &model.version,
            model.threshold,
            options.shard,
            endpoints.output_format,
            options.include_fields,
        )
        .map_err(|source| BackfillError::Input {
            path: options.input.clone(),
            source,
        }),
    }
}

/// Refuses a checkpoint written with other settings, and an existing output that no
/// checkpoint accounts for (unless forced): either would mix two runs in one output.
fn check_resumable(
    options: &ScoreOptions,
    endpoints: &Endpoints,
    fingerprint: &Fingerprint,
    previous: Option<&Checkpoint>,
) -> Result<(), BackfillError> {
    if let Some(previous) = previous {
        let differences = fingerprint.differences(&previous.fingerprint);
        if !differences.is_empty() {
            return Err(BackfillError::Fingerprint {
                checkpoint: endpoints.paths.checkpoint.clone(),
                differences,
            });
        }
    } else if endpoints.output_topic.is_none() && output_exists(&options.output) && !options.force {
        return Err(BackfillError::OutputExists {
            path: options.output.clone(),
        });
    }
    Ok(())
}

/// The PSI reference: the training data scored by the same model.
fn psi_reference(
    options: &ScoreOptions,
    model: &BackfillModel,
    workers: usize,
    batch_size: usize,
) -> Result<Option<PsiReference>, BackfillError> {
    let mut reference_scorer = model.scorer(workers * options.intra_threads.max(1))?;
    let reference = match &options.reference {
        Some(path) if path.is_file() => {
            let applicants = reference_applicants(model, path)?;
            let scores = model.score_all(&mut reference_scorer, &applicants, batch_size)?;
            PsiReference::from_scores(&scores, BINS)
        }
        Some(path) => {
            tracing::warn!(reference = %path.display(), "PSI reference not found; no PSI");
            None
        }
        None => None,
    };
    Ok(reference)
}

/// The applicants of the reference file, read with the model's schema like any input (its
/// format from its extension); a row that does not fit the schema fails the run.
fn reference_applicants(
    model: &BackfillModel,
    path: &Path,
) -> Result<Vec<credit_core::applicant::Applicant>, BackfillError> {
    let format = Format::resolve(None, path)?;
    let (mut source, decoder) = source::open(
        Arc::clone(&model.schema),
        path,
        format,
        InputPosition::default(),
    )?;
    let (mut rows, mut rejections) = (Vec::new(), Vec::new());
    while let Some(chunk) = source.next_chunk(4096)? {
        decoder.decode(&chunk, Shard::ALL, &mut rows, &mut rejections)?;
        if let Some(rejected) = rejections.pop() {
            return Err(BackfillError::Reference {
                path: path.to_path_buf(),
                row: rejected.row,
                field: rejected.field,
                reason: rejected.reason,
            });
        }
    }
    Ok(rows.into_iter().map(|row| row.applicant).collect())
}

/// The explainer of the run's reasons, unless they are off; a bundle without a reference
/// applicant cannot give them.
fn explainer(
    options: &ScoreOptions,
    model: &BackfillModel,
) -> Result<Option<Explainer>, BackfillError> {
    if options.reasons == ReasonsMode::Off {
        return Ok(None);
    }
    let reference = model.reference.as_ref().ok_or(ExplainError::NoReference)?;
    let explainer = Explainer::new(&model.preprocessor, reference, options.reasons_top)?;
    Ok(Some(explainer))
}

/// One run's settings and what was settled from them before the first row is read.
struct Run<'a> {
    options: &'a ScoreOptions,
    model: &'a BackfillModel,
    paths: &'a OutputPaths,
    reference: Option<&'a PsiReference>,
    groups: &'a ProtectedGroups,
    /// What every worker thread clones to compute reasons; `None` when they are off.
    explainer: Option<Explainer>,
    started: Instant,
    workers: usize,
    batch_size: usize,
}

impl<'a> Run<'a> {
    /// A checkpoint at the very start, so that a crash before the first commit is resumed
    /// (from zero) rather than refused as an unknown existing output.
    fn start_afresh(
        &self,
        fingerprint: Fingerprint,
        kafka_input: Option<&KafkaInput>,
    ) -> Result<Checkpoint, BackfillError> {
        // A Kafka input's range is fixed now, once: a resumed run reads the same records.
        let kafka_ranges = match kafka_input {
            Some(input) => Some(input.resolve_ranges(self.options)?),
            None => None,
        };
        let fresh = Checkpoint {
            format_version: FORMAT_VERSION,
            fingerprint,
            input: InputPosition::default(),
            output: OutputState::default(),
            rejects_bytes: 0,
            stats: RunningStats::new(self.reference.map_or(0, PsiReference::bins), self.groups),
            kafka_ranges,
            complete: false,
            updated_at: now(),
        };
        fresh.save(&self.paths.checkpoint, self.options.durable)?;
        Ok(fresh)
    }

    /// Scores the input from `checkpoint` on, then writes the summary.
    fn score(
        &self,
        checkpoint: Checkpoint,
        endpoints: &Endpoints,
        kafka_input: Option<KafkaInput>,
        progress: &dyn Fn(&Progress),
    ) -> Result<Summary, BackfillError> {
        let resume_state = self.resume_state(&checkpoint);
        let (source, decoder) = open_source(
            self.options,
            self.model,
            endpoints.input_format,
            kafka_input.as_ref(),
            &checkpoint,
        )?;
        let sink = self.open_sink(endpoints, resume_state)?;
        let rejects = open_rejects(&self.paths.rejects, &checkpoint)?;
        let scorers = self.scorers()?;

        let resumed_from_row = checkpoint.input.rows;
        let mut writer = self.writer(sink, rejects, checkpoint, source.extent(), kafka_input);
        progress(&writer.progress());
        let pipeline = Pipeline {
            decoder: &decoder,
            model: self.model,
            explainer: self.explainer.as_ref(),
            reasons: self.options.reasons,
            shard: self.options.shard,
            batch_size: self.batch_size,
            window: WINDOW_PER_WORKER * self.workers as u64,
        };
        pipeline.run(source, scorers, &mut writer, progress)?;
        let stats = writer.finish()?;
        let attempt = Attempt {
            resumed_from_row,
            rows: writer.rows_this_attempt,
            already_complete: false,
        };
        let summary = self.summary(&stats, attempt);
        write_summary(&self.paths.summary, &summary)?;
        Ok(summary)
    }

    /// The committed output to continue from, when `checkpoint` is one of an earlier attempt.
    fn resume_state(&self, checkpoint: &Checkpoint) -> Option<OutputState> {
        let resuming = checkpoint.input.rows > 0 || checkpoint.output != OutputState::default();
        if resuming {
            tracing::info!(
                rows = checkpoint.input.rows,
                checkpoint = %self.paths.checkpoint.display(),
                "resuming"
            );
        }
        resuming.then_some(checkpoint.output)
    }

    fn open_sink(
        &self,
        endpoints: &Endpoints,
        resume_state: Option<OutputState>,
    ) -> Result<Box<dyn Sink>, BackfillError> {
        let spec = OutputSpec {
            layout: Arc::new(Layout::new(Arc::clone(&self.model.schema))),
            threshold: self.model.threshold,
            model_version: self.model.version.clone(),
            include_fields: self.options.include_fields,
            reference: self.explainer.as_ref().and(self.model.reference.clone()),
            durable: self.options.durable,
            part_rows: self.options.part_rows,
        };
        let sink: Box<dyn Sink> = match &endpoints.output_topic {
            Some(address) => Box::new(sink::kafka::KafkaSink::open(
                address,
                &self.options.kafka.settings,
                spec,
            )?),
            None => sink::open(
                &self.options.output,
                endpoints.output_format,
                spec,
                resume_state,
            )?,
        };
        Ok(sink)
    }

    /// One ONNX session per worker thread.
    fn scorers(&self) -> Result<Vec<OnnxScorer>, BackfillError> {
        let mut scorers = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            scorers.push(self.model.scorer(self.options.intra_threads)?);
        }
        Ok(scorers)
    }

    fn writer(
        &self,
        sink: Box<dyn Sink>,
        rejects: RejectFile,
        checkpoint: Checkpoint,
        extent: Extent,
        kafka_input: Option<KafkaInput>,
    ) -> Writer<'a> {
        Writer {
            options: self.options,
            paths: self.paths,
            sink: Some(sink),
            rejects,
            checkpoint,
            reference: self.reference,
            groups: self.groups,
            training: self.training(),
            threshold: self.model.threshold,
            rows_this_attempt: 0,
            extent,
            started: self.started,
            kafka_input,
        }
    }

    /// The model's training rows, when its bundle records them.
    fn training(&self) -> Option<TrainingCheck<'a>> {
        let model = self.model;
        model.training_rows.as_deref().map(|rows| TrainingCheck {
            schema: &model.schema,
            rows,
        })
    }

    fn summary(&self, stats: &RunningStats, attempt: Attempt) -> Summary {
        let (options, model) = (self.options, self.model);
        let seconds = self.started.elapsed().as_secs_f64();
        let reference_path = options
            .reference
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Summary {
            input: options.input.display().to_string(),
            output: options.output.display().to_string(),
            model_version: model.version.clone(),
            threshold: model.threshold,
            shard: options.shard.to_string(),
            rows: stats.rows,
            rejects: stats.rejects,
            rejects_file: self.paths.rejects.display().to_string(),
            bad_decisions: stats.decided_bad,
            bad_rate: stats.bad_rate(),
            resumed_from_row: attempt.resumed_from_row,
            rows_this_attempt: attempt.rows,
            wall_seconds: seconds,
            rows_per_second: if seconds > 0.0 {
                attempt.rows as f64 / seconds
            } else {
                0.0
            },
            workers: self.workers,
            intra_threads: options.intra_threads,
            batch_size: self.batch_size,
            backtest: Summary::backtest(stats, model.threshold),
            psi: Summary::psi(stats, self.reference, &reference_path),
            fairness: Summary::fairness(stats, self.groups),
            already_complete: attempt.already_complete,
            training_rows: TrainingRowsSummary::of(stats, model.training_rows.is_some()),
        }
    }
}

/// The input as chunks of raw rows, and the decoder that turns them into applicants.
fn open_source(
    options: &ScoreOptions,
    model: &BackfillModel,
    input_format: Format,
    kafka_input: Option<&KafkaInput>,
    checkpoint: &Checkpoint,
) -> Result<(Box<dyn source::Source>, Decoder), BackfillError> {
    match kafka_input {
        Some(input) => {
            let ranges = checkpoint.kafka_ranges.clone().ok_or_else(|| {
                BackfillError::Internal("the checkpoint of a Kafka input has no ranges".into())
            })?;
            let source = source::kafka::KafkaSource::new(
                Arc::clone(&input.consumer),
                input.address.clone(),
                ranges,
                checkpoint.input,
                (options.kafka.from, options.kafka.until),
            )?;
            let decoder = source::kafka::KafkaDecoder::new(Arc::clone(&model.schema));
            Ok((Box::new(source), Decoder::Kafka(decoder)))
        }
        None => Ok(source::open(
            Arc::clone(&model.schema),
            &options.input,
            input_format,
            checkpoint.input,
        )?),
    }
}

fn open_rejects(path: &Path, checkpoint: &Checkpoint) -> Result<RejectFile, BackfillError> {
    RejectFile::open(path, checkpoint.rejects_bytes, checkpoint.stats.rejects).map_err(|source| {
        BackfillError::Rejects {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The topic `path` names, if it is a `kafka://` address.
fn topic_of(path: &Path) -> Result<Option<TopicAddress>, BackfillError> {
    match path.to_str().and_then(TopicAddress::detect) {
        Some(address) => Ok(Some(address?)),
        None => Ok(None),
    }
}

/// A Kafka input: its topic and the consumer that reads it (shared by the reader thread and
/// the writer, which hands positions to the group).
struct KafkaInput {
    address: TopicAddress,
    consumer: Arc<BaseConsumer>,
}

impl KafkaInput {
    fn connect(address: TopicAddress, options: &KafkaOptions) -> Result<Self, BackfillError> {
        let consumer = topic::consumer_config(&address, &options.group, &options.settings)
            .create::<BaseConsumer>()
            .map_err(|error| topic::client_error(&address, &error))?;
        Ok(Self {
            address,
            consumer: Arc::new(consumer),
        })
    }

    /// This shard's partitions with the offset range each is read over.
    fn resolve_ranges(&self, options: &ScoreOptions) -> Result<Vec<PartitionRange>, BackfillError> {
        let partitions = topic::shard_partitions(&self.consumer, &self.address, options.shard)?;
        Ok(topic::resolve_ranges(
            &self.consumer,
            &self.address,
            &partitions,
            options.kafka.from,
            options.kafka.until,
        )?)
    }

    /// Hands the checkpointed `position` to the consumer group, so that Kafka's own tooling
    /// (`kafka-consumer-groups --describe`) shows the backfill's progress and lag. The
    /// checkpoint, not the group, is what a resumed run starts from: the two cannot be
    /// written atomically, and the checkpoint is the one kept consistent with the output.
    /// The last commit (`wait`) is synchronous, so that it is in before the run reports
    /// completion and drops the consumer.
    fn commit(&self, position: &InputPosition, wait: bool) {
        let Some(kafka) = position.kafka else { return };
        let mut offsets = TopicPartitionList::new();
        let added = offsets.add_partition_offset(
            &self.address.topic,
            kafka.partition,
            Offset::Offset(kafka.offset),
        );
        let mode = if wait {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        let committed = added.and_then(|()| self.consumer.commit(&offsets, mode));
        if let Err(error) = committed {
            tracing::warn!(%error, partition = kafka.partition, "cannot commit the position to the group");
        }
    }
}

/// Whether something is at the output path already (a file, or a non-empty directory).
fn output_exists(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some(),
        Err(_) => path.exists(),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The threads of one attempt.
struct Pipeline<'a> {
    decoder: &'a Decoder,
    model: &'a BackfillModel,
    /// Cloned by every worker thread; `None` when reasons are off.
    explainer: Option<&'a Explainer>,
    reasons: ReasonsMode,
    shard: Shard,
    batch_size: usize,
    window: u64,
}

type ChunkResult = Result<ScoredChunk, BackfillError>;

impl Pipeline<'_> {
    fn run(
        &self,
        mut source: Box<dyn source::Source>,
        scorers: Vec<OnnxScorer>,
        writer: &mut Writer<'_>,
        progress: &dyn Fn(&Progress),
    ) -> Result<(), BackfillError> {
        let workers = scorers.len();
        let flow = Flow {
            written: Mutex::new(0),
            advanced: Condvar::new(),
            stop: AtomicBool::new(false),
        };
        let (work_tx, work_rx) = sync_channel::<RawChunk>(workers * 2);
        let work_rx = Mutex::new(work_rx);
        let (result_tx, result_rx) = sync_channel::<ChunkResult>(workers * 2);

        std::thread::scope(|scope| {
            let reader_results = result_tx.clone();
            let flow_ref = &flow;
            let batch_size = self.batch_size;
            let window = self.window;
            std::thread::Builder::new()
                .name("backfill-reader".into())
                .spawn_scoped(scope, move || {
                    read(
                        &mut *source,
                        batch_size,
                        window,
                        flow_ref,
                        work_tx,
                        reader_results,
                    )
                })
                .map_err(BackfillError::Thread)?;
            for (number, scorer) in scorers.into_iter().enumerate() {
                let results = result_tx.clone();
                let work_rx = &work_rx;
                std::thread::Builder::new()
                    .name(format!("backfill-worker-{number}"))
                    .spawn_scoped(scope, move || self.work(scorer, work_rx, results))
                    .map_err(BackfillError::Thread)?;
            }
            drop(result_tx);
            let outcome = write_in_order(&result_rx, writer, &flow, progress);
            if outcome.is_err() {
                flow.stop();
            }
            // Unblocks workers waiting to hand over results; the scope then joins everyone.
            drop(result_rx);
            outcome
        })
    }

    /// A worker: decode, preprocess and score chunks until the reader is done.
    fn work(
        &self,
        mut scorer: OnnxScorer,
        work_rx: &Mutex<Receiver<RawChunk>>,
        results: SyncSender<ChunkResult>,
    ) {
        let mut features = Vec::new();
        let mut probabilities = Vec::new();
        let mut explaining = self
            .explainer
            .map(|explainer| (explainer.clone(), Reasons::default()));
        loop {
            let chunk = {
                let receiver = work_rx.lock().unwrap_or_else(PoisonError::into_inner);
                receiver.recv()
            };
            let Ok(chunk) = chunk else { break };
            let result = self.score_chunk(
                &chunk,
                &mut scorer,
                (&mut features, &mut probabilities),
                explaining.as_mut(),
            );
            if results.send(result).is_err() {
                break;
            }
        }
    }

    fn score_chunk(
        &self,
        chunk: &RawChunk,
        scorer: &mut OnnxScorer,
        (features, probabilities): (&mut Vec<f32>, &mut Vec<f32>),
        explaining: Option<&mut (Explainer, Reasons)>,
    ) -> ChunkResult {
        let mut rows: Vec<InputRow> = Vec::with_capacity(chunk.len());
        let mut rejections: Vec<RejectedRow> = Vec::new();
        self.decoder
            .decode(chunk, self.shard, &mut rows, &mut rejections)?;
        let preprocessor = &self.model.preprocessor;
        let width = preprocessor.width;
        // No clear(): `transform_into` overwrites every cell of a row, so only the length
        // needs to change (zeroing the whole buffer first would be a wasted pass).
        features.resize(rows.len() * width, 0.0);
        for (row, out) in rows.iter().zip(features.chunks_exact_mut(width)) {
            preprocessor
                .transform_into(&row.applicant, out)
                .map_err(credit_core::loader::ModelError::from)?;
        }
        scorer
            .score_into(features, rows.len(), probabilities)
            .map_err(credit_core::loader::ModelError::from)?;
        let (mode, threshold) = (self.reasons, self.model.threshold);
        let reasons = match explaining {
            Some((explainer, reasons)) => {
                // The same session that scored the rows: the reasons are this model's.
                explainer.explain(
                    scorer,
                    features,
                    probabilities,
                    |row| mode.wants(probabilities[row], threshold),
                    reasons,
                )?;
                Some(&*reasons)
            }
            None => None,
        };
        let rows = rows
            .into_iter()
            .zip(probabilities.iter())
            .enumerate()
            .map(|(at, (row, &probability_bad))| ScoredRow {
                row,
                probability_bad,
                reasons: reasons.map_or_else(Vec::new, |reasons| reasons.of_row(at).to_vec()),
            })
            .collect();
        Ok(ScoredChunk {
            sequence: chunk.sequence,
            rows,
            rejections,
            end: chunk.end,
        })
    }
}

/// The reader thread: numbered chunks to the workers, within the window.
fn read(
    source: &mut dyn source::Source,
    batch_size: usize,
    window: u64,
    flow: &Flow,
    work_tx: SyncSender<RawChunk>,
    results: SyncSender<ChunkResult>,
) {
    loop {
        if flow.stopping() {
            break;
        }
        let chunk = match source.next_chunk(batch_size) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                let _ = results.send(Err(error.into()));
                break;
            }
        };
        if !flow.wait_for_room(chunk.sequence, window) || work_tx.send(chunk).is_err() {
            break;
        }
    }
}

/// The writer loop: restores input order and hands chunks to the writer.
fn write_in_order(
    results: &Receiver<ChunkResult>,
    writer: &mut Writer<'_>,
    flow: &Flow,
    progress: &dyn Fn(&Progress),
) -> Result<(), BackfillError> {
    let mut pending: BTreeMap<u64, ScoredChunk> = BTreeMap::new();
    let mut next = 0u64;
    for result in results.iter() {
        let chunk = result?;
        pending.insert(chunk.sequence, chunk);
        while let Some(chunk) = pending.remove(&next) {
            writer.write(chunk)?;
            next += 1;
            flow.advance(next);
            progress(&writer.progress());
        }
    }
    if let Some(sequence) = pending.keys().next() {
        return Err(BackfillError::Internal(format!(
            "chunk {next} never arrived but chunk {sequence} did"
        )));
    }
    Ok(())
}

/// The single owner of the output, the reject file and the checkpoint.
struct Writer<'a> {
    options: &'a ScoreOptions,
    paths: &'a OutputPaths,
    sink: Option<Box<dyn Sink>>,
    rejects: RejectFile,
    /// The last saved checkpoint, updated in place as chunks are written.
    checkpoint: Checkpoint,
    reference: Option<&'a PsiReference>,
    groups: &'a ProtectedGroups,
    /// The model's training rows, kept out of the figures.
    training: Option<TrainingCheck<'a>>,
    threshold: f32,
    rows_this_attempt: u64,
    extent: Extent,
    started: Instant,
    /// A Kafka input, whose group is told every committed position.
    kafka_input: Option<KafkaInput>,
}

impl Writer<'_> {
    fn sink(&mut self) -> Result<&mut Box<dyn Sink>, BackfillError> {
        self.sink
            .as_mut()
            .ok_or_else(|| BackfillError::Internal("output already closed".into()))
    }

    fn rejects_error(&self) -> impl Fn(std::io::Error) -> BackfillError + '_ {
        |source| BackfillError::Rejects {
            path: self.paths.rejects.clone(),
            source,
        }
    }

    fn write(&mut self, chunk: ScoredChunk) -> Result<(), BackfillError> {
        self.sink()?.write(&chunk.rows)?;
        let written = self.rejects.write(&chunk.rejections);
        written.map_err(self.rejects_error())?;
        self.checkpoint.stats.add(
            &chunk.rows,
            self.threshold,
            self.reference,
            self.groups,
            self.training,
        );
        self.checkpoint.stats.rejects = self.rejects.count();
        self.rows_this_attempt += chunk.rows.len() as u64;
        self.checkpoint.input = chunk.end;

        if let Some(limit) = self.options.max_rejects {
            if self.rejects.count() > limit {
                return Err(BackfillError::TooManyRejects {
                    count: self.rejects.count(),
                    limit,
                    path: self.paths.rejects.clone(),
                });
            }
        }
        if let Some(limit) = self.options.stop_after_rows {
            if self.rows_this_attempt >= limit {
                self.sink()?.flush_uncommitted()?;
                return Err(BackfillError::SimulatedCrash {
                    rows: self.rows_this_attempt,
                });
            }
        }
        if self.sink()?.commit_due() {
            let state = self.sink()?.commit()?;
            self.commit(state, false)?;
        }
        Ok(())
    }

    /// Saves the checkpoint for output state `state` (rows and input position are current).
    fn commit(&mut self, state: OutputState, complete: bool) -> Result<(), BackfillError> {
        let committed = self.rejects.commit(self.options.durable);
        committed.map_err(self.rejects_error())?;
        self.checkpoint.output = state;
        self.checkpoint.rejects_bytes = self.rejects.bytes();
        self.checkpoint.complete = complete;
        self.checkpoint.updated_at = now();
        self.checkpoint
            .save(&self.paths.checkpoint, self.options.durable)?;
        if let Some(input) = &self.kafka_input {
            input.commit(&self.checkpoint.input, complete);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<RunningStats, BackfillError> {
        let sink = self
            .sink
            .take()
            .ok_or_else(|| BackfillError::Internal("output already closed".into()))?;
        let state = sink.finish()?;
        self.commit(state, true)?;
        Ok(self.checkpoint.stats.clone())
    }

    fn progress(&self) -> Progress {
        Progress {
            position: match self.extent {
                Extent::Bytes(_) => self.checkpoint.input.byte_offset,
                Extent::Rows(_) => self.checkpoint.input.rows,
            },
            extent: self.extent,
            rows: self.checkpoint.stats.rows,
            rejects: self.checkpoint.stats.rejects,
            rows_this_attempt: self.rows_this_attempt,
            elapsed: self.started.elapsed(),
        }
    }
}

/// Facts about one attempt for its summary.
struct Attempt {
    resumed_from_row: u64,
    rows: u64,
    already_complete: bool,
}

fn write_summary(path: &Path, summary: &Summary) -> Result<(), BackfillError> {
    let io = |source| BackfillError::Summary {
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(summary).map_err(|e| io(std::io::Error::other(e)))?;
    text.push(b'\n');
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, text).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

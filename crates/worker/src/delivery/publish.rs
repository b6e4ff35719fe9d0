//! Publishing decisions and dead letters, and learning when the broker has them.
//!
//! The producer is a `ThreadedProducer`: `send` only enqueues (no await, so the publishing
//! thread can call it), and librdkafka's delivery report for each record arrives on the
//! producer's polling thread, in [`DeliveryContext::delivery`]. That callback is where an input
//! offset becomes committable (rust-rdkafka's at-least-once example stores offsets at the same
//! point): the output is on the broker, with the replication the producer asked for.
//!
//! An output can be refused for a reason of its record alone (too large, invalid: see
//! [`Fault`]), synchronously by `send` or later in its delivery report. Stopping the worker then
//! would only stop it again on the same record after every restart. So the record is answered
//! another way ([`Attempt`]): resent as is when the broker refused it only for a neighbour in
//! the same batch, else replaced by a dead letter (reason `oversize` or `undeliverable`) holding
//! less of it, then by one holding nothing of it but the worker's headers. The replacement
//! carries the same input offset, which is acknowledged only once the replacement is delivered.
//! Only a failure of the whole client (fenced, unauthorised, the broker gone past the message
//! timeout), or of the last attempt, stops the worker.
//!
//! Replacements decided in a delivery report wait in the context until the publishing thread
//! produces them ([`Publisher::redeliver_refused`]); in exactly-once mode the publishing thread
//! puts them into the retry of the transaction the refusal aborted.

use crate::delivery::offsets::SharedOffsets;
use crate::delivery::origin::Origin;
use crate::stop::Stop;
use crate::telemetry::metrics::Metrics;
use credit_core::decision::Class;
use credit_core::decode::{RejectReason, Rejection};
use credit_kafka::bounds::{cut_headers, measure, share};
use credit_kafka::headers::{self, raw_headers, OriginalSizes};
use credit_kafka::log::forward_log;
use prometheus::IntCounter;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedHeaders, DeliveryResult, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What an output is, for the metrics counted on its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputKind {
    Decision(Class),
    DeadLetter(RejectReason),
}

/// Which try at answering its record an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The decision or dead letter as first built.
    First,
    /// The same output again: the broker refused it only for another record of its batch.
    Resent,
    /// A dead letter instead of a refused output, holding at most an eighth of
    /// `kafka.max_copied_bytes` of the record.
    Replacement,
    /// A dead letter holding nothing of the record but where it is (its key is the record's
    /// `topic/partition/offset`): the last try.
    Bare,
}

impl Attempt {
    /// The try after this one was refused for `fault`, if any is left.
    pub(crate) fn after(self, fault: RecordFault) -> Option<Self> {
        match (self, fault) {
            (Self::First, RecordFault::Neighbour) => Some(Self::Resent),
            (Self::First | Self::Resent, _) => Some(Self::Replacement),
            (Self::Replacement, _) => Some(Self::Bare),
            (Self::Bare, _) => None,
        }
    }
}

/// Travels with each produced record and comes back in its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryToken {
    pub source: Origin,
    pub kind: OutputKind,
    pub attempt: Attempt,
}

impl DeliveryToken {
    /// The token of a record's first output.
    pub(crate) fn first(source: Origin, kind: OutputKind) -> Self {
        Self {
            source,
            kind,
            attempt: Attempt::First,
        }
    }
}

/// Whose fault a refused output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The record's: it is answered another way and the stream goes on.
    Record(RecordFault),
    /// The client's (fenced, unauthorised, broker unreachable past the message timeout, a
    /// missing topic...): the worker stops, and its records are scored again after a restart.
    Client,
}

/// How an output was wrong for the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordFault {
    /// Over the producer's or the topic's size limit.
    TooLarge,
    /// Refused by the broker's validation (a compacted topic needs keys, say).
    Invalid,
    /// Refused only because another record of the same produce request was invalid.
    Neighbour,
}

/// Classifies a produce error by its code: only codes that describe the record itself are the
/// record's fault.
pub(crate) fn fault_of(error: &KafkaError) -> Fault {
    use RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(Code::MessageSizeTooLarge | Code::MessageBatchTooLarge | Code::InvalidMessageSize) => {
            Fault::Record(RecordFault::TooLarge)
        }
        Some(
            Code::InvalidRecord
            | Code::InvalidMessage
            | Code::InvalidTimestamp
            | Code::BadMessage
            | Code::KeySerialization
            | Code::ValueSerialization,
        ) => Fault::Record(RecordFault::Invalid),
        Some(Code::InvalidDifferentRecord) => Fault::Record(RecordFault::Neighbour),
        _ => Fault::Client,
    }
}

/// An output owned whole, to produce again: a resend or a replacement dead letter.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    to_dead_letters: bool,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
    token: DeliveryToken,
}

impl Output {
    pub(crate) fn token(&self) -> &DeliveryToken {
        &self.token
    }

    #[cfg(test)]
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    #[cfg(test)]
    pub(crate) fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    #[cfg(test)]
    pub(crate) fn headers(&self) -> Option<&OwnedHeaders> {
        self.headers.as_ref()
    }

    #[cfg(test)]
    pub(crate) fn to_dead_letters(&self) -> bool {
        self.to_dead_letters
    }
}

/// An output the producer or the broker refused, as the refusal returns it.
#[derive(Clone, Copy)]
pub(crate) struct Refused<'a> {
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<&'a BorrowedHeaders>,
    pub token: DeliveryToken,
}

/// Why an output could not be handed to the producer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    #[error("cannot produce to {topic}: {source}")]
    Produce {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("the worker is stopping after a failure; output not produced")]
    Stopped,
    /// Exactly-once mode: the open transaction takes no more outputs (once an output of it is
    /// refused, librdkafka refuses the rest); the publishing thread aborts it and decides.
    #[error("the open transaction refused an output: {0}")]
    TransactionRefused(#[source] KafkaError),
}

/// The producer's context: settles input offsets and counts outputs as reports arrive.
pub(crate) struct DeliveryContext {
    pub input_topic: String,
    pub offsets: Arc<SharedOffsets>,
    pub metrics: Metrics,
    pub stop: Stop,
    /// Whether a delivery report settles its input offset (at-least-once). In exactly-once
    /// mode the batch's transaction commit does (see [`crate::delivery::transaction`]).
    settle_on_delivery: bool,
    /// The labelled counters, looked up once rather than per report.
    counters: OutputCounters,
    /// `kafka.max_copied_bytes`, for replacements.
    max_copied: usize,
    /// What to produce instead of outputs refused in delivery reports.
    refused: Mutex<Vec<Output>>,
    /// Signalled when `refused` gains an output.
    refused_ready: tokio::sync::Notify,
    /// Records handed to the producer, and delivery reports handled: equal once every report of
    /// what was produced has run.
    produced: AtomicU64,
    reported: AtomicU64,
    /// Exactly-once mode: the kinds of outputs delivered in the open transaction, counted only
    /// if it commits (an aborted transaction's outputs are produced again).
    tally: Mutex<Vec<OutputKind>>,
}

/// Locks `mutex`; the data behind the worker's mutexes stays consistent through a panic
/// (single pushes and takes), so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `decisions_total` per class and `dead_lettered_total` per reason, resolved once.
struct OutputCounters {
    decisions: [IntCounter; Class::ALL.len()],
    dead_lettered: [IntCounter; RejectReason::ALL.len()],
}

impl OutputCounters {
    fn of(metrics: &Metrics) -> Self {
        Self {
            decisions: Class::ALL
                .map(|class| metrics.decisions.with_label_values(&[class.as_str()])),
            dead_lettered: RejectReason::ALL
                .map(|reason| metrics.dead_lettered.with_label_values(&[reason.as_str()])),
        }
    }

    fn count(&self, kind: OutputKind) {
        let counter = match kind {
            OutputKind::Decision(class) => Class::ALL
                .iter()
                .position(|c| *c == class)
                .and_then(|i| self.decisions.get(i)),
            OutputKind::DeadLetter(reason) => RejectReason::ALL
                .iter()
                .position(|r| *r == reason)
                .and_then(|i| self.dead_lettered.get(i)),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
    }
}

impl DeliveryContext {
    /// `max_copied` is `kafka.max_copied_bytes`.
    pub(crate) fn new(
        input_topic: String,
        offsets: Arc<SharedOffsets>,
        metrics: Metrics,
        stop: Stop,
        max_copied: usize,
    ) -> Self {
        Self {
            input_topic,
            offsets,
            settle_on_delivery: true,
            counters: OutputCounters::of(&metrics),
            metrics,
            stop,
            max_copied,
            refused: Mutex::new(Vec::new()),
            refused_ready: tokio::sync::Notify::new(),
            produced: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            tally: Mutex::new(Vec::new()),
        }
    }

    /// Exactly-once mode: input offsets are settled when their transaction commits, not on
    /// delivery (a delivered output may still be aborted).
    pub(crate) fn settled_by_transactions(mut self) -> Self {
        self.settle_on_delivery = false;
        self
    }

    /// An output that will never be delivered: pin its input offset (never committed, so it is
    /// scored again after a restart) and stop the worker. Continuing would only pile up more
    /// records behind an offset that can no longer be committed.
    fn failed(&self, token: &DeliveryToken, error: &KafkaError) {
        self.offsets
            .fail(token.source.partition, token.source.offset);
        self.metrics.delivery_failures.inc();
        let cause = format!(
            "output of {} partition {} offset {} was not delivered: {error}",
            self.input_topic, token.source.partition, token.source.offset
        );
        tracing::error!("{cause}");
        self.stop.fail(cause);
    }

    /// What to produce instead of a refused output: `None` when the refusal is the client's
    /// fault or the record has had its last try.
    pub(crate) fn instead_of(&self, refused: &Refused<'_>, error: &KafkaError) -> Option<Output> {
        let Fault::Record(fault) = fault_of(error) else {
            return None;
        };
        let attempt = refused.token.attempt.after(fault)?;
        if attempt == Attempt::Resent {
            return Some(resent(refused));
        }
        Some(self.replacement_dead_letter(refused, error, fault, attempt))
    }

    /// A dead letter answering the refused output's record: holding a part of the record
    /// ([`Attempt::Replacement`]) or nothing of it ([`Attempt::Bare`]).
    fn replacement_dead_letter(
        &self,
        refused: &Refused<'_>,
        error: &KafkaError,
        fault: RecordFault,
        attempt: Attempt,
    ) -> Output {
        let reason = if fault == RecordFault::TooLarge {
            RejectReason::Oversize
        } else {
            RejectReason::Undeliverable
        };
        let rejection = replacement_rejection(refused.token.kind, reason, attempt, error);
        let copied = attempt == Attempt::Replacement;
        let budget = if copied { self.max_copied / 8 } else { 0 };
        let kept = Kept::of(refused, budget);
        let token = DeliveryToken {
            source: refused.token.source,
            kind: OutputKind::DeadLetter(reason),
            attempt,
        };
        let headers = headers::dead_letter_headers(
            Some(headers::with_dead_letter_cut(kept.headers, &kept.original)),
            &rejection,
            &self.input_topic,
            token.source.partition,
            token.source.offset,
        );
        // The last try is keyed by the record's position: a compacted dead-letter topic refuses
        // records without a key.
        let key = if copied {
            kept.key.map(<[u8]>::to_vec)
        } else {
            Some(self.position_key(&token.source))
        };
        Output {
            to_dead_letters: true,
            key,
            payload: kept.payload.filter(|_| copied).map(<[u8]>::to_vec),
            headers: Some(headers),
            token,
        }
    }

    /// `topic/partition/offset` of the record `source` points to.
    fn position_key(&self, source: &Origin) -> Vec<u8> {
        format!(
            "{}/{}/{}",
            self.input_topic, source.partition, source.offset
        )
        .into_bytes()
    }

    /// An output refused in its delivery report: its replacement is queued for the publishing
    /// thread, or the worker stops.
    fn refused_in_report(&self, refused: &Refused<'_>, error: &KafkaError) {
        let purged = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
        );
        if purged && !self.settle_on_delivery {
            // An aborted transaction's outputs: the publishing thread retries or fails its batch.
            return;
        }
        match self.instead_of(refused, error) {
            Some(output) => {
                log_refusal(&refused.token, &output.token, error);
                lock(&self.refused).push(output);
                self.refused_ready.notify_one();
            }
            None if !self.settle_on_delivery => {
                // The transaction's commit fails on this report; the publishing thread decides.
                self.metrics.delivery_failures.inc();
                tracing::warn!(
                    partition = refused.token.source.partition,
                    offset = refused.token.source.offset,
                    %error,
                    "an output of the open transaction was not delivered"
                );
            }
            None => self.failed(&refused.token, error),
        }
    }
}

/// The refused output again, unchanged: the broker refused it only for a neighbour.
fn resent(refused: &Refused<'_>) -> Output {
    let token = refused.token;
    Output {
        to_dead_letters: matches!(token.kind, OutputKind::DeadLetter(_)),
        key: refused.key.map(<[u8]>::to_vec),
        payload: refused.payload.map(<[u8]>::to_vec),
        headers: refused.headers.map(BorrowedHeaders::detach),
        token: DeliveryToken {
            attempt: Attempt::Resent,
            ..token
        },
    }
}

/// Why a replacement dead letter exists, told in its error headers.
fn replacement_rejection(
    refused: OutputKind,
    reason: RejectReason,
    attempt: Attempt,
    error: &KafkaError,
) -> Rejection {
    let refused_output = match refused {
        OutputKind::Decision(_) => "decision".to_owned(),
        OutputKind::DeadLetter(reason) => format!("dead letter (error-reason {reason})"),
    };
    let held = if attempt == Attempt::Bare {
        "nothing"
    } else {
        "a part"
    };
    Rejection::new(
        reason,
        "record",
        format!(
            "the {refused_output} of this record was refused ({error}); this dead letter \
             replaces it and holds {held} of the record (see the source-* headers)"
        ),
    )
}

/// What a replacement dead letter keeps of the refused output's record, within a byte budget.
struct Kept<'a> {
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: OwnedHeaders,
    /// The sizes of the record as consumed, for the headers that say what was cut.
    original: OriginalSizes,
}

impl<'a> Kept<'a> {
    fn of(refused: &Refused<'a>, budget: usize) -> Self {
        let kind = refused.token.kind;
        // A decision's payload is the worker's, not the record's: not copied.
        let payload = match kind {
            OutputKind::DeadLetter(_) => refused.payload,
            OutputKind::Decision(_) => None,
        };
        let input = refused
            .headers
            .map(|h| measure(h, headers::is_worker_header))
            .unwrap_or_default();
        let original = refused
            .headers
            .filter(|_| matches!(kind, OutputKind::DeadLetter(_)))
            .and_then(recorded_original)
            .unwrap_or(OriginalSizes {
                key: refused.key.map_or(0, <[u8]>::len),
                payload: payload.map(<[u8]>::len),
                headers: input.bytes,
            });
        let [key_share, payload_share, headers_share] = share(
            [
                refused.key.map_or(0, <[u8]>::len),
                payload.map_or(0, <[u8]>::len),
                input.cost,
            ],
            budget,
        );
        Self {
            key: refused.key.map(|key| &key[..key_share]),
            payload: payload.map(|payload| &payload[..payload_share]),
            headers: refused.headers.map_or_else(OwnedHeaders::new, |h| {
                cut_headers(h, headers_share, headers::is_worker_header)
            }),
            original,
        }
    }
}

/// The record sizes a cut dead letter recorded in its headers.
fn recorded_original(headers: &BorrowedHeaders) -> Option<OriginalSizes> {
    let number = |name: &str| {
        raw_headers(headers)
            .filter(|header| header.name == name.as_bytes())
            .last()
            .and_then(|header| std::str::from_utf8(header.value?).ok()?.parse().ok())
    };
    Some(OriginalSizes {
        key: number(headers::ERROR_ORIGINAL_KEY_BYTES)?,
        payload: number(headers::ERROR_ORIGINAL_PAYLOAD_BYTES),
        headers: number(headers::ERROR_ORIGINAL_HEADERS_BYTES)?,
    })
}

fn log_refusal(refused: &DeliveryToken, instead: &DeliveryToken, error: &KafkaError) {
    tracing::warn!(
        partition = refused.source.partition,
        offset = refused.source.offset,
        %error,
        refused = ?refused.kind,
        attempt = ?instead.attempt,
        instead = ?instead.kind,
        "output refused for a reason of its record; answering the record another way"
    );
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<DeliveryToken>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                if self.settle_on_delivery {
                    self.offsets
                        .ack(token.source.partition, token.source.offset);
                    self.counters.count(token.kind);
                } else {
                    lock(&self.tally).push(token.kind);
                }
                self.metrics.observe_latency(
                    token.source.timestamp_ms.and_then(seconds_since),
                    token.source.consumed_at.elapsed().as_secs_f64(),
                );
            }
            Err((error, message)) => {
                let refused = Refused {
                    key: message.key(),
                    payload: message.payload(),
                    headers: message.headers(),
                    token: *token,
                };
                self.refused_in_report(&refused, error);
            }
        }
        self.reported.fetch_add(1, Ordering::Release);
    }
}

/// Seconds from a Kafka timestamp (milliseconds since the epoch) until now; never negative
/// (clocks of producer and worker may disagree a little). `None` for unset timestamps.
fn seconds_since(timestamp_ms: i64) -> Option<f64> {
    if timestamp_ms <= 0 {
        return None;
    }
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_micros();
    let now_us = i128::try_from(now_us).ok()?;
    let elapsed_us = now_us - i128::from(timestamp_ms) * 1000;
    Some((elapsed_us.max(0) as f64) / 1e6)
}

/// The worker's producer and output topics.
pub(crate) struct Publisher {
    producer: ThreadedProducer<DeliveryContext>,
    output_topic: String,
    dead_letter_topic: String,
}

impl Publisher {
    pub(crate) fn new(
        config: &ClientConfig,
        context: DeliveryContext,
        output_topic: &str,
        dead_letter_topic: &str,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: config.create_with_context(context)?,
            output_topic: output_topic.to_owned(),
            dead_letter_topic: dead_letter_topic.to_owned(),
        })
    }

    fn context(&self) -> &DeliveryContext {
        self.producer.context()
    }

    /// The producer itself, for the transaction calls of exactly-once mode.
    pub(crate) fn producer(&self) -> &ThreadedProducer<DeliveryContext> {
        &self.producer
    }

    /// Produces a decision keyed by the application id (`headers` already bounded, see
    /// [`credit_kafka::bounds`]).
    pub(crate) fn decision(
        &self,
        application_id: &str,
        payload: &[u8],
        headers: OwnedHeaders,
        token: DeliveryToken,
    ) -> Result<(), PublishError> {
        let record = BaseRecord::with_opaque_to(&self.output_topic, Box::new(token))
            .key(application_id.as_bytes())
            .payload(payload)
            .headers(headers);
        self.send(record, &self.output_topic)
    }

    /// Produces a dead letter: the original key and payload (either may be absent), the
    /// original headers plus the error and source headers (all already bounded, see
    /// [`credit_kafka::bounds`]).
    pub(crate) fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        input_headers: Option<OwnedHeaders>,
        rejection: &Rejection,
        token: DeliveryToken,
    ) -> Result<(), PublishError> {
        let headers = headers::dead_letter_headers(
            input_headers,
            rejection,
            &self.context().input_topic,
            token.source.partition,
            token.source.offset,
        );
        let mut record: BaseRecord<'_, [u8], [u8], Box<DeliveryToken>> =
            BaseRecord::with_opaque_to(&self.dead_letter_topic, Box::new(token)).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.send(record, &self.dead_letter_topic)
    }

    /// Produces an output again (a resend or a replacement).
    pub(crate) fn resend(&self, output: Output) -> Result<(), PublishError> {
        let Output {
            to_dead_letters,
            key,
            payload,
            headers,
            token,
        } = output;
        let topic = if to_dead_letters {
            &self.dead_letter_topic
        } else {
            &self.output_topic
        };
        let mut record: BaseRecord<'_, [u8], [u8], Box<DeliveryToken>> =
            BaseRecord::with_opaque_to(topic, Box::new(token));
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        if let Some(key) = &key {
            record = record.key(key);
        }
        if let Some(payload) = &payload {
            record = record.payload(payload);
        }
        self.send(record, topic)
    }

    /// At-least-once mode: produces what replaces the outputs refused in delivery reports so
    /// far. Returns how many. (Exactly-once mode puts them into a transaction instead: see
    /// [`Self::take_refused`].)
    pub(crate) fn redeliver_refused(&self) -> Result<usize, PublishError> {
        if !self.context().settle_on_delivery {
            return Ok(0);
        }
        let refused = self.take_refused();
        let count = refused.len();
        let mut outputs = refused.into_iter();
        while let Some(output) = outputs.next() {
            if let Err(error) = self.resend(output) {
                // Settled as failed, so that no drain waits for outputs nobody will produce.
                for left in outputs {
                    let source = left.token.source;
                    self.context().offsets.fail(source.partition, source.offset);
                }
                return Err(error);
            }
        }
        Ok(count)
    }

    /// Takes what replaces the outputs refused in delivery reports so far.
    pub(crate) fn take_refused(&self) -> Vec<Output> {
        std::mem::take(&mut *lock(&self.context().refused))
    }

    /// Resolves once a delivery report has refused an output (at once if one did since the
    /// last call).
    pub(crate) async fn refused_ready(&self) {
        self.context().refused_ready.notified().await;
    }

    /// Waits until the delivery report of every record produced so far has been handled (or
    /// `timeout` passes); true if it has.
    pub(crate) fn wait_reported(&self, timeout: Duration) -> bool {
        let context = self.context();
        let deadline = Instant::now() + timeout;
        loop {
            let produced = context.produced.load(Ordering::Acquire);
            if context.reported.load(Ordering::Acquire) >= produced {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Exactly-once mode: counts the outputs delivered in the transaction just ended if it
    /// committed, forgets them if it did not. Call after [`Self::wait_reported`].
    pub(crate) fn settle_tally(&self, committed: bool) {
        let delivered = std::mem::take(&mut *lock(&self.context().tally));
        if committed {
            for kind in delivered {
                self.context().counters.count(kind);
            }
        }
    }

    /// At shutdown, once nothing new is produced: waits until no output of `offsets` is
    /// pending, producing the replacements of outputs refused meanwhile, or until `timeout`
    /// passes. Returns the number of records still pending.
    pub(crate) fn drain(&self, offsets: &SharedOffsets, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Err(error) = self.redeliver_refused() {
                tracing::warn!(%error, "a replacement for a refused output was not produced");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // A timeout here only means reports are still due: the pending count decides.
            let _ = self.flush(left.min(Duration::from_millis(100)));
            let pending = offsets.wait_drained(None, left.min(Duration::from_millis(10)));
            let replaced =
                !self.context().settle_on_delivery || lock(&self.context().refused).is_empty();
            if pending == 0 && replaced {
                return 0;
            }
            if left.is_zero() {
                return pending;
            }
        }
    }

    /// Enqueues a record, waiting while librdkafka's queue is full (backpressure: the
    /// publishing thread slows down, the batch channels fill, consumption pauses). A record
    /// refused for a reason of its own is answered another way at once ([`Attempt`]).
    fn send(
        &self,
        mut record: BaseRecord<'_, [u8], [u8], Box<DeliveryToken>>,
        topic: &str,
    ) -> Result<(), PublishError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.context().produced.fetch_add(1, Ordering::Release);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    if self.context().stop.failure().is_some() {
                        let source = returned.delivery_opaque.source;
                        self.context().offsets.fail(source.partition, source.offset);
                        return Err(PublishError::Stopped);
                    }
                    record = returned;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, returned)) => {
                    let refused = Refused {
                        key: returned.key,
                        payload: returned.payload,
                        headers: returned.headers.as_ref().map(OwnedHeaders::as_borrowed),
                        token: *returned.delivery_opaque,
                    };
                    if let Some(output) = self.context().instead_of(&refused, &error) {
                        log_refusal(&refused.token, &output.token, &error);
                        return self.resend(output);
                    }
                    if !self.context().settle_on_delivery {
                        // The batch is produced again or abandoned with its transaction.
                        return Err(PublishError::TransactionRefused(error));
                    }
                    self.context().failed(&returned.delivery_opaque, &error);
                    return Err(PublishError::Produce {
                        topic: topic.to_owned(),
                        source: error,
                    });
                }
            }
        }
    }

    /// Waits until every produced record has a delivery report (or `timeout` passes).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Records produced and not yet reported on.
    pub(crate) fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_kafka::headers::{last_text, to_pairs};
    use rdkafka::message::Header;

    fn context(max_copied: usize) -> DeliveryContext {
        DeliveryContext::new(
            "applications".to_owned(),
            Arc::new(SharedOffsets::new()),
            Metrics::new().unwrap(),
            Stop::new(),
            max_copied,
        )
    }

    fn token(kind: OutputKind, attempt: Attempt) -> DeliveryToken {
        DeliveryToken {
            source: Origin {
                partition: 3,
                offset: 77,
                timestamp_ms: None,
                consumed_at: Instant::now(),
            },
            kind,
            attempt,
        }
    }

    fn error(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn only_errors_that_describe_the_record_are_its_fault() {
        use RDKafkaErrorCode as Code;
        for code in [
            Code::MessageSizeTooLarge,
            Code::MessageBatchTooLarge,
            Code::InvalidMessageSize,
        ] {
            assert_eq!(fault_of(&error(code)), Fault::Record(RecordFault::TooLarge));
        }
        for code in [Code::InvalidRecord, Code::InvalidMessage, Code::BadMessage] {
            assert_eq!(fault_of(&error(code)), Fault::Record(RecordFault::Invalid));
        }
        assert_eq!(
            fault_of(&error(Code::InvalidDifferentRecord)),
            Fault::Record(RecordFault::Neighbour)
        );
        for code in [
            Code::MessageTimedOut,
            Code::Fenced,
            Code::ProducerFenced,
            Code::TopicAuthorizationFailed,
            Code::Authentication,
            Code::UnknownTopicOrPartition,
            Code::UnknownTopic,
            Code::Fatal,
            Code::State,
            Code::PurgeQueue,
            Code::AllBrokersDown,
        ] {
            assert_eq!(fault_of(&error(code)), Fault::Client, "{code:?}");
        }
        assert_eq!(fault_of(&KafkaError::Canceled), Fault::Client);
    }

    #[test]
    fn each_refusal_moves_a_record_one_step_down_until_none_is_left() {
        use Attempt::*;
        assert_eq!(First.after(RecordFault::Neighbour), Some(Resent));
        assert_eq!(First.after(RecordFault::TooLarge), Some(Replacement));
        assert_eq!(Resent.after(RecordFault::Neighbour), Some(Replacement));
        assert_eq!(Replacement.after(RecordFault::Neighbour), Some(Bare));
        assert_eq!(Replacement.after(RecordFault::Invalid), Some(Bare));
        assert_eq!(Bare.after(RecordFault::TooLarge), None);
    }

    #[test]
    fn a_decision_refused_as_too_large_is_replaced_by_a_cut_dead_letter_of_its_record() {
        let big = vec![b'h'; 700_000];
        let refused_headers = OwnedHeaders::new()
            .insert(Header {
                key: "trace-id",
                value: Some("t-1"),
            })
            .insert(Header {
                key: "blob",
                value: Some(&big),
            })
            .insert(Header {
                key: headers::MODEL_VERSION,
                value: Some("lstm-1"),
            });
        let refused = Refused {
            key: Some(b"app-1"),
            payload: Some(br#"{"decision":"good"}"#),
            headers: Some(refused_headers.as_borrowed()),
            token: token(OutputKind::Decision(Class::Good), Attempt::First),
        };
        let output = context(512 * 1024)
            .instead_of(&refused, &error(RDKafkaErrorCode::MessageSizeTooLarge))
            .unwrap();
        assert!(output.to_dead_letters());
        assert_eq!(
            output.token().kind,
            OutputKind::DeadLetter(RejectReason::Oversize)
        );
        assert_eq!(output.token().attempt, Attempt::Replacement);
        assert_eq!(output.token().source.offset, 77);
        assert_eq!(output.key(), Some(&b"app-1"[..]));
        // The decision's payload is the worker's own, not the record's.
        assert_eq!(output.payload(), None);
        let headers = output.headers().unwrap();
        let copied = measure(headers.as_borrowed(), headers::is_worker_header);
        assert!(copied.cost <= 512 * 1024 / 8, "{copied:?}");
        assert_eq!(last_text(headers, "trace-id"), Some("t-1"));
        assert_eq!(last_text(headers, headers::MODEL_VERSION), None);
        assert_eq!(last_text(headers, headers::ERROR_REASON), Some("oversize"));
        assert_eq!(
            last_text(headers, headers::ERROR_PAYLOAD_TRUNCATED),
            Some("true")
        );
        assert_eq!(
            last_text(headers, headers::ERROR_ORIGINAL_KEY_BYTES),
            Some("5")
        );
        assert_eq!(
            last_text(headers, headers::ERROR_ORIGINAL_PAYLOAD_BYTES),
            None
        );
        assert_eq!(
            last_text(headers, headers::ERROR_ORIGINAL_HEADERS_BYTES),
            Some("700015")
        );
        assert_eq!(
            last_text(headers, headers::SOURCE_TOPIC),
            Some("applications")
        );
        assert_eq!(last_text(headers, headers::SOURCE_PARTITION), Some("3"));
        assert_eq!(last_text(headers, headers::SOURCE_OFFSET), Some("77"));
        assert!(last_text(headers, headers::ERROR_MESSAGE)
            .is_some_and(|message| message.contains("decision") && message.contains("refused")));
    }

    #[test]
    fn a_refused_cut_dead_letter_keeps_the_sizes_of_the_original_record() {
        let dead_letter_headers = headers::with_dead_letter_cut(
            OwnedHeaders::new().insert(Header {
                key: "trace-id",
                value: Some("t-2"),
            }),
            &OriginalSizes {
                key: 9,
                payload: Some(20_000_000),
                headers: 21,
            },
        );
        let payload = vec![b'p'; 500_000];
        let refused = Refused {
            key: Some(b"app-2"),
            payload: Some(&payload),
            headers: Some(dead_letter_headers.as_borrowed()),
            token: token(
                OutputKind::DeadLetter(RejectReason::Oversize),
                Attempt::First,
            ),
        };
        let output = context(512 * 1024)
            .instead_of(&refused, &error(RDKafkaErrorCode::InvalidRecord))
            .unwrap();
        assert_eq!(
            output.token().kind,
            OutputKind::DeadLetter(RejectReason::Undeliverable)
        );
        let kept = output.payload().unwrap();
        assert!(!kept.is_empty() && kept.len() <= 512 * 1024 / 8);
        let headers = output.headers().unwrap();
        assert_eq!(
            last_text(headers, headers::ERROR_ORIGINAL_PAYLOAD_BYTES),
            Some("20000000")
        );
        assert_eq!(
            last_text(headers, headers::ERROR_ORIGINAL_KEY_BYTES),
            Some("9")
        );
        assert_eq!(
            last_text(headers, headers::ERROR_REASON),
            Some("undeliverable")
        );
        assert!(last_text(headers, headers::ERROR_MESSAGE)
            .is_some_and(|message| message.contains("error-reason oversize")));
        // Its own headers appear once: the refused dead letter's are not copied again.
        let reasons = to_pairs(headers)
            .into_iter()
            .filter(|(name, _)| name == headers::ERROR_REASON)
            .count();
        assert_eq!(reasons, 1);
    }

    #[test]
    fn a_neighbour_refusal_resends_the_output_unchanged_once() {
        let refused_headers = OwnedHeaders::new().insert(Header {
            key: "trace-id",
            value: Some("t-3"),
        });
        let refused = Refused {
            key: Some(b"app-3"),
            payload: Some(b"{}"),
            headers: Some(refused_headers.as_borrowed()),
            token: token(OutputKind::Decision(Class::Bad), Attempt::First),
        };
        let context = context(512 * 1024);
        let neighbour = error(RDKafkaErrorCode::InvalidDifferentRecord);
        let output = context.instead_of(&refused, &neighbour).unwrap();
        assert!(!output.to_dead_letters());
        assert_eq!(output.token().attempt, Attempt::Resent);
        assert_eq!(output.token().kind, OutputKind::Decision(Class::Bad));
        assert_eq!(output.key(), Some(&b"app-3"[..]));
        assert_eq!(output.payload(), Some(&b"{}"[..]));
        assert_eq!(
            to_pairs(output.headers().unwrap()),
            to_pairs(&refused_headers)
        );
        let again = Refused {
            token: *output.token(),
            ..refused
        };
        let replacement = context.instead_of(&again, &neighbour).unwrap();
        assert!(replacement.to_dead_letters());
        assert_eq!(replacement.token().attempt, Attempt::Replacement);
    }

    #[test]
    fn the_last_attempt_holds_nothing_of_the_record_and_after_it_or_for_client_errors_none_is_left()
    {
        let refused = Refused {
            key: Some(b"app-4"),
            payload: Some(b"{}"),
            headers: None,
            token: token(
                OutputKind::DeadLetter(RejectReason::Undeliverable),
                Attempt::Replacement,
            ),
        };
        let context = context(512 * 1024);
        let invalid = error(RDKafkaErrorCode::InvalidRecord);
        let bare = context.instead_of(&refused, &invalid).unwrap();
        assert_eq!(bare.token().attempt, Attempt::Bare);
        assert_eq!(bare.key(), Some(&b"applications/3/77"[..]));
        assert_eq!(bare.payload(), None);
        assert_eq!(
            last_text(bare.headers().unwrap(), headers::SOURCE_OFFSET),
            Some("77")
        );
        let last = Refused {
            token: *bare.token(),
            ..refused
        };
        assert!(context.instead_of(&last, &invalid).is_none());
        let first = Refused {
            token: token(OutputKind::Decision(Class::Good), Attempt::First),
            ..refused
        };
        for client in [RDKafkaErrorCode::MessageTimedOut, RDKafkaErrorCode::Fenced] {
            assert!(context.instead_of(&first, &error(client)).is_none());
        }
    }

    #[test]
    fn latency_is_measured_from_kafka_timestamps_and_never_negative() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let latency = seconds_since(now_ms - 1500).unwrap();
        assert!((1.4..5.0).contains(&latency), "{latency}");
        assert_eq!(seconds_since(now_ms + 60_000), Some(0.0));
        assert_eq!(seconds_since(0), None);
        assert_eq!(seconds_since(-1), None);
    }
}

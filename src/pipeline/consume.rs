//! The consumer task: fetch, decode, register the offset, hand over to the batcher.
//!
//! Decoding happens here, on the borrowed message, so a valid record's payload is parsed in
//! place and never copied; only a record bound for the dead-letter topic keeps its bytes.
//! The offset is registered as in flight *before* the record leaves this task, so no commit
//! can pass it until its output is acknowledged.

use crate::kafka::WorkerConsumer;
use crate::pipeline::batch::{Body, Consumed, Source};
use crate::pipeline::decode::decode;
use crate::pipeline::stop::Stop;
use futures::StreamExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Pause after a consumer error, so a persistent one (unknown topic, broker down) does not
/// spin the task.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// Turns a fetched message into a [`Consumed`] record.
pub fn to_consumed(message: &BorrowedMessage<'_>) -> Consumed {
    let source = Source {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
    };
    let headers = message.headers().map(|headers| headers.detach());
    let body = match decode(message.key(), message.payload()) {
        Ok((application_id, applicant)) => Body::Valid {
            application_id,
            applicant,
        },
        Err(rejection) => Body::Invalid {
            rejection,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
        },
    };
    Consumed {
        source,
        headers,
        body,
    }
}

/// Consumes until `stop`, then returns, dropping `records` so the batcher drains and ends.
pub async fn run(consumer: Arc<WorkerConsumer>, records: mpsc::Sender<Consumed>, stop: Stop) {
    let context = Arc::clone(consumer.context());
    // One stop watcher and one message stream for the whole run, not one per record:
    // `recv()` registers and unregisters a waker under a lock for every message.
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    let mut messages = consumer.stream();
    loop {
        let message = tokio::select! {
            biased;
            () = &mut stopped => break,
            message = messages.next() => message,
        };
        let consumed = match message {
            Some(Ok(message)) => to_consumed(&message),
            // A consumer's stream never ends; if it did, there would be nothing more to read.
            None => break,
            Some(Err(error)) => {
                tracing::warn!(%error, "consumer error");
                tokio::select! {
                    () = &mut stopped => break,
                    () = tokio::time::sleep(ERROR_BACKOFF) => continue,
                }
            }
        };
        let source = consumed.source;
        tracing::trace!(
            partition = source.partition,
            offset = source.offset,
            "consumed"
        );
        context.offsets.register(source.partition, source.offset);
        context.metrics.records_consumed.inc();
        if let Body::Invalid { rejection, key, .. } = &consumed.body {
            tracing::warn!(
                partition = source.partition,
                offset = source.offset,
                key = %String::from_utf8_lossy(key.as_deref().unwrap_or_default()),
                reason = rejection.reason.as_str(),
                field = rejection.field,
                problem = rejection.message,
                "record rejected; sending it to the dead-letter topic"
            );
        }
        if records.send(consumed).await.is_err() {
            // The batcher is gone: the pipeline is failing. The record stays in flight, so its
            // offset is never committed and it is consumed again after a restart.
            break;
        }
    }
    tracing::info!("consumer stopped fetching");
}

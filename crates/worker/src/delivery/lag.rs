//! The consumer-lag gauge: how far each assigned partition's position is behind its end.
//!
//! Watermarks come from a broker round trip, so the refresh runs on the blocking pool every
//! `kafka.lag_refresh_ms`, not per record.

use crate::delivery::WorkerConsumer;
use crate::stop::Stop;
use crate::telemetry::metrics::Metrics;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use std::sync::Arc;
use std::time::Duration;

/// How long one watermark request may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// `(partition, high watermark - position)` for each assigned partition of `topic` that has a
/// position (partitions nothing was consumed from yet have none and are skipped).
pub(crate) fn measure_lag(consumer: &WorkerConsumer, topic: &str) -> Vec<(i32, i64)> {
    let positions = match consumer.position() {
        Ok(positions) => positions,
        Err(error) => {
            tracing::debug!(%error, "no consumer positions");
            return Vec::new();
        }
    };
    positions
        .elements_for_topic(topic)
        .iter()
        .filter_map(|element| {
            let Offset::Offset(position) = element.offset() else {
                return None;
            };
            let partition = element.partition();
            match consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT) {
                Ok((_, high)) => Some((partition, (high - position).max(0))),
                Err(error) => {
                    tracing::debug!(partition, %error, "watermarks unavailable");
                    None
                }
            }
        })
        .collect()
}

/// Refreshes `credit_risk_consumer_lag` every `interval` until `stop`.
pub(crate) async fn refresh_periodically(
    consumer: Arc<WorkerConsumer>,
    topic: String,
    metrics: Metrics,
    interval: Duration,
    stop: Stop,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.stopped() => break,
            _ = ticker.tick() => {}
        }
        let (consumer_ref, topic_ref) = (Arc::clone(&consumer), topic.clone());
        let measured =
            tokio::task::spawn_blocking(move || measure_lag(&consumer_ref, &topic_ref)).await;
        if let Ok(lags) = measured {
            for (partition, lag) in lags {
                metrics
                    .consumer_lag
                    .with_label_values(&[&partition.to_string()])
                    .set(lag);
            }
        }
    }
}

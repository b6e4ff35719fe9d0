//! Kafka input: the records of a topic over a fixed offset range (see [`crate::topic`]).
//!
//! Records are what the worker consumes (key = application id, payload = the applicant's JSON)
//! and are judged by the worker's own decoder ([`credit_core::decode`]), so the backfill
//! accepts and rejects exactly what the live service does. A payload may also carry the
//! outcome under the schema's label field's name, for the backtest.
//!
//! The reader packs a chunk's keys and payloads into one buffer (two allocations per chunk,
//! not two per record) and ends every chunk at a partition boundary, so a chunk's end position
//! is a single `(partition, next offset)`.
//!
//! A partition is finished when the consumer's position reaches the range end, which
//! also covers ranges that end in transaction markers (no record ever has the last offsets).
//! The end-of-partition event alone is not trusted: Tansu signals it early.
//!
//! Time bounds (`--from time:`, `--until time:`) are applied to each record's timestamp as it
//! is read, not looked up in the broker: librdkafka's mock cluster does not answer timestamp
//! lookups and Tansu 0.6 answers them wrongly, and a wrong start offset would silently lose
//! records. The cost is that a time range scans its partitions from the oldest record kept.

use super::jsonl::Extras;
use super::{Payload, RawChunk, Source, SourceError};
use crate::fields::Layout;
use crate::row::{InputPosition, InputRow, RejectedRow};
use crate::topic::{KafkaPosition, PartitionRange, RangeEnd, RangeStart, TopicAddress};
use credit_core::applicant::RecordError;
use credit_core::decode;
use credit_core::schema::Schema;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the reader waits for the next record of a partition that has not reached its
/// range end before it gives up (the broker is gone, or the records were deleted).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(120);

const POLL: Duration = Duration::from_millis(200);

/// Where a record's key and payload sit in a chunk's buffer.
#[derive(Debug, Clone)]
pub struct RecordSpan {
    pub key: Option<Range<usize>>,
    pub payload: Option<Range<usize>>,
    pub partition: i32,
    pub offset: i64,
}

/// The records of one chunk: keys and payloads back to back in `bytes`.
pub struct Records {
    pub bytes: Vec<u8>,
    pub spans: Vec<RecordSpan>,
}

impl Records {
    /// Room for `records` records of about `bytes_each` bytes.
    pub fn with_capacity(records: usize, bytes_each: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(records * bytes_each),
            spans: Vec::with_capacity(records),
        }
    }

    /// Appends a record's key and payload (either may be absent).
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        partition: i32,
        offset: i64,
    ) {
        let mut span = |part: Option<&[u8]>| {
            part.map(|bytes| {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(bytes);
                start..self.bytes.len()
            })
        };
        let key = span(key);
        let payload = span(payload);
        self.spans.push(RecordSpan {
            key,
            payload,
            partition,
            offset,
        });
    }
}

/// Reads a topic's ranges, one partition after another.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer>,
    address: TopicAddress,
    ranges: Vec<PartitionRange>,
    /// Index into `ranges` of the partition being read.
    current: usize,
    /// Next offset to read in the current partition.
    next_offset: i64,
    /// Whether the current partition is assigned at `next_offset`.
    assigned: bool,
    next_index: u64,
    sequence: u64,
    total: u64,
    /// Records with a timestamp before this (ms since the epoch) are outside the range.
    not_before: Option<i64>,
    /// Records with a timestamp at or after this are outside the range.
    not_after: Option<i64>,
}

impl KafkaSource {
    /// A source over `ranges`, starting at `start` (the checkpoint's position, or the first
    /// range's start), keeping the records whose timestamps are within `from`..`until`.
    pub fn new(
        consumer: Arc<BaseConsumer>,
        address: TopicAddress,
        ranges: Vec<PartitionRange>,
        start: InputPosition,
        (from, until): (RangeStart, RangeEnd),
    ) -> Result<Self, SourceError> {
        let total = ranges.iter().map(PartitionRange::len).sum();
        let (current, next_offset) = match start.kafka {
            None => (0, ranges.first().map_or(0, |range| range.start)),
            Some(KafkaPosition { partition, offset }) => {
                let current = ranges
                    .iter()
                    .position(|range| range.partition == partition)
                    .ok_or_else(|| SourceError::KafkaPosition {
                        address: address.to_string(),
                        partition,
                    })?;
                (current, offset)
            }
        };
        Ok(Self {
            consumer,
            address,
            ranges,
            current,
            next_offset,
            assigned: false,
            next_index: start.rows,
            sequence: 0,
            total,
            not_before: match from {
                RangeStart::Time(millis) => Some(millis),
                RangeStart::Earliest | RangeStart::Offset(_) => None,
            },
            not_after: match until {
                RangeEnd::Time(millis) => Some(millis),
                RangeEnd::End => None,
            },
        })
    }

    /// Whether a record with this timestamp is inside the time bounds (a record without a
    /// timestamp is).
    fn in_time(&self, timestamp: Option<i64>) -> bool {
        let Some(timestamp) = timestamp else {
            return true;
        };
        self.not_before.is_none_or(|from| timestamp >= from)
            && self.not_after.is_none_or(|until| timestamp < until)
    }

    /// The consumer's position in `partition` (librdkafka's: the offset after the last record
    /// handed out, moved past transaction markers as well).
    fn consumer_position(&self, partition: i32) -> Result<Option<i64>, SourceError> {
        let positions = self
            .consumer
            .position()
            .map_err(|e| self.error(partition, e))?;
        Ok(positions
            .find_partition(&self.address.topic, partition)
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            }))
    }

    /// Marks the partition finished if the consumer's position has reached the range end
    /// (every record up to it handed on, and any markers after them passed).
    fn check_finished(&mut self, range: PartitionRange) -> Result<(), SourceError> {
        if let Some(position) = self.consumer_position(range.partition)? {
            if position >= range.end && self.next_offset < range.end {
                tracing::debug!(
                    partition = range.partition,
                    offset = self.next_offset,
                    end = range.end,
                    "consumer position at the range end; the rest holds no records"
                );
                self.next_offset = range.end;
            }
        }
        Ok(())
    }

    fn error(&self, partition: i32, source: KafkaError) -> SourceError {
        SourceError::Kafka {
            address: self.address.to_string(),
            partition,
            offset: self.next_offset,
            source,
        }
    }

    /// The range being read, after moving past finished ones; `None` when all are done.
    fn current_range(&mut self) -> Result<Option<PartitionRange>, SourceError> {
        loop {
            let Some(range) = self.ranges.get(self.current).copied() else {
                return Ok(None);
            };
            if self.next_offset < range.end {
                if !self.assigned {
                    let mut assignment = TopicPartitionList::new();
                    assignment
                        .add_partition_offset(
                            &self.address.topic,
                            range.partition,
                            Offset::Offset(self.next_offset),
                        )
                        .map_err(|e| self.error(range.partition, e))?;
                    self.consumer
                        .assign(&assignment)
                        .map_err(|e| self.error(range.partition, e))?;
                    self.assigned = true;
                }
                return Ok(Some(range));
            }
            self.current += 1;
            self.assigned = false;
            if let Some(next) = self.ranges.get(self.current) {
                self.next_offset = next.start;
            }
        }
    }

    /// Reads up to `max_rows` records of `range` into `records`.
    fn fill(
        &mut self,
        range: PartitionRange,
        max_rows: usize,
        records: &mut Records,
    ) -> Result<(), SourceError> {
        let mut waiting_since = Instant::now();
        while records.spans.len() < max_rows && self.next_offset < range.end {
            match self.consumer.poll(POLL) {
                None => {
                    self.check_finished(range)?;
                    if self.next_offset < range.end && waiting_since.elapsed() > STALL_TIMEOUT {
                        return Err(SourceError::KafkaStalled {
                            address: self.address.to_string(),
                            partition: range.partition,
                            offset: self.next_offset,
                            end: range.end,
                            waited: STALL_TIMEOUT,
                        });
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => self.check_finished(range)?,
                Some(Err(error)) => {
                    // Transient (a broker restarting...): librdkafka retries by itself; the
                    // stall timeout bounds how long that may take.
                    tracing::warn!(%error, partition = range.partition, "Kafka input error");
                }
                Some(Ok(message)) => {
                    waiting_since = Instant::now();
                    let offset = message.offset();
                    if message.partition() != range.partition || offset < self.next_offset {
                        continue;
                    }
                    if offset >= range.end {
                        self.next_offset = range.end;
                        break;
                    }
                    self.next_offset = offset + 1;
                    if !self.in_time(message.timestamp().to_millis()) {
                        continue;
                    }
                    records.push(message.key(), message.payload(), range.partition, offset);
                }
            }
        }
        Ok(())
    }
}

impl Source for KafkaSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, SourceError> {
        loop {
            let Some(range) = self.current_range()? else {
                return Ok(None);
            };
            let mut records = Records::with_capacity(max_rows.min(65_536), 512);
            self.fill(range, max_rows, &mut records)?;
            if records.spans.is_empty() {
                // Markers or records outside the time bounds only: read on.
                continue;
            }
            let first_index = self.next_index;
            self.next_index += records.spans.len() as u64;
            let sequence = self.sequence;
            self.sequence += 1;
            return Ok(Some(RawChunk {
                sequence,
                first_index,
                payload: Payload::Messages(records),
                end: InputPosition {
                    rows: self.next_index,
                    byte_offset: 0,
                    kafka: Some(KafkaPosition {
                        partition: range.partition,
                        offset: self.next_offset,
                    }),
                },
            }));
        }
    }

    fn extent(&self) -> super::Extent {
        super::Extent::Rows(self.total)
    }
}

/// Decodes records with the worker's rules, against the model's schema.
#[derive(Debug, Clone)]
pub struct KafkaDecoder {
    layout: Arc<Layout>,
}

impl KafkaDecoder {
    /// A decoder of records of `schema`.
    pub fn new(schema: Arc<Schema>) -> Self {
        Self {
            layout: Arc::new(Layout::new(schema)),
        }
    }

    /// Decodes every record of the chunk (a Kafka input is sharded by partition, so every
    /// record read belongs to this shard).
    pub fn decode(
        &self,
        records: &Records,
        first_index: u64,
        rows: &mut Vec<InputRow>,
        rejections: &mut Vec<RejectedRow>,
    ) {
        let part = |range: &Option<Range<usize>>| {
            range
                .as_ref()
                .and_then(|range| records.bytes.get(range.clone()))
        };
        for (number, span) in records.spans.iter().enumerate() {
            let index = first_index + number as u64;
            let key = part(&span.key);
            let payload = part(&span.payload);
            let decoded = decode::decode(self.layout.schema(), key, payload)
                .map_err(RecordError::from)
                .and_then(|(application_id, applicant)| {
                    Ok(InputRow {
                        index,
                        application_id,
                        applicant,
                        bad: outcome(&self.layout, payload.unwrap_or_default())?,
                    })
                });
            match decoded {
                Ok(row) => rows.push(row),
                Err(error) => {
                    let raw = String::from_utf8_lossy(payload.unwrap_or_default()).into_owned();
                    let mut rejection = RejectedRow::new(index, raw, &error);
                    rejection.kafka = Some(KafkaPosition {
                        partition: span.partition,
                        offset: span.offset,
                    });
                    rejections.push(rejection);
                }
            }
        }
    }
}

/// The optional outcome of a payload the worker's decoder accepted. Only payloads that
/// mention the label field are parsed a second time.
fn outcome(layout: &Layout, payload: &[u8]) -> Result<Option<bool>, RecordError> {
    let Some(field) = layout.outcome() else {
        return Ok(None);
    };
    let mentioned = field.keys().iter().any(|key| {
        let needle = key.as_bytes();
        payload.windows(needle.len()).any(|window| window == needle)
    });
    if !mentioned {
        return Ok(None);
    }
    let extras = Extras::read(layout, payload)?;
    field.parse_json(extras.outcome.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dataset::shipped_german_credit;
    use credit_core::schema::german_credit;

    fn schema() -> Arc<Schema> {
        Arc::new(german_credit())
    }

    fn applicant_json() -> Vec<u8> {
        shipped_german_credit()[0]
            .applicant
            .to_json(&german_credit())
    }

    /// A record's key and payload, as a test writes them.
    type Parts<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    fn records(items: &[Parts<'_>]) -> Records {
        let mut records = Records::with_capacity(items.len(), 512);
        for (offset, (key, payload)) in items.iter().enumerate() {
            records.push(*key, *payload, 3, 100 + offset as i64);
        }
        records
    }

    #[test]
    fn records_decode_by_the_workers_rules_and_rejections_name_partition_and_offset() {
        let valid = applicant_json();
        let mut with_outcome: serde_json::Value = serde_json::from_slice(&valid).unwrap();
        with_outcome["creditability"] = "bad".into();
        let with_outcome = serde_json::to_vec(&with_outcome).unwrap();
        let chunk = records(&[
            (Some(b"app-1"), Some(&valid)),
            (None, Some(&valid)),
            (Some(b"app-3"), Some(b"{\"duration_months\": ")),
            (Some(b"app-4"), Some(&with_outcome)),
            (Some(b"app-5"), None),
        ]);
        let (mut rows, mut rejections) = (Vec::new(), Vec::new());
        KafkaDecoder::new(schema()).decode(&chunk, 10, &mut rows, &mut rejections);

        let ids: Vec<_> = rows.iter().map(|row| row.application_id.as_str()).collect();
        assert_eq!(ids, ["app-1", "app-4"]);
        assert_eq!(rows[0].index, 10);
        assert_eq!(rows[0].bad, None);
        assert_eq!(
            rows[1].bad,
            Some(true),
            "the outcome is read for the backtest"
        );

        let fields: Vec<_> = rejections.iter().map(|r| r.field.as_str()).collect();
        // A truncated record is not JSON; its message says where it broke off.
        assert_eq!(fields, ["key", "record", "record"]);
        assert!(
            rejections[1].reason.contains("`duration_months`"),
            "{}",
            rejections[1].reason
        );
        assert_eq!(rejections[0].row, 12);
        assert_eq!(
            rejections[0].kafka,
            Some(KafkaPosition {
                partition: 3,
                offset: 101
            })
        );
        assert!(
            rejections[2].reason.contains("no payload"),
            "{rejections:?}"
        );
    }

    #[test]
    fn a_bad_outcome_value_is_a_rejection_naming_the_column() {
        let mut json: serde_json::Value = serde_json::from_slice(&applicant_json()).unwrap();
        json["creditability"] = 7.into();
        let layout = Layout::new(schema());
        let error = outcome(&layout, &serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert_eq!(error.field, "creditability");
    }
}

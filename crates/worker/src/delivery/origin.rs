//! Where a consumed record came from, which its outputs carry until they are acknowledged.

use std::time::Instant;

/// Where a record came from: the input offset its output acknowledgement releases, and the
/// two instants its latencies are measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub partition: i32,
    pub offset: i64,
    /// The input record's Kafka timestamp (create or log-append time), milliseconds:
    /// end-to-end latency starts here.
    pub timestamp_ms: Option<i64>,
    /// When the worker took the record from its consumer: the worker's own share of the
    /// latency starts here. What lies before it (the upstream producer's linger, the broker,
    /// the fetch, any backlog in the topic or the consumer's queue) is set by others, or by
    /// how far behind the worker is; what follows is its processing. An SRE needs to tell
    /// the two apart.
    pub consumed_at: Instant,
}

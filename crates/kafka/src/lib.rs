//! Kafka as worker and backfill both use it: client settings no operator may override, the
//! headers of decisions and dead letters, how much of its input an output copies, librdkafka's
//! log lines, and the in-process broker with its feed and tail helpers (embedded mode, tests,
//! benches).
//!
//! - [`settings`]: reserved librdkafka keys and settings as logs show them.
//! - [`headers`]: decision and dead-letter headers, and reading a record's raw headers.
//! - [`bounds`]: an output's copy of its input, cut to a byte budget.
//! - [`log`]: librdkafka's logs routed to `tracing`.
//! - [`mock`], [`feed`], [`tail`]: the embedded cluster, producing records into it and
//!   reading outputs back.

pub mod bounds;
pub mod feed;
pub mod headers;
pub mod log;
pub mod mock;
pub mod settings;
pub mod tail;

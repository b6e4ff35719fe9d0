//! Everything that talks to Kafka: client settings, the consumer's rebalance and commit
//! handling, the producer and its delivery reports, how much of its input an output copies,
//! offset bookkeeping, exactly-once transactions, consumer lag, and the in-process mock cluster
//! of embedded mode.

pub mod bounds;
pub mod clients;
pub mod commit;
pub mod context;
pub mod feed;
pub mod headers;
pub mod lag;
pub mod loadgen;
pub mod mock;
pub mod offsets;
pub mod publish;
pub mod tail;
pub mod transaction;

/// The worker's consumer type: polled from a thread of its own (the intake thread), not a
/// stream on the async runtime.
pub type WorkerConsumer = rdkafka::consumer::BaseConsumer<context::WorkerConsumerContext>;

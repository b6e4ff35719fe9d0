//! The delivery guarantee: where at-least-once (and, when configured, exactly-once) lives.
//!
//! An input offset is committed only once every output of the records before it is
//! acknowledged, each output carrying its record's [`origin`]: the producer and its delivery reports ([`publish`]), the per-partition offset
//! bookkeeping ([`offsets`]), the periodic and final commits ([`commit`]), the consumer's
//! reaction to rebalances ([`context`]), exactly-once transactions ([`transaction`]); plus the
//! clients' settings ([`clients`]) and consumer lag ([`lag`]).

pub(crate) mod clients;
pub(crate) mod commit;
pub(crate) mod context;
pub(crate) mod lag;
pub(crate) mod offsets;
pub(crate) mod origin;
pub(crate) mod publish;
pub(crate) mod transaction;

/// The worker's consumer type: polled from a thread of its own (the intake thread), not a
/// stream on the async runtime.
pub(crate) type WorkerConsumer = rdkafka::consumer::BaseConsumer<context::WorkerConsumerContext>;

//! The scoring worker: applicants from Kafka, decisions and dead letters back to Kafka, with
//! input offsets committed only after delivery.
//!
//! - [`config`]: the layered configuration (built-in defaults, file, environment).
//! - [`pipeline`]: the hot path: intake → batch → infer → publish, and the ordered shutdown.
//! - [`delivery`]: the delivery guarantee: publishing, offsets, commits, rebalances,
//!   transactions.
//! - [`service`]: what surrounds the pipeline: metrics, health, HTTP, model loading and reload,
//!   the embedded demonstration.
//! - [`telemetry`]: metrics, liveness and readiness.
//! - [`stop`]: the stop signal every thread and task watches.
//! - [`loadgen`]: synthetic applicants produced to a topic at a chosen rate.

pub mod config;
pub(crate) mod delivery;
pub mod loadgen;
pub mod pipeline;
pub mod service;
pub mod stop;
pub mod telemetry;

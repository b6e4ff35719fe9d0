//! The scoring pipeline: consumed records → micro-batches → one ONNX Runtime inference per
//! batch → decisions and dead letters, with input offsets committed only after delivery.
//!
//! One concern per module: [`decode`] (record → applicant or rejection), [`batch`] (the
//! reusable batch buffer), [`decision`] (the output record), [`consume`] (Kafka as the
//! batcher's record source), [`batcher`], [`inference`] and [`publishing`] (the three threads:
//! intake, scoring, publishing), [`placement`] (an optional core of its own for the inference
//! thread), [`stop`] (the shared stop signal), [`worker`] (assembly and ordered shutdown) and
//! [`testkit`] (scenarios shared by the integration tests).

pub mod batch;
pub mod batcher;
pub mod consume;
pub mod decision;
pub mod decode;
pub mod inference;
pub mod placement;
pub mod publishing;
pub mod stop;
pub mod testkit;
pub mod worker;

pub use worker::{run, PipelineError, RunReport, ServedModel};

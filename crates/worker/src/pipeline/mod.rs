//! The scoring pipeline: consumed records → micro-batches → one ONNX Runtime inference per
//! batch → decisions and dead letters, with input offsets committed only after delivery.
//!
//! One concern per module: [`batch`] (the reusable batch buffer), [`consume`] (Kafka as the
//! batcher's record source), [`batcher`], [`inference`] and [`publishing`] (the three threads:
//! intake, scoring, publishing), [`placement`] (an optional core of its own for the inference
//! thread) and [`worker`] (assembly and ordered shutdown).
//! Records are decoded and decisions written by [`credit_core::decode`] and
//! [`credit_core::decision`].

pub(crate) mod batch;
pub(crate) mod batcher;
pub(crate) mod consume;
pub(crate) mod inference;
pub mod placement;
pub(crate) mod publishing;
pub(crate) mod worker;

pub use worker::{run, PipelineError, RunReport, ServedModel};

/// The applicants of the data set shipped in `data/`, for the pipeline's unit tests.
#[cfg(test)]
pub(crate) fn shipped_applicants() -> Vec<credit_core::applicant::Applicant> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/german_credit.csv");
    credit_core::german_credit::load(&path)
        .expect("the shipped data set loads")
        .into_iter()
        .map(|row| row.applicant)
        .collect()
}

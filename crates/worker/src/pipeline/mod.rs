//! The scoring pipeline: consumed records → micro-batches → one ONNX Runtime inference per
//! batch → decisions and dead letters, with input offsets committed only after delivery.
//!
//! One concern per module: [`batch`] (the reusable batch buffer), [`consume`] (Kafka as the
//! intake's record source), [`intake`], [`inference`] and [`publishing`] (the three threads:
//! batching, scoring, publishing), [`placement`] (an optional core of its own for the inference
//! thread) and [`assembly`] (starting them, and the ordered shutdown).
//! Records are decoded and decisions written by [`credit_core::decode`] and
//! [`credit_core::decision`].

pub(crate) mod assembly;
pub(crate) mod batch;
pub(crate) mod consume;
pub(crate) mod inference;
pub(crate) mod intake;
pub mod placement;
pub(crate) mod publishing;

pub use assembly::{run, PipelineError, RunReport, ServedModel};

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

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

pub use assembly::{run, Explaining, PipelineError, RunReport, ServedModel};

/// The applicants of the data set shipped in `data/`, for the pipeline's unit tests.
#[cfg(test)]
pub(crate) fn shipped_applicants() -> Vec<credit_core::applicant::Applicant> {
    credit_core::dataset::shipped_german_credit()
        .into_iter()
        .map(|row| row.applicant)
        .collect()
}

/// A preprocessor fitted on `applicants` of the shipped schema, for the pipeline's unit tests.
#[cfg(test)]
pub(crate) fn fitted(
    applicants: &[credit_core::applicant::Applicant],
) -> credit_core::preprocess::Preprocessor {
    credit_core::preprocess::Preprocessor::fit(&credit_core::schema::german_credit(), applicants)
        .expect("the shipped applicants fit")
}

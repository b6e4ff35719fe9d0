//! Scoring preprocessed batches: the [`Scorer`] seam and its ONNX Runtime implementation.

pub mod onnx_runtime;

use onnx_runtime::{OnnxScorer, ScoringError};

/// A model that scores a row-major batch of features: the ONNX scorer in production; the
/// seam lets tests exercise the pipeline with a stand-in.
pub trait Scorer: Send {
    /// Features per row.
    fn input_width(&self) -> usize;
    /// Replaces `out` with the probability of `bad` of each of the `batch` rows.
    fn score_into(
        &mut self,
        features: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), ScoringError>;
}

impl Scorer for OnnxScorer {
    fn input_width(&self) -> usize {
        OnnxScorer::input_width(self)
    }

    fn score_into(
        &mut self,
        features: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), ScoringError> {
        OnnxScorer::score_into(self, features, batch, out)
    }
}

//! The model a backfill scores with: preprocessor, ONNX file and the threshold and version from
//! its metadata, plus scoring of whole data sets (the PSI reference).
//!
//! Each worker thread opens its own [`OnnxScorer`]: a session runs one inference at a time, so
//! per-worker sessions let decoding, preprocessing and inference of different chunks overlap.

use credit_core::applicant::Applicant;
use credit_core::artifacts::MetadataError;
use credit_core::bundle::{self, BundleError, ModelBytes};
use credit_core::preprocess::{PreprocessError, Preprocessor};
use credit_core::scoring::onnx_runtime::{init_runtime, OnnxScorer, ScoringError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the model could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The files do not match the bundle's manifest, or the model's version is not its own.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// The loaded artifacts (sessions are opened per worker with [`BackfillModel::scorer`]).
#[derive(Debug, Clone)]
pub struct BackfillModel {
    pub preprocessor: Arc<Preprocessor>,
    pub model_path: PathBuf,
    /// The model file as verified at load; every session is created from these bytes, so no
    /// worker runs a file changed after the check.
    model: ModelBytes,
    pub version: String,
    /// Decision threshold: the model's own unless overridden.
    pub threshold: f32,
}

impl BackfillModel {
    /// Loads ONNX Runtime (from `ort_dylib` or the default search) and the artifacts in `dir`,
    /// verified against the bundle's manifest ([`bundle::open`]).
    pub fn load(
        dir: &Path,
        ort_dylib: Option<&Path>,
        threshold: Option<f32>,
    ) -> Result<Self, ModelError> {
        init_runtime(ort_dylib)?;
        let bundle = bundle::open(dir)?;
        let model_path = bundle.paths.model();
        let scorer = OnnxScorer::from_file_bytes(&bundle.model, 1, &model_path)?;
        scorer.ensure_input_width(bundle.preprocessor.width)?;
        Ok(Self {
            preprocessor: Arc::new(bundle.preprocessor),
            model_path,
            model: bundle.model,
            version: bundle.metadata.version,
            threshold: threshold.unwrap_or(bundle.metadata.threshold),
        })
    }

    /// A new session with `intra_threads` threads inside each operator.
    pub fn scorer(&self, intra_threads: usize) -> Result<OnnxScorer, ModelError> {
        let scorer =
            OnnxScorer::from_file_bytes(&self.model, intra_threads.max(1), &self.model_path)?;
        scorer.ensure_input_width(self.preprocessor.width)?;
        Ok(scorer)
    }

    /// Scores `applicants` in batches of `batch` with `scorer`.
    pub fn score_all(
        &self,
        scorer: &mut OnnxScorer,
        applicants: &[Applicant],
        batch: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let width = self.preprocessor.width;
        let mut features = Vec::new();
        let mut out = Vec::new();
        let mut scores = Vec::with_capacity(applicants.len());
        for group in applicants.chunks(batch.max(1)) {
            features.clear();
            features.resize(group.len() * width, 0.0);
            for (applicant, row) in group.iter().zip(features.chunks_exact_mut(width)) {
                self.preprocessor.transform_into(applicant, row)?;
            }
            scorer.score_into(&features, group.len(), &mut out)?;
            scores.extend_from_slice(&out);
        }
        Ok(scores)
    }
}

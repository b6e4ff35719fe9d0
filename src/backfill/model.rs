//! The model a backfill scores with: preprocessor, ONNX file and the threshold and version from
//! its metadata, plus scoring of whole data sets (the PSI reference).
//!
//! Each worker thread opens its own [`OnnxScorer`]: a session runs one inference at a time, so
//! per-worker sessions let decoding, preprocessing and inference of different chunks overlap.

use crate::applicant::Applicant;
use crate::artifacts::{ArtifactPaths, MetadataError, ModelMetadata};
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::scoring::onnx_runtime::{init_runtime, OnnxScorer, ScoringError};
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
}

/// The loaded artifacts (sessions are opened per worker with [`BackfillModel::scorer`]).
#[derive(Debug, Clone)]
pub struct BackfillModel {
    pub preprocessor: Arc<Preprocessor>,
    pub model_path: PathBuf,
    pub version: String,
    /// Decision threshold: the model's own unless overridden.
    pub threshold: f32,
}

impl BackfillModel {
    /// Loads ONNX Runtime (from `ort_dylib` or the default search) and the artifacts in `dir`.
    pub fn load(
        dir: &Path,
        ort_dylib: Option<&Path>,
        threshold: Option<f32>,
    ) -> Result<Self, ModelError> {
        init_runtime(ort_dylib)?;
        let paths = ArtifactPaths::new(dir);
        let preprocessor = Preprocessor::load(&paths.preprocessor())?;
        let scorer = OnnxScorer::load(&paths.model(), 1)?;
        scorer.ensure_input_width(preprocessor.width)?;
        let metadata = ModelMetadata::from_map(scorer.metadata(), &paths.model())?;
        metadata.check_preprocessor(
            &preprocessor.fingerprint(),
            &paths.model(),
            &paths.preprocessor(),
        )?;
        Ok(Self {
            preprocessor: Arc::new(preprocessor),
            model_path: paths.model(),
            version: metadata.version,
            threshold: threshold.unwrap_or(metadata.threshold),
        })
    }

    /// A new session with `intra_threads` threads inside each operator.
    pub fn scorer(&self, intra_threads: usize) -> Result<OnnxScorer, ModelError> {
        let scorer = OnnxScorer::load(&self.model_path, intra_threads.max(1))?;
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

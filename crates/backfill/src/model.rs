//! The model a backfill scores with: the bundle loaded by the one loader
//! ([`credit_core::loader`], verified and self-checked), with the schema every input is read
//! with, plus scoring of whole data sets (the PSI reference).
//!
//! Each worker thread opens its own session ([`BackfillModel::scorer`]): a session runs one
//! inference at a time, so per-worker sessions let decoding, preprocessing and inference of
//! different chunks overlap.

use credit_core::applicant::Applicant;
use credit_core::explain::Reference;
use credit_core::loader::{self, LoadOptions, ModelError, Sessions};
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
use credit_core::scoring::onnx_runtime::OnnxScorer;
use credit_core::training_rows::TrainingRows;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The loaded bundle (sessions are opened per worker with [`BackfillModel::scorer`]).
#[derive(Debug, Clone)]
pub struct BackfillModel {
    /// The bundle's schema: inputs are decoded, and outputs written, by its fields.
    pub schema: Arc<Schema>,
    pub preprocessor: Arc<Preprocessor>,
    pub model_path: PathBuf,
    pub version: String,
    /// Decision threshold: the model's own unless overridden.
    pub threshold: f32,
    /// The applicant reasons are measured against, when the bundle has one.
    pub reference: Option<Arc<Reference>>,
    /// The fingerprints of the model's training rows, if the bundle records them.
    pub training_rows: Option<Arc<TrainingRows>>,
    sessions: Sessions,
}

impl BackfillModel {
    /// Loads ONNX Runtime (from `ort_dylib` or the default search) and the bundle in `dir`.
    pub fn load(
        dir: &Path,
        ort_dylib: Option<&Path>,
        threshold: Option<f32>,
    ) -> Result<Self, ModelError> {
        let loaded = loader::load(&LoadOptions {
            dir,
            ort_dylib,
            threshold,
            intra_threads: 1,
        })?;
        // The self-checked session is not kept: each worker thread opens its own.
        Ok(Self {
            schema: loaded.schema,
            preprocessor: loaded.preprocessor,
            model_path: loaded.paths.model(),
            version: loaded.version,
            threshold: loaded.threshold,
            reference: loaded.reference,
            training_rows: loaded.training_rows,
            sessions: loaded.sessions,
        })
    }

    /// A new session with `intra_threads` threads inside each operator.
    pub fn scorer(&self, intra_threads: usize) -> Result<OnnxScorer, ModelError> {
        self.sessions.open(intra_threads.max(1))
    }

    /// Scores `applicants` in batches of `batch` with `scorer`.
    pub(crate) fn score_all(
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

//! Loading the served model: ONNX Runtime, the ONNX file, the preprocessor, and the checks
//! that they belong together.
//!
//! The decision threshold and the model version come from the ONNX file's metadata (see
//! [`crate::artifacts`]), so a model is never served with another model's threshold by
//! accident; `model.threshold` can still override the threshold deliberately.

use crate::artifacts::{ArtifactPaths, MetadataError, ModelMetadata};
use crate::config::ModelConfig;
use crate::pipeline::ServedModel;
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::scoring::onnx_runtime::{init_runtime, OnnxScorer, ScoringError};
use std::sync::Arc;

/// Why the model could not be loaded. Every message names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Runtime(#[from] ScoringError),
    #[error(transparent)]
    Preprocessor(#[from] PreprocessError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// A loaded model and where it came from.
pub struct LoadedModel {
    pub served: ServedModel,
    /// The threshold stored in the model (the served one may be overridden).
    pub stored_threshold: f32,
    pub paths: ArtifactPaths,
}

/// Loads ONNX Runtime and the artifacts in `config.dir`. Blocking (file reads, session
/// creation): call it before starting the runtime or on the blocking pool.
pub fn load(config: &ModelConfig) -> Result<LoadedModel, ModelError> {
    init_runtime(config.ort_dylib.as_deref())?;
    let paths = ArtifactPaths::new(&config.dir);
    let preprocessor = Preprocessor::load(&paths.preprocessor())?;
    let scorer = OnnxScorer::load(&paths.model(), config.inference_threads)?;
    scorer.ensure_input_width(preprocessor.width)?;
    let metadata = ModelMetadata::from_map(scorer.metadata(), &paths.model())?;
    metadata.check_preprocessor(
        &preprocessor.fingerprint(),
        &paths.model(),
        &paths.preprocessor(),
    )?;
    let threshold = config.threshold.unwrap_or(metadata.threshold);
    tracing::info!(
        model = %paths.model().display(),
        version = %metadata.version,
        stored_threshold = metadata.threshold,
        threshold,
        trained_at = metadata.trained_at.as_deref().unwrap_or("unknown"),
        features = preprocessor.width,
        "model loaded"
    );
    Ok(LoadedModel {
        served: ServedModel {
            scorer: Box::new(scorer),
            preprocessor: Arc::new(preprocessor),
            version: metadata.version,
            threshold,
        },
        stored_threshold: metadata.threshold,
        paths,
    })
}

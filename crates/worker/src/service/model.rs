//! The served model: the bundle in `model.dir`, loaded by the one loader
//! ([`credit_core::loader`]) with the worker's inference threads and threshold override.

use crate::config::ModelConfig;
use crate::pipeline::ServedModel;
use credit_core::loader::{self, LoadOptions, ModelError};

/// Loads the bundle `config` names, verified and self-checked, as the pipeline serves it.
/// Blocking: call it before starting the runtime or on the blocking pool.
pub fn load(config: &ModelConfig) -> Result<ServedModel, ModelError> {
    let loaded = loader::load(&LoadOptions {
        dir: &config.dir,
        ort_dylib: config.ort_dylib.as_deref(),
        threshold: config.threshold,
        intra_threads: config.inference_threads,
    })?;
    Ok(ServedModel {
        scorer: Box::new(loaded.scorer),
        schema: loaded.schema,
        preprocessor: loaded.preprocessor,
        version: loaded.version,
        threshold: loaded.threshold,
    })
}

//! The served model: the bundle in `model.dir`, loaded by the one loader
//! ([`credit_core::loader`]) with the worker's inference threads and threshold override, and
//! the explainer its reasons come from.

use crate::config::{ModelConfig, ReasonsConfig};
use crate::pipeline::{Explaining, ServedModel};
use credit_core::explain::{ExplainError, Explainer, ReasonsMode};
use credit_core::loader::{self, LoadOptions, ModelError};
use std::path::PathBuf;

/// Why a bundle cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("model bundle {}: {source}", .dir.display())]
    Explain {
        dir: PathBuf,
        #[source]
        source: ExplainError,
    },
}

/// Loads the bundle `config` names, verified and self-checked, as the pipeline serves it, with
/// its explainer unless `reasons` are off. Blocking: call it before starting the runtime or on
/// the blocking pool.
pub fn load(config: &ModelConfig, reasons: ReasonsConfig) -> Result<ServedModel, LoadError> {
    let loaded = loader::load(&LoadOptions {
        dir: &config.dir,
        ort_dylib: config.ort_dylib.as_deref(),
        threshold: config.threshold,
        intra_threads: config.inference_threads,
    })?;
    let explaining = match reasons.mode {
        ReasonsMode::Off => None,
        mode => {
            let explain_error = |source| LoadError::Explain {
                dir: config.dir.clone(),
                source,
            };
            let reference = loaded
                .reference
                .ok_or(ExplainError::NoReference)
                .map_err(explain_error)?;
            let explainer = Explainer::new(&loaded.preprocessor, &reference, reasons.top)
                .map_err(explain_error)?;
            Some(Explaining {
                explainer,
                reference,
                mode,
            })
        }
    };
    Ok(ServedModel {
        scorer: Box::new(loaded.scorer),
        schema: loaded.schema,
        preprocessor: loaded.preprocessor,
        version: loaded.version,
        threshold: loaded.threshold,
        explaining,
    })
}

//! Where the trained artifacts live and what the ONNX model's metadata says.
//!
//! The trainer writes, and the worker and backfill read, one directory (`models/` by default).
//! The metadata keys are the contract between them: the worker takes the decision threshold and
//! the model version from the ONNX file itself, so a model cannot be served with another model's
//! threshold by mistake. `manifest.json` (see [`crate::bundle`]) binds the files to each other
//! and to the version.

use crate::model::weights::NetworkWeights;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the ONNX model.
pub const MODEL_FILE: &str = "credit_lstm.onnx";
/// File name of the fitted preprocessor.
pub const PREPROCESSOR_FILE: &str = "preprocessor.json";
/// File name of the evaluation report.
pub(crate) const METRICS_FILE: &str = "metrics.json";
/// File name of the learning-curve plot.
pub(crate) const LEARNING_CURVE_FILE: &str = "learning_curve.svg";
/// File name of the ROC plot.
pub const ROC_FILE: &str = "roc.svg";
/// File name of the reliability plot (predicted probability against observed bad rate).
pub const RELIABILITY_FILE: &str = "reliability.svg";
/// File name of the manifest: size and SHA-256 of every other artifact, written last.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the applicant schema the model was trained on (see [`crate::schema`]).
pub const SCHEMA_FILE: &str = "schema.toml";
/// File name of the JSON Schema generated from it, for producers.
pub const JSON_SCHEMA_FILE: &str = "applicant.schema.json";
/// File name of the reference applicant adverse-action reasons are measured against (see
/// [`crate::explain`]).
pub const REFERENCE_FILE: &str = "reference.json";
/// File name of the fingerprints of the model's training rows ([`crate::training_rows`]);
/// bundles trained before it existed lack it.
pub const TRAINING_ROWS_FILE: &str = "training_rows.bin";
/// Every artifact a training run writes, all of them recorded in the manifest.
pub const BUNDLE_FILES: [&str; 10] = [
    MODEL_FILE,
    PREPROCESSOR_FILE,
    SCHEMA_FILE,
    JSON_SCHEMA_FILE,
    REFERENCE_FILE,
    METRICS_FILE,
    LEARNING_CURVE_FILE,
    ROC_FILE,
    RELIABILITY_FILE,
    TRAINING_ROWS_FILE,
];

/// ONNX metadata key: model version (hash of weights, preprocessor and threshold).
pub const KEY_VERSION: &str = "model_version";
/// ONNX metadata key: decision threshold on the probability of `bad`.
pub const KEY_THRESHOLD: &str = "decision_threshold";
/// ONNX metadata key: JSON list of `{name, offset, width}` per attribute.
pub const KEY_FEATURE_LAYOUT: &str = "feature_layout";
/// ONNX metadata key: RFC 3339 time the model was trained.
pub const KEY_TRAINED_AT: &str = "trained_at";
/// ONNX metadata key: SHA-256 of the preprocessor this model was trained with.
pub const KEY_PREPROCESSOR_SHA256: &str = "preprocessor_sha256";

/// Paths of the artifacts in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPaths {
    pub dir: PathBuf,
}

impl ArtifactPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn model(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }
    pub fn preprocessor(&self) -> PathBuf {
        self.dir.join(PREPROCESSOR_FILE)
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join(METRICS_FILE)
    }
    pub fn learning_curve(&self) -> PathBuf {
        self.dir.join(LEARNING_CURVE_FILE)
    }
    pub fn roc(&self) -> PathBuf {
        self.dir.join(ROC_FILE)
    }
    pub fn reference(&self) -> PathBuf {
        self.dir.join(REFERENCE_FILE)
    }
    pub fn reliability(&self) -> PathBuf {
        self.dir.join(RELIABILITY_FILE)
    }
    pub fn training_rows(&self) -> PathBuf {
        self.dir.join(TRAINING_ROWS_FILE)
    }
    pub fn manifest(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }
    pub fn schema(&self) -> PathBuf {
        self.dir.join(SCHEMA_FILE)
    }
    pub fn json_schema(&self) -> PathBuf {
        self.dir.join(JSON_SCHEMA_FILE)
    }
}

/// Version string of a trained model: a hash of everything that decides its decisions (the
/// weights, the preprocessor's fingerprint and the stored threshold).
///
/// The loaders recompute it from the weights in the ONNX file (see [`crate::bundle`]), so the
/// version a decision carries always names the weights that made it.
pub fn model_version(
    weights: &NetworkWeights,
    preprocessor_sha256: &str,
    threshold: f32,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(weights).unwrap_or_default());
    hasher.update(preprocessor_sha256.as_bytes());
    hasher.update(threshold.to_le_bytes());
    format!("lstm-{}", &hex::encode(hasher.finalize())[..12])
}

/// The metadata the worker needs from a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    pub version: String,
    pub threshold: f32,
    pub preprocessor_sha256: Option<String>,
    pub trained_at: Option<String>,
}

/// Why a model's metadata is unusable.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("model {path} has no `{key}` metadata; was it written by this project's trainer?")]
    Missing { path: String, key: &'static str },
    #[error("model {path} has `{key}` = `{value}`, which is not a probability between 0 and 1")]
    BadThreshold {
        path: String,
        key: &'static str,
        value: String,
    },
    #[error(
        "model {model} was trained with preprocessor {expected}, but {preprocessor} is \
         {actual}; the model and the preprocessor do not belong together (copy both from the \
         same training run)"
    )]
    PreprocessorMismatch {
        model: String,
        preprocessor: String,
        expected: String,
        actual: String,
    },
}

impl ModelMetadata {
    /// Checks that `preprocessor` (whose fingerprint is `actual`) is the one this model was
    /// trained with. A model without the key (written before it existed) passes: the input
    /// width check still catches artifacts of another schema.
    ///
    /// The fingerprint hashes the preprocessor's JSON; serde_json's `float_roundtrip` feature
    /// makes a save/load round trip bit-exact, so a correct pair always matches.
    pub(crate) fn check_preprocessor(
        &self,
        actual: &str,
        model: &Path,
        preprocessor: &Path,
    ) -> Result<(), MetadataError> {
        match &self.preprocessor_sha256 {
            Some(expected) if expected != actual => Err(MetadataError::PreprocessorMismatch {
                model: model.display().to_string(),
                preprocessor: preprocessor.display().to_string(),
                expected: expected.clone(),
                actual: actual.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Reads the contract keys from an ONNX model's custom metadata.
    pub fn from_map(map: &BTreeMap<String, String>, path: &Path) -> Result<Self, MetadataError> {
        let path_text = || path.display().to_string();
        let version = map
            .get(KEY_VERSION)
            .cloned()
            .ok_or_else(|| MetadataError::Missing {
                path: path_text(),
                key: KEY_VERSION,
            })?;
        let raw = map
            .get(KEY_THRESHOLD)
            .ok_or_else(|| MetadataError::Missing {
                path: path_text(),
                key: KEY_THRESHOLD,
            })?;
        let threshold = raw
            .parse::<f32>()
            .ok()
            .filter(|t| t.is_finite() && (0.0..=1.0).contains(t))
            .ok_or_else(|| MetadataError::BadThreshold {
                path: path_text(),
                key: KEY_THRESHOLD,
                value: raw.clone(),
            })?;
        Ok(Self {
            version,
            threshold,
            preprocessor_sha256: map.get(KEY_PREPROCESSOR_SHA256).cloned(),
            trained_at: map.get(KEY_TRAINED_AT).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preprocessor_from_another_training_run_is_refused_by_name() {
        let mut map = BTreeMap::new();
        map.insert(KEY_VERSION.to_owned(), "v1".to_owned());
        map.insert(KEY_THRESHOLD.to_owned(), "0.4".to_owned());
        map.insert(KEY_PREPROCESSOR_SHA256.to_owned(), "abc".to_owned());
        let metadata = ModelMetadata::from_map(&map, Path::new("m.onnx")).unwrap();
        let (model, preprocessor) = (Path::new("m.onnx"), Path::new("p.json"));
        assert!(metadata
            .check_preprocessor("abc", model, preprocessor)
            .is_ok());
        let message = metadata
            .check_preprocessor("def", model, preprocessor)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("m.onnx") && message.contains("p.json") && message.contains("def"),
            "{message}"
        );
    }

    #[test]
    fn metadata_requires_version_and_a_probability_threshold() {
        let path = Path::new("m.onnx");
        let mut map = BTreeMap::new();
        assert!(ModelMetadata::from_map(&map, path)
            .unwrap_err()
            .to_string()
            .contains("model_version"));
        map.insert(KEY_VERSION.to_string(), "lstm-abc".to_string());
        map.insert(KEY_THRESHOLD.to_string(), "1.5".to_string());
        let error = ModelMetadata::from_map(&map, path).unwrap_err().to_string();
        assert!(error.contains("1.5"), "{error}");
        map.insert(KEY_THRESHOLD.to_string(), "0.25".to_string());
        let metadata = ModelMetadata::from_map(&map, path).unwrap();
        assert_eq!(metadata.version, "lstm-abc");
        assert_eq!(metadata.threshold, 0.25);
    }
}

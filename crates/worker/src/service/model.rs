//! Loading the served model: ONNX Runtime, the ONNX file, the preprocessor, and the checks
//! that they belong together.
//!
//! The decision threshold and the model version come from the ONNX file's metadata (see
//! [`credit_core::artifacts`]), so a model is never served with another model's threshold by
//! accident; `model.threshold` can still override the threshold deliberately.

use crate::config::ModelConfig;
use crate::pipeline::ServedModel;
use credit_core::applicant::{Applicant, AttributeKind, AttributeValue, ATTRIBUTES};
use credit_core::artifacts::{ArtifactPaths, MetadataError};
use credit_core::bundle::{self, BundleError};
use credit_core::preprocess::PreprocessError;
use credit_core::scoring::onnx_runtime::{init_runtime, OnnxScorer, ScoringError};
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
    /// The files do not match the bundle's manifest, or the model's version is not its own.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The artifacts load and agree with each other, but do not score a fixed sample sanely.
    #[error("model {model} failed its self-check: {problem}")]
    SelfCheck { model: String, problem: String },
}

/// A loaded model and where it came from.
pub struct LoadedModel {
    pub served: ServedModel,
    /// The threshold stored in the model (the served one may be overridden).
    pub stored_threshold: f32,
    pub paths: ArtifactPaths,
}

/// Loads ONNX Runtime and the artifacts in `config.dir`, verified against the bundle's manifest
/// ([`bundle::open`]: the files are the ones trained, the version is the weights'), checks that
/// they belong together and runs the [`self_check`]. Blocking (file reads, session creation,
/// one inference): call it before starting the runtime or on the blocking pool.
pub fn load(config: &ModelConfig) -> Result<LoadedModel, ModelError> {
    init_runtime(config.ort_dylib.as_deref())?;
    let bundle = bundle::open(&config.dir)?;
    let paths = bundle.paths;
    let scorer =
        OnnxScorer::from_file_bytes(&bundle.model, config.inference_threads, &paths.model())?;
    let preprocessor = bundle.preprocessor;
    scorer.ensure_input_width(preprocessor.width)?;
    let metadata = bundle.metadata;
    let threshold = config.threshold.unwrap_or(metadata.threshold);
    let mut served = ServedModel {
        scorer: Box::new(scorer),
        preprocessor: Arc::new(preprocessor),
        version: metadata.version,
        threshold,
    };
    self_check(&mut served, &paths.model().display().to_string())?;
    tracing::info!(
        model = %paths.model().display(),
        version = %served.version,
        stored_threshold = metadata.threshold,
        threshold,
        trained_at = metadata.trained_at.as_deref().unwrap_or("unknown"),
        features = served.preprocessor.width,
        "model loaded"
    );
    Ok(LoadedModel {
        served,
        stored_threshold: metadata.threshold,
        paths,
    })
}

/// Scores a fixed sample of applicants through the model's own preprocessor and scorer, and
/// requires one finite probability in [0, 1] per applicant.
///
/// The loading checks compare the artifacts with each other (width, preprocessor fingerprint);
/// this one runs them. A file that parses but computes garbage (NaN weights, a graph with the
/// wrong output) is refused before it answers a single real application — which matters most
/// for a reload, where the alternative is to keep serving the model that works.
pub fn self_check(served: &mut ServedModel, model: &str) -> Result<(), ModelError> {
    let fail = |problem: String| ModelError::SelfCheck {
        model: model.to_owned(),
        problem,
    };
    let width = served.scorer.input_width();
    if width != served.preprocessor.width {
        return Err(fail(format!(
            "the model reads {width} features per row but its preprocessor writes {}",
            served.preprocessor.width
        )));
    }
    let applicants = self_check_applicants().map_err(|error| fail(error.to_string()))?;
    let features = served
        .preprocessor
        .transform_batch(&applicants)
        .map_err(|error| fail(format!("preprocessing the sample: {error}")))?;
    let mut probabilities = Vec::with_capacity(applicants.len());
    served
        .scorer
        .score_into(&features, applicants.len(), &mut probabilities)
        .map_err(|error| fail(format!("scoring the sample: {error}")))?;
    if probabilities.len() != applicants.len() {
        return Err(fail(format!(
            "{} probabilities for {} sample applicants",
            probabilities.len(),
            applicants.len()
        )));
    }
    if let Some((row, probability)) = probabilities
        .iter()
        .enumerate()
        .find(|(_, p)| !(p.is_finite() && (0.0..=1.0).contains(*p)))
    {
        return Err(fail(format!(
            "probability {probability} for sample applicant {row}, not in [0, 1]"
        )));
    }
    Ok(())
}

/// The self-check's sample, built from the schema rather than read from a file, so it is
/// there wherever the worker runs: applicant `k` takes category `k` (modulo the attribute's
/// count) of every categorical attribute, so every category appears, and the minimum, maximum
/// or middle of every numeric range, the extremes a valid record may carry.
fn self_check_applicants() -> Result<Vec<Applicant>, credit_core::applicant::RecordError> {
    let rows = ATTRIBUTES
        .iter()
        .map(|spec| match spec.kind {
            AttributeKind::Categorical { values } => values.len(),
            AttributeKind::Numeric { .. } => 3,
        })
        .max()
        .unwrap_or(3);
    (0..rows)
        .map(|k| {
            let values = ATTRIBUTES.map(|spec| match spec.kind {
                AttributeKind::Categorical { values } => {
                    AttributeValue::Categorical(k % values.len())
                }
                AttributeKind::Numeric { min, max } => AttributeValue::Numeric(match k % 3 {
                    0 => f64::from(min),
                    1 => f64::from(max),
                    _ => f64::from(min / 2 + max / 2),
                }),
            });
            Applicant::from_attribute_values(&values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::preprocess::Preprocessor;
    use credit_core::scoring::onnx_runtime::ScoringError;
    use credit_core::scoring::Scorer;

    /// A stand-in model that answers every row with `answer`, possibly the wrong number of
    /// times.
    struct Fixed {
        width: usize,
        answer: f32,
        extra_rows: usize,
    }

    impl Scorer for Fixed {
        fn input_width(&self) -> usize {
            self.width
        }

        fn score_into(
            &mut self,
            _features: &[f32],
            batch: usize,
            out: &mut Vec<f32>,
        ) -> Result<(), ScoringError> {
            out.clear();
            out.resize(batch + self.extra_rows, self.answer);
            Ok(())
        }
    }

    fn served(width_delta: usize, answer: f32, extra_rows: usize) -> ServedModel {
        let applicants = self_check_applicants().unwrap();
        let preprocessor = Preprocessor::fit(&applicants).unwrap();
        ServedModel {
            scorer: Box::new(Fixed {
                width: preprocessor.width + width_delta,
                answer,
                extra_rows,
            }),
            preprocessor: Arc::new(preprocessor),
            version: "v".to_owned(),
            threshold: 0.5,
        }
    }

    #[test]
    fn the_sample_covers_every_category_and_numeric_extreme() {
        let applicants = self_check_applicants().unwrap();
        for (index, spec) in ATTRIBUTES.iter().enumerate() {
            let seen: Vec<AttributeValue> = applicants
                .iter()
                .map(|a| a.attribute_values()[index])
                .collect();
            match spec.kind {
                AttributeKind::Categorical { values } => {
                    for category in 0..values.len() {
                        assert!(
                            seen.contains(&AttributeValue::Categorical(category)),
                            "{} lacks category {category}",
                            spec.name
                        );
                    }
                }
                AttributeKind::Numeric { min, max } => {
                    for extreme in [min, max] {
                        assert!(
                            seen.contains(&AttributeValue::Numeric(f64::from(extreme))),
                            "{} lacks {extreme}",
                            spec.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_sane_model_passes_the_self_check() {
        self_check(&mut served(0, 0.3, 0), "m.onnx").unwrap();
    }

    #[test]
    fn the_self_check_refuses_nan_out_of_range_miscounted_and_misfitted_models() {
        for (model, expected) in [
            (served(0, f32::NAN, 0), "probability NaN"),
            (served(0, 1.5, 0), "probability 1.5"),
            (served(0, 0.3, 1), "probabilities for"),
            (served(1, 0.3, 0), "features per row"),
        ] {
            let mut model = model;
            let error = self_check(&mut model, "m.onnx").unwrap_err().to_string();
            assert!(
                error.contains("m.onnx") && error.contains(expected),
                "{error}"
            );
        }
    }
}

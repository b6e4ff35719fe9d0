//! The one loader of a model bundle, for the worker and the backfill alike: ONNX Runtime, the
//! bundle verified against its manifest ([`bundle::open`]: the files are the ones trained, the
//! version is the weights'), a session made from the verified bytes, and a [`self_check`] that
//! runs them.
//!
//! The decision threshold and the model version come from the ONNX file's metadata (see
//! [`crate::artifacts`]), so a model is never served with another model's threshold by
//! accident; a configured threshold can still override it deliberately.

use crate::applicant::{Applicant, AttributeValue};
use crate::artifacts::{ArtifactPaths, MetadataError};
use crate::bundle::{self, BundleError, ModelBytes};
use crate::explain::Reference;
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::schema::{FieldKind, Schema};
use crate::scoring::onnx_runtime::{init_runtime, OnnxScorer, ScoringError};
use crate::scoring::Scorer;
use crate::training_rows::TrainingRows;
use std::path::{Path, PathBuf};
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

/// What to load, and how.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// The bundle's directory.
    pub dir: &'a Path,
    /// ONNX Runtime's library; otherwise `ORT_DYLIB_PATH` or `.onnxruntime/`.
    pub ort_dylib: Option<&'a Path>,
    /// Overrides the model's own threshold.
    pub threshold: Option<f32>,
    /// Threads inside each operator of the first session.
    pub intra_threads: usize,
}

/// A verified, self-checked model: one session, and the verified file to open more from.
#[derive(Debug)]
pub struct LoadedModel {
    pub scorer: OnnxScorer,
    pub sessions: Sessions,
    /// The schema the model's records are decoded with.
    pub schema: Arc<Schema>,
    pub preprocessor: Arc<Preprocessor>,
    pub version: String,
    /// The threshold in force (the model's own, or the override).
    pub threshold: f32,
    /// The applicant reasons are measured against, when the bundle has one.
    pub reference: Option<Arc<Reference>>,
    pub paths: ArtifactPaths,
    /// The fingerprints of the model's training rows, if the bundle records them.
    pub training_rows: Option<Arc<TrainingRows>>,
}

/// The model file as verified at load, to open sessions from: every session is created from
/// these bytes, so none runs a file changed after the check.
#[derive(Debug, Clone)]
pub struct Sessions {
    model: ModelBytes,
    path: PathBuf,
    width: usize,
}

impl Sessions {
    /// A session with `intra_threads` threads inside each operator, reading `width` features.
    pub fn open(&self, intra_threads: usize) -> Result<OnnxScorer, ModelError> {
        let scorer = OnnxScorer::from_file_bytes(&self.model, intra_threads, &self.path)?;
        scorer.ensure_input_width(self.width)?;
        Ok(scorer)
    }
}

/// Loads ONNX Runtime and the bundle in `options.dir`, checks that its parts belong together and
/// runs the [`self_check`]. Blocking (file reads, session creation, one inference): call it
/// before starting a runtime or on its blocking pool.
pub fn load(options: &LoadOptions<'_>) -> Result<LoadedModel, ModelError> {
    init_runtime(options.ort_dylib)?;
    let bundle = bundle::open(options.dir)?;
    let paths = bundle.paths;
    let preprocessor = bundle.preprocessor;
    let schema = bundle.schema;
    let reference = bundle.reference.map(Arc::new);
    let training_rows = bundle.training_rows.map(Arc::new);
    let sessions = Sessions {
        model: bundle.model,
        path: paths.model(),
        width: preprocessor.width,
    };
    let mut scorer = sessions.open(options.intra_threads)?;
    let metadata = bundle.metadata;
    let threshold = options.threshold.unwrap_or(metadata.threshold);
    self_check(
        &mut scorer,
        &schema,
        &preprocessor,
        &paths.model().display().to_string(),
    )?;
    tracing::info!(
        model = %paths.model().display(),
        version = %metadata.version,
        stored_threshold = metadata.threshold,
        threshold,
        trained_at = metadata.trained_at.as_deref().unwrap_or("unknown"),
        features = preprocessor.width,
        schema = schema.name(),
        training_rows = training_rows.as_ref().map_or_else(
            || "not recorded".to_owned(),
            |rows| rows.len().to_string()
        ),
        "model loaded"
    );
    Ok(LoadedModel {
        scorer,
        sessions,
        schema: Arc::new(schema),
        preprocessor: Arc::new(preprocessor),
        version: metadata.version,
        threshold,
        reference,
        paths,
        training_rows,
    })
}

/// Scores a fixed sample of applicants through the model's own preprocessor and scorer, and
/// requires one finite probability in [0, 1] per applicant.
///
/// The loading checks compare the artifacts with each other (width, preprocessor fingerprint);
/// this one runs them. A file that parses but computes garbage (NaN weights, a graph with the
/// wrong output) is refused before it answers a single real application — which matters most
/// for a reload, where the alternative is to keep serving the model that works.
pub(crate) fn self_check(
    scorer: &mut dyn Scorer,
    schema: &Schema,
    preprocessor: &Preprocessor,
    model: &str,
) -> Result<(), ModelError> {
    let fail = |problem: String| ModelError::SelfCheck {
        model: model.to_owned(),
        problem,
    };
    let width = scorer.input_width();
    if width != preprocessor.width {
        return Err(fail(format!(
            "the model reads {width} features per row but its preprocessor writes {}",
            preprocessor.width
        )));
    }
    let applicants = self_check_applicants(schema).map_err(|error| fail(error.to_string()))?;
    let features = preprocessor
        .transform_batch(&applicants)
        .map_err(|error| fail(format!("preprocessing the sample: {error}")))?;
    let mut probabilities = Vec::with_capacity(applicants.len());
    scorer
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
/// there wherever the worker runs: applicant `k` takes category `k` (modulo the field's count)
/// of every categorical field, so every category appears, the minimum, maximum or middle of
/// every numeric range, the extremes a valid record may carry, and every fourth one leaves its
/// optional fields out.
fn self_check_applicants(schema: &Schema) -> Result<Vec<Applicant>, crate::applicant::RecordError> {
    let rows = schema
        .fields()
        .iter()
        .map(|field| match &field.kind {
            FieldKind::Category { categories } => categories.len(),
            _ => 4,
        })
        .max()
        .unwrap_or(4)
        .max(4);
    (0..rows)
        .map(|k| {
            let values = schema
                .fields()
                .iter()
                .map(|field| match &field.kind {
                    _ if !field.is_wire() || (!field.required && k % 4 == 3) => {
                        AttributeValue::Missing
                    }
                    FieldKind::Category { categories } => {
                        AttributeValue::Categorical(k % categories.len())
                    }
                    FieldKind::Boolean => AttributeValue::Categorical(k % 2),
                    FieldKind::Integer { min, max } => AttributeValue::Numeric(match k % 3 {
                        0 => *min as f64,
                        1 => *max as f64,
                        _ => (min / 2 + max / 2) as f64,
                    }),
                    FieldKind::Number { min, max } => AttributeValue::Numeric(match k % 3 {
                        0 => *min,
                        1 => *max,
                        _ => min / 2.0 + max / 2.0,
                    }),
                    FieldKind::Text { .. } => AttributeValue::Missing,
                })
                .collect();
            Applicant::from_values(schema, values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::german_credit;

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

    fn served(width_delta: usize, answer: f32, extra_rows: usize) -> (Fixed, Preprocessor) {
        let schema = german_credit();
        let applicants = self_check_applicants(&schema).unwrap();
        let preprocessor = Preprocessor::fit(&schema, &applicants).unwrap();
        let scorer = Fixed {
            width: preprocessor.width + width_delta,
            answer,
            extra_rows,
        };
        (scorer, preprocessor)
    }

    #[test]
    fn the_sample_covers_every_category_and_numeric_extreme() {
        let schema = german_credit();
        let applicants = self_check_applicants(&schema).unwrap();
        for (index, field) in schema.fields().iter().enumerate() {
            let seen: Vec<AttributeValue> = applicants.iter().map(|a| a.values()[index]).collect();
            match &field.kind {
                _ if !field.is_wire() => {}
                FieldKind::Category { categories } => {
                    for category in 0..categories.len() {
                        assert!(
                            seen.contains(&AttributeValue::Categorical(category)),
                            "{} lacks category {category}",
                            field.name
                        );
                    }
                }
                FieldKind::Integer { min, max } => {
                    for extreme in [min, max] {
                        assert!(
                            seen.contains(&AttributeValue::Numeric(*extreme as f64)),
                            "{} lacks {extreme}",
                            field.name
                        );
                    }
                }
                other => panic!("the shipped schema has no {other:?}"),
            }
        }
    }

    #[test]
    fn a_sane_model_passes_the_self_check() {
        let (mut scorer, preprocessor) = served(0, 0.3, 0);
        self_check(&mut scorer, &german_credit(), &preprocessor, "m.onnx").unwrap();
    }

    #[test]
    fn the_self_check_refuses_nan_out_of_range_miscounted_and_misfitted_models() {
        for (model, expected) in [
            (served(0, f32::NAN, 0), "probability NaN"),
            (served(0, 1.5, 0), "probability 1.5"),
            (served(0, 0.3, 1), "probabilities for"),
            (served(1, 0.3, 0), "features per row"),
        ] {
            let (mut scorer, preprocessor) = model;
            let error = self_check(&mut scorer, &german_credit(), &preprocessor, "m.onnx")
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("m.onnx") && error.contains(expected),
                "{error}"
            );
        }
    }
}

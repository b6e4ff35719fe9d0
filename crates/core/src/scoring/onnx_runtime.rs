//! Scoring preprocessed feature batches with ONNX Runtime through the `ort` crate.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic` feature) rather than linked:
//! the shared library is fetched by `scripts/setup-onnxruntime.sh` into `.onnxruntime/`, and
//! deployments can point `ORT_DYLIB_PATH` at their own copy. [`init_runtime`] finds and loads it
//! once per process; [`OnnxScorer`] then wraps one session of an exported model (see
//! [`crate::model::onnx_export`]) and checks at load time that the model has the interface the
//! worker relies on, so a wrong file fails at start-up with its path in the message instead of
//! on the first message from Kafka.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ndarray::ArrayView2;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::model::onnx_export::{INPUT_NAME, OUTPUT_NAME};

/// Environment variable naming the ONNX Runtime shared library (also honoured by `ort` itself).
pub(crate) const DYLIB_ENV_VAR: &str = "ORT_DYLIB_PATH";
/// Where `scripts/setup-onnxruntime.sh` puts the library, relative to the crate root.
pub(crate) const DEFAULT_DYLIB_RELATIVE_PATH: &str = ".onnxruntime/libonnxruntime.so";

/// Why ONNX Runtime could not be set up or could not score.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// No ONNX Runtime shared library at any of the searched paths.
    #[error(
        "ONNX Runtime shared library not found (searched: {}); run `scripts/setup-onnxruntime.sh` \
         or set ORT_DYLIB_PATH to the path of libonnxruntime.so",
        DisplayPaths(.searched)
    )]
    RuntimeLibraryMissing { searched: Vec<PathBuf> },
    /// The library exists but could not be loaded or initialised (wrong file, wrong version...).
    #[error("failed to initialise ONNX Runtime from {}: {reason}", .library.display())]
    RuntimeInit { library: PathBuf, reason: String },
    /// The model file does not exist.
    #[error("ONNX model file {} does not exist", .path.display())]
    ModelMissing { path: PathBuf },
    /// The model file exists but could not be read.
    #[error("cannot read ONNX model file {}: {source}", .path.display())]
    ModelRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// ONNX Runtime rejected the model (truncated, not ONNX, unsupported operator...).
    #[error(
        "ONNX Runtime cannot load model {model} (truncated or not a valid ONNX model?): {reason}"
    )]
    InvalidModel { model: String, reason: String },
    /// The model loads but its inputs/outputs are not the scoring interface.
    #[error("model {model} does not have the scoring interface: {problem}")]
    ModelInterface { model: String, problem: String },
    /// The model's feature width differs from the width the caller produces.
    #[error(
        "model {model} expects {model_width} features per row, but the preprocessor produces \
         {expected}; the model and the preprocessor do not belong together"
    )]
    InputWidthMismatch {
        model: String,
        model_width: usize,
        expected: usize,
    },
    /// The feature slice is not `batch × input_width` values.
    #[error(
        "features for model {model} has {actual} values, but batch {batch} × input width \
         {input_width} needs {}",
        .batch.saturating_mul(*.input_width)
    )]
    FeatureLength {
        model: String,
        batch: usize,
        input_width: usize,
        actual: usize,
    },
    /// ONNX Runtime failed while running the model.
    #[error("inference with model {model} failed: {source}")]
    Inference {
        model: String,
        #[source]
        source: ort::Error,
    },
    /// The model ran but its output is not `float [batch, 1]`.
    #[error("model {model} returned an unexpected output: {problem}")]
    Output { model: String, problem: String },
}

/// Formats a path list for [`ScoringError::RuntimeLibraryMissing`].
struct DisplayPaths<'a>(&'a [PathBuf]);

impl fmt::Display for DisplayPaths<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, path) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", path.display())?;
        }
        Ok(())
    }
}

/// The process-wide ONNX Runtime environment and the library it was loaded from. `ort` allows
/// only one environment per process, and the dynamic library cannot be unloaded, so both live
/// for the rest of the process.
static RUNTIME: OnceLock<(Environment, PathBuf)> = OnceLock::new();
/// Serialises first-time initialisation: two threads racing to build the environment would
/// make the loser fail with "only one environment is allowed per process".
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime and creates the process-wide environment; later calls are no-ops.
///
/// The library is looked up in this order: `dylib_path` if given; else the path in
/// `ORT_DYLIB_PATH` if set; else `.onnxruntime/libonnxruntime.so` relative to the current
/// directory, then relative to this crate's root. An explicitly configured path (argument or
/// environment variable) is used alone, without falling back to the defaults, so that a typo
/// in a deployment's configuration fails loudly instead of silently loading another library.
///
/// Once a library has been loaded, it stays loaded: a second call, even with a different
/// path, returns `Ok` and keeps the first one (logged at `warn` if the paths differ).
///
/// `ort` reports most loading problems as errors but panics on some (e.g. a library that
/// loads but refuses the requested API version); those panics are caught and returned as
/// [`ScoringError::RuntimeInit`].
pub fn init_runtime(dylib_path: Option<&Path>) -> Result<(), ScoringError> {
    if let Some((_, loaded)) = RUNTIME.get() {
        warn_if_ignored(dylib_path, loaded);
        return Ok(());
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, loaded)) = RUNTIME.get() {
        warn_if_ignored(dylib_path, loaded);
        return Ok(());
    }
    let current_dir = std::env::current_dir().ok();
    let env_var = std::env::var_os(DYLIB_ENV_VAR).map(PathBuf::from);
    let library = locate_runtime_library(
        dylib_path,
        env_var.as_deref(),
        current_dir.as_deref(),
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")),
    )?;
    let environment = load_environment(&library)?;
    tracing::info!(library = %library.display(), "ONNX Runtime initialised");
    // Cannot already be set: we hold INIT_LOCK and checked above.
    let _ = RUNTIME.set((environment, library));
    Ok(())
}

/// The library ONNX Runtime was loaded from, once [`init_runtime`] has succeeded.
#[cfg(test)]
fn runtime_library_path() -> Option<&'static Path> {
    RUNTIME.get().map(|(_, library)| library.as_path())
}

fn warn_if_ignored(requested: Option<&Path>, loaded: &Path) {
    let current_dir = std::env::current_dir().ok();
    if let Some(requested) = requested {
        if absolute(requested, current_dir.as_deref()) != loaded {
            tracing::warn!(
                requested = %requested.display(),
                loaded = %loaded.display(),
                "ONNX Runtime is already initialised from another library; the requested path \
                 is ignored"
            );
        }
    }
}

/// The search of [`init_runtime`], as a pure function of its inputs so it can be tested
/// without touching the process environment or loading anything.
fn locate_runtime_library(
    explicit: Option<&Path>,
    env_var: Option<&Path>,
    current_dir: Option<&Path>,
    manifest_dir: &Path,
) -> Result<PathBuf, ScoringError> {
    let candidates: Vec<PathBuf> = match (explicit, env_var) {
        (Some(path), _) => vec![absolute(path, current_dir)],
        (None, Some(path)) if !path.as_os_str().is_empty() => vec![absolute(path, current_dir)],
        _ => {
            let mut defaults: Vec<PathBuf> = current_dir
                .map(|dir| dir.join(DEFAULT_DYLIB_RELATIVE_PATH))
                .into_iter()
                .collect();
            let from_manifest = manifest_dir.join(DEFAULT_DYLIB_RELATIVE_PATH);
            if !defaults.contains(&from_manifest) {
                defaults.push(from_manifest);
            }
            defaults
        }
    };
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or(ScoringError::RuntimeLibraryMissing {
            searched: candidates,
        })
}

/// `ort` resolves a relative library path against the executable's directory, not the current
/// directory, which is not what a user typing a relative path means; so make it absolute here.
fn absolute(path: &Path, current_dir: Option<&Path>) -> PathBuf {
    match current_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn load_environment(library: &Path) -> Result<Environment, ScoringError> {
    let init_error = |reason: String| ScoringError::RuntimeInit {
        library: library.to_path_buf(),
        reason,
    };
    let built = panic::catch_unwind(AssertUnwindSafe(|| {
        ort::init_from(library)
            .map_err(|e| e.to_string())?
            .with_name("credit-risk")
            .build()
            .map_err(|e| e.to_string())
    }));
    match built {
        Ok(Ok(environment)) => Ok(environment),
        Ok(Err(reason)) => Err(init_error(reason)),
        Err(payload) => Err(init_error(format!(
            "ONNX Runtime panicked while loading: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// The environment, initialising it with the default search if nobody did yet, so a scorer
/// can be loaded without remembering to call [`init_runtime`] first.
fn environment() -> Result<&'static Environment, ScoringError> {
    if let Some((environment, _)) = RUNTIME.get() {
        return Ok(environment);
    }
    init_runtime(None)?;
    RUNTIME
        .get()
        .map(|(environment, _)| environment)
        .ok_or_else(|| ScoringError::RuntimeInit {
            library: PathBuf::new(),
            reason: "environment missing after successful initialisation".to_owned(),
        })
}

/// One ONNX Runtime session of an exported scoring model.
///
/// A session runs one inference at a time (`&mut self`, as `ort` requires); for concurrency,
/// load one scorer per worker thread.
#[derive(Debug)]
pub struct OnnxScorer {
    session: Session,
    /// File path or `<in-memory, N bytes>`, for error messages.
    model: String,
    input_width: usize,
    metadata: BTreeMap<String, String>,
}

impl OnnxScorer {
    /// Loads the model at `model_path`, running each inference on up to `intra_op_threads`
    /// threads (0 lets ONNX Runtime choose).
    ///
    /// Initialises the runtime with [`init_runtime(None)`](init_runtime) if needed. Errors name
    /// the path: missing file, unreadable file, invalid or truncated model, or a model whose
    /// inputs/outputs are not `features [batch, D]` → `probability_bad [batch, 1]`.
    pub fn load(model_path: &Path, intra_op_threads: usize) -> Result<Self, ScoringError> {
        if !model_path.exists() {
            return Err(ScoringError::ModelMissing {
                path: model_path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(model_path).map_err(|source| ScoringError::ModelRead {
            path: model_path.to_path_buf(),
            source,
        })?;
        Self::from_described_bytes(&bytes, intra_op_threads, model_path.display().to_string())
    }

    /// Loads a model from its serialised bytes (e.g. straight from [`export_onnx`]).
    ///
    /// [`export_onnx`]: crate::model::onnx_export::export_onnx
    pub fn from_bytes(bytes: &[u8], intra_op_threads: usize) -> Result<Self, ScoringError> {
        Self::from_described_bytes(
            bytes,
            intra_op_threads,
            format!("<in-memory, {} bytes>", bytes.len()),
        )
    }

    /// Loads a model from bytes already read from `path` (the bytes the model bundle's manifest
    /// verified, so what runs is what was hashed); errors name `path`.
    pub(crate) fn from_file_bytes(
        bytes: &[u8],
        intra_op_threads: usize,
        path: &Path,
    ) -> Result<Self, ScoringError> {
        Self::from_described_bytes(bytes, intra_op_threads, path.display().to_string())
    }

    fn from_described_bytes(
        bytes: &[u8],
        intra_op_threads: usize,
        model: String,
    ) -> Result<Self, ScoringError> {
        let environment = environment()?;
        let invalid = |reason: String| ScoringError::InvalidModel {
            model: model.clone(),
            reason,
        };
        let session = panic::catch_unwind(AssertUnwindSafe(|| {
            build_session(environment, bytes, intra_op_threads)
        }))
        .map_err(|payload| invalid(format!("panicked: {}", panic_message(payload.as_ref()))))?
        .map_err(|e| invalid(e.to_string()))?;

        let input_width =
            check_interface(&session).map_err(|problem| ScoringError::ModelInterface {
                model: model.clone(),
                problem,
            })?;
        let metadata = read_metadata(&session).map_err(|e| ScoringError::InvalidModel {
            model: model.clone(),
            reason: format!("cannot read custom metadata: {e}"),
        })?;
        tracing::debug!(%model, input_width, metadata_keys = metadata.len(), "ONNX model loaded");
        Ok(Self {
            session,
            model,
            input_width,
            metadata,
        })
    }

    /// Number of features per row, D, as declared by the model's `features` input.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// The model's custom metadata (`metadata_props`), read once at load.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Fails with [`ScoringError::InputWidthMismatch`] unless the model reads `expected`
    /// features per row; call it at start-up with the preprocessor's output width so a model
    /// and preprocessor from different training runs are caught before any scoring.
    pub(crate) fn ensure_input_width(&self, expected: usize) -> Result<(), ScoringError> {
        if self.input_width == expected {
            Ok(())
        } else {
            Err(ScoringError::InputWidthMismatch {
                model: self.model.clone(),
                model_width: self.input_width,
                expected,
            })
        }
    }

    /// Scores `batch` rows of `features` (row-major `[batch, D]`) in one inference and
    /// replaces the contents of `out` with their probabilities of `bad`.
    ///
    /// The features are handed to ONNX Runtime as a borrowed view, without copying; `out` is
    /// a caller-owned buffer so a worker loop can reuse its allocation.
    pub fn score_into(
        &mut self,
        features: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), ScoringError> {
        out.clear();
        let length_error = || ScoringError::FeatureLength {
            model: self.model.clone(),
            batch,
            input_width: self.input_width,
            actual: features.len(),
        };
        if batch.checked_mul(self.input_width) != Some(features.len()) {
            return Err(length_error());
        }
        if batch == 0 {
            return Ok(());
        }
        let view = ArrayView2::from_shape((batch, self.input_width), features)
            .map_err(|_| length_error())?;
        let inference_error = |source| ScoringError::Inference {
            model: self.model.clone(),
            source,
        };
        let input = TensorRef::from_array_view(view).map_err(inference_error)?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(inference_error)?;
        let output_error = |problem: String| ScoringError::Output {
            model: self.model.clone(),
            problem,
        };
        let value = outputs
            .get(OUTPUT_NAME)
            .ok_or_else(|| output_error(format!("no output named `{OUTPUT_NAME}`")))?;
        let (shape, probabilities) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| output_error(format!("`{OUTPUT_NAME}` is not a float tensor: {e}")))?;
        if shape.len() != 2 || shape[1] != 1 || probabilities.len() != batch {
            return Err(output_error(format!(
                "`{OUTPUT_NAME}` has shape {shape}, expected [{batch}, 1]"
            )));
        }
        out.extend_from_slice(probabilities);
        Ok(())
    }
}

fn build_session(
    environment: &Environment,
    bytes: &[u8],
    intra_op_threads: usize,
) -> ort::Result<Session> {
    // One inference at a time per session and a small sequential graph: parallelism, if any,
    // is within operators (intra), never between them (inter).
    let session = Session::builder(environment)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(intra_op_threads)?
        .with_inter_threads(1)?
        .commit_from_memory(bytes)?;
    Ok(session)
}

/// Checks the graph is `features: float [batch, D]` → `probability_bad: float [batch, 1]` and
/// returns D. Extra outputs are tolerated (they are not requested); extra inputs are not,
/// since the scorer could not feed them.
fn check_interface(session: &Session) -> Result<usize, String> {
    let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let input = match session.inputs() {
        [only] if only.name() == INPUT_NAME => only,
        _ => {
            return Err(format!(
                "expected exactly one input named `{INPUT_NAME}`, found {input_names:?}"
            ))
        }
    };
    let width = match float_matrix_shape(input.dtype()) {
        Some([_, width]) if width > 0 => usize::try_from(width).map_err(|e| e.to_string())?,
        _ => {
            return Err(format!(
                "input `{INPUT_NAME}` must be a float tensor [batch, D] with a fixed D, found {:?}",
                input.dtype()
            ))
        }
    };
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == OUTPUT_NAME)
        .ok_or_else(|| {
            let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            format!("no output named `{OUTPUT_NAME}`, found {names:?}")
        })?;
    match float_matrix_shape(output.dtype()) {
        Some([_, 1]) => Ok(width),
        _ => Err(format!(
            "output `{OUTPUT_NAME}` must be a float tensor [batch, 1], found {:?}",
            output.dtype()
        )),
    }
}

/// `[rows, cols]` of a rank-2 float tensor type (dynamic dimensions are -1).
fn float_matrix_shape(dtype: &ValueType) -> Option<[i64; 2]> {
    match dtype {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => match **shape {
            [rows, cols] => Some([rows, cols]),
            _ => None,
        },
        _ => None,
    }
}

fn read_metadata(session: &Session) -> ort::Result<BTreeMap<String, String>> {
    let metadata = session.metadata()?;
    let mut map = BTreeMap::new();
    for key in metadata.custom_keys()? {
        if let Some(value) = metadata.custom(&key) {
            map.insert(key, value);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::onnx_export::export_onnx;
    use crate::model::weights::NetworkWeights;
    use onnx_protobuf::Message;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const D: usize = 61;
    const T: usize = 20;
    const F: usize = 8;
    const H: usize = 32;
    const LAYERS: usize = 2;
    const K: usize = 16;

    /// 20 consecutive attribute blocks covering 0..61 (uneven widths, like one-hot groups).
    fn blocks() -> Vec<(usize, usize)> {
        (0..T).map(|t| (t * D / T, (t + 1) * D / T)).collect()
    }

    fn weights(seed: u64) -> NetworkWeights {
        NetworkWeights::random(D, T, F, H, LAYERS, K, &blocks(), seed)
    }

    fn features(rows: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * D).map(|_| rng.gen_range(-3.0f32..3.0)).collect()
    }

    fn scorer(weights: &NetworkWeights, metadata: &[(String, String)]) -> OnnxScorer {
        init_runtime(None).unwrap();
        OnnxScorer::from_bytes(&export_onnx(weights, metadata).unwrap(), 1).unwrap()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn onnx_runtime_matches_reference_forward_pass() {
        let mut worst = 0.0f32;
        for seed in [1, 2, 3, 4] {
            let w = weights(seed);
            let mut scorer = scorer(&w, &[]);
            let x = features(256, 100 + seed);
            let mut ort_out = Vec::new();
            scorer.score_into(&x, 256, &mut ort_out).unwrap();
            let reference = w.forward(&x, 256).unwrap();
            let diff = max_abs_diff(&ort_out, &reference);
            // The comparison is only meaningful if the outputs are not saturated.
            let spread = reference.iter().fold(0.0f32, |m, p| m.max((p - 0.5).abs()));
            assert!(
                spread > 0.01 && spread < 0.49,
                "seed {seed}: spread {spread}"
            );
            assert!(diff < 1e-5, "seed {seed}: max |ORT - reference| = {diff:e}");
            worst = worst.max(diff);
        }
        eprintln!("max |ORT - reference| over 4 seeds x 256 rows: {worst:e}");
    }

    #[test]
    fn scorer_reports_input_width_and_round_trips_metadata() {
        let metadata = vec![
            ("threshold".to_owned(), "0.4123".to_owned()),
            ("trained_at".to_owned(), "2024-05-01T12:00:00Z".to_owned()),
            ("preprocessor_sha256".to_owned(), "0f".repeat(32)),
        ];
        let scorer = scorer(&weights(9), &metadata);
        assert_eq!(scorer.input_width(), D);
        let expected: BTreeMap<String, String> = metadata.into_iter().collect();
        assert_eq!(scorer.metadata(), &expected);
    }

    #[test]
    fn batch_dimension_is_dynamic_from_1_to_1000() {
        let w = weights(7);
        let mut scorer = scorer(&w, &[]);
        let mut out = vec![123.0];
        for batch in [1, 1000, 3] {
            let x = features(batch, batch as u64);
            scorer.score_into(&x, batch, &mut out).unwrap();
            assert_eq!(out.len(), batch, "out must be cleared and refilled");
            let diff = max_abs_diff(&out, &w.forward(&x, batch).unwrap());
            assert!(diff < 1e-5, "batch {batch}: {diff:e}");
        }
    }

    #[test]
    fn empty_batch_scores_to_empty_output() {
        let mut scorer = scorer(&weights(8), &[]);
        let mut out = vec![0.5];
        scorer.score_into(&[], 0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn wrong_feature_count_is_a_clear_error() {
        let mut scorer = scorer(&weights(6), &[]);
        let mut out = Vec::new();
        let err = scorer
            .score_into(&features(2, 0)[..2 * D - 1], 2, &mut out)
            .unwrap_err();
        assert!(
            matches!(err, ScoringError::FeatureLength { actual: 121, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("input width 61 needs 122"),
            "{err}"
        );
    }

    #[test]
    fn model_of_other_width_is_rejected_by_ensure_input_width() {
        let narrow = NetworkWeights::random(10, 2, 3, 4, 1, 5, &[(0, 4), (4, 10)], 1);
        init_runtime(None).unwrap();
        let scorer = OnnxScorer::from_bytes(&export_onnx(&narrow, &[]).unwrap(), 1).unwrap();
        assert_eq!(scorer.input_width(), 10);
        scorer.ensure_input_width(10).unwrap();
        let err = scorer.ensure_input_width(D).unwrap_err();
        assert!(
            err.to_string().contains("expects 10 features per row"),
            "{err}"
        );
        assert!(err.to_string().contains("produces 61"), "{err}");
    }

    #[test]
    fn garbage_and_truncated_models_are_errors_not_panics() {
        init_runtime(None).unwrap();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let err = OnnxScorer::from_bytes(&garbage, 1).unwrap_err();
        assert!(matches!(err, ScoringError::InvalidModel { .. }), "{err:?}");

        let bytes = export_onnx(&weights(2), &[]).unwrap();
        let err = OnnxScorer::from_bytes(&bytes[..bytes.len() / 2], 1).unwrap_err();
        assert!(matches!(err, ScoringError::InvalidModel { .. }), "{err:?}");
        assert!(err.to_string().contains("<in-memory, "), "{err}");
    }

    #[test]
    fn load_errors_name_the_model_path() {
        init_runtime(None).unwrap();
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("absent.onnx");
        let err = OnnxScorer::load(&missing, 1).unwrap_err();
        assert!(matches!(err, ScoringError::ModelMissing { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.onnx"), "{err}");

        let truncated = dir.path().join("truncated.onnx");
        let bytes = export_onnx(&weights(3), &[]).unwrap();
        std::fs::write(&truncated, &bytes[..100]).unwrap();
        let err = OnnxScorer::load(&truncated, 1).unwrap_err();
        assert!(matches!(err, ScoringError::InvalidModel { .. }), "{err:?}");
        assert!(err.to_string().contains("truncated.onnx"), "{err}");

        let good = dir.path().join("good.onnx");
        std::fs::write(&good, &bytes).unwrap();
        assert_eq!(OnnxScorer::load(&good, 2).unwrap().input_width(), D);
    }

    #[test]
    fn model_with_other_io_names_is_rejected_at_load() {
        init_runtime(None).unwrap();
        let mut model =
            onnx_protobuf::ModelProto::parse_from_bytes(&export_onnx(&weights(4), &[]).unwrap())
                .unwrap();
        let graph = model.graph.mut_or_insert_default();
        graph.input[0].name = "x".to_owned();
        for node in &mut graph.node {
            for input in &mut node.input {
                if input == "features" {
                    *input = "x".to_owned();
                }
            }
        }
        let bytes = model.write_to_bytes().unwrap();
        let err = OnnxScorer::from_bytes(&bytes, 1).unwrap_err();
        assert!(
            matches!(err, ScoringError::ModelInterface { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("`features`"), "{err}");
    }

    #[test]
    fn init_runtime_is_idempotent() {
        init_runtime(None).unwrap();
        let loaded = runtime_library_path().unwrap().to_path_buf();
        assert!(loaded.is_file(), "{}", loaded.display());
        // A second call, even naming another library, keeps the first one.
        init_runtime(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap();
        assert_eq!(runtime_library_path(), Some(loaded.as_path()));
    }

    #[test]
    fn missing_library_error_lists_searched_paths_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate_runtime_library(None, None, Some(dir.path()), &dir.path().join("crate"))
            .unwrap_err();
        let ScoringError::RuntimeLibraryMissing { searched } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            searched,
            &[
                dir.path().join(".onnxruntime/libonnxruntime.so"),
                dir.path().join("crate/.onnxruntime/libonnxruntime.so"),
            ]
        );
        let message = err.to_string();
        assert!(
            message.contains("scripts/setup-onnxruntime.sh"),
            "{message}"
        );
        assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
    }

    #[test]
    fn explicit_library_path_is_used_alone_and_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, b"not really a library").unwrap();
        let manifest = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));

        let found = locate_runtime_library(
            Some(Path::new("libonnxruntime.so")),
            None,
            Some(dir.path()),
            manifest,
        )
        .unwrap();
        assert_eq!(found, lib);

        // A configured but missing path does not fall back to the crate's copy.
        let err = locate_runtime_library(
            None,
            Some(Path::new("/nonexistent/libort.so")),
            None,
            manifest,
        )
        .unwrap_err();
        assert!(
            matches!(&err, ScoringError::RuntimeLibraryMissing { searched } if searched == &[PathBuf::from("/nonexistent/libort.so")]),
            "{err:?}"
        );
    }

    #[test]
    fn default_search_finds_the_crate_copy_from_another_directory() {
        let elsewhere = tempfile::tempdir().unwrap();
        let manifest = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let found = locate_runtime_library(None, None, Some(elsewhere.path()), manifest).unwrap();
        assert_eq!(found, manifest.join(".onnxruntime/libonnxruntime.so"));
    }
}

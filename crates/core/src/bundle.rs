//! The model bundle as one verified unit: `manifest.json` records the size and SHA-256 of every
//! artifact a training run wrote, and [`open`] refuses a directory whose files do not match it.
//!
//! Why: every decision carries the ONNX metadata's `model_version`, documented as a hash of the
//! weights, but nothing tied it to the bytes ONNX Runtime runs, so a model edited in place (the
//! output layer's signs flipped, a preprocessor swapped) was served under the trained model's
//! version. [`open`] reads each listed file once, checks it against the manifest and hands the
//! loaders those same bytes (there is no second read to race), then checks that the model's
//! version is the manifest's and is the hash of the weights the model holds, and that the file is
//! exactly the exporter's graph around those weights ([`read_exported`]), so even a rewritten
//! manifest cannot pass an altered model off under the original version.
//!
//! The trainer writes the manifest as its last step ([`write_manifest`]); `trainer manifest`
//! ([`seal`]) writes one for a bundle trained before manifests existed, after the same checks.

use crate::artifacts::{
    model_version, ArtifactPaths, MetadataError, ModelMetadata, BUNDLE_FILES, JSON_SCHEMA_FILE,
    MANIFEST_FILE, MODEL_FILE, PREPROCESSOR_FILE, REFERENCE_FILE, SCHEMA_FILE, TRAINING_ROWS_FILE,
};
use crate::explain::{ExplainError, Reference};
use crate::model::onnx_export::{read_exported, ImportError};
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::schema::{json_schema, Schema, SchemaError};
use crate::training_rows::{TrainingRows, TrainingRowsError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Version of the manifest's layout; bumped when the meaning of a field changes.
pub const FORMAT_VERSION: u32 = 1;

/// `manifest.json`: which files make up the bundle, and the model version they serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    /// The `model_version` stored in the ONNX model's metadata.
    pub model_version: String,
    pub files: Vec<ManifestEntry>,
}

/// One artifact of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// File name inside the bundle directory (no directories).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// Why a bundle was refused. Every message names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "model bundle has no manifest {} (the trainer writes it last; for a bundle trained \
         before manifests existed, `trainer manifest --dir DIR` writes one after checking it)",
        .path.display()
    )]
    ManifestMissing { path: PathBuf },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {} is not valid JSON for this format: {source}", .path.display())]
    ManifestParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest {} has format_version {found}, this build reads {FORMAT_VERSION}", .path.display())]
    ManifestFormat { path: PathBuf, found: u32 },
    #[error("manifest {} lists {name:?}, which {problem}", .path.display())]
    BadEntry {
        path: PathBuf,
        name: String,
        problem: &'static str,
    },
    #[error("manifest {} does not list {file}, which the model needs", .path.display())]
    NotListed { path: PathBuf, file: &'static str },
    #[error("{} is listed in the manifest but missing", .path.display())]
    FileMissing { path: PathBuf },
    #[error("{} is not a reference applicant of the bundle's schema: {source}", .path.display())]
    Reference {
        path: PathBuf,
        #[source]
        source: ExplainError,
    },
    #[error(
        "{} does not match the manifest: expected {expected_size} bytes with SHA-256 \
         {expected_sha256}, found {actual_size} bytes with SHA-256 {actual_sha256}; it was \
         changed after training (deploy every file of one training run together)",
        .path.display()
    )]
    Mismatch {
        path: PathBuf,
        expected_size: u64,
        expected_sha256: String,
        actual_size: u64,
        actual_sha256: String,
    },
    #[error("model {} {source}", .path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: ImportError,
    },
    #[error(transparent)]
    Preprocessor(#[from] PreprocessError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{} {problem}", .path.display())]
    JsonSchema { path: PathBuf, problem: String },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    TrainingRows(#[from] TrainingRowsError),
    #[error(
        "model {} has version {model}, but manifest {} is for version {manifest}",
        .path.display(), .manifest_path.display()
    )]
    VersionNotInManifest {
        path: PathBuf,
        manifest_path: PathBuf,
        model: String,
        manifest: String,
    },
    #[error(
        "model {} claims version {claimed}, but its weights, preprocessor and threshold hash \
         to {computed}: the model was altered after training",
        .path.display()
    )]
    VersionNotOfWeights {
        path: PathBuf,
        claimed: String,
        computed: String,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A model file's bytes as verified; sessions are created from these, never from the path.
#[derive(Clone)]
pub struct ModelBytes(Arc<[u8]>);

impl std::ops::Deref for ModelBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ModelBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelBytes({} bytes)", self.0.len())
    }
}

/// A bundle whose files match its manifest and whose model carries the version of its weights.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub paths: ArtifactPaths,
    pub manifest: Manifest,
    /// The applicant schema the model was trained on: the one its records are decoded with.
    pub schema: Schema,
    pub preprocessor: Preprocessor,
    /// The model's metadata, read from [`Self::model`].
    pub metadata: ModelMetadata,
    pub model: ModelBytes,
    /// The applicant reasons are measured against; bundles trained before reasons have none.
    pub reference: Option<Reference>,
    /// The fingerprints of the rows the model was fitted on; `None` for a bundle that does not
    /// record them (trained before they were).
    pub training_rows: Option<TrainingRows>,
}

/// Reads and verifies the bundle in `dir`: the manifest must exist and list the model and the
/// preprocessor; every listed file must exist with the listed size and SHA-256; the model's
/// version must be the manifest's and the hash of its weights, preprocessor and threshold; and
/// the preprocessor must be the model's. Blocking (reads every listed file once).
pub fn open(dir: &Path) -> Result<VerifiedBundle, BundleError> {
    let paths = ArtifactPaths::new(dir);
    let manifest_path = paths.manifest();
    let bytes = std::fs::read(&manifest_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BundleError::ManifestMissing {
                path: manifest_path.clone(),
            }
        } else {
            BundleError::Read {
                path: manifest_path.clone(),
                source,
            }
        }
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| BundleError::ManifestParse {
            path: manifest_path.clone(),
            source,
        })?;
    check_entries(&manifest, &manifest_path)?;

    let (mut model, mut preprocessor, mut schema, mut generated) = (None, None, None, None);
    let mut reference = None;
    let mut training_rows = None;
    for entry in &manifest.files {
        let path = dir.join(&entry.name);
        let bytes = read(&path, true)?;
        let (actual_size, actual_sha256) = (bytes.len() as u64, sha256_hex(&bytes));
        if actual_size != entry.size || actual_sha256 != entry.sha256 {
            return Err(BundleError::Mismatch {
                path,
                expected_size: entry.size,
                expected_sha256: entry.sha256.clone(),
                actual_size,
                actual_sha256,
            });
        }
        match entry.name.as_str() {
            MODEL_FILE => model = Some(bytes),
            PREPROCESSOR_FILE => preprocessor = Some(bytes),
            SCHEMA_FILE => schema = Some(bytes),
            JSON_SCHEMA_FILE => generated = Some(bytes),
            REFERENCE_FILE => reference = Some(bytes),
            TRAINING_ROWS_FILE => {
                training_rows = Some(TrainingRows::from_bytes(&bytes, &path)?);
            }
            _ => {}
        }
    }
    let (Some(model), Some(preprocessor), Some(schema)) = (model, preprocessor, schema) else {
        // `check_entries` made sure both are listed, so both were read.
        return Err(BundleError::NotListed {
            path: manifest_path,
            file: MODEL_FILE,
        });
    };
    let schema = parse_schema(&paths, &schema)?;
    if let Some(generated) = generated {
        check_json_schema(&paths, &schema, &generated)?;
    }
    let (preprocessor, metadata) = check_model(&paths, &schema, &model, &preprocessor)?;
    let reference = reference
        .map(|bytes| {
            Reference::from_json(&schema, &bytes).map_err(|source| BundleError::Reference {
                path: paths.reference(),
                source,
            })
        })
        .transpose()?;
    if metadata.version != manifest.model_version {
        return Err(BundleError::VersionNotInManifest {
            path: paths.model(),
            manifest_path,
            model: metadata.version,
            manifest: manifest.model_version,
        });
    }
    Ok(VerifiedBundle {
        paths,
        manifest,
        schema,
        preprocessor,
        metadata,
        model: ModelBytes(model.into()),
        reference,
        training_rows,
    })
}

/// Writes the manifest for a training run's `files` in `dir` (hashing them as they are on disk)
/// under `model_version`. The trainer's last step: written to a temporary file and renamed, so
/// a reload never sees half a manifest, and only after every artifact is in place.
pub fn write_manifest(
    dir: &Path,
    model_version: &str,
    files: &[&str],
) -> Result<Manifest, BundleError> {
    let mut contents = Vec::with_capacity(files.len());
    for name in files {
        contents.push((*name, read(&dir.join(name), false)?));
    }
    let manifest = describe(model_version, &contents);
    store(dir, &manifest)?;
    Ok(manifest)
}

/// Writes a manifest for the artifacts already in `dir` (those of [`BUNDLE_FILES`] present, the
/// model and preprocessor required), after the checks [`open`] makes of the model: the
/// preprocessor is the model's and the version is the hash of the weights. For bundles trained
/// before manifests existed; it hashes the very bytes it checked.
pub fn seal(dir: &Path) -> Result<Manifest, BundleError> {
    let paths = ArtifactPaths::new(dir);
    let mut contents = Vec::with_capacity(BUNDLE_FILES.len());
    for name in BUNDLE_FILES {
        let required = [MODEL_FILE, PREPROCESSOR_FILE, SCHEMA_FILE].contains(&name);
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => contents.push((name, bytes)),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::FileMissing { path })
            }
            Err(source) => return Err(BundleError::Read { path, source }),
        }
    }
    let content = |wanted: &str| {
        contents
            .iter()
            .find(|(name, _)| *name == wanted)
            .map_or(&[][..], |(_, bytes)| bytes.as_slice())
    };
    let schema = parse_schema(&paths, content(SCHEMA_FILE))?;
    if !content(JSON_SCHEMA_FILE).is_empty() {
        check_json_schema(&paths, &schema, content(JSON_SCHEMA_FILE))?;
    }
    let (_, metadata) = check_model(
        &paths,
        &schema,
        content(MODEL_FILE),
        content(PREPROCESSOR_FILE),
    )?;
    let manifest = describe(&metadata.version, &contents);
    store(dir, &manifest)?;
    Ok(manifest)
}

/// Parses the preprocessor and the model's weights and metadata from verified bytes, and checks
/// that they belong together and that the version is the hash of what the model holds.
fn check_model(
    paths: &ArtifactPaths,
    schema: &Schema,
    model: &[u8],
    preprocessor: &[u8],
) -> Result<(Preprocessor, ModelMetadata), BundleError> {
    let preprocessor = Preprocessor::from_json_bytes(preprocessor, &paths.preprocessor(), schema)?;
    let exported = read_exported(model).map_err(|source| BundleError::Model {
        path: paths.model(),
        source,
    })?;
    let metadata = ModelMetadata::from_map(&exported.metadata, &paths.model())?;
    let fingerprint = preprocessor.fingerprint();
    metadata.check_preprocessor(&fingerprint, &paths.model(), &paths.preprocessor())?;
    let computed = model_version(&exported.weights, &fingerprint, metadata.threshold);
    if computed != metadata.version {
        return Err(BundleError::VersionNotOfWeights {
            path: paths.model(),
            claimed: metadata.version,
            computed,
        });
    }
    Ok((preprocessor, metadata))
}

/// The schema from its verified bytes.
fn parse_schema(paths: &ArtifactPaths, bytes: &[u8]) -> Result<Schema, BundleError> {
    let path = paths.schema();
    let text = std::str::from_utf8(bytes).map_err(|_| BundleError::JsonSchema {
        path: path.clone(),
        problem: "is not UTF-8 text".to_owned(),
    })?;
    Ok(Schema::parse(text, &path.display().to_string())?)
}

/// Requires the bundle's JSON Schema to be the one its schema generates, so producers never
/// validate against a stale document.
fn check_json_schema(
    paths: &ArtifactPaths,
    schema: &Schema,
    bytes: &[u8],
) -> Result<(), BundleError> {
    let stored: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| BundleError::JsonSchema {
            path: paths.json_schema(),
            problem: format!("is not JSON: {error}"),
        })?;
    if stored != json_schema::generate(schema) {
        return Err(BundleError::JsonSchema {
            path: paths.json_schema(),
            problem: format!("is not the JSON Schema generated from {SCHEMA_FILE}"),
        });
    }
    Ok(())
}

/// Writes the JSON Schema generated from `schema` into `dir` (pretty, with a final newline).
pub fn write_json_schema(dir: &Path, schema: &Schema) -> Result<(), BundleError> {
    let path = dir.join(JSON_SCHEMA_FILE);
    let mut text =
        serde_json::to_string_pretty(&json_schema::generate(schema)).map_err(|error| {
            BundleError::Write {
                path: path.clone(),
                source: std::io::Error::other(error),
            }
        })?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|source| BundleError::Write { path, source })
}

/// Refuses entries that could read outside the bundle, repeat, or not be a SHA-256, and a
/// manifest that does not cover the two files the model is loaded from.
fn check_entries(manifest: &Manifest, path: &Path) -> Result<(), BundleError> {
    if manifest.format_version != FORMAT_VERSION {
        return Err(BundleError::ManifestFormat {
            path: path.to_path_buf(),
            found: manifest.format_version,
        });
    }
    let bad = |name: &str, problem| BundleError::BadEntry {
        path: path.to_path_buf(),
        name: name.to_owned(),
        problem,
    };
    for (index, entry) in manifest.files.iter().enumerate() {
        let name = entry.name.as_str();
        let plain = Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name);
        if !plain || name.contains('\\') {
            return Err(bad(
                name,
                "is not a plain file name in the bundle directory",
            ));
        }
        if name == MANIFEST_FILE {
            return Err(bad(name, "is the manifest itself"));
        }
        if manifest.files[..index].iter().any(|e| e.name == name) {
            return Err(bad(name, "is listed more than once"));
        }
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if entry.sha256.len() != 64 || !entry.sha256.chars().all(hex) {
            return Err(bad(
                name,
                "has a sha256 that is not 64 lowercase hex digits",
            ));
        }
    }
    for required in [MODEL_FILE, PREPROCESSOR_FILE, SCHEMA_FILE] {
        if !manifest.files.iter().any(|entry| entry.name == required) {
            return Err(BundleError::NotListed {
                path: path.to_path_buf(),
                file: required,
            });
        }
    }
    Ok(())
}

/// Reads a whole file; `listed` says a missing file is a listed one gone missing.
fn read(path: &Path, listed: bool) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(|source| {
        if listed && source.kind() == std::io::ErrorKind::NotFound {
            BundleError::FileMissing {
                path: path.to_path_buf(),
            }
        } else {
            BundleError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn describe<B: AsRef<[u8]>>(model_version: &str, contents: &[(&str, B)]) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        model_version: model_version.to_owned(),
        files: contents
            .iter()
            .map(|(name, bytes)| ManifestEntry {
                name: (*name).to_owned(),
                size: bytes.as_ref().len() as u64,
                sha256: sha256_hex(bytes.as_ref()),
            })
            .collect(),
    }
}

/// Writes `manifest` into `dir` through a temporary file renamed over the old one.
fn store(dir: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    let path = dir.join(MANIFEST_FILE);
    let temp = dir.join(format!("{MANIFEST_FILE}.part"));
    let write_error = |source| BundleError::Write {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_string_pretty(manifest)
        .map_err(|e| write_error(std::io::Error::other(e)))?;
    let written = std::fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(json.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, &path));
    if let Err(source) = written {
        // Best effort: the write error is what the caller needs.
        let _ = std::fs::remove_file(&temp);
        return Err(write_error(source));
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::{KEY_PREPROCESSOR_SHA256, KEY_THRESHOLD, KEY_VERSION};
    use crate::dataset::shipped_german_credit;
    use crate::model::onnx_export::export_onnx;
    use crate::model::weights::NetworkWeights;
    use crate::schema::german_credit;

    /// A small bundle as the trainer writes it (model, preprocessor, a report), sealed.
    fn bundle(dir: &Path) -> String {
        let rows: Vec<_> = shipped_german_credit()
            .into_iter()
            .map(|row| row.applicant)
            .collect();
        let schema = german_credit();
        let preprocessor = Preprocessor::fit(&schema, &rows).unwrap();
        let blocks = preprocessor.attribute_blocks();
        let weights =
            NetworkWeights::random(preprocessor.width, blocks.len(), 4, 8, 1, 8, &blocks, 3);
        let version = model_version(&weights, &preprocessor.fingerprint(), 0.4);
        let metadata = [
            (KEY_VERSION, version.clone()),
            (KEY_THRESHOLD, 0.4f32.to_string()),
            (KEY_PREPROCESSOR_SHA256, preprocessor.fingerprint()),
        ]
        .map(|(key, value)| (key.to_owned(), value));
        let paths = ArtifactPaths::new(dir);
        std::fs::write(paths.model(), export_onnx(&weights, &metadata).unwrap()).unwrap();
        preprocessor.save(&paths.preprocessor()).unwrap();
        std::fs::write(paths.metrics(), "{}\n").unwrap();
        std::fs::write(paths.schema(), schema.source()).unwrap();
        write_json_schema(dir, &schema).unwrap();
        write_manifest(
            dir,
            &version,
            &[
                MODEL_FILE,
                PREPROCESSOR_FILE,
                SCHEMA_FILE,
                JSON_SCHEMA_FILE,
                crate::artifacts::METRICS_FILE,
            ],
        )
        .unwrap();
        version
    }

    fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Manifest)) {
        let path = dir.join(MANIFEST_FILE);
        let mut manifest: Manifest =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut manifest);
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    }

    #[test]
    fn a_sealed_bundle_opens_with_the_bytes_it_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let version = bundle(dir.path());
        let opened = open(dir.path()).unwrap();
        assert_eq!(opened.metadata.version, version);
        assert_eq!(opened.manifest.model_version, version);
        assert_eq!(
            &*opened.model,
            std::fs::read(dir.path().join(MODEL_FILE)).unwrap()
        );
        assert_eq!(opened.manifest.files.len(), 5);
        assert!(!dir.path().join("manifest.json.part").exists());
    }

    #[test]
    fn a_changed_listed_file_is_refused_with_its_expected_and_actual_hash() {
        let dir = tempfile::tempdir().unwrap();
        bundle(dir.path());
        let metrics = dir.path().join(crate::artifacts::METRICS_FILE);
        let expected = sha256_hex(&std::fs::read(&metrics).unwrap());
        std::fs::write(&metrics, "{} \n").unwrap();
        let error = open(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, BundleError::Mismatch { .. }), "{error:?}");
        assert!(
            message.contains("metrics.json")
                && message.contains(&expected)
                && message.contains(&sha256_hex(b"{} \n")),
            "{message}"
        );
    }

    #[test]
    fn a_manifest_that_leaves_out_the_model_or_reaches_outside_the_bundle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        bundle(dir.path());
        edit_manifest(dir.path(), |m| m.files.retain(|e| e.name != MODEL_FILE));
        let error = open(dir.path()).unwrap_err();
        assert!(
            matches!(
                error,
                BundleError::NotListed {
                    file: MODEL_FILE,
                    ..
                }
            ),
            "{error:?}"
        );
        for name in ["../credit_lstm.onnx", "/etc/hostname", "", "manifest.json"] {
            bundle(dir.path());
            edit_manifest(dir.path(), |m| m.files[2].name = name.to_owned());
            let error = open(dir.path()).unwrap_err();
            assert!(matches!(error, BundleError::BadEntry { .. }), "{error:?}");
        }
    }

    #[test]
    fn a_model_whose_version_is_not_the_manifests_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        bundle(dir.path());
        edit_manifest(dir.path(), |m| {
            m.model_version = "lstm-000000000000".to_owned()
        });
        let error = open(dir.path()).unwrap_err();
        assert!(
            matches!(&error, BundleError::VersionNotInManifest { manifest, .. } if manifest == "lstm-000000000000"),
            "{error:?}"
        );
    }

    #[test]
    fn altered_weights_under_a_rewritten_manifest_are_refused_and_cannot_be_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let version = bundle(dir.path());
        let paths = ArtifactPaths::new(dir.path());
        let mut exported = read_exported(&std::fs::read(paths.model()).unwrap()).unwrap();
        for weight in &mut exported.weights.head_output.weight {
            *weight = -*weight;
        }
        let metadata: Vec<(String, String)> = exported.metadata.into_iter().collect();
        std::fs::write(
            paths.model(),
            export_onnx(&exported.weights, &metadata).unwrap(),
        )
        .unwrap();
        // Whoever altered the model also rewrote the manifest, keeping the version.
        write_manifest(
            dir.path(),
            &version,
            &[MODEL_FILE, PREPROCESSOR_FILE, SCHEMA_FILE],
        )
        .unwrap();
        for error in [open(dir.path()).unwrap_err(), seal(dir.path()).unwrap_err()] {
            assert!(
                matches!(&error, BundleError::VersionNotOfWeights { claimed, .. } if *claimed == version),
                "{error:?}"
            );
            assert!(error.to_string().contains("credit_lstm.onnx"), "{error}");
        }
    }

    #[test]
    fn seal_records_the_artifacts_present_and_requires_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let version = bundle(dir.path());
        std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
        assert!(matches!(
            open(dir.path()),
            Err(BundleError::ManifestMissing { .. })
        ));
        let manifest = seal(dir.path()).unwrap();
        assert_eq!(manifest.model_version, version);
        let names: Vec<&str> = manifest.files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                MODEL_FILE,
                PREPROCESSOR_FILE,
                SCHEMA_FILE,
                JSON_SCHEMA_FILE,
                "metrics.json"
            ]
        );
        open(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(MODEL_FILE)).unwrap();
        assert!(matches!(
            seal(dir.path()),
            Err(BundleError::FileMissing { .. })
        ));
    }

    #[test]
    fn a_bundle_without_its_schema_or_with_a_stale_json_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        bundle(dir.path());
        let stale = json_schema::generate(&german_credit())
            .to_string()
            .replace("18", "21");
        std::fs::write(dir.path().join(JSON_SCHEMA_FILE), stale).unwrap();
        assert!(matches!(
            seal(dir.path()),
            Err(BundleError::JsonSchema { .. })
        ));
        std::fs::remove_file(dir.path().join(JSON_SCHEMA_FILE)).unwrap();
        std::fs::remove_file(dir.path().join(SCHEMA_FILE)).unwrap();
        assert!(matches!(
            seal(dir.path()),
            Err(BundleError::FileMissing { .. })
        ));
    }
}

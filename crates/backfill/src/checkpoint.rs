//! The checkpoint, `<output>.checkpoint.json`: how far a backfill got, durably.
//!
//! It records the input position after the last committed chunk (rows consumed and, for line
//! formats, the byte offset to seek to), the committed output (byte length, or Parquet part
//! count), the reject file's committed length and the running statistics, all as of one and
//! the same commit. It is replaced atomically (written to a temporary file, synced, renamed),
//! so a crash leaves either the previous checkpoint or the new one, never a torn one.
//!
//! It also records a fingerprint of what was being computed: the input's path, size and
//! modification time, the model version and threshold, the shard and the output layout. A run
//! resumes only onto the same fingerprint; anything else would splice two different
//! computations into one file.

use super::format::Format;
use super::row::InputPosition;
use super::shard::Shard;
use super::sink::OutputState;
use super::stats::RunningStats;
use super::topic::PartitionRange;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Version of the checkpoint layout.
pub const FORMAT_VERSION: u32 = 1;

/// What a run computes; a checkpoint applies only to the same fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Absolute input path.
    pub input_path: String,
    /// Input size in bytes (summed over the files of a Parquet directory).
    pub input_bytes: u64,
    /// Input modification time, nanoseconds since the Unix epoch (latest file of a directory).
    pub input_modified_ns: u128,
    pub input_format: Format,
    pub model_version: String,
    pub threshold: f32,
    pub shard: Shard,
    pub output_format: Format,
    pub include_fields: bool,
    /// For a Kafka input, the range as asked (`--from`/`--until`); the offsets it resolved
    /// to are in [`Checkpoint::kafka_ranges`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_range: Option<String>,
    /// The protected groups counted (bands included): a resumed run must count alike.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fairness_groups: String,
    /// Which rows get reasons and how many (`declines:4`; empty when off): a resumed run must
    /// write the rows it adds alike.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasons: String,
}

impl Fingerprint {
    /// The fingerprint of the input at `path` with the given run settings.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of_input(
        path: &Path,
        input_format: Format,
        model_version: &str,
        threshold: f32,
        shard: Shard,
        output_format: Format,
        include_fields: bool,
    ) -> std::io::Result<Self> {
        let absolute = std::fs::canonicalize(path)?;
        let (input_bytes, input_modified_ns) = size_and_mtime(&absolute)?;
        Ok(Self {
            input_path: absolute.display().to_string(),
            input_bytes,
            input_modified_ns,
            input_format,
            model_version: model_version.to_string(),
            threshold,
            shard,
            output_format,
            include_fields,
            kafka_range: None,
            fairness_groups: String::new(),
            reasons: String::new(),
        })
    }

    /// Human-readable differences from `other` (empty when they match).
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, mine: String, theirs: String| {
            if mine != theirs {
                out.push(format!(
                    "{what}: checkpoint has {theirs}, this run has {mine}"
                ));
            }
        };
        check("input", self.input_path.clone(), other.input_path.clone());
        check(
            "input size",
            self.input_bytes.to_string(),
            other.input_bytes.to_string(),
        );
        check(
            "input modification time",
            self.input_modified_ns.to_string(),
            other.input_modified_ns.to_string(),
        );
        check(
            "input format",
            self.input_format.to_string(),
            other.input_format.to_string(),
        );
        check(
            "model version",
            self.model_version.clone(),
            other.model_version.clone(),
        );
        check(
            "threshold",
            self.threshold.to_string(),
            other.threshold.to_string(),
        );
        check("shard", self.shard.to_string(), other.shard.to_string());
        check(
            "output format",
            self.output_format.to_string(),
            other.output_format.to_string(),
        );
        check(
            "--include-fields",
            self.include_fields.to_string(),
            other.include_fields.to_string(),
        );
        check(
            "Kafka range (--from/--until)",
            self.kafka_range.clone().unwrap_or_default(),
            other.kafka_range.clone().unwrap_or_default(),
        );
        // A checkpoint written before fairness was counted resumes without it.
        if !other.fairness_groups.is_empty() {
            check(
                "protected groups (--fairness-bands)",
                self.fairness_groups.clone(),
                other.fairness_groups.clone(),
            );
        }
        out
    }
}

fn size_and_mtime(path: &Path) -> std::io::Result<(u64, u128)> {
    let mtime = |metadata: &std::fs::Metadata| -> u128 {
        metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_dir() {
        return Ok((metadata.len(), mtime(&metadata)));
    }
    let (mut bytes, mut latest) = (0u64, 0u128);
    for entry in std::fs::read_dir(path)? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            bytes += metadata.len();
            latest = latest.max(mtime(&metadata));
        }
    }
    Ok((bytes, latest))
}

/// A durable record of a run's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format_version: u32,
    pub fingerprint: Fingerprint,
    /// Input consumed up to the last commit.
    pub input: InputPosition,
    /// Output committed.
    pub output: OutputState,
    /// Committed length of the reject file.
    pub rejects_bytes: u64,
    /// Statistics of every committed row.
    pub stats: RunningStats,
    /// For a Kafka input, the offsets of each partition the run reads, resolved when it
    /// started, so that a resumed run reads the same records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_ranges: Option<Vec<PartitionRange>>,
    /// Whether the run finished.
    pub complete: bool,
    /// When the checkpoint was written (RFC 3339).
    pub updated_at: String,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot access checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is not a valid checkpoint ({source}); delete it to start over")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("checkpoint {path} has layout version {found}, this build reads {FORMAT_VERSION}; delete it to start over")]
    Version { path: PathBuf, found: u32 },
}

impl Checkpoint {
    /// Reads the checkpoint at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let checkpoint: Checkpoint =
            serde_json::from_slice(&text).map_err(|source| CheckpointError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        if checkpoint.format_version != FORMAT_VERSION {
            return Err(CheckpointError::Version {
                path: path.to_path_buf(),
                found: checkpoint.format_version,
            });
        }
        Ok(Some(checkpoint))
    }

    /// Replaces the checkpoint at `path` atomically; with `durable`, the new content and the
    /// rename are synced before returning.
    pub fn save(&self, path: &Path, durable: bool) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let temporary = temporary_path(path);
        let bytes = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary).map_err(io)?;
            file.write_all(&bytes).map_err(io)?;
            if durable {
                file.sync_all().map_err(io)?;
            }
        }
        std::fs::rename(&temporary, path).map_err(io)?;
        if durable {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)
                    .and_then(|dir| dir.sync_all())
                    .map_err(io)?;
            }
        }
        Ok(())
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> Fingerprint {
        Fingerprint {
            input_path: "/data/loans.csv".into(),
            input_bytes: 10,
            input_modified_ns: 1,
            input_format: Format::Csv,
            model_version: "lstm-1".into(),
            threshold: 0.2,
            shard: Shard::ALL,
            output_format: Format::Jsonl,
            include_fields: false,
            kafka_range: None,
            fairness_groups: String::new(),
            reasons: String::new(),
        }
    }

    #[test]
    fn save_and_load_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv.checkpoint.json");
        assert!(Checkpoint::load(&path).unwrap().is_none());
        let checkpoint = Checkpoint {
            format_version: FORMAT_VERSION,
            fingerprint: fingerprint(),
            input: InputPosition {
                rows: 5,
                byte_offset: 100,
                kafka: None,
            },
            output: OutputState {
                bytes: 77,
                parts: 0,
                messages: 0,
            },
            rejects_bytes: 0,
            stats: RunningStats::new(10, &Default::default()),
            kafka_ranges: None,
            complete: false,
            updated_at: "now".into(),
        };
        checkpoint.save(&path, true).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().unwrap(), checkpoint);
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn differences_name_what_changed() {
        let mut other = fingerprint();
        other.model_version = "lstm-2".into();
        other.input_bytes = 11;
        let differences = fingerprint().differences(&other);
        assert_eq!(differences.len(), 2);
        assert!(differences[1].contains("lstm-2"), "{differences:?}");
    }
}

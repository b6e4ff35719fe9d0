//! The fingerprints of the rows a model was fitted on, so that whoever scores a file with the
//! model can tell which of its rows the model has already seen (their scores flatter it).
//!
//! **The fingerprint** of an applicant is FNV-1a (64-bit; offset basis 0xcbf29ce484222325,
//! prime 0x100000001b3) over its wire values in the schema's field order, fields that are not
//! on the wire (the key, the label) left out, so the same applicant read from a CSV, a JSON
//! record or a Parquet file has the same fingerprint, whatever its outcome. Each wire field adds
//! one tag byte and its value: `0` missing; `1` a category, then its wire value's length (u32
//! little-endian) and UTF-8 bytes; `2` an integer, i64 little-endian; `3` a number, the f64's
//! bits little-endian (`-0.0` as `0.0`); `4` a boolean, one byte 0 or 1. Applicants with equal
//! wire values share a fingerprint; 64 bits make a chance collision between distinct
//! applicants negligible for books of millions of rows.
//!
//! **The file** (`training_rows.bin` in the bundle, listed in its manifest): the 8 bytes
//! `CRTROWS1`, the number of fingerprints (u64 little-endian), then the distinct fingerprints
//! in ascending order (u64 little-endian each).

use crate::applicant::{wire, Applicant, Wire};
use crate::schema::Schema;
use std::path::{Path, PathBuf};

/// The file's first bytes, naming its format and version.
const MAGIC: &[u8; 8] = b"CRTROWS1";
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Why a training-rows file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TrainingRowsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a training-rows file: {problem}", .path.display())]
    Format { path: PathBuf, problem: String },
}

/// FNV-1a, fed piece by piece.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }
}

/// The fingerprint of `applicant`, read with `schema` (see the module's documentation).
pub fn fingerprint(schema: &Schema, applicant: &Applicant) -> u64 {
    let mut hash = Fnv(FNV_OFFSET);
    for (field, &value) in schema.fields().iter().zip(applicant.values()) {
        if !field.is_wire() {
            continue;
        }
        match wire(field, value) {
            None => hash.bytes(&[0]),
            Some(Wire::Text(text)) => {
                hash.bytes(&[1]);
                let length = u32::try_from(text.len()).unwrap_or(u32::MAX);
                hash.bytes(&length.to_le_bytes());
                hash.bytes(text.as_bytes());
            }
            Some(Wire::Integer(number)) => {
                hash.bytes(&[2]);
                hash.bytes(&number.to_le_bytes());
            }
            Some(Wire::Number(number)) => {
                hash.bytes(&[3]);
                let number = if number == 0.0 { 0.0 } else { number };
                hash.bytes(&number.to_bits().to_le_bytes());
            }
            Some(Wire::Boolean(flag)) => hash.bytes(&[4, u8::from(flag)]),
        }
    }
    hash.0
}

/// The distinct fingerprints of a model's training rows, sorted for lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainingRows {
    sorted: Vec<u64>,
}

impl TrainingRows {
    /// The set of `fingerprints` (in any order, repeats collapsed).
    pub fn from_fingerprints(fingerprints: impl IntoIterator<Item = u64>) -> Self {
        let mut sorted: Vec<u64> = fingerprints.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        Self { sorted }
    }

    /// The fingerprints of `applicants`, read with `schema`.
    pub fn of<'a>(schema: &Schema, applicants: impl IntoIterator<Item = &'a Applicant>) -> Self {
        Self::from_fingerprints(
            applicants
                .into_iter()
                .map(|applicant| fingerprint(schema, applicant)),
        )
    }

    /// Whether an applicant with this fingerprint was a training row.
    pub fn contains(&self, fingerprint: u64) -> bool {
        self.sorted.binary_search(&fingerprint).is_ok()
    }

    /// Distinct fingerprints recorded.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + 8 * self.sorted.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.sorted.len() as u64).to_le_bytes());
        for fingerprint in &self.sorted {
            bytes.extend_from_slice(&fingerprint.to_le_bytes());
        }
        bytes
    }

    /// Parses the file's bytes (`path` names it in errors): the magic, a count that matches
    /// the length, and fingerprints strictly ascending.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, TrainingRowsError> {
        let problem = |problem: String| TrainingRowsError::Format {
            path: path.to_path_buf(),
            problem,
        };
        let (magic, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| problem(format!("{} bytes, too short for a header", bytes.len())))?;
        if magic != MAGIC {
            return Err(problem("it does not start with `CRTROWS1`".to_owned()));
        }
        let (count, body) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| problem("no count after the header".to_owned()))?;
        let count = u64::from_le_bytes(*count);
        if body.len() % 8 != 0 || (body.len() / 8) as u64 != count {
            return Err(problem(format!(
                "it announces {count} fingerprints but holds {} bytes of them",
                body.len()
            )));
        }
        let sorted: Vec<u64> = body
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0; 8];
                word.copy_from_slice(chunk);
                u64::from_le_bytes(word)
            })
            .collect();
        if sorted.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(problem(
                "its fingerprints are not in strictly ascending order".to_owned(),
            ));
        }
        Ok(Self { sorted })
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: &Path) -> Result<(), TrainingRowsError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| TrainingRowsError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<Self, TrainingRowsError> {
        let bytes = std::fs::read(path).map_err(|source| TrainingRowsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applicant::AttributeValue;
    use crate::dataset::shipped_german_credit;
    use crate::schema::german_credit;

    #[test]
    fn the_fingerprint_ignores_the_label_and_changes_with_any_wire_value() {
        let schema = german_credit();
        let rows = shipped_german_credit();
        let applicant = &rows[0].applicant;
        let base = fingerprint(&schema, applicant);
        assert_eq!(base, fingerprint(&schema, &applicant.clone()));
        for (position, field) in schema.fields().iter().enumerate() {
            let mut values = applicant.values().to_vec();
            let changed = match values[position] {
                AttributeValue::Categorical(index) => AttributeValue::Categorical(
                    (index + 1) % field.categories().map_or(2, <[_]>::len),
                ),
                AttributeValue::Numeric(number) => AttributeValue::Numeric(number + 1.0),
                AttributeValue::Missing => continue,
            };
            values[position] = changed;
            let Ok(other) = Applicant::from_values(&schema, values) else {
                continue;
            };
            assert_ne!(
                fingerprint(&schema, &other),
                base,
                "a change of `{}` must change the fingerprint",
                field.name
            );
        }
        // The label is no wire field: rows equal but for it share a fingerprint.
        let (label, _) = schema
            .label_field()
            .expect("the shipped schema has a label");
        assert!(!schema.fields()[label].is_wire());
    }

    #[test]
    fn fingerprints_are_stable_across_builds() {
        // Pinned because a change would silently unmatch every bundle's training_rows.bin.
        let schema = german_credit();
        let rows = shipped_german_credit();
        assert_eq!(
            format!("{:016x}", fingerprint(&schema, &rows[0].applicant)),
            "753aff2f135a0be9"
        );
        let distinct = TrainingRows::of(&schema, rows.iter().map(|row| &row.applicant));
        assert_eq!(
            distinct.len(),
            rows.len(),
            "the data set's rows are distinct"
        );
    }

    #[test]
    fn the_file_round_trips_and_lookups_find_exactly_the_recorded_rows() {
        let schema = german_credit();
        let rows = shipped_german_credit();
        let training = TrainingRows::of(&schema, rows[..600].iter().map(|row| &row.applicant));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("training_rows.bin");
        training.write(&path).unwrap();
        let read = TrainingRows::read(&path).unwrap();
        assert_eq!(read, training);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 + 8 * 600);
        let found = rows
            .iter()
            .filter(|row| read.contains(fingerprint(&schema, &row.applicant)))
            .count();
        assert_eq!(found, 600);
    }

    #[test]
    fn damaged_files_are_refused_naming_the_problem() {
        let path = Path::new("training_rows.bin");
        let good = TrainingRows::from_fingerprints([3, 1, 2, 2]).to_bytes();
        assert_eq!(TrainingRows::from_bytes(&good, path).unwrap().len(), 3);
        let mut unsorted = good.clone();
        unsorted[16..24].copy_from_slice(&9u64.to_le_bytes());
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        for (bytes, words) in [
            (&good[..5], "too short"),
            (&wrong_magic[..], "CRTROWS1"),
            (&good[..good.len() - 1], "announces 3 fingerprints"),
            (&unsorted[..], "ascending"),
        ] {
            let error = TrainingRows::from_bytes(bytes, path)
                .unwrap_err()
                .to_string();
            assert!(error.contains(words), "{words}: {error}");
            assert!(error.contains("training_rows.bin"), "{error}");
        }
    }
}

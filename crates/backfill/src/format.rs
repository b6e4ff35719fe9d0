//! The file formats the backfill reads and writes, and how a path's format is recognised.
//!
//! The format is taken from the file extension unless the caller names it, so that a file
//! called `loans.txt` can still be read as JSON Lines with `--input-format jsonl`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A tabular file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (a file, or for scored output a directory of part files).
    Parquet,
}

/// The format could not be recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unknown format `{0}`, expected csv, jsonl or parquet")]
    Unknown(String),
    #[error(
        "cannot tell the format of {0} from its extension (.csv, .jsonl/.ndjson, .parquet); \
         name it with --input-format/--output-format"
    )]
    NoExtension(String),
}

impl Format {
    /// Every format, for help texts and tests.
    pub const ALL: [Format; 3] = [Format::Csv, Format::Jsonl, Format::Parquet];

    /// The conventional extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// The format named explicitly, else the one of the path's extension.
    pub fn resolve(explicit: Option<Format>, path: &Path) -> Result<Format, FormatError> {
        if let Some(format) = explicit {
            return Ok(format);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") | Some("ndjson") | Some("json") => Ok(Format::Jsonl),
            Some("parquet") | Some("pq") => Ok(Format::Parquet),
            _ => Err(FormatError::NoExtension(path.display().to_string())),
        }
    }
}

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            other => Err(FormatError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_decides_unless_named() {
        assert_eq!(
            Format::resolve(None, Path::new("a/b.CSV")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            Format::resolve(None, Path::new("b.ndjson")).unwrap(),
            Format::Jsonl
        );
        assert_eq!(
            Format::resolve(None, Path::new("out.parquet")).unwrap(),
            Format::Parquet
        );
        assert_eq!(
            Format::resolve(Some(Format::Jsonl), Path::new("x.txt")).unwrap(),
            Format::Jsonl
        );
        let error = Format::resolve(None, Path::new("x.txt")).unwrap_err();
        assert!(error.to_string().contains("--input-format"), "{error}");
        assert!("xml".parse::<Format>().is_err());
    }
}

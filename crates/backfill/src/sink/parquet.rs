//! Parquet output: a directory of part files, each one a complete Parquet file.
//!
//! A part is written as `part-NNNNN.parquet.tmp` and renamed when its footer is written and
//! synced, so a part file under its final name is always complete; the checkpoint then counts
//! it. A resumed run deletes every part (and temporary) numbered at or after the committed
//! count and continues from there.

use super::{io_error, OutputSpec, OutputState, Sink, SinkError, REASONS_COLUMN, SCORE_COLUMNS};
use crate::columns::{applicant_fields, ApplicantColumns};
use crate::row::{decision_text, ScoredRow};
use arrow_array::builder::{Float32Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per row group: large enough for good compression and fast scans, small enough that
/// the writer's buffered row group stays a few megabytes.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writes scored rows as Parquet part files in a directory.
pub(crate) struct ParquetSink {
    dir: PathBuf,
    spec: OutputSpec,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    rows_in_part: usize,
    parts: u64,
}

/// Snappy, [`ROW_GROUP_ROWS`] rows per group, and no dictionary for the `unique` columns
/// (ids, probabilities): a dictionary of unique values only costs hashing before the writer
/// falls back to plain encoding. Low-cardinality columns (decision, version, categories)
/// keep it, which is what makes them nearly free to store and fast to read back.
pub(crate) fn writer_properties(unique: &[&str]) -> WriterProperties {
    unique
        .iter()
        .fold(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS)),
            |builder, column| {
                builder.set_column_dictionary_enabled(ColumnPath::from(*column), false)
            },
        )
        .build()
}

/// The file name of part `index`.
pub(crate) fn part_name(index: u64) -> String {
    format!("part-{index:05}.parquet")
}

/// The part number of a part file or its temporary, if the name is one.
fn part_number(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("part-")?;
    let digits = rest
        .strip_suffix(".parquet")
        .or_else(|| rest.strip_suffix(".parquet.tmp"))?;
    digits.parse().ok()
}

/// The output schema for `spec`.
pub(crate) fn schema(spec: &OutputSpec) -> SchemaRef {
    let mut fields = vec![
        Field::new(SCORE_COLUMNS[0], DataType::Utf8, false),
        Field::new(SCORE_COLUMNS[1], DataType::Utf8, false),
        Field::new(SCORE_COLUMNS[2], DataType::Float32, false),
        Field::new(SCORE_COLUMNS[3], DataType::Float32, false),
        Field::new(SCORE_COLUMNS[4], DataType::Utf8, false),
    ];
    if spec.reference.is_some() {
        fields.push(Field::new(REASONS_COLUMN, DataType::Utf8, false));
    }
    if spec.include_fields {
        fields.extend(applicant_fields(spec.layout.schema()));
        if let Some(outcome) = spec.layout.outcome() {
            fields.push(Field::new(outcome.name(), DataType::Utf8, true));
        }
    }
    Arc::new(Schema::new(fields))
}

impl ParquetSink {
    /// Opens the directory `dir`, removing parts that are not committed.
    pub(crate) fn open(
        dir: &Path,
        spec: OutputSpec,
        resume: Option<OutputState>,
    ) -> Result<Self, SinkError> {
        let io = io_error(dir);
        std::fs::create_dir_all(dir).map_err(&io)?;
        let committed = resume.map_or(0, |state| state.parts);
        for entry in std::fs::read_dir(dir).map_err(&io)? {
            let entry = entry.map_err(&io)?;
            let name = entry.file_name();
            let Some(number) = name.to_str().and_then(part_number) else {
                continue;
            };
            let temporary = name.to_str().is_some_and(|n| n.ends_with(".tmp"));
            if number >= committed || temporary {
                std::fs::remove_file(entry.path()).map_err(&io)?;
            }
        }
        for number in 0..committed {
            let part = dir.join(part_name(number));
            if !part.is_file() {
                return Err(SinkError::Io {
                    path: part,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "committed part file is missing; the output was changed since the \
                         checkpoint, so the run cannot resume",
                    ),
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            schema: schema(&spec),
            spec,
            writer: None,
            rows_in_part: 0,
            parts: committed,
        })
    }

    fn temporary_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tmp", part_name(self.parts)))
    }

    fn parquet_error(&self, source: parquet::errors::ParquetError) -> SinkError {
        SinkError::Parquet {
            path: self.dir.clone(),
            source,
        }
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<File>, SinkError> {
        if self.writer.is_none() {
            let path = self.temporary_path();
            let file = File::create(&path).map_err(io_error(&path))?;
            let properties = writer_properties(&[SCORE_COLUMNS[0], SCORE_COLUMNS[2]]);
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(properties))
                .map_err(|e| self.parquet_error(e))?;
            self.writer = Some(writer);
        }
        // Just set above when it was empty.
        self.writer.as_mut().ok_or_else(|| SinkError::Encode {
            path: self.dir.clone(),
            message: "Parquet writer missing".to_string(),
        })
    }

    fn batch(&self, rows: &[ScoredRow]) -> Result<RecordBatch, SinkError> {
        let mut ids = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
        let mut decisions = StringBuilder::with_capacity(rows.len(), rows.len() * 4);
        let mut probabilities = Float32Builder::with_capacity(rows.len());
        let mut thresholds = Float32Builder::with_capacity(rows.len());
        let mut versions = StringBuilder::with_capacity(rows.len(), rows.len() * 20);
        for scored in rows {
            ids.append_value(&scored.row.application_id);
            decisions.append_value(decision_text(scored.is_bad(self.spec.threshold)));
            probabilities.append_value(scored.probability_bad);
            thresholds.append_value(self.spec.threshold);
            versions.append_value(&self.spec.model_version);
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ids.finish()),
            Arc::new(decisions.finish()),
            Arc::new(probabilities.finish()),
            Arc::new(thresholds.finish()),
            Arc::new(versions.finish()),
        ];
        if self.spec.reference.is_some() {
            // The decision record's JSON array, one string per row.
            let mut reasons = StringBuilder::with_capacity(rows.len(), rows.len() * 64);
            let mut json = Vec::new();
            for scored in rows {
                json.clear();
                serde_json::to_writer(&mut json, &self.spec.reasons_of(scored)).map_err(|e| {
                    SinkError::Encode {
                        path: self.dir.clone(),
                        message: e.to_string(),
                    }
                })?;
                reasons.append_value(String::from_utf8_lossy(&json));
            }
            columns.push(Arc::new(reasons.finish()));
        }
        if self.spec.include_fields {
            let layout = &self.spec.layout;
            let mut applicants =
                ApplicantColumns::with_capacity(Arc::clone(layout.schema_arc()), rows.len());
            let mut outcomes = StringBuilder::with_capacity(rows.len(), rows.len() * 4);
            for scored in rows {
                applicants.append(&scored.row.applicant);
                if let Some(outcome) = layout.outcome() {
                    outcomes.append_option(scored.row.bad.map(|bad| outcome.text(bad)));
                }
            }
            columns.extend(applicants.finish());
            if layout.outcome().is_some() {
                columns.push(Arc::new(outcomes.finish()));
            }
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| SinkError::Encode {
            path: self.dir.clone(),
            message: e.to_string(),
        })
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, rows: &[ScoredRow]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = self.batch(rows)?;
        let writer = self.writer()?;
        let written = writer.write(&batch);
        written.map_err(|e| self.parquet_error(e))?;
        self.rows_in_part += rows.len();
        Ok(())
    }

    fn commit_due(&self) -> bool {
        self.rows_in_part >= self.spec.part_rows.max(1)
    }

    fn commit(&mut self) -> Result<OutputState, SinkError> {
        if let Some(mut writer) = self.writer.take() {
            writer.finish().map_err(|e| self.parquet_error(e))?;
            let temporary = self.temporary_path();
            if self.spec.durable {
                writer.inner().sync_all().map_err(io_error(&temporary))?;
            }
            drop(writer);
            let part = self.dir.join(part_name(self.parts));
            std::fs::rename(&temporary, &part).map_err(io_error(&part))?;
            if self.spec.durable {
                // The rename itself is durable only once the directory is synced.
                File::open(&self.dir)
                    .and_then(|dir| dir.sync_all())
                    .map_err(io_error(&self.dir))?;
            }
            self.parts += 1;
            self.rows_in_part = 0;
        }
        Ok(OutputState {
            bytes: 0,
            parts: self.parts,
            messages: 0,
        })
    }

    fn flush_uncommitted(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.flush().map_err(|e| SinkError::Parquet {
                path: self.dir.clone(),
                source: e,
            })?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<OutputState, SinkError> {
        if self.parts == 0 && self.writer.is_none() {
            // An output with no rows still gets one (empty) part, so that it has a schema
            // and reads back as an empty table rather than as a missing one.
            self.writer()?;
        }
        self.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers() {
        assert_eq!(part_name(7), "part-00007.parquet");
        assert_eq!(part_number("part-00007.parquet"), Some(7));
        assert_eq!(part_number("part-00012.parquet.tmp"), Some(12));
        assert_eq!(part_number("other.parquet"), None);
    }
}

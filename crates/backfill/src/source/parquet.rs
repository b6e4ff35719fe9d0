//! Parquet input: columns named as the schema's fields (or the data set's columns), strings
//! for categorical attributes (wire names or code-book labels, plain or dictionary-encoded),
//! integers for numeric ones, and optional `application_id` (string or integer) and
//! `creditability` (`good`/`bad` or boolean "is bad") columns.
//!
//! The input may be one file or a directory of `*.parquet` files read in name order (the
//! backfill's own Parquet output is such a directory of part files), so scored output can be
//! fed back in.

use super::{io_error, Extent, InputPosition, Payload, RawChunk, Source, SourceError};
use crate::fields::{self, ID_COLUMN, OUTCOME_COLUMN};
use crate::row::{InputRow, RejectedRow};
use crate::shard::Shard;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use arrow_schema::{Field, Schema, SchemaRef};
use credit_core::applicant::{
    Applicant, AttributeKind, AttributeValue, RecordError, RecordErrorKind, ATTRIBUTES,
};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reads record batches from one file or a directory of files.
pub struct ParquetSource {
    path: PathBuf,
    /// Files still to open, with the rows to skip at their start.
    pending: VecDeque<(PathBuf, usize)>,
    current: Option<ParquetRecordBatchReader>,
    batch_size: usize,
    next_index: u64,
    sequence: u64,
    total_rows: u64,
}

impl ParquetSource {
    /// Opens `path` (a file or a directory of `*.parquet` files) and skips `start.rows` rows.
    pub fn open(path: &Path, start: InputPosition) -> Result<Self, SourceError> {
        let files = list_files(path)?;
        let mut pending = VecDeque::new();
        let mut total_rows = 0u64;
        let mut to_skip = start.rows;
        for file in files {
            let rows = row_count(&file)?;
            total_rows += rows;
            if to_skip >= rows {
                to_skip -= rows;
                continue;
            }
            pending.push_back((file, to_skip as usize));
            to_skip = 0;
        }
        if to_skip > 0 {
            return Err(SourceError::PastEnd {
                path: path.to_path_buf(),
                rows: start.rows,
                total: total_rows,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            pending,
            current: None,
            batch_size: 0,
            next_index: start.rows,
            sequence: 0,
            total_rows,
        })
    }

    fn open_next(&mut self) -> Result<bool, SourceError> {
        let Some((file, skip)) = self.pending.pop_front() else {
            return Ok(false);
        };
        let parquet_error = |source| SourceError::Parquet {
            path: file.clone(),
            source,
        };
        let handle = File::open(&file).map_err(io_error(&file))?;
        let plain =
            ArrowReaderMetadata::load(&handle, ArrowReaderOptions::new()).map_err(parquet_error)?;
        let hinted = ArrowReaderOptions::new().with_schema(dictionary_hint(plain.schema()));
        let metadata = ArrowReaderMetadata::try_new(plain.metadata().clone(), hinted)
            .map_err(parquet_error)?;
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, metadata)
            .with_batch_size(self.batch_size);
        if skip > 0 {
            builder = builder.with_offset(skip);
        }
        self.current = Some(builder.build().map_err(parquet_error)?);
        Ok(true)
    }
}

/// The file's schema with the categorical attributes' string columns read as dictionaries.
///
/// Parquet stores such low-cardinality columns dictionary-encoded; keeping the dictionary lets
/// the decoder resolve each distinct label once per batch instead of comparing strings on
/// every row, and spares the reader from materialising the strings at all.
fn dictionary_hint(schema: &SchemaRef) -> SchemaRef {
    let categorical = |name: &str| {
        ATTRIBUTES.iter().any(|spec| {
            matches!(spec.kind, AttributeKind::Categorical { .. })
                && (spec.name == name || spec.dataset_column == name)
        })
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let field = field.as_ref().clone();
            if field.data_type() == &DataType::Utf8 && categorical(field.name()) {
                let hinted =
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                field.with_data_type(hinted)
            } else {
                field
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The `*.parquet` files of a directory in name order, or the file itself.
fn list_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error(path))? {
        let entry = entry.map_err(io_error(path))?;
        let name = entry.path();
        if name.extension().and_then(|e| e.to_str()) == Some("parquet") {
            files.push(name);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(SourceError::NoParquetFiles {
            path: path.to_path_buf(),
        });
    }
    Ok(files)
}

fn row_count(file: &Path) -> Result<u64, SourceError> {
    let handle = File::open(file).map_err(io_error(file))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|source| {
        SourceError::Parquet {
            path: file.to_path_buf(),
            source,
        }
    })?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

impl Source for ParquetSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, SourceError> {
        self.batch_size = max_rows.max(1);
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some(reader) = self.current.as_mut() else {
                return Ok(None);
            };
            match reader.next() {
                Some(Ok(batch)) if batch.num_rows() > 0 => {
                    let first_index = self.next_index;
                    self.next_index += batch.num_rows() as u64;
                    let sequence = self.sequence;
                    self.sequence += 1;
                    return Ok(Some(RawChunk {
                        sequence,
                        first_index,
                        payload: Payload::Parquet(batch),
                        end: InputPosition {
                            rows: self.next_index,
                            byte_offset: 0,
                            kafka: None,
                        },
                    }));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    return Err(SourceError::Parquet {
                        path: self.path.clone(),
                        source: error.into(),
                    })
                }
                None => self.current = None,
            }
        }
    }

    fn extent(&self) -> Extent {
        Extent::Rows(self.total_rows)
    }
}

/// One cell of a supported column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Null,
    Text(&'a str),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Cell<'_> {
    fn to_json(self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Text(text) => text.into(),
            Cell::Integer(number) => number.into(),
            Cell::Float(number) => number.into(),
            Cell::Bool(value) => value.into(),
        }
    }
}

/// A typed view of one column, resolved once per batch so that the per-row access is a
/// match on a small enum rather than a downcast.
enum Column<'a> {
    Text(&'a arrow_array::StringArray),
    LargeText(&'a arrow_array::LargeStringArray),
    TextView(&'a arrow_array::StringViewArray),
    Dictionary {
        array: &'a dyn Array,
        keys: Vec<usize>,
        values: &'a arrow_array::StringArray,
    },
    Int32(&'a arrow_array::Int32Array),
    Integer(Box<dyn Fn(usize) -> i64 + 'a>, &'a dyn Array),
    Float(Box<dyn Fn(usize) -> f64 + 'a>, &'a dyn Array),
    Bool(&'a arrow_array::BooleanArray),
}

macro_rules! integer_column {
    ($array:expr, $( $ty:ty ),+) => {{
        let array: &dyn Array = $array;
        $( if let Some(typed) = array.as_primitive_opt::<$ty>() {
            return Some(Column::Integer(Box::new(move |i| typed.value(i) as i64), array));
        } )+
    }};
}

impl<'a> Column<'a> {
    fn of(array: &'a dyn Array) -> Option<Self> {
        if let Some(typed) = array.as_string_opt::<i32>() {
            return Some(Column::Text(typed));
        }
        if let Some(typed) = array.as_string_opt::<i64>() {
            return Some(Column::LargeText(typed));
        }
        if let Some(typed) = array.as_string_view_opt() {
            return Some(Column::TextView(typed));
        }
        if let Some(dictionary) = array.as_any_dictionary_opt() {
            let values = dictionary.values().as_string_opt::<i32>()?;
            return Some(Column::Dictionary {
                array,
                keys: dictionary.normalized_keys(),
                values,
            });
        }
        if let Some(typed) = array.as_boolean_opt() {
            return Some(Column::Bool(typed));
        }
        if let Some(typed) = array.as_primitive_opt::<Int32Type>() {
            return Some(Column::Int32(typed));
        }
        integer_column!(
            array, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
            UInt64Type
        );
        if let Some(typed) = array.as_primitive_opt::<Float64Type>() {
            return Some(Column::Float(Box::new(move |i| typed.value(i)), array));
        }
        if let Some(typed) = array.as_primitive_opt::<Float32Type>() {
            return Some(Column::Float(
                Box::new(move |i| f64::from(typed.value(i))),
                array,
            ));
        }
        None
    }

    fn array(&self) -> &'a dyn Array {
        match self {
            Column::Text(a) => *a,
            Column::LargeText(a) => *a,
            Column::TextView(a) => *a,
            Column::Dictionary { array, .. } => *array,
            Column::Int32(a) => *a,
            Column::Integer(_, a) | Column::Float(_, a) => *a,
            Column::Bool(a) => *a,
        }
    }

    fn get(&self, i: usize) -> Cell<'a> {
        if self.array().is_null(i) {
            return Cell::Null;
        }
        match self {
            Column::Text(a) => Cell::Text(a.value(i)),
            Column::LargeText(a) => Cell::Text(a.value(i)),
            Column::TextView(a) => Cell::Text(a.value(i)),
            Column::Dictionary { keys, values, .. } => match keys.get(i) {
                Some(&key) if key < values.len() && !values.is_null(key) => {
                    Cell::Text(values.value(key))
                }
                _ => Cell::Null,
            },
            Column::Int32(a) => Cell::Integer(i64::from(a.value(i))),
            Column::Integer(get, _) => Cell::Integer(get(i)),
            Column::Float(get, _) => Cell::Float(get(i)),
            Column::Bool(a) => Cell::Bool(a.value(i)),
        }
    }
}

/// Decodes record batches; column positions are looked up per batch by name.
#[derive(Debug, Clone)]
pub struct ParquetDecoder {
    path: PathBuf,
}

impl ParquetDecoder {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Decodes the rows of this shard.
    pub fn decode(
        &self,
        batch: &RecordBatch,
        first_index: u64,
        shard: Shard,
        rows: &mut Vec<InputRow>,
        rejections: &mut Vec<RejectedRow>,
    ) -> Result<(), SourceError> {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let column = |position: usize| -> Result<Column<'_>, SourceError> {
            let array = batch.column(position).as_ref();
            Column::of(array).ok_or_else(|| SourceError::ColumnType {
                path: self.path.clone(),
                column: names[position].to_string(),
                found: type_name(array.data_type()),
                expected: "a string, integer, float or boolean column",
            })
        };
        let mut attributes = Vec::with_capacity(20);
        for (attribute, spec) in ATTRIBUTES.iter().enumerate() {
            let position = fields::attribute_column(names.iter().copied(), attribute).ok_or(
                SourceError::MissingColumn {
                    path: self.path.clone(),
                    attribute: spec.name,
                    dataset_column: spec.dataset_column,
                },
            )?;
            attributes.push(AttributeColumn::new(attribute, column(position)?));
        }
        let optional = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .map(column)
                .transpose()
        };
        let id = optional(ID_COLUMN)?;
        let outcome = optional(OUTCOME_COLUMN)?;

        let mut values = [AttributeValue::Numeric(0.0); 20];
        for i in 0..batch.num_rows() {
            let index = first_index + i as u64;
            if !shard.contains(index) {
                continue;
            }
            let id_cell = id.as_ref().map_or(Cell::Null, |c| c.get(i));
            let outcome_cell = outcome.as_ref().map_or(Cell::Null, |c| c.get(i));
            let decoded = attributes
                .iter()
                .zip(values.iter_mut())
                .try_for_each(|(column, value)| {
                    *value = column.value(i)?;
                    Ok(())
                })
                .and_then(|()| decode_row(&values, id_cell, outcome_cell, index));
            match decoded {
                Ok(row) => rows.push(row),
                Err(error) => {
                    let cells: Vec<Cell<'_>> = attributes.iter().map(|c| c.column.get(i)).collect();
                    let raw = raw_json(&cells, id_cell, outcome_cell);
                    rejections.push(RejectedRow::new(index, raw, &error));
                }
            }
        }
        Ok(())
    }
}

/// One attribute's column, with each distinct value of a dictionary column resolved once.
///
/// This is the decoder's inner loop (20 calls per row), hence the fast paths: the null bitmap
/// read once per batch instead of a virtual `is_null` per cell, dictionary entries resolved
/// once, and 32-bit integers read directly.
struct AttributeColumn<'a> {
    attribute: usize,
    column: Column<'a>,
    /// Which rows are null, computed once per batch, and only for a column that has nulls.
    nulls: Option<Vec<bool>>,
    /// For a dictionary column: the attribute value of each dictionary entry.
    resolved: Option<Vec<Result<AttributeValue, RecordError>>>,
}

impl<'a> AttributeColumn<'a> {
    fn new(attribute: usize, column: Column<'a>) -> Self {
        let resolved = match &column {
            Column::Dictionary { values, .. } => Some(
                (0..values.len())
                    .map(|k| {
                        if values.is_null(k) {
                            Err(missing(attribute))
                        } else {
                            cell_value(attribute, Cell::Text(values.value(k)))
                        }
                    })
                    .collect(),
            ),
            _ => None,
        };
        Self {
            attribute,
            nulls: {
                let array = column.array();
                (array.null_count() > 0)
                    .then(|| (0..array.len()).map(|i| array.is_null(i)).collect())
            },
            column,
            resolved,
        }
    }

    fn value(&self, i: usize) -> Result<AttributeValue, RecordError> {
        if self
            .nulls
            .as_ref()
            .is_some_and(|nulls| nulls.get(i) == Some(&true))
        {
            return Err(missing(self.attribute));
        }
        match (&self.column, &self.resolved) {
            (Column::Int32(array), _) => fields::number(self.attribute, i64::from(array.value(i))),
            (Column::Dictionary { keys, .. }, Some(resolved)) => {
                match keys.get(i).and_then(|&key| resolved.get(key)) {
                    Some(Ok(value)) => Ok(*value),
                    Some(Err(error)) => Err(error.clone()),
                    None => Err(missing(self.attribute)),
                }
            }
            (column, _) => cell_value(self.attribute, column.get(i)),
        }
    }
}

fn missing(attribute: usize) -> RecordError {
    RecordError::new(
        RecordErrorKind::MissingField,
        ATTRIBUTES[attribute].name,
        "missing value",
    )
}

/// The attribute value of one cell.
fn cell_value(attribute: usize, cell: Cell<'_>) -> Result<AttributeValue, RecordError> {
    let spec = &ATTRIBUTES[attribute];
    match (spec.kind, cell) {
        (_, Cell::Null) => Err(missing(attribute)),
        (AttributeKind::Categorical { .. }, Cell::Text(text)) => fields::category(attribute, text),
        (AttributeKind::Numeric { .. }, Cell::Integer(number)) => fields::number(attribute, number),
        (AttributeKind::Numeric { .. }, Cell::Float(number))
            if number.fract() == 0.0 && number.abs() < 1e15 =>
        {
            fields::number(attribute, number as i64)
        }
        (AttributeKind::Numeric { .. }, Cell::Text(text)) => {
            let number = text.trim().parse::<i64>().map_err(|_| {
                RecordError::new(
                    RecordErrorKind::WrongType,
                    spec.name,
                    format!("`{text}` is not an integer"),
                )
            })?;
            fields::number(attribute, number)
        }
        (_, other) => Err(RecordError::new(
            RecordErrorKind::WrongType,
            spec.name,
            format!("value {} has the wrong type", other.to_json()),
        )),
    }
}

fn type_name(data_type: &DataType) -> String {
    data_type.to_string()
}

fn decode_row(
    values: &[AttributeValue; 20],
    id: Cell<'_>,
    outcome: Cell<'_>,
    index: u64,
) -> Result<InputRow, RecordError> {
    let applicant = Applicant::from_attribute_values(values)?;
    let application_id = match id {
        Cell::Null => (index + 1).to_string(),
        Cell::Text(text) if !text.trim().is_empty() => text.to_string(),
        Cell::Integer(number) => number.to_string(),
        other => {
            return Err(RecordError::new(
                RecordErrorKind::Identifier,
                ID_COLUMN,
                format!("{} is not an identifier", other.to_json()),
            ))
        }
    };
    let bad = match outcome {
        Cell::Null => None,
        Cell::Text(text) => fields::outcome(text)?,
        Cell::Bool(bad) => Some(bad),
        Cell::Integer(0) => Some(false),
        Cell::Integer(1) => Some(true),
        other => {
            return Err(RecordError::new(
                RecordErrorKind::WrongType,
                OUTCOME_COLUMN,
                format!(
                    "{} is not an outcome, expected `good` or `bad`",
                    other.to_json()
                ),
            ))
        }
    };
    Ok(InputRow {
        index,
        application_id,
        applicant,
        bad,
    })
}

/// The row's values as a JSON object, for the reject file.
fn raw_json(cells: &[Cell<'_>], id: Cell<'_>, outcome: Cell<'_>) -> String {
    let mut object = serde_json::Map::new();
    if id != Cell::Null {
        object.insert(ID_COLUMN.to_string(), id.to_json());
    }
    for (spec, cell) in ATTRIBUTES.iter().zip(cells) {
        object.insert(spec.name.to_string(), cell.to_json());
    }
    if outcome != Cell::Null {
        object.insert(OUTCOME_COLUMN.to_string(), outcome.to_json());
    }
    serde_json::Value::Object(object).to_string()
}

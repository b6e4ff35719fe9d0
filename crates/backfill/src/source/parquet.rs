//! Parquet input: a column per schema field, named by its `column` or its `name`: strings for
//! categories (wire values or `data` spellings, plain or dictionary-encoded), integers or
//! floats for numbers, booleans for booleans (strings are read as in CSV anywhere); a null is a
//! missing value. Optional id (string or integer) and outcome (as in CSV, or boolean "is bad")
//! columns, as [`crate::fields`] names them.
//!
//! The input may be one file or a directory of `*.parquet` files read in name order (the
//! backfill's own Parquet output is such a directory of part files), so scored output can be
//! fed back in.

use super::{
    field_columns, io_error, Extent, InputPosition, Payload, RawChunk, Source, SourceError,
};
use crate::fields::Layout;
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
use credit_core::applicant::{Applicant, AttributeValue, RecordError, RecordErrorKind};
use credit_core::dataset::parse_cell;
use credit_core::schema::{self as schema, FieldKind};
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
    /// Names of the category fields' columns, read as dictionaries.
    categorical: Vec<String>,
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
    pub(crate) fn open(
        layout: &Layout,
        path: &Path,
        start: InputPosition,
    ) -> Result<Self, SourceError> {
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
        let categorical = layout
            .wire_fields()
            .filter(|(_, field)| matches!(field.kind, FieldKind::Category { .. }))
            .flat_map(|(_, field)| [field.column.clone(), field.name.clone()])
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            categorical,
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
        let hinted = ArrowReaderOptions::new()
            .with_schema(dictionary_hint(plain.schema(), &self.categorical));
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

/// The file's schema with the category fields' string columns (named in `categorical`) read
/// as dictionaries.
///
/// Parquet stores such low-cardinality columns dictionary-encoded; keeping the dictionary lets
/// the decoder resolve each distinct label once per batch instead of comparing strings on
/// every row, and spares the reader from materialising the strings at all.
fn dictionary_hint(schema: &SchemaRef, categorical: &[String]) -> SchemaRef {
    let categorical = |name: &str| categorical.iter().any(|column| column == name);
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
    Int64(&'a arrow_array::Int64Array),
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
        if let Some(typed) = array.as_primitive_opt::<Int64Type>() {
            return Some(Column::Int64(typed));
        }
        if let Some(typed) = array.as_primitive_opt::<Int32Type>() {
            return Some(Column::Int32(typed));
        }
        integer_column!(array, Int8Type, Int16Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type);
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
            Column::Int64(a) => *a,
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
            Column::Int64(a) => Cell::Integer(a.value(i)),
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
    layout: Arc<Layout>,
    path: PathBuf,
}

impl ParquetDecoder {
    pub(crate) fn new(layout: Arc<Layout>, path: &Path) -> Self {
        Self {
            layout,
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
        let layout = &*self.layout;
        let fields = layout.schema().fields();
        let arrow_schema = batch.schema();
        let names: Vec<&str> = arrow_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let column = |position: usize| -> Result<Column<'_>, SourceError> {
            let array = batch.column(position).as_ref();
            Column::of(array).ok_or_else(|| SourceError::ColumnType {
                path: self.path.clone(),
                column: names[position].to_string(),
                found: type_name(array.data_type()),
                expected: "a string, integer, float or boolean column",
            })
        };
        let positions = field_columns(layout.schema(), &names, &self.path)?;
        let mut columns = Vec::with_capacity(fields.len());
        for (field, position) in fields.iter().zip(&positions) {
            columns.push(match position {
                Some(position) if field.is_wire() => {
                    Some(FieldColumn::new(field, column(*position)?))
                }
                _ => None,
            });
        }
        let id = match layout.id_position(&names) {
            Some(position) => Some((names[position], column(position)?)),
            None => None,
        };
        let outcome = match layout.outcome().and_then(|o| o.position(&names)) {
            Some(position) => Some(column(position)?),
            None => None,
        };

        for i in 0..batch.num_rows() {
            let index = first_index + i as u64;
            if !shard.contains(index) {
                continue;
            }
            let id_cell = id.as_ref().map_or(Cell::Null, |(_, c)| c.get(i));
            let outcome_cell = outcome.as_ref().map_or(Cell::Null, |c| c.get(i));
            let decoded = columns
                .iter()
                .map(|column| {
                    column
                        .as_ref()
                        .map_or(Ok(AttributeValue::Missing), |c| c.value(i))
                })
                .collect::<Result<Vec<_>, _>>()
                .and_then(|values| {
                    let id_name = id.as_ref().map_or("", |(name, _)| *name);
                    decode_row(layout, values, (id_name, id_cell), outcome_cell, index)
                });
            match decoded {
                Ok(row) => rows.push(row),
                Err(error) => {
                    let raw = raw_json(layout, &columns, i, id.as_ref(), outcome_cell);
                    rejections.push(RejectedRow::new(index, raw, &error));
                }
            }
        }
        Ok(())
    }
}

/// One field's column, with each distinct value of a dictionary column resolved once.
///
/// This is the decoder's inner loop (a call per field and row), hence the fast paths: the
/// null bitmap read once per batch instead of a virtual `is_null` per cell, dictionary entries
/// resolved once, and 64- and 32-bit integers read directly.
struct FieldColumn<'a> {
    field: &'a schema::Field,
    column: Column<'a>,
    /// Which rows are null, computed once per batch, and only for a column that has nulls.
    nulls: Option<Vec<bool>>,
    /// For a dictionary column: the field value of each dictionary entry.
    resolved: Option<Vec<Result<AttributeValue, RecordError>>>,
}

impl<'a> FieldColumn<'a> {
    fn new(field: &'a schema::Field, column: Column<'a>) -> Self {
        let resolved = match &column {
            Column::Dictionary { values, .. } => Some(
                (0..values.len())
                    .map(|k| {
                        if values.is_null(k) {
                            Ok(AttributeValue::Missing)
                        } else {
                            cell_value(field, Cell::Text(values.value(k)))
                        }
                    })
                    .collect(),
            ),
            _ => None,
        };
        Self {
            field,
            nulls: {
                let array = column.array();
                (array.null_count() > 0)
                    .then(|| (0..array.len()).map(|i| array.is_null(i)).collect())
            },
            column,
            resolved,
        }
    }

    /// The value of row `i`: a null is a missing value, which building the applicant accepts
    /// for an optional field only.
    fn value(&self, i: usize) -> Result<AttributeValue, RecordError> {
        if self
            .nulls
            .as_ref()
            .is_some_and(|nulls| nulls.get(i) == Some(&true))
        {
            return Ok(AttributeValue::Missing);
        }
        match (&self.column, &self.resolved) {
            (Column::Int64(array), _) => cell_value(self.field, Cell::Integer(array.value(i))),
            (Column::Int32(array), _) => {
                cell_value(self.field, Cell::Integer(i64::from(array.value(i))))
            }
            (Column::Dictionary { keys, .. }, Some(resolved)) => {
                match keys.get(i).and_then(|&key| resolved.get(key)) {
                    Some(Ok(value)) => Ok(*value),
                    Some(Err(error)) => Err(error.clone()),
                    None => Ok(AttributeValue::Missing),
                }
            }
            (column, _) => cell_value(self.field, column.get(i)),
        }
    }
}

/// The field value of one cell (bounds are checked when the applicant is built).
fn cell_value(field: &schema::Field, cell: Cell<'_>) -> Result<AttributeValue, RecordError> {
    match (&field.kind, cell) {
        (_, Cell::Null) => Ok(AttributeValue::Missing),
        (_, Cell::Text(text)) => parse_cell(field, text),
        (FieldKind::Integer { .. } | FieldKind::Number { .. }, Cell::Integer(number)) => {
            Ok(AttributeValue::Numeric(number as f64))
        }
        (FieldKind::Integer { .. }, Cell::Float(number))
            if number.is_finite() && number.fract() == 0.0 =>
        {
            Ok(AttributeValue::Numeric(number))
        }
        (FieldKind::Number { .. }, Cell::Float(number)) if number.is_finite() => {
            Ok(AttributeValue::Numeric(number))
        }
        (FieldKind::Boolean, Cell::Bool(flag)) => {
            Ok(AttributeValue::Categorical(usize::from(flag)))
        }
        (_, other) => Err(RecordError::new(
            RecordErrorKind::WrongType,
            field.name.as_str(),
            format!("value {} is not {}", other.to_json(), field.expected()),
        )),
    }
}

fn type_name(data_type: &DataType) -> String {
    data_type.to_string()
}

fn decode_row(
    layout: &Layout,
    values: Vec<AttributeValue>,
    (id_name, id): (&str, Cell<'_>),
    outcome: Cell<'_>,
    index: u64,
) -> Result<InputRow, RecordError> {
    let applicant = Applicant::from_values(layout.schema(), values)?;
    let application_id = match id {
        Cell::Null => (index + 1).to_string(),
        Cell::Text(text) if !text.trim().is_empty() => {
            layout.check_id(id_name, text)?;
            text.to_string()
        }
        Cell::Integer(number) => number.to_string(),
        other => {
            return Err(RecordError::new(
                RecordErrorKind::Identifier,
                id_name,
                format!("{} is not an identifier", other.to_json()),
            ))
        }
    };
    let bad = match (layout.outcome(), outcome) {
        (None, _) | (_, Cell::Null) => None,
        (Some(field), Cell::Text(text)) => field.parse(text)?,
        (Some(field), other) => field.parse_json(Some(&other.to_json()))?,
    };
    Ok(InputRow {
        index,
        application_id,
        applicant,
        bad,
    })
}

/// Row `i` as a JSON object, for the reject file.
fn raw_json(
    layout: &Layout,
    columns: &[Option<FieldColumn<'_>>],
    i: usize,
    id: Option<&(&str, Column<'_>)>,
    outcome: Cell<'_>,
) -> String {
    let mut object = serde_json::Map::new();
    if let Some((name, column)) = id {
        let cell = column.get(i);
        if cell != Cell::Null {
            object.insert((*name).to_string(), cell.to_json());
        }
    }
    for (field, column) in layout.schema().fields().iter().zip(columns) {
        if let Some(column) = column {
            object.insert(field.name.clone(), column.column.get(i).to_json());
        }
    }
    if let (Some(field), false) = (layout.outcome(), outcome == Cell::Null) {
        object.insert(field.name().to_string(), outcome.to_json());
    }
    serde_json::Value::Object(object).to_string()
}

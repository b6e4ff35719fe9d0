//! Arrow columns for applicants, shared by the scored-output and the generator's Parquet
//! writers so that both spell a schema's fields the same way: each wire field under its name,
//! categories as UTF-8 wire values, integers as 64-bit integers (any schema's bounds fit),
//! numbers as 64-bit floats, booleans as booleans, an optional field nullable (what the Parquet
//! reader of [`super::source::parquet`] accepts back).

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field};
use credit_core::applicant::Applicant;
use credit_core::applicant::{wire, Wire};
use credit_core::schema::{FieldKind, Schema};
use std::sync::Arc;

/// The Arrow type of a field's column.
fn data_type(kind: &FieldKind) -> DataType {
    match kind {
        FieldKind::Category { .. } | FieldKind::Text { .. } => DataType::Utf8,
        FieldKind::Integer { .. } => DataType::Int64,
        FieldKind::Number { .. } => DataType::Float64,
        FieldKind::Boolean => DataType::Boolean,
    }
}

/// The wire fields' columns, in schema order.
pub(crate) fn applicant_fields(schema: &Schema) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .filter(|field| field.is_wire())
        .map(|field| Field::new(&field.name, data_type(&field.kind), !field.required))
        .collect()
}

enum Builder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Number(Float64Builder),
    Boolean(BooleanBuilder),
}

/// Builders for the wire fields' columns of one batch.
pub(crate) struct ApplicantColumns {
    schema: Arc<Schema>,
    /// Each wire field's position in the schema, with its builder.
    builders: Vec<(usize, Builder)>,
}

impl ApplicantColumns {
    /// Builders with room for `capacity` rows.
    pub(crate) fn with_capacity(schema: Arc<Schema>, capacity: usize) -> Self {
        let builders = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.is_wire())
            .map(|(position, field)| {
                let builder = match data_type(&field.kind) {
                    DataType::Int64 => Builder::Integer(Int64Builder::with_capacity(capacity)),
                    DataType::Float64 => Builder::Number(Float64Builder::with_capacity(capacity)),
                    DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
                    _ => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 12)),
                };
                (position, builder)
            })
            .collect();
        Self { schema, builders }
    }

    /// Appends one applicant (read with the same schema).
    pub(crate) fn append(&mut self, applicant: &Applicant) {
        let fields = self.schema.fields();
        let values = applicant.values();
        for (position, builder) in &mut self.builders {
            let value = values
                .get(*position)
                .and_then(|value| wire(&fields[*position], *value));
            match (builder, value) {
                (Builder::Text(b), Some(Wire::Text(text))) => b.append_value(text),
                (Builder::Integer(b), Some(Wire::Integer(n))) => b.append_value(n),
                (Builder::Number(b), Some(Wire::Number(x))) => b.append_value(x),
                (Builder::Boolean(b), Some(Wire::Boolean(flag))) => b.append_value(flag),
                // Missing (an optional field); builders and values come from one schema, so
                // no other combination occurs.
                (Builder::Text(b), _) => b.append_null(),
                (Builder::Integer(b), _) => b.append_null(),
                (Builder::Number(b), _) => b.append_null(),
                (Builder::Boolean(b), _) => b.append_null(),
            }
        }
    }

    /// The finished columns; the builders are empty again afterwards.
    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.builders
            .iter_mut()
            .map(|(_, builder)| -> ArrayRef {
                match builder {
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Integer(b) => Arc::new(b.finish()),
                    Builder::Number(b) => Arc::new(b.finish()),
                    Builder::Boolean(b) => Arc::new(b.finish()),
                }
            })
            .collect()
    }
}

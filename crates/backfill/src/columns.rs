//! Arrow columns for applicants, shared by the scored-output and the generator's Parquet
//! writers so that both spell the 20 attributes the same way: categoricals as UTF-8 wire
//! names, numerics as 32-bit integers (what the Parquet reader of [`super::source::parquet`]
//! accepts back).

use super::fields::{wire_fields, FieldValue};
use arrow_array::builder::{Int32Builder, StringBuilder};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field};
use credit_core::applicant::{Applicant, AttributeKind, ATTRIBUTES};
use std::sync::Arc;

/// The 20 attribute fields, in schema order.
pub(crate) fn applicant_fields() -> Vec<Field> {
    ATTRIBUTES
        .iter()
        .map(|spec| match spec.kind {
            AttributeKind::Categorical { .. } => Field::new(spec.name, DataType::Utf8, false),
            AttributeKind::Numeric { .. } => Field::new(spec.name, DataType::Int32, false),
        })
        .collect()
}

enum Builder {
    Text(StringBuilder),
    Number(Int32Builder),
}

/// Builders for the 20 attribute columns of one batch.
pub(crate) struct ApplicantColumns {
    builders: Vec<Builder>,
}

impl ApplicantColumns {
    /// Builders with room for `capacity` rows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let builders = ATTRIBUTES
            .iter()
            .map(|spec| match spec.kind {
                AttributeKind::Categorical { .. } => {
                    Builder::Text(StringBuilder::with_capacity(capacity, capacity * 12))
                }
                AttributeKind::Numeric { .. } => {
                    Builder::Number(Int32Builder::with_capacity(capacity))
                }
            })
            .collect();
        Self { builders }
    }

    /// Appends one applicant.
    pub(crate) fn append(&mut self, applicant: &Applicant) {
        for (builder, value) in self.builders.iter_mut().zip(wire_fields(applicant)) {
            match (builder, value) {
                (Builder::Text(b), FieldValue::Text(text)) => b.append_value(text),
                (Builder::Number(b), FieldValue::Number(n)) => {
                    b.append_value(i32::try_from(n).unwrap_or(i32::MAX))
                }
                // Kinds come from the same table as the builders.
                (Builder::Text(b), FieldValue::Number(n)) => b.append_value(n.to_string()),
                (Builder::Number(b), FieldValue::Text(_)) => b.append_null(),
            }
        }
    }

    /// The finished columns; the builders are empty again afterwards.
    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        self.builders
            .iter_mut()
            .map(|builder| -> ArrayRef {
                match builder {
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Number(b) => Arc::new(b.finish()),
                }
            })
            .collect()
    }
}

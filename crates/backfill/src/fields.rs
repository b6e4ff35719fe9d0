//! How the backfill's files spell an applicant, read from the model bundle's schema.
//!
//! Input files may name each field by its schema `column` (the lender's own data-file layout)
//! or by its `name`, and spell a category by its wire value or by its `data` spelling, so that
//! historical extracts in either layout can be replayed. Output always uses the schema's names
//! and wire values, the form the worker reads. Two columns are not fields of the applicant: the
//! application id (the schema's `key` field, else [`DEFAULT_ID_COLUMN`]) and the realised
//! outcome (the schema's `label` field, see [`OutcomeField`]).

use credit_core::applicant::{wire, AttributeValue, RecordError, RecordErrorKind, Wire};
use credit_core::dataset::{self, Outcome};
use credit_core::schema::{Field, FieldKind, Schema};
use std::fmt;
use std::io::Write;
use std::sync::Arc;

/// The id column of a schema without a `key` field (and of the scored output).
pub(crate) const DEFAULT_ID_COLUMN: &str = "application_id";

/// The columns of one schema's files: its wire fields, the id and the outcome.
#[derive(Debug)]
pub(crate) struct Layout {
    schema: Arc<Schema>,
    /// The names an id column may have in an input, preferred first: the key field's column
    /// and name, then the scored output's own `application_id`.
    id_names: Vec<String>,
    /// The longest id the key field allows, in characters.
    id_max_length: Option<usize>,
    outcome: Option<OutcomeField>,
}

impl Layout {
    pub(crate) fn new(schema: Arc<Schema>) -> Self {
        let mut id_names = Vec::new();
        let mut id_max_length = None;
        if let Some((_, key)) = schema.key_field() {
            id_names.push(key.column.clone());
            id_names.push(key.name.clone());
            if let FieldKind::Text { max_length } = key.kind {
                id_max_length = Some(max_length);
            }
        }
        id_names.push(DEFAULT_ID_COLUMN.to_owned());
        id_names.dedup();
        let outcome = OutcomeField::of(&schema);
        Self {
            schema,
            id_names,
            id_max_length,
            outcome,
        }
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The shared schema.
    pub(crate) fn schema_arc(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The fields producers send, with their positions in the schema.
    pub(crate) fn wire_fields(&self) -> impl Iterator<Item = (usize, &Field)> + '_ {
        self.schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.is_wire())
    }

    /// The id column a generated file gets: the lender's own name for it.
    pub(crate) fn id_column(&self) -> &str {
        self.id_names
            .first()
            .map_or(DEFAULT_ID_COLUMN, String::as_str)
    }

    /// The names an input's id column may have, preferred first.
    pub(crate) fn id_names(&self) -> &[String] {
        &self.id_names
    }

    /// Where the id column is among `header`, if the input has one.
    pub(crate) fn id_position(&self, header: &[&str]) -> Option<usize> {
        self.id_names
            .iter()
            .find_map(|name| header.iter().position(|column| column.trim() == name))
    }

    /// Checks an id read from the column named `column` against the key field.
    pub(crate) fn check_id(&self, column: &str, id: &str) -> Result<(), RecordError> {
        match self.id_max_length {
            Some(max) if id.chars().count() > max => Err(RecordError::new(
                RecordErrorKind::Identifier,
                column,
                format!("the id is longer than the key's {max} characters"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn outcome(&self) -> Option<&OutcomeField> {
        self.outcome.as_ref()
    }
}

/// The schema's `label` field: the realised outcome, known for historical loans.
#[derive(Debug)]
pub(crate) struct OutcomeField {
    field: Field,
    /// Where files keep it, and its bad-risk value ([`Outcome::of`]).
    outcome: Outcome,
    /// The bad-risk value as the field's value, when it reads as one.
    bad_value: Option<AttributeValue>,
    /// The value written for a good outcome.
    good: String,
}

impl OutcomeField {
    fn of(schema: &Schema) -> Option<Self> {
        let outcome = Outcome::of(schema)?;
        let (_, field) = schema.label_field()?;
        let bad_value = dataset::parse_cell(field, &outcome.bad)
            .ok()
            .filter(|value| *value != AttributeValue::Missing);
        let good = match &field.kind {
            FieldKind::Category { categories } => categories
                .iter()
                .find(|category| category.value != outcome.bad)
                .map(|category| category.value.clone()),
            FieldKind::Boolean => Some((outcome.bad != "true").to_string()),
            _ => None,
        }
        .unwrap_or_else(|| if outcome.bad == "0" { "1" } else { "0" }.to_owned());
        Some(Self {
            field: field.clone(),
            outcome,
            bad_value,
            good,
        })
    }

    /// The field's name: what output files call the column, and what errors name.
    pub(crate) fn name(&self) -> &str {
        &self.field.name
    }

    /// Where the outcome column is among `header`, by its column or its name.
    pub(crate) fn position(&self, header: &[&str]) -> Option<usize> {
        [self.outcome.column.as_str(), self.field.name.as_str()]
            .iter()
            .find_map(|name| header.iter().position(|column| column.trim() == *name))
    }

    /// Whether `key` names the outcome in a JSON record.
    pub(crate) fn is_key(&self, key: &str) -> bool {
        key == self.field.name || key == self.outcome.column
    }

    /// The names the outcome may have in a JSON record.
    pub(crate) fn keys(&self) -> [&str; 2] {
        [&self.field.name, &self.outcome.column]
    }

    /// Parses an outcome cell: `Some(true)` for the bad-risk value (as on the wire or in its
    /// `data` spelling), `Some(false)` for another value of the field, `None` when empty. A
    /// field that does not itself hold `1`/`0` or `true`/`false` also reads those as "is bad".
    pub(crate) fn parse(&self, text: &str) -> Result<Option<bool>, RecordError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text == self.outcome.bad {
            return Ok(Some(true));
        }
        match dataset::parse_cell(&self.field, text) {
            Ok(AttributeValue::Missing) => Ok(Some(false)),
            Ok(value) => Ok(Some(Some(value) == self.bad_value)),
            Err(error) => match text {
                "1" | "true" => Ok(Some(true)),
                "0" | "false" => Ok(Some(false)),
                _ => Err(error),
            },
        }
    }

    /// Parses the outcome of a JSON record: a string as a cell, a boolean or number as its text.
    pub(crate) fn parse_json(
        &self,
        value: Option<&serde_json::Value>,
    ) -> Result<Option<bool>, RecordError> {
        match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => self.parse(text),
            Some(serde_json::Value::Bool(flag)) => self.parse(if *flag { "true" } else { "false" }),
            Some(serde_json::Value::Number(number)) => self.parse(&number.to_string()),
            Some(other) => Err(RecordError::new(
                RecordErrorKind::WrongType,
                self.field.name.as_str(),
                format!(
                    "`{other}` is not an outcome, expected {}",
                    self.field.expected()
                ),
            )),
        }
    }

    /// The value written for an outcome.
    pub(crate) fn text(&self, bad: bool) -> &str {
        if bad {
            &self.outcome.bad
        } else {
            &self.good
        }
    }
}

/// `value` of `field` as the lender's data files spell it: a category by its `data` spelling
/// when it has one, anything else as on the wire.
pub(crate) fn data_spelling(field: &Field, value: AttributeValue) -> Option<Wire<'_>> {
    match (&field.kind, value) {
        (FieldKind::Category { categories }, AttributeValue::Categorical(index)) => {
            let category = categories.get(index)?;
            field
                .is_wire()
                .then(|| Wire::Text(category.data.as_deref().unwrap_or(&category.value)))
        }
        _ => wire(field, value),
    }
}

/// Writes one cell of a CSV record: the value's text, or an empty cell when missing.
pub(crate) fn write_csv_field<W: std::io::Write>(
    writer: &mut csv::Writer<W>,
    value: Option<Wire<'_>>,
    scratch: &mut String,
) -> csv::Result<()> {
    match value {
        Some(Wire::Text(text)) => writer.write_field(text),
        Some(other) => {
            scratch.clear();
            // Formatting into a String cannot fail.
            let _ = fmt::Write::write_fmt(scratch, format_args!("{other}"));
            writer.write_field(scratch.as_bytes())
        }
        None => writer.write_field(""),
    }
}

/// Writes `value` as JSON (`null` when missing).
pub(crate) fn write_json_value(out: &mut Vec<u8>, value: Option<Wire<'_>>) {
    // Writing strings, numbers and booleans into a vector cannot fail.
    let _ = match value {
        Some(Wire::Text(text)) => serde_json::to_writer(&mut *out, text),
        Some(Wire::Integer(number)) => serde_json::to_writer(&mut *out, &number),
        Some(Wire::Number(number)) => serde_json::to_writer(&mut *out, &number),
        Some(Wire::Boolean(flag)) => serde_json::to_writer(&mut *out, &flag),
        None => out.write_all(b"null").map_err(serde_json::Error::io),
    };
}

/// Appends `,"key":` to a JSON object being written.
pub(crate) fn write_json_key(out: &mut Vec<u8>, key: &str) {
    out.push(b',');
    // Writing a string into a vector cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dataset::shipped_german_credit;
    use credit_core::schema::german_credit;

    fn layout() -> Layout {
        Layout::new(Arc::new(german_credit()))
    }

    #[test]
    fn a_written_json_value_is_the_wire_forms_json() {
        let layout = layout();
        for row in shipped_german_credit().iter().take(50) {
            for (field, value) in layout.schema().fields().iter().zip(row.applicant.values()) {
                let expected = wire(field, *value).map(|wire| serde_json::to_value(wire).unwrap());
                let written = wire(field, *value).map(|wire| {
                    let mut out = Vec::new();
                    write_json_value(&mut out, Some(wire));
                    serde_json::from_slice::<serde_json::Value>(&out).unwrap()
                });
                assert_eq!(written, expected, "{}", field.name);
            }
        }
    }

    #[test]
    fn categories_are_spelled_as_in_the_data_set_file() {
        let layout = layout();
        let position = layout.schema().position("checking_account").unwrap();
        let field = &layout.schema().fields()[position];
        assert_eq!(
            data_spelling(field, AttributeValue::Categorical(0)),
            Some(Wire::Text("... < 0 DM"))
        );
        assert_eq!(
            wire(field, AttributeValue::Categorical(0)),
            Some(Wire::Text("below_0_dm"))
        );
    }

    #[test]
    fn outcomes_read_as_the_label_field_says() {
        let layout = layout();
        let outcome = layout.outcome().unwrap();
        assert_eq!(outcome.parse("bad").unwrap(), Some(true));
        assert_eq!(outcome.parse("good").unwrap(), Some(false));
        assert_eq!(outcome.parse("1").unwrap(), Some(true));
        assert_eq!(outcome.parse(" ").unwrap(), None);
        assert_eq!(outcome.parse("maybe").unwrap_err().field, "creditability");
        assert_eq!((outcome.text(true), outcome.text(false)), ("bad", "good"));
        let error = outcome
            .parse_json(Some(&serde_json::json!([1])))
            .unwrap_err();
        assert_eq!(error.field, "creditability");
    }

    #[test]
    fn the_id_column_is_the_key_fields_else_application_id() {
        assert_eq!(layout().id_column(), "application_id");
        let schema = Schema::parse(
            r#"
            name = "x"
            [[field]]
            name = "loan_id"
            label = "Loan"
            column = "LoanRef"
            type = "text"
            max_length = 4
            role = "key"
            [[field]]
            name = "income"
            label = "Income"
            type = "number"
            min = 0
            max = 1e6
            "#,
            "test.toml",
        )
        .unwrap();
        let layout = Layout::new(Arc::new(schema));
        assert_eq!(layout.id_column(), "LoanRef");
        assert_eq!(layout.id_position(&["income", "loan_id"]), Some(1));
        assert_eq!(layout.id_position(&["application_id", "income"]), Some(0));
        assert!(layout.outcome().is_none());
        assert_eq!(
            layout.check_id("LoanRef", "12345").unwrap_err().kind,
            RecordErrorKind::Identifier
        );
    }
}

//! The published JSON Schema and the decoder agree: for a corpus generated from each schema
//! (every bound and just beyond it, every category and an unknown one, each type error, each
//! field missing, null and an extra field), the reference validator and [`decode`] accept and
//! refuse the same records.

use credit_core::decode::decode;
use credit_core::schema::{json_schema, FieldKind, Schema};
use serde_json::{json, Map, Value};
use std::path::Path;

fn shipped(name: &str) -> Schema {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas")).join(name);
    Schema::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

/// A schema with every kind of field, required and optional.
fn every_kind() -> Schema {
    Schema::parse(
        r#"
        name = "every-kind"
        [[field]]
        name = "income"
        label = "Income"
        type = "number"
        min = 0
        max = 2.5e6
        [[field]]
        name = "exposure"
        label = "Exposure"
        type = "number"
        min = 0
        max = 1e30
        required = false
        [[field]]
        name = "utilisation"
        label = "Revolving utilisation"
        type = "number"
        min = -1.5
        max = 1.5
        required = false
        [[field]]
        name = "months"
        label = "Months employed"
        type = "integer"
        min = -10
        max = 600
        required = false
        [[field]]
        name = "homeowner"
        label = "Home owner"
        type = "boolean"
        [[field]]
        name = "flagged"
        label = "Flagged"
        type = "boolean"
        required = false
        [[field]]
        name = "purpose"
        label = "Purpose"
        type = "category"
        categories = [{ value = "car", label = "Car" }, { value = "home", label = "Home" }]
        [[field]]
        name = "region"
        label = "Region"
        type = "category"
        role = "protected"
        required = false
        categories = [{ value = "north", label = "North" }, { value = "south", label = "South" }]
        [[field]]
        name = "defaulted"
        label = "Defaulted"
        type = "category"
        role = "label"
        bad = "yes"
        categories = [{ value = "yes", label = "Yes" }, { value = "no", label = "No" }]
        "#,
        "every-kind.toml",
    )
    .unwrap_or_else(|error| panic!("{error}"))
}

/// One valid record: each field at its minimum, its first category, `false`.
fn base(schema: &Schema) -> Map<String, Value> {
    schema
        .fields()
        .iter()
        .filter(|field| field.is_wire())
        .map(|field| {
            let value = match &field.kind {
                FieldKind::Category { categories } => json!(categories[0].value),
                FieldKind::Integer { min, .. } => json!(min),
                FieldKind::Number { min, .. } => json!(min),
                FieldKind::Boolean => json!(false),
                FieldKind::Text { .. } => json!("x"),
            };
            (field.name.clone(), value)
        })
        .collect()
}

/// Raw JSON texts to put in a field of this kind: valid ones and every way to be wrong.
fn values(kind: &FieldKind) -> Vec<String> {
    let mut raw: Vec<String> = [
        "null", "true", "false", "0", "-1", "2.5", "\"\"", "\"x\"", "[]", "{}", "[1]", "1e400",
    ]
    .map(str::to_owned)
    .to_vec();
    match kind {
        FieldKind::Category { categories } => {
            for category in categories {
                raw.push(format!("\"{}\"", category.value));
                raw.push(format!("\"{}\"", category.value.to_uppercase()));
                raw.push(format!("[\"{}\"]", category.value));
                raw.push(format!("{{\"{}\": null}}", category.value));
            }
        }
        FieldKind::Integer { min, max } => {
            for value in [*min, *max, min - 1, max + 1, (min + max) / 2] {
                raw.push(value.to_string());
                raw.push(format!("{value}.0"));
                raw.push(format!("\"{value}\""));
            }
            raw.push(format!("{}.5", min));
            raw.push("1e1".to_owned());
            raw.push("123456789012345678901234567890".to_owned());
        }
        FieldKind::Number { min, max } => {
            let step = (max - min).abs().max(1.0) * 1e-3;
            for value in [*min, *max, min - step, max + step, (min + max) / 2.0] {
                raw.push(json!(value).to_string());
                raw.push(format!("\"{value}\""));
            }
            raw.push("-1e400".to_owned());
            raw.push("123456789012345678901234567890".to_owned());
            raw.push("-123456789012345678901234567890".to_owned());
        }
        FieldKind::Boolean => raw.extend(["\"true\"", "1", "[true]"].map(str::to_owned)),
        FieldKind::Text { .. } => {}
    }
    raw
}

/// Every record of the corpus, as bytes, with a description.
fn corpus(schema: &Schema) -> Vec<(String, Vec<u8>)> {
    let base = base(schema);
    let text = |object: &Map<String, Value>| serde_json::to_string(object).unwrap_or_default();
    let mut cases = vec![("the base record".to_owned(), text(&base).into_bytes())];
    for field in schema.fields().iter().filter(|field| field.is_wire()) {
        let name = &field.name;
        for raw in values(&field.kind) {
            let mut object = base.clone();
            object.insert(name.clone(), json!("\u{0}placeholder"));
            let record = text(&object).replace("\"\\u0000placeholder\"", &raw);
            cases.push((format!("{name} = {raw}"), record.into_bytes()));
        }
        let mut without = base.clone();
        without.remove(name);
        cases.push((format!("{name} missing"), text(&without).into_bytes()));
    }
    let mut extra = base.clone();
    extra.insert("not_in_the_schema".to_owned(), json!({"any": [1, "thing"]}));
    cases.push(("an extra field".to_owned(), text(&extra).into_bytes()));
    for non_field in schema.fields().iter().filter(|field| !field.is_wire()) {
        let mut object = base.clone();
        object.insert(non_field.name.clone(), json!("anything"));
        cases.push((
            format!("the non-wire field {}", non_field.name),
            text(&object).into_bytes(),
        ));
    }
    for (what, raw) in [
        ("an empty object", "{}"),
        ("an array", "[]"),
        ("null", "null"),
        ("a number", "7"),
    ] {
        cases.push((what.to_owned(), raw.as_bytes().to_vec()));
    }
    cases
}

/// Judges every record of `schema`'s corpus by `document` and by the decoder; returns the
/// records, how many the validator accepted, and the disagreements.
fn judge(schema: &Schema, document: &Value) -> (usize, usize, Vec<String>) {
    assert!(
        jsonschema::meta::is_valid(document),
        "the document is not a valid JSON Schema"
    );
    let validator =
        jsonschema::draft202012::new(document).unwrap_or_else(|error| panic!("{error}"));
    let mut disagreements = Vec::new();
    let mut accepted = 0;
    let cases = corpus(schema);
    for (what, bytes) in &cases {
        let by_validator = serde_json::from_slice::<Value>(bytes)
            .map(|value| validator.is_valid(&value))
            .unwrap_or(false);
        let by_decoder = decode(schema, Some(b"app-1"), Some(bytes));
        if by_validator != by_decoder.is_ok() {
            disagreements.push(format!(
                "{what}: validator {}, decoder {:?}",
                if by_validator { "accepts" } else { "refuses" },
                by_decoder.map(|_| "accepts")
            ));
        }
        accepted += usize::from(by_validator);
    }
    (cases.len(), accepted, disagreements)
}

/// Checks every record of the corpus against the generated document; returns (records,
/// accepted).
fn agree(schema: &Schema) -> (usize, usize) {
    let (records, accepted, disagreements) = judge(schema, &json_schema::generate(schema));
    assert!(
        disagreements.is_empty(),
        "{} of {} records judged differently:\n{}",
        disagreements.len(),
        records,
        disagreements.join("\n")
    );
    (records, accepted)
}

#[test]
fn the_json_schema_and_the_decoder_agree_on_every_german_credit_record_of_the_corpus() {
    let (records, accepted) = agree(&shipped("german-credit.toml"));
    assert!(
        records > 500 && accepted > 100,
        "{records} records, {accepted} accepted"
    );
}

#[test]
fn the_json_schema_and_the_decoder_agree_on_every_retail_loan_record_of_the_corpus() {
    let (records, accepted) = agree(&shipped("retail-loan.toml"));
    assert!(
        records > 200 && accepted > 40,
        "{records} records, {accepted} accepted"
    );
}

#[test]
fn the_json_schema_and_the_decoder_agree_on_optional_numbers_booleans_and_protected_fields() {
    let (records, accepted) = agree(&every_kind());
    assert!(
        records > 150 && accepted > 30,
        "{records} records, {accepted} accepted"
    );
}

#[test]
fn a_document_one_bound_off_is_caught_by_the_corpus() {
    let schema = shipped("german-credit.toml");
    let mut document = json_schema::generate(&schema);
    document["properties"]["duration_months"]["maximum"] = json!(119);
    let (_, _, disagreements) = judge(&schema, &document);
    assert!(
        !disagreements.is_empty()
            && disagreements
                .iter()
                .all(|d| d.starts_with("duration_months = 120")),
        "{disagreements:?}"
    );
}

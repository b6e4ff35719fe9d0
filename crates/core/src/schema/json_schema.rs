//! The schema as a JSON Schema (draft 2020-12), for producers to validate records before they
//! send them. It says what the decoder accepts: the agreement test in `tests/json_schema.rs`
//! holds the two together on a corpus generated from the schema.
//!
//! What JSON Schema cannot say, the decoder still refuses: a field given twice, a record over
//! [`crate::applicant::MAX_RECORD_BYTES`], text that is not valid JSON.

use super::{FieldKind, Schema};
use serde_json::{json, Map, Value};

/// The dialect the document declares.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The JSON Schema of the records `schema` accepts.
pub fn generate(schema: &Schema) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in schema.fields().iter().filter(|field| field.is_wire()) {
        let mut property = match &field.kind {
            FieldKind::Category { categories } => {
                let mut choices: Vec<Value> = categories
                    .iter()
                    .map(|category| json!({"const": category.value, "title": category.label}))
                    .collect();
                if !field.required {
                    choices.push(json!({"const": null, "title": "Not given"}));
                }
                json!({ "oneOf": choices })
            }
            FieldKind::Integer { min, max } => {
                json!({"type": nullable("integer", field.required), "minimum": min, "maximum": max})
            }
            FieldKind::Number { min, max } => {
                json!({"type": nullable("number", field.required), "minimum": min, "maximum": max})
            }
            FieldKind::Boolean => json!({"type": nullable("boolean", field.required)}),
            FieldKind::Text { max_length } => {
                json!({"type": nullable("string", field.required), "maxLength": max_length})
            }
        };
        if let Value::Object(object) = &mut property {
            object.insert("title".into(), Value::String(field.label.clone()));
        }
        properties.insert(field.name.clone(), property);
        if field.required {
            required.push(Value::String(field.name.clone()));
        }
    }
    json!({
        "$schema": DIALECT,
        "$id": format!("urn:credit-scoring:applicant:{}:{}", schema.name(), &schema.fingerprint()[..12]),
        "title": format!("{} applicant", schema.name()),
        "description": schema.description(),
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

/// `type`, or `[type, "null"]` for an optional field (null means not given).
fn nullable(kind: &str, required: bool) -> Value {
    if required {
        Value::String(kind.to_owned())
    } else {
        json!([kind, "null"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_document_declares_draft_2020_12_and_every_wire_field() {
        let schema = crate::schema::german_credit();
        let document = generate(&schema);
        assert_eq!(document["$schema"], DIALECT);
        assert_eq!(document["properties"].as_object().unwrap().len(), 20);
        assert!(document["properties"].get("creditability").is_none());
        assert_eq!(document["required"].as_array().unwrap().len(), 20);
        assert_eq!(document["properties"]["age_years"]["minimum"], 18);
        assert_eq!(
            document["properties"]["purpose"]["oneOf"][0],
            json!({"const": "car_new", "title": "New car"})
        );
    }
}

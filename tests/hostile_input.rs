//! A corpus of hostile records through the worker's decoder: every one is rejected with the
//! reason and the field a dead letter carries, nothing panics, nothing is read past the size
//! limit, and the valid record between them still decodes.
//!
//! The end-to-end path (these rejections reaching the dead-letter topic with their headers
//! while neighbours are decided) is `scenarios::invalid_records_are_dead_lettered`, run on the
//! mock cluster and on Tansu; `fuzz/` (run by `scripts/fuzz.sh`) throws random bytes at the
//! same decoder.

use credit_core::applicant::MAX_RECORD_BYTES;
use credit_core::decode::{decode, RejectReason};
use credit_core::schema::Schema;
use credit_testkit::scenarios::shipped_schema;
use serde_json::{json, Value};
use std::sync::LazyLock;

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| shipped_schema().expect("the shipped schema"));

fn valid() -> Value {
    let rows = credit_core::dataset::shipped_german_credit();
    serde_json::from_slice(&rows[0].applicant.to_json(&SCHEMA)).expect("valid JSON")
}

fn with(field: &str, value: Value) -> Vec<u8> {
    let mut record = valid();
    record[field] = value;
    serde_json::to_vec(&record).expect("JSON")
}

fn without(field: &str) -> Vec<u8> {
    let mut record = valid();
    record.as_object_mut().expect("object").remove(field);
    serde_json::to_vec(&record).expect("JSON")
}

/// One hostile record: what it is, its key and payload, and the acceptable verdicts.
struct Case {
    name: &'static str,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    reasons: &'static [RejectReason],
    field: &'static str,
}

fn case(
    name: &'static str,
    payload: Vec<u8>,
    reasons: &'static [RejectReason],
    field: &'static str,
) -> Case {
    Case {
        name,
        key: Some(b"app-1".to_vec()),
        payload: Some(payload),
        reasons,
        field,
    }
}

fn corpus() -> Vec<Case> {
    use RejectReason::*;
    let json = serde_json::to_vec(&valid()).expect("JSON");
    let text = String::from_utf8(json.clone()).expect("UTF-8");
    let mut non_utf8 = json.clone();
    let at = text.find("\"own\"").expect("housing value") + 1;
    non_utf8[at] = 0xFF;
    let mut oversize = json.clone();
    oversize.truncate(oversize.len() - 1);
    oversize.extend_from_slice(b",\"padding\":\"");
    oversize.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES));
    oversize.extend_from_slice(b"\"}");
    // Deeply nested, inside the size limit: skipped without recursion, then fields are missing.
    let deep = format!("{{\"padding\":{}{}}}", "[".repeat(8_000), "]".repeat(8_000)).into_bytes();
    let duplicate = text.replacen("{", "{\"age_years\":30,", 1).into_bytes();
    vec![
        case(
            "truncated JSON",
            json[..json.len() / 2].to_vec(),
            &[InvalidJson],
            "record",
        ),
        case(
            "trailing garbage",
            [json.as_slice(), b" x"].concat(),
            &[InvalidJson],
            "record",
        ),
        case(
            "byte-order mark",
            [b"\xEF\xBB\xBF".as_slice(), &json].concat(),
            &[InvalidJson],
            "record",
        ),
        case(
            "not JSON at all",
            b"<xml/>".to_vec(),
            &[InvalidJson],
            "record",
        ),
        case(
            "JSON null",
            b"null".to_vec(),
            &[WrongType, InvalidJson],
            "record",
        ),
        case(
            "an array",
            b"[1,2,3]".to_vec(),
            &[WrongType, InvalidJson],
            "record",
        ),
        case(
            "8,000 nested arrays in an extra field, no stack overflow",
            deep,
            &[MissingField],
            "checking_account",
        ),
        case(
            "empty object",
            b"{}".to_vec(),
            &[MissingField],
            "checking_account",
        ),
        case(
            "missing field",
            without("age_years"),
            &[MissingField],
            "age_years",
        ),
        case(
            "null number",
            with("duration_months", Value::Null),
            &[WrongType],
            "duration_months",
        ),
        case(
            "null category",
            with("housing", Value::Null),
            &[WrongType, UnknownCategory],
            "housing",
        ),
        case(
            "number as string",
            with("age_years", json!("35")),
            &[WrongType],
            "age_years",
        ),
        case(
            "NaN string",
            with("age_years", json!("NaN")),
            &[WrongType],
            "age_years",
        ),
        case(
            "fraction",
            with("duration_months", json!(12.5)),
            &[WrongType],
            "duration_months",
        ),
        case(
            "negative",
            with("age_years", json!(-5)),
            &[WrongType, OutOfRange],
            "age_years",
        ),
        case(
            "zero duration",
            with("duration_months", json!(0)),
            &[OutOfRange],
            "duration_months",
        ),
        case(
            "huge float",
            with("credit_amount_dm", json!(1e300)),
            &[WrongType, OutOfRange],
            "credit_amount_dm",
        ),
        case(
            "integer beyond 64 bits",
            text.replacen(
                "\"credit_amount_dm\":",
                "\"credit_amount_dm\":123456789012345678901234567890,\"x\":",
                1,
            )
            .into_bytes(),
            &[WrongType, OutOfRange, InvalidJson],
            "credit_amount_dm",
        ),
        case(
            "above range",
            with("age_years", json!(900)),
            &[OutOfRange],
            "age_years",
        ),
        case(
            "boolean number",
            with("dependents", json!(true)),
            &[WrongType],
            "dependents",
        ),
        case(
            "unknown category",
            with("purpose", json!("spaceship")),
            &[UnknownCategory],
            "purpose",
        ),
        case(
            "category in capitals",
            with("housing", json!("OWN")),
            &[UnknownCategory],
            "housing",
        ),
        case(
            "data set label instead of wire value",
            with("checking_account", json!("... < 0 DM")),
            &[UnknownCategory],
            "checking_account",
        ),
        case(
            "10,000-character category",
            with("purpose", json!("x".repeat(10_000))),
            &[UnknownCategory],
            "purpose",
        ),
        case(
            "category as number",
            with("telephone", json!(1)),
            &[WrongType, UnknownCategory],
            "telephone",
        ),
        case(
            "object as category",
            with("job", json!({"skilled": true})),
            &[WrongType, UnknownCategory],
            "job",
        ),
        case(
            "object whose only key is a job category",
            with("job", json!({"skilled": null})),
            &[WrongType],
            "job",
        ),
        case(
            "object whose only key is a housing category",
            with("housing", json!({"own": null})),
            &[WrongType],
            "housing",
        ),
        case(
            "object whose only key is a foreign-worker category",
            with("foreign_worker", json!({"yes": null})),
            &[WrongType],
            "foreign_worker",
        ),
        case(
            "array holding a category",
            with("purpose", json!(["car_new"])),
            &[WrongType],
            "purpose",
        ),
        case(
            "cut off inside a categorical value",
            json[..text.find("\"own\"").expect("housing value") + 2].to_vec(),
            &[InvalidJson],
            "record",
        ),
        case(
            "cut off at a categorical value's opening quote",
            json[..text.find("\"own\"").expect("housing value") + 1].to_vec(),
            &[InvalidJson],
            "record",
        ),
        case(
            "raw control character in a category",
            text.replacen("\"own\"", "\"o\u{7}wn\"", 1).into_bytes(),
            &[InvalidJson],
            "record",
        ),
        case(
            "raw line feed in a category",
            text.replacen("\"own\"", "\"own\n\"", 1).into_bytes(),
            &[InvalidJson],
            "record",
        ),
        case(
            "lone leading surrogate escape in a category",
            text.replacen("\"own\"", "\"\\ud800\"", 1).into_bytes(),
            &[InvalidJson],
            "record",
        ),
        case(
            "lone trailing surrogate escape in a category",
            text.replacen("\"own\"", "\"own\\udc00\"", 1).into_bytes(),
            &[InvalidJson],
            "record",
        ),
        case(
            "lone surrogate escape in a field name",
            text.replacen("\"housing\"", "\"housing\\ud800\"", 1)
                .into_bytes(),
            &[InvalidJson],
            "record",
        ),
        case(
            "number beyond any float",
            text.replacen(
                "\"credit_amount_dm\":",
                "\"credit_amount_dm\":1e400,\"x\":",
                1,
            )
            .into_bytes(),
            &[WrongType, OutOfRange],
            "credit_amount_dm",
        ),
        case("duplicate field", duplicate, &[InvalidJson], "record"),
        case(
            "non-UTF-8 byte in a string",
            non_utf8,
            &[NotUtf8, InvalidJson],
            "record",
        ),
        case("over the size limit", oversize, &[Oversize], "record"),
        Case {
            name: "no payload (tombstone)",
            key: Some(b"app-1".to_vec()),
            payload: None,
            reasons: &[EmptyPayload],
            field: "record",
        },
        Case {
            name: "empty payload",
            key: Some(b"app-1".to_vec()),
            payload: Some(Vec::new()),
            reasons: &[EmptyPayload],
            field: "record",
        },
        Case {
            name: "no key",
            key: None,
            payload: Some(json.clone()),
            reasons: &[MissingKey],
            field: "key",
        },
        Case {
            name: "blank key",
            key: Some(b"   ".to_vec()),
            payload: Some(json.clone()),
            reasons: &[MissingKey, InvalidKey],
            field: "key",
        },
        Case {
            name: "non-UTF-8 key",
            key: Some(vec![0xC3, 0x28]),
            payload: Some(json.clone()),
            reasons: &[InvalidKey],
            field: "key",
        },
        Case {
            name: "100 KiB key",
            key: Some(vec![b'k'; 100 * 1024]),
            payload: Some(json),
            reasons: &[InvalidKey],
            field: "key",
        },
    ]
}

#[test]
fn every_hostile_record_is_rejected_with_a_reason_and_the_field() {
    let mut failures = Vec::new();
    for case in corpus() {
        match decode(&SCHEMA, case.key.as_deref(), case.payload.as_deref()) {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(rejection) => {
                if !case.reasons.contains(&rejection.reason) || rejection.field != case.field {
                    failures.push(format!(
                        "{}: got {} on `{}` ({}), expected one of {:?} on `{}`",
                        case.name,
                        rejection.reason,
                        rejection.field,
                        rejection.message,
                        case.reasons,
                        case.field
                    ));
                }
                // The explanation travels in a dead-letter header and a log line: present, short.
                if rejection.message.is_empty() || rejection.message.len() > 1_000 {
                    failures.push(format!(
                        "{}: the explanation must be present and short, not {} bytes",
                        case.name,
                        rejection.message.len()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_valid_record_the_corpus_is_built_from_decodes() {
    let json = serde_json::to_vec(&valid()).expect("JSON");
    let (id, _) = decode(&SCHEMA, Some(b"app-1"), Some(&json)).expect("valid");
    assert_eq!(id, "app-1");
}

#[test]
fn extra_fields_are_ignored_so_upstream_can_add_fields_without_breaking_scoring() {
    let json = with("new_upstream_field", json!({"anything": [1, 2, 3]}));
    assert!(decode(&SCHEMA, Some(b"app-1"), Some(&json)).is_ok());
}

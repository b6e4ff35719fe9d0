//! Fuzzes the worker's record decoder (key + payload → applicant or a rejection), under both
//! shipped schemas (German Credit; the retail loan, with optional fields, numbers, booleans).
//!
//! Input layout: the first byte is the key's length (255: no key), then the key, then the
//! payload (empty: no payload). Properties checked on every input:
//! - no panic, whatever the bytes;
//! - a rejection names a field and explains itself;
//! - the decoder's fast path agrees with the field-tracking decoder (`Applicant::from_json`):
//!   a payload is accepted by one exactly when it is accepted by the other, with the same
//!   applicant;
//! - an accepted applicant survives a JSON round trip unchanged.
#![no_main]

use credit_core::applicant::Applicant;
use credit_core::decode::decode;
use credit_core::schema::Schema;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static SCHEMAS: LazyLock<[Schema; 2]> = LazyLock::new(|| {
    let parse = |text: &str, name: &str| {
        Schema::parse(text, name).unwrap_or_else(|error| panic!("{error}"))
    };
    [
        parse(include_str!("../../schemas/german-credit.toml"), "german-credit.toml"),
        parse(include_str!("../../schemas/retail-loan.toml"), "retail-loan.toml"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&length, rest)) = data.split_first() else {
        return;
    };
    let (key, payload) = if length == u8::MAX {
        (None, rest)
    } else {
        let length = usize::from(length).min(rest.len());
        (Some(&rest[..length]), &rest[length..])
    };
    let payload = (!payload.is_empty()).then_some(payload);
    for schema in SCHEMAS.iter() {
        check(schema, key, payload);
    }
});

fn check(schema: &Schema, key: Option<&[u8]>, payload: Option<&[u8]>) {
    match decode(schema, key, payload) {
        Ok((id, applicant)) => {
            assert_eq!(Some(id.as_bytes()), key);
            let full = Applicant::from_json(schema, payload.expect("accepted with a payload"))
                .expect("the fast path accepted what the full decoder rejects");
            assert_eq!(full, applicant, "the two decoders disagree");
            let again =
                Applicant::from_json(schema, &applicant.to_json(schema)).expect("round trip");
            assert_eq!(again, applicant, "JSON round trip changed the applicant");
        }
        Err(rejection) => {
            assert!(!rejection.field.is_empty(), "{rejection:?}");
            assert!(!rejection.message.is_empty(), "{rejection:?}");
            // The key was accepted: the payload was the problem, and the full decoder agrees.
            if let (Some(payload), false) = (payload, rejection.field == "key") {
                assert!(
                    Applicant::from_json(schema, payload).is_err(),
                    "the fast path rejected what the full decoder accepts: {rejection:?}"
                );
            }
        }
    }
}

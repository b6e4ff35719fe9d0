//! Headers of the worker's outputs.
//!
//! Outputs carry the input's headers (tracing ids, tenant tags: whatever the producer attached
//! stays attached) followed by the worker's own. Kafka headers are a list, not a map: if the
//! input already had a header of the same name, both are present and the worker's comes last,
//! which is the one "last value" readers (and [`last_value`]) see.

use crate::pipeline::batch::Source;
use crate::pipeline::decode::Rejection;
use rdkafka::message::{Header, Headers, OwnedHeaders};

/// On decisions: the version of the model that made the decision.
pub const MODEL_VERSION: &str = "model-version";
/// On dead letters: the field that was wrong (`duration_months`, `record`, `key`).
pub const ERROR_FIELD: &str = "error-field";
/// On dead letters: the reason code (`out_of_range`...; see `RejectReason`).
pub const ERROR_REASON: &str = "error-reason";
/// On dead letters: the human explanation.
pub const ERROR_MESSAGE: &str = "error-message";
/// On dead letters: where the record came from.
pub const SOURCE_TOPIC: &str = "source-topic";
pub const SOURCE_PARTITION: &str = "source-partition";
pub const SOURCE_OFFSET: &str = "source-offset";

fn with(headers: OwnedHeaders, key: &str, value: &[u8]) -> OwnedHeaders {
    headers.insert(Header {
        key,
        value: Some(value),
    })
}

/// The input's headers (or none) plus `model-version`.
pub fn decision_headers(input: Option<OwnedHeaders>, model_version: &str) -> OwnedHeaders {
    let headers = input.unwrap_or_else(|| OwnedHeaders::new_with_capacity(1));
    with(headers, MODEL_VERSION, model_version.as_bytes())
}

/// The input's headers (or none) plus the error and source headers.
pub fn dead_letter_headers(
    input: Option<OwnedHeaders>,
    rejection: &Rejection,
    source_topic: &str,
    source: &Source,
) -> OwnedHeaders {
    let headers = input.unwrap_or_else(|| OwnedHeaders::new_with_capacity(6));
    let headers = with(headers, ERROR_FIELD, rejection.field.as_bytes());
    let headers = with(headers, ERROR_REASON, rejection.reason.as_str().as_bytes());
    let headers = with(headers, ERROR_MESSAGE, rejection.message.as_bytes());
    let headers = with(headers, SOURCE_TOPIC, source_topic.as_bytes());
    let headers = with(
        headers,
        SOURCE_PARTITION,
        source.partition.to_string().as_bytes(),
    );
    with(headers, SOURCE_OFFSET, source.offset.to_string().as_bytes())
}

/// The value of the last header named `key`, if any.
pub fn last_value<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .filter(|header| header.key == key)
        .last()
        .and_then(|header| header.value)
}

/// The value of the last header named `key` as UTF-8 text, if any.
pub fn last_text<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a str> {
    last_value(headers, key).and_then(|value| std::str::from_utf8(value).ok())
}

/// All headers as `(key, value)` pairs, for comparisons in tests and logs.
pub fn to_pairs<H: Headers>(headers: &H) -> Vec<(String, Option<Vec<u8>>)> {
    headers
        .iter()
        .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::decode::RejectReason;

    fn input() -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header {
                key: "trace-id",
                value: Some("abc"),
            })
            .insert(Header::<&str> {
                key: "empty",
                value: None,
            })
    }

    #[test]
    fn decisions_keep_input_headers_and_add_the_model_version() {
        let headers = decision_headers(Some(input()), "lstm-1");
        assert_eq!(
            to_pairs(&headers),
            vec![
                ("trace-id".to_owned(), Some(b"abc".to_vec())),
                ("empty".to_owned(), None),
                ("model-version".to_owned(), Some(b"lstm-1".to_vec())),
            ]
        );
        assert_eq!(
            last_text(&decision_headers(None, "v"), MODEL_VERSION),
            Some("v")
        );
    }

    #[test]
    fn dead_letters_carry_error_and_source_headers() {
        let rejection = Rejection::new(RejectReason::OutOfRange, "age_years", "value 900 ...");
        let source = Source {
            partition: 2,
            offset: 41,
            timestamp_ms: None,
            consumed_at: std::time::Instant::now(),
        };
        let headers = dead_letter_headers(Some(input()), &rejection, "in", &source);
        assert_eq!(last_text(&headers, "trace-id"), Some("abc"));
        assert_eq!(last_text(&headers, ERROR_FIELD), Some("age_years"));
        assert_eq!(last_text(&headers, ERROR_REASON), Some("out_of_range"));
        assert_eq!(last_text(&headers, ERROR_MESSAGE), Some("value 900 ..."));
        assert_eq!(last_text(&headers, SOURCE_TOPIC), Some("in"));
        assert_eq!(last_text(&headers, SOURCE_PARTITION), Some("2"));
        assert_eq!(last_text(&headers, SOURCE_OFFSET), Some("41"));
    }

    #[test]
    fn last_value_prefers_the_worker_header_over_an_input_one() {
        let spoofed = OwnedHeaders::new().insert(Header {
            key: MODEL_VERSION,
            value: Some("forged"),
        });
        let headers = decision_headers(Some(spoofed), "real");
        assert_eq!(last_text(&headers, MODEL_VERSION), Some("real"));
        assert_eq!(last_value(&headers, "absent"), None);
    }
}

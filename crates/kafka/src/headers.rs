//! Headers of the worker's outputs.
//!
//! Outputs carry the input's headers (tracing ids, tenant tags: whatever the producer attached
//! stays attached) followed by the worker's own. Kafka headers are a list, not a map: if the
//! input already had a header of the same name, both are present and the worker's comes last,
//! which is the one "last value" readers (and [`last_value`]) see.
//!
//! What an output copies of its input is bounded ([`crate::bounds`]); the headers below
//! say when it was cut. The worker's own header values are bounded too: an error message
//! quotes the record, so it is cut to [`MAX_OWN_VALUE_BYTES`].

use credit_core::decode::Rejection;
use rdkafka::bindings::{rd_kafka_header_cnt, rd_kafka_header_get_all, rd_kafka_headers_t};
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use std::ffi::CStr;

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
/// On dead letters: `true` when the key, payload or headers stored are a prefix of the
/// original's (each is cut only if the three together exceed `kafka.max_copied_bytes`).
pub const ERROR_PAYLOAD_TRUNCATED: &str = "error-payload-truncated";
/// On cut dead letters: the original key's size in bytes.
pub const ERROR_ORIGINAL_KEY_BYTES: &str = "error-original-key-bytes";
/// On cut dead letters: the original payload's size in bytes (absent when a dead letter
/// replaces an undelivered decision: the payload of a valid record is not kept).
pub const ERROR_ORIGINAL_PAYLOAD_BYTES: &str = "error-original-payload-bytes";
/// On cut dead letters: the original headers' size, names and values, in bytes.
pub const ERROR_ORIGINAL_HEADERS_BYTES: &str = "error-original-headers-bytes";
/// On decisions: `true` when the input's headers were cut to `kafka.max_copied_bytes`.
pub const HEADERS_TRUNCATED: &str = "headers-truncated";
/// On decisions with cut headers: the original headers' size, names and values, in bytes.
pub const ORIGINAL_HEADERS_BYTES: &str = "original-headers-bytes";

/// Every header the worker writes. A copy of input headers leaves them out when an output is
/// rebuilt, so the rebuilt one carries only its own.
pub(crate) const WORKER_HEADERS: [&str; 13] = [
    MODEL_VERSION,
    ERROR_FIELD,
    ERROR_REASON,
    ERROR_MESSAGE,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    ERROR_PAYLOAD_TRUNCATED,
    ERROR_ORIGINAL_KEY_BYTES,
    ERROR_ORIGINAL_PAYLOAD_BYTES,
    ERROR_ORIGINAL_HEADERS_BYTES,
    HEADERS_TRUNCATED,
    ORIGINAL_HEADERS_BYTES,
];

/// The longest value of a header the worker writes from the record's content (the error
/// message and field), in bytes.
pub(crate) const MAX_OWN_VALUE_BYTES: usize = 1024;

/// Whether `name` is one of [`WORKER_HEADERS`].
pub fn is_worker_header(name: &[u8]) -> bool {
    WORKER_HEADERS.iter().any(|own| own.as_bytes() == name)
}

/// One header as librdkafka holds it: the name as bytes, since producers may send any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// The headers in order, names as bytes. rust-rdkafka's [`Headers::try_get`] panics on a name
/// that is not UTF-8, which any producer can send, so the worker reads its inputs' headers
/// through librdkafka's own accessor instead.
pub fn raw_headers(headers: &BorrowedHeaders) -> impl Iterator<Item = RawHeader<'_>> {
    let native = std::ptr::from_ref(headers).cast::<rd_kafka_headers_t>();
    // SAFETY: a `&BorrowedHeaders` is rust-rdkafka's view of a live `rd_kafka_headers_t` at the
    // same address (the crate reads it through exactly this cast), valid for the borrow.
    let count = unsafe { rd_kafka_header_cnt(native) };
    (0..count).filter_map(move |index| {
        let mut name = std::ptr::null();
        let mut value = std::ptr::null();
        let mut size = 0;
        // SAFETY: as above; `index` is below the count, and librdkafka only writes the three
        // out-pointers.
        let error =
            unsafe { rd_kafka_header_get_all(native, index, &mut name, &mut value, &mut size) };
        if error != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            || name.is_null()
        {
            return None;
        }
        // SAFETY: librdkafka keeps each name NUL-terminated and each value `size` bytes long
        // (or null for a null value), both owned by `headers` for the borrow.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
        Some(RawHeader { name, value })
    })
}

/// `text` cut to at most `limit` bytes, at a character boundary.
pub(crate) fn prefix_of(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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
    source_partition: i32,
    source_offset: i64,
) -> OwnedHeaders {
    let headers = input.unwrap_or_else(|| OwnedHeaders::new_with_capacity(6));
    let headers = with(
        headers,
        ERROR_FIELD,
        prefix_of(&rejection.field, MAX_OWN_VALUE_BYTES).as_bytes(),
    );
    let headers = with(headers, ERROR_REASON, rejection.reason.as_str().as_bytes());
    let headers = with(
        headers,
        ERROR_MESSAGE,
        prefix_of(&rejection.message, MAX_OWN_VALUE_BYTES).as_bytes(),
    );
    let headers = with(headers, SOURCE_TOPIC, source_topic.as_bytes());
    let headers = with(
        headers,
        SOURCE_PARTITION,
        source_partition.to_string().as_bytes(),
    );
    with(headers, SOURCE_OFFSET, source_offset.to_string().as_bytes())
}

/// How large a record was, for the headers of an output that holds only part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginalSizes {
    pub key: usize,
    /// `None` when unknown (see [`ERROR_ORIGINAL_PAYLOAD_BYTES`]).
    pub payload: Option<usize>,
    /// Names and values.
    pub headers: usize,
}

/// `headers` plus the headers of a dead letter holding a prefix of its record.
pub fn with_dead_letter_cut(headers: OwnedHeaders, original: &OriginalSizes) -> OwnedHeaders {
    let headers = with(headers, ERROR_PAYLOAD_TRUNCATED, b"true");
    let headers = with(
        headers,
        ERROR_ORIGINAL_KEY_BYTES,
        original.key.to_string().as_bytes(),
    );
    let headers = match original.payload {
        Some(bytes) => with(
            headers,
            ERROR_ORIGINAL_PAYLOAD_BYTES,
            bytes.to_string().as_bytes(),
        ),
        None => headers,
    };
    with(
        headers,
        ERROR_ORIGINAL_HEADERS_BYTES,
        original.headers.to_string().as_bytes(),
    )
}

/// `headers` plus the headers of a decision carrying a prefix of its input's headers.
pub(crate) fn with_decision_cut(headers: OwnedHeaders, original_bytes: usize) -> OwnedHeaders {
    let headers = with(headers, HEADERS_TRUNCATED, b"true");
    with(
        headers,
        ORIGINAL_HEADERS_BYTES,
        original_bytes.to_string().as_bytes(),
    )
}

/// The value of the last header named `key`, if any.
pub(crate) fn last_value<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a [u8]> {
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
    use credit_core::decode::RejectReason;

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
        let headers = dead_letter_headers(Some(input()), &rejection, "in", 2, 41);
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

//! How much of its input record an output copies, so that every output can be published.
//!
//! A dead letter carries the record's key, payload and headers, a decision the record's
//! headers. Kafka accepts records larger than the worker's producer may send
//! (`message.max.bytes`, 1,000,000 bytes by default), and an output copying all of such a
//! record was refused, stopping the worker, and again after every restart. So an output copies
//! at most `kafka.max_copied_bytes` of its input: a dead letter's key, payload and headers
//! share that budget, and each that does not fit its share is cut to a prefix; a decision's
//! copied headers get the whole budget. Headers of the output say what was cut and how large
//! it was ([`crate::headers`]); the `source-*` headers say where the whole record is.
//!
//! Cutting happens as the record is consumed, so a batch never holds more than the budget of
//! any record either.

use crate::headers::{self, raw_headers, OriginalSizes, RawHeader};
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};

/// What a header costs beyond its name and value: the record format's length fields
/// (librdkafka sizes them as varints of up to five bytes each).
pub(crate) const HEADER_FRAMING_BYTES: usize = 10;
/// What an output needs besides the copy of its input: the worker's own headers (each value at
/// most [`headers::MAX_OWN_VALUE_BYTES`]), a decision's payload and the record's framing.
/// `kafka.max_copied_bytes` plus this must stay within the producer's `message.max.bytes`.
pub const OUTPUT_OVERHEAD_BYTES: usize = 16 * 1024;
/// The smallest accepted `kafka.max_copied_bytes`: enough for a record's key and its
/// tracing headers.
pub const MIN_COPIED_BYTES: usize = 1024;
/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The size of a set of headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadersSize {
    /// Names and values, as reported in the `*-headers-bytes` headers.
    pub bytes: usize,
    /// With [`HEADER_FRAMING_BYTES`] per header: what they take of the budget.
    pub cost: usize,
}

fn cost(header: &RawHeader<'_>) -> usize {
    header.name.len() + header.value.map_or(0, <[u8]>::len) + HEADER_FRAMING_BYTES
}

/// The size of `headers`, leaving out those `skip` names.
pub fn measure(headers: &BorrowedHeaders, skip: impl Fn(&[u8]) -> bool) -> HeadersSize {
    raw_headers(headers)
        .filter(|header| !skip(header.name))
        .fold(HeadersSize::default(), |size, header| HeadersSize {
            bytes: size.bytes + header.name.len() + header.value.map_or(0, <[u8]>::len),
            cost: size.cost + cost(&header),
        })
}

/// Shares `budget` between parts of the given sizes: the smaller parts get all they need,
/// the larger split what is left evenly (so a huge payload does not crowd out a small key).
pub fn share<const N: usize>(sizes: [usize; N], budget: usize) -> [usize; N] {
    let mut order: [usize; N] = std::array::from_fn(|index| index);
    order.sort_by_key(|&index| sizes[index]);
    let mut shares = [0; N];
    let mut left = budget;
    for (position, &index) in order.iter().enumerate() {
        let share = sizes[index].min(left / (N - position));
        shares[index] = share;
        left -= share;
    }
    shares
}

/// The first `limit` bytes of `bytes`.
fn prefix(bytes: &[u8], limit: usize) -> &[u8] {
    &bytes[..bytes.len().min(limit)]
}

/// A prefix of `headers` (without those `skip` names) costing at most `budget`: whole headers
/// in order while they fit, then the next one with its value cut if its name fits. A name
/// that is not UTF-8 is copied lossily (rust-rdkafka writes names as text).
pub fn cut_headers(
    headers: &BorrowedHeaders,
    budget: usize,
    skip: impl Fn(&[u8]) -> bool,
) -> OwnedHeaders {
    let mut cut = OwnedHeaders::new();
    let mut left = budget;
    for header in raw_headers(headers).filter(|header| !skip(header.name)) {
        let name = String::from_utf8_lossy(header.name);
        // What is written, not what was read: each invalid byte of a name becomes 3 bytes.
        let written = RawHeader {
            name: name.as_bytes(),
            value: header.value,
        };
        let whole = cost(&written);
        if whole <= left {
            cut = cut.insert(Header {
                key: &name,
                value: header.value,
            });
            left -= whole;
            continue;
        }
        if name.len() + HEADER_FRAMING_BYTES < left {
            let room = left - name.len() - HEADER_FRAMING_BYTES;
            cut = cut.insert(Header {
                key: &name,
                value: header.value.map(|value| prefix(value, room)),
            });
        }
        break;
    }
    cut
}

/// What a dead letter holds of its record.
#[derive(Debug)]
pub struct DeadLetterCopy {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's headers, followed, when cut, by the headers saying so.
    pub headers: Option<OwnedHeaders>,
    /// The record's sizes, when something was cut.
    pub cut: Option<OriginalSizes>,
}

/// The key, payload and headers of a dead letter for a record: all of them if together they
/// cost at most `budget` bytes, else a share of it each ([`share`]) and the headers saying so.
pub fn dead_letter_copy(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    input_headers: Option<&BorrowedHeaders>,
    budget: usize,
) -> DeadLetterCopy {
    let key_bytes = key.map_or(0, <[u8]>::len);
    let payload_bytes = payload.map_or(0, <[u8]>::len);
    let size = input_headers.map_or_else(HeadersSize::default, |h| measure(h, |_| false));
    if key_bytes + payload_bytes + size.cost <= budget {
        return DeadLetterCopy {
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            headers: input_headers.map(BorrowedHeaders::detach),
            cut: None,
        };
    }
    let [key_share, payload_share, headers_share] =
        share([key_bytes, payload_bytes, size.cost], budget);
    let original = OriginalSizes {
        key: key_bytes,
        payload: Some(payload_bytes),
        headers: size.bytes,
    };
    let kept = input_headers.map_or_else(OwnedHeaders::new, |h| {
        cut_headers(h, headers_share, |_| false)
    });
    DeadLetterCopy {
        key: key.map(|key| prefix(key, key_share).to_vec()),
        payload: payload.map(|payload| prefix(payload, payload_share).to_vec()),
        headers: Some(headers::with_dead_letter_cut(kept, &original)),
        cut: Some(original),
    }
}

/// The headers a decision copies from its record: all of them if they cost at most `budget`
/// bytes, else a prefix and the headers saying so; `None` when it has none (a record without
/// headers may still come with an empty list, which is not worth a copy per record).
pub fn decision_headers_copy(
    input_headers: Option<&BorrowedHeaders>,
    budget: usize,
) -> Option<OwnedHeaders> {
    let input = input_headers.filter(|input| input.count() > 0)?;
    let size = measure(input, |_| false);
    if size.cost <= budget {
        return Some(input.detach());
    }
    Some(headers::with_decision_cut(
        cut_headers(input, budget, |_| false),
        size.bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::{last_text, to_pairs};

    fn headers(pairs: &[(&str, &[u8])]) -> OwnedHeaders {
        pairs.iter().fold(OwnedHeaders::new(), |h, (name, value)| {
            h.insert(Header {
                key: name,
                value: Some(*value),
            })
        })
    }

    #[test]
    fn shares_give_small_parts_all_they_need_and_split_the_rest() {
        assert_eq!(share([10, 1_000_000, 30], 1000), [10, 960, 30]);
        assert_eq!(share([1_000_000, 1_000_000, 0], 1000), [500, 500, 0]);
        assert_eq!(share([600, 600, 600], 900), [300, 300, 300]);
        assert_eq!(share([5, 6, 7], 1000), [5, 6, 7]);
        assert_eq!(share([5, 6, 7], 0), [0, 0, 0]);
        let shares = share([1_000_000, 3, 999_999], 100);
        assert!(shares.iter().sum::<usize>() <= 100, "{shares:?}");
        assert_eq!(shares[1], 3);
    }

    #[test]
    fn a_record_within_the_budget_is_copied_whole() {
        let input = headers(&[("trace-id", b"abc")]);
        let copy = dead_letter_copy(
            Some(b"key"),
            Some(b"payload"),
            Some(input.as_borrowed()),
            1024,
        );
        assert_eq!(copy.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(copy.payload.as_deref(), Some(&b"payload"[..]));
        assert!(copy.cut.is_none());
        let copied = copy.headers.unwrap();
        assert_eq!(to_pairs(&copied), to_pairs(&input));
    }

    #[test]
    fn a_record_over_the_budget_is_cut_to_prefixes_that_fit_and_says_so() {
        let big = vec![b'h'; 300_000];
        let input = headers(&[("trace-id", b"abc"), ("blob", &big), ("after", b"x")]);
        let key = vec![b'k'; 1_000_000];
        let payload = vec![b'p'; 20_000_000];
        let budget = 512 * 1024;
        let copy = dead_letter_copy(
            Some(&key),
            Some(&payload),
            Some(input.as_borrowed()),
            budget,
        );
        let kept_key = copy.key.unwrap();
        let kept_payload = copy.payload.unwrap();
        let headers = copy.headers.unwrap();
        let kept_headers = measure(headers.as_borrowed(), headers::is_worker_header);
        assert!(kept_key.len() + kept_payload.len() + kept_headers.cost <= budget);
        assert!(key.starts_with(&kept_key) && payload.starts_with(&kept_payload));
        // Each part got a fair share: none was starved by the 20 MB payload.
        assert!(kept_key.len() > budget / 4, "{}", kept_key.len());
        assert!(kept_headers.bytes > budget / 4, "{kept_headers:?}");
        assert_eq!(last_text(&headers, "trace-id"), Some("abc"));
        assert_eq!(last_text(&headers, "after"), None);
        assert_eq!(
            last_text(&headers, headers::ERROR_PAYLOAD_TRUNCATED),
            Some("true")
        );
        assert_eq!(
            last_text(&headers, headers::ERROR_ORIGINAL_KEY_BYTES),
            Some("1000000")
        );
        assert_eq!(
            last_text(&headers, headers::ERROR_ORIGINAL_PAYLOAD_BYTES),
            Some("20000000")
        );
        let original_headers = (8 + 3 + 4 + 300_000 + 5 + 1).to_string();
        assert_eq!(
            last_text(&headers, headers::ERROR_ORIGINAL_HEADERS_BYTES),
            Some(original_headers.as_str())
        );
        assert_eq!(
            copy.cut,
            Some(OriginalSizes {
                key: 1_000_000,
                payload: Some(20_000_000),
                headers: 300_021,
            })
        );
    }

    #[test]
    fn many_empty_headers_count_against_the_budget() {
        let input = (0..100_000).fold(OwnedHeaders::new(), |h, _| {
            h.insert(Header::<&[u8]> {
                key: "",
                value: None,
            })
        });
        let copy = dead_letter_copy(Some(b"k"), Some(b"{}"), Some(input.as_borrowed()), 4096);
        assert!(copy.cut.is_some());
        let kept = copy.headers.unwrap();
        assert!(
            kept.count() < 4096 / HEADER_FRAMING_BYTES + 5,
            "{}",
            kept.count()
        );
    }

    #[test]
    fn decisions_keep_small_headers_and_cut_large_ones_saying_so() {
        let small = headers(&[("trace-id", b"abc")]);
        let kept = decision_headers_copy(Some(small.as_borrowed()), 1024).unwrap();
        assert_eq!(to_pairs(&kept), to_pairs(&small));
        assert!(decision_headers_copy(None, 1024).is_none());
        let empty = OwnedHeaders::new();
        assert!(decision_headers_copy(Some(empty.as_borrowed()), 1024).is_none());

        let big = vec![b'h'; 1_000_000];
        let large = headers(&[("trace-id", b"abc"), ("blob", &big)]);
        let kept = decision_headers_copy(Some(large.as_borrowed()), 4096).unwrap();
        assert!(measure(kept.as_borrowed(), headers::is_worker_header).cost <= 4096);
        assert_eq!(last_text(&kept, "trace-id"), Some("abc"));
        // The header that did not fit keeps its name and a prefix of its value.
        let blob = headers::last_value(&kept, "blob").unwrap();
        assert!(!blob.is_empty() && blob.len() < 4096);
        assert_eq!(last_text(&kept, headers::HEADERS_TRUNCATED), Some("true"));
        assert_eq!(
            last_text(&kept, headers::ORIGINAL_HEADERS_BYTES),
            Some("1000015")
        );
    }

    /// `input` with one more header named by raw bytes (rust-rdkafka takes only text names).
    fn with_raw_name(input: OwnedHeaders, name: &[u8], value: &[u8]) -> OwnedHeaders {
        use rdkafka::bindings::{rd_kafka_header_add, rd_kafka_headers_t};
        let native = std::ptr::from_ref(input.as_borrowed())
            .cast::<rd_kafka_headers_t>()
            .cast_mut();
        // SAFETY: `native` is the live headers object `input` owns; librdkafka copies the
        // name and value.
        unsafe {
            rd_kafka_header_add(
                native,
                name.as_ptr().cast(),
                name.len() as isize,
                value.as_ptr().cast(),
                value.len() as isize,
            );
        }
        input
    }

    #[test]
    fn a_name_that_is_not_utf8_is_budgeted_at_the_length_it_is_written_with() {
        // 3,000 raw bytes fit a 4,096-byte budget; written lossily they take 9,000.
        let input = with_raw_name(headers(&[("first", b"1")]), &[0xff; 3000], &[b'v'; 100]);
        let cut = cut_headers(input.as_borrowed(), 4096, |_| false);
        assert!(measure(cut.as_borrowed(), |_| false).cost <= 4096);
        assert_eq!(cut.count(), 1);
    }

    #[test]
    fn header_names_that_are_not_utf8_are_read_without_panicking() {
        let name = [0xffu8, 0xfe, b'x'];
        let input = with_raw_name(headers(&[("first", b"1")]), &name, b"v");
        let read: Vec<RawHeader<'_>> = raw_headers(input.as_borrowed()).collect();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].name, &name[..]);
        assert_eq!(read[1].value, Some(&b"v"[..]));
        assert_eq!(measure(input.as_borrowed(), |_| false).bytes, 5 + 1 + 3 + 1);
        let cut = cut_headers(input.as_borrowed(), 1024, |_| false);
        assert_eq!(cut.count(), 2);
        let copy = decision_headers_copy(Some(input.as_borrowed()), 1024).unwrap();
        assert_eq!(copy.count(), 2);
    }
}

//! Keeping secrets and hostile input out of what the programs print.
//!
//! Secrets: [`crate::redact::is_secret_key`] decides which librdkafka properties hold
//! credentials, and every form of the configuration this crate prints shows them redacted.
//! librdkafka does not know that rule: its messages (a refused setting, an unparsable
//! `sasl.oauthbearer.config`) may quote a value, and so may any error built from them. So the
//! binaries also register the secret values of their configuration here
//! ([`register_secrets`]); every log line ([`crate::logging`]), the final error and
//! panic messages ([`install_panic_hook`]) are scrubbed of them ([`scrub`]).
//!
//! Control characters: record keys, payload excerpts and librdkafka messages come from outside.
//! Written raw to a text log, a line break in them forges a log line and an escape sequence
//! drives the terminal. [`escape_control`] (and the [`EscapeControl`] writer) show such
//! characters as escapes instead.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// Text shown instead of a secret value.
pub const REDACTED: &str = "<redacted>";

/// A `kafka.client` key without its `consumer.`/`producer.` prefix (see
/// [`crate::delivery::clients`]).
pub fn without_role_prefix(key: &str) -> &str {
    key.strip_prefix("consumer.")
        .or_else(|| key.strip_prefix("producer."))
        .unwrap_or(key)
}

/// librdkafka property names use `.` and never `_`; environment variable names cannot contain
/// `.`. So `_` in a `kafka.client` key stands for `.` (`CREDIT_RISK__KAFKA__CLIENT__SASL_PASSWORD`
/// sets `sasl.password`), and keys are lower-cased like librdkafka's.
pub fn normalise_client_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('_', ".")
}

/// Words that mark a librdkafka property as holding a credential, key or token wherever they
/// appear in its name.
const SECRET_KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private",
    "jaas",
];

/// `sasl.*` properties known to hold no secret; every other `sasl.*` property, including ones
/// later librdkafka versions add, is treated as secret.
const PUBLIC_SASL_KEYS: &[&str] = &[
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.kerberos.service.name",
    "sasl.kerberos.principal",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.grant.type",
    "sasl.oauthbearer.assertion.algorithm",
    "sasl.oauthbearer.assertion.claim.exp.seconds",
    "sasl.oauthbearer.assertion.claim.nbf.seconds",
    "sasl.oauthbearer.assertion.claim.jti.include",
    "sasl.oauthbearer.metadata.authentication.type",
];

/// True for librdkafka keys (with or without a `consumer.`/`producer.` prefix) whose values
/// are never shown. The rule errs on the side of hiding, so that properties of future
/// librdkafka versions are covered too:
/// - a name containing one of [`SECRET_KEY_WORDS`] (`sasl.password`, `ssl.key.password`,
///   `sasl.oauthbearer.client.secret`, `...private.key.passphrase`, `sasl.jaas.config`,
///   `sasl.oauthbearer.token.endpoint.url`, which may carry credentials);
/// - a name segment starting with `key` (`ssl.key.*`, `ssl.keystore.*`,
///   `sasl.kerberos.keytab`, `*.private.key.*`, `...access.key.id`);
/// - a name ending in `.pem`: a PEM value may bundle a private key with a certificate, so even
///   `ssl.certificate.pem` and `ssl.ca.pem` are hidden (they are unreadable in a log anyway);
/// - every `sasl.*` name not in [`PUBLIC_SASL_KEYS`], so `sasl.username` (librdkafka also
///   treats it as sensitive; for hosted Kafka it is half of an API key) and
///   `sasl.oauthbearer.config` are hidden.
///
/// `security.protocol`, `sasl.mechanisms` and file locations other than keys stay visible.
pub fn is_secret_key(key: &str) -> bool {
    let key = normalise_client_key(key);
    let key = without_role_prefix(&key);
    SECRET_KEY_WORDS.iter().any(|word| key.contains(word))
        || key.split('.').any(|segment| segment.starts_with("key"))
        || key.ends_with(".pem")
        || (key.starts_with("sasl.") && !PUBLIC_SASL_KEYS.contains(&key))
}

/// Secret values shorter than this are not scrubbed from free text: a one- or three-character
/// value would blank out every word containing it, and the configuration itself still shows
/// them redacted.
pub(crate) const MIN_SCRUBBED_LEN: usize = 4;

/// The registered secrets, in every form they can take in a log line, longest first.
static PATTERNS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// Whether [`PATTERNS`] holds anything: spares every log line a lock when nothing is secret.
static ANY_PATTERN: AtomicBool = AtomicBool::new(false);

/// The values of `settings` to keep out of text: each secret value, and the parts of it that
/// librdkafka quotes on their own (the `value` of `name=value` pairs, as in
/// `sasl.oauthbearer.config` and `sasl.jaas.config`).
pub fn secret_values(settings: &BTreeMap<String, String>) -> Vec<String> {
    let mut values = Vec::new();
    for (key, value) in settings {
        if !is_secret_key(key) {
            continue;
        }
        values.push(value.clone());
        if !holds_pairs(key) {
            continue;
        }
        for pair in value.split(|c: char| c.is_whitespace() || c == ';' || c == ',') {
            if let Some((_, part)) = pair.split_once('=') {
                let part = part.trim_matches(['"', '\'']);
                // A number or a flag (`lifeSeconds=3600`) is no secret, and scrubbing it would
                // blank every such number in the log.
                if !part.bytes().all(|b| b.is_ascii_digit()) && !is_flag(part) {
                    values.push(part.to_owned());
                }
            }
        }
    }
    values.retain(|value| value.chars().count() >= MIN_SCRUBBED_LEN);
    values.sort();
    values.dedup();
    values
}

/// Whether the value of `key` is a list of `name=value` pairs that librdkafka may quote one by
/// one.
fn holds_pairs(key: &str) -> bool {
    key.ends_with("sasl.oauthbearer.config") || key.ends_with("sasl.jaas.config")
}

fn is_flag(text: &str) -> bool {
    text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false")
}

/// Every form in which `secret` can appear in output: as is, escaped by `{:?}`, by JSON, and
/// by [`escape_control`].
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned(), secret.escape_debug().to_string()];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    forms.push(escape_control(secret).into_owned());
    forms
}

/// Adds the secret values of `settings` (librdkafka properties) to what [`scrub`] removes.
pub fn register_secrets(settings: &BTreeMap<String, String>) {
    let values = secret_values(settings);
    if values.is_empty() {
        return;
    }
    let mut patterns = PATTERNS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    patterns.extend(values.iter().flat_map(|value| forms(value)));
    // Longest first, so a secret that contains another is replaced whole.
    patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    patterns.dedup();
    ANY_PATTERN.store(!patterns.is_empty(), Ordering::Release);
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !ANY_PATTERN.load(Ordering::Acquire) {
        return Cow::Borrowed(text);
    }
    let patterns = PATTERNS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    scrub_with(text, &patterns)
}

/// `text` with every one of `secrets` replaced by [`REDACTED`], longest first.
pub fn scrub_with<'a, S: AsRef<str>>(text: &'a str, secrets: &[S]) -> Cow<'a, str> {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|secret| !secret.is_empty())
        .collect();
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let mut text = Cow::Borrowed(text);
    for secret in secrets {
        if text.contains(secret) {
            text = Cow::Owned(text.replace(secret, REDACTED));
        }
    }
    text
}

/// Characters shown as escapes: every control character (C0 with line breaks and ESC, DEL, C1),
/// the Unicode line and paragraph separators, and the bidirectional formatting characters,
/// which reorder what a reader sees.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with the characters of [`needs_escape`] written as `\n`, `\r`, `\t` or `\u{..}`.
pub(crate) fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    let _ = fmt::Write::write_str(&mut EscapeControl(&mut escaped), text);
    Cow::Owned(escaped)
}

/// A [`fmt::Write`] that passes text on with the characters of [`needs_escape`] escaped.
pub struct EscapeControl<W>(pub W);

impl<W: fmt::Write> fmt::Write for EscapeControl<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// What the panic hook prints for a panic with `message` at `location`: scrubbed of secrets and
/// with control characters escaped, on one line.
pub(crate) fn panic_report(thread: &str, message: &str, location: Option<&str>) -> String {
    let message = scrub(message);
    let message = escape_control(&message);
    let thread = escape_control(thread);
    match location {
        Some(location) => format!("thread '{thread}' panicked at {location}: {message}"),
        None => format!("thread '{thread}' panicked: {message}"),
    }
}

/// An error and its causes on one line, as the binaries print a failure: each cause once (most
/// messages here already include their source's), scrubbed of secrets, control characters
/// escaped.
pub fn error_report<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut report = String::new();
    for cause in chain {
        let text = cause.to_string();
        if report.contains(&text) {
            continue;
        }
        if !report.is_empty() {
            report.push_str(": ");
        }
        report.push_str(&text);
    }
    escape_control(&scrub(&report)).into_owned()
}

/// Replaces the default panic hook, which prints the panic message as is, by one that prints
/// it through [`panic_report`] (and a backtrace when `RUST_BACKTRACE` asks for one).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        let location = info.location().map(|location| {
            format!(
                "{}:{}:{}",
                location.file(),
                location.line(),
                location.column()
            )
        });
        let current = std::thread::current();
        let report = panic_report(
            current.name().unwrap_or("<unnamed>"),
            message,
            location.as_deref(),
        );
        eprintln!("{report}");
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{}", scrub(&backtrace.to_string()));
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secret_values_include_the_values_of_name_value_pairs_but_not_public_settings() {
        let values = secret_values(&settings(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "hunter2-pw"),
            (
                "sasl.oauthbearer.config",
                "principal=canary-principal lifeSeconds=canary-life",
            ),
            ("sasl.jaas.config", "x required password=\"canary-jaas\";"),
            ("ssl.key.password", "abc"),
        ]));
        for expected in [
            "hunter2-pw",
            "canary-principal",
            "canary-life",
            "canary-jaas",
        ] {
            assert!(
                values.iter().any(|v| v == expected),
                "{expected}: {values:?}"
            );
        }
        assert!(!values.iter().any(|v| v == "SASL_SSL"), "{values:?}");
        assert!(!values.iter().any(|v| v == "abc"), "too short: {values:?}");
    }

    #[test]
    fn numbers_flags_and_pairs_of_other_secrets_are_not_scrubbed_from_text() {
        let values = secret_values(&settings(&[
            (
                "sasl.oauthbearer.config",
                "principal=canary-principal lifeSeconds=3600 debug=TRUE",
            ),
            ("sasl.password", "pw-with=equals-sign"),
        ]));
        assert!(values.iter().any(|v| v == "canary-principal"), "{values:?}");
        assert!(
            values.iter().any(|v| v == "pw-with=equals-sign"),
            "{values:?}"
        );
        for kept in ["3600", "TRUE", "equals-sign"] {
            assert!(!values.iter().any(|v| v == kept), "{kept}: {values:?}");
        }
    }

    #[test]
    fn scrubbing_replaces_the_longest_secret_whole_and_leaves_other_text() {
        let text = "login as hunter2-long failed; hunter2 tried";
        assert_eq!(
            scrub_with(text, &["hunter2", "hunter2-long"]),
            "login as <redacted> failed; <redacted> tried"
        );
        assert!(matches!(
            scrub_with("nothing here", &["hunter2"]),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn registered_secrets_are_scrubbed_in_their_escaped_forms_too() {
        register_secrets(&settings(&[(
            "sasl.password",
            "canary\"quoted\\secret\u{1b}",
        )]));
        let secret = "canary\"quoted\\secret\u{1b}";
        for shown in [
            secret.to_owned(),
            format!("{secret:?}"),
            serde_json::to_string(secret).unwrap(),
            escape_control(secret).into_owned(),
        ] {
            let scrubbed = scrub(&shown);
            assert!(!scrubbed.contains("quoted"), "{shown} became {scrubbed}");
        }
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(
            escape_control("a\nb\r\tc\u{1b}[31md\u{9b}e\u{202e}f\u{2028}g\u{7f}"),
            "a\\nb\\r\\tc\\u{1b}[31md\\u{9b}e\\u{202e}f\\u{2028}g\\u{7f}"
        );
        assert!(matches!(escape_control("plain ü text"), Cow::Borrowed(_)));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load configuration: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("bad value canary-report\nnext")]
    struct Inner;

    #[test]
    fn an_error_report_shows_each_cause_once_on_one_line_without_secrets() {
        register_secrets(&settings(&[("sasl.password", "canary-report")]));
        let error = anyhow::Error::new(Outer(Inner)).context("configuration");
        let report = error_report(error.chain());
        assert_eq!(
            report,
            "configuration: cannot load configuration: bad value <redacted>\\nnext"
        );
    }

    #[test]
    fn a_panic_report_is_one_line_without_registered_secrets() {
        register_secrets(&settings(&[(
            "sasl.oauthbearer.client.secret",
            "canary-panic",
        )]));
        let report = panic_report(
            "main",
            "bad value canary-panic\n2099-01-01 ERROR forged",
            Some("src/x.rs:1:2"),
        );
        assert!(!report.contains("canary-panic"), "{report}");
        assert!(!report.contains('\n'), "{report}");
        assert!(report.starts_with("thread 'main' panicked at src/x.rs:1:2: bad value <redacted>"));
    }
}

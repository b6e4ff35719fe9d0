//! `tracing` output: human-readable text by default, JSON lines for log shippers.
//!
//! Both formats carry text from outside (record keys, librdkafka messages), so output is made
//! safe by mechanism rather than at each call site ([`crate::redact`]):
//! - the text format writes every field value and message through [`EscapedFields`], which
//!   escapes control characters, so a key holding `\n2099-01-01 ERROR ...` or an ANSI escape
//!   sequence stays on its line and off the terminal; colours are used only on a terminal;
//! - JSON escapes line breaks and ESC itself; the writer also escapes DEL, C1 controls, line
//!   separators and bidirectional overrides, which JSON allows raw;
//! - every line is scrubbed of the registered secret values before it is written.

use crate::redact::{self, EscapeControl};
use serde::Deserialize;
use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal, Write as _};
use std::str::FromStr;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::EnvFilter;

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "log format must be `text` or `json`, got `{other}`"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("logging.level `{level}` is not a valid filter: {source}")]
    Filter {
        level: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber. `RUST_LOG`, when set, takes precedence over
/// `logging.level` (the usual escape hatch for debugging one module).
pub fn init(config: &LoggingConfig) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives),
        _ => EnvFilter::try_new(&config.level),
    }
    .map_err(|source| LoggingError::Filter {
        level: config.level.clone(),
        source,
    })?;
    install(config.format, filter)
}

/// Installs the global subscriber writing `format` to stderr, filtered by `filter`.
pub fn install(format: LogFormat, filter: EnvFilter) -> Result<(), LoggingError> {
    use tracing_subscriber::util::SubscriberInitExt;
    // Colours only for a person at a terminal who has not asked for none (`NO_COLOR`).
    let ansi =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // `try_init` also routes the `log` crate, through which librdkafka's default client
    // context logs, into `tracing`.
    subscriber(format, filter, io::stderr, ansi)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)
}

/// The subscriber of [`install`], writing each line through `sink`; `ansi` selects colours
/// (text format only).
pub(crate) fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    sink: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => Box::new(
            builder
                .with_ansi(ansi)
                .fmt_fields(EscapedFields)
                .with_writer(SafeLines { sink, format })
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_ansi(false)
                .with_writer(SafeLines { sink, format })
                .finish(),
        ),
    }
}

/// Formats the fields of the text format like `tracing_subscriber`'s default (`message`
/// first as is, then `name=value` with `{:?}`), with control characters escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of events that came through the `log` crate, already shown as such.
        if name.starts_with("log.") {
            return;
        }
        let separator = if self.empty { "" } else { " " };
        self.empty = false;
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = if name == "message" {
            write!(self.writer, "{separator}")
        } else {
            write!(self.writer, "{separator}{name}=")
        }
        .and_then(|()| EscapeControl(&mut self.writer).write_fmt(value));
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.write(field, format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// A [`MakeWriter`] that hands each log line to `sink` scrubbed of secrets and, in JSON, with
/// the characters JSON leaves raw escaped.
struct SafeLines<W> {
    sink: W,
    format: LogFormat,
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for SafeLines<W> {
    type Writer = SafeLine<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        SafeLine {
            buffer: Vec::new(),
            sink: self.sink.make_writer(),
            format: self.format,
        }
    }
}

/// One log line: collected, then cleaned and written whole when dropped (`tracing_subscriber`
/// writes each event with one `write_all` and then drops the writer).
struct SafeLine<W: io::Write> {
    buffer: Vec<u8>,
    sink: W,
    format: LogFormat,
}

impl<W: io::Write> io::Write for SafeLine<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&self.buffer);
        let line = redact::scrub(&line);
        let line = match self.format {
            LogFormat::Text => line,
            LogFormat::Json => escape_json_extras(&line).into(),
        };
        self.sink.write_all(line.as_bytes())?;
        self.buffer.clear();
        self.sink.flush()
    }
}

impl<W: io::Write> Drop for SafeLine<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write.
        let _ = self.flush();
    }
}

/// `line` (JSON) with the characters [`redact::needs_escape`] flags that JSON leaves raw written
/// as `\uXXXX`: valid JSON, since such characters can only occur inside its strings.
fn escape_json_extras(line: &str) -> String {
    let body = line.strip_suffix('\n');
    let (body, newline) = match body {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    if !body.chars().any(redact::needs_escape) {
        return line.to_owned();
    }
    let mut escaped = String::with_capacity(line.len() + 16);
    for c in body.chars() {
        if redact::needs_escape(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(escaped, "\\u{unit:04x}");
            }
        } else {
            escaped.push(c);
        }
    }
    escaped.push_str(newline);
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects everything written, for reading back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn logged(format: LogFormat, ansi: bool, log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = subscriber(format, EnvFilter::new("trace"), move || sink.clone(), ansi);
        tracing::subscriber::with_default(subscriber, log);
        captured.text()
    }

    const FORGED: &str = "k\n2099-01-01T00:00:00.000000Z ERROR forged: \u{1b}[2J\u{1b}]0;owned\u{7}\r\u{9b}31m\u{202e}";

    fn log_forged() {
        let key = FORGED;
        tracing::warn!(
            key = %key,
            debug_key = ?key,
            str_key = key,
            "rejected {key}"
        );
    }

    #[test]
    fn text_lines_escape_control_characters_in_every_field_and_the_message() {
        for ansi in [false, true] {
            let text = logged(LogFormat::Text, ansi, log_forged);
            assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
            assert!(text.ends_with('\n'), "{text:?}");
            assert!(!text.contains('\r') && !text.contains('\u{7}'), "{text:?}");
            assert!(
                !text.contains('\u{9b}') && !text.contains('\u{202e}'),
                "{text:?}"
            );
            assert!(text.contains("key=k\\n2099-01-01"), "{text:?}");
            if !ansi {
                assert!(!text.contains('\u{1b}'), "{text:?}");
            }
        }
    }

    #[test]
    fn colours_never_come_from_the_input_when_ansi_is_on() {
        let text = logged(LogFormat::Text, true, log_forged);
        assert!(!text.contains("\u{1b}[2J"), "{text:?}");
        assert!(!text.contains("\u{1b}]0;"), "{text:?}");
    }

    #[test]
    fn json_lines_stay_one_valid_object_with_every_control_character_escaped() {
        let text = logged(LogFormat::Json, false, log_forged);
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        assert!(
            !text.chars().any(|c| redact::needs_escape(c) && c != '\n'),
            "{text:?}"
        );
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect("JSON");
        assert_eq!(line["key"], FORGED, "the value survives, escaped: {line}");
    }
}

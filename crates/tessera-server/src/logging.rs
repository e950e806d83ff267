//! Log lines in Dex's two formats (`logger.format`): `text`, one `key=value` line per event as Go's
//! slog writes it, and `json`, one object per line with slog's `time`, `level` and `msg` keys. The
//! fields of the spans an event happens in follow its own (a request's `request_id`, `method`,
//! `route` and `client_remote_addr`; a background task's `task`), and the fields named in
//! `logger.excludeFields` are left out wherever they come from.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, Logger};

/// A field's value, typed as far as JSON cares.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Int(i128),
    Float(f64),
    Bool(bool),
}

/// The fields of one event or span, in the order they were recorded.
#[derive(Debug, Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(&'static str, Value)>,
}

/// Collects fields, skipping the excluded ones and the `log.*` metadata of records from the `log` crate.
struct Collector<'a> {
    fields: &'a mut Fields,
    excluded: &'a HashSet<String>,
}

impl Collector<'_> {
    fn add(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            if let Value::Text(text) = value {
                self.fields.message = Some(text);
            }
            return;
        }
        if name.starts_with("log.") || self.excluded.contains(name) {
            return;
        }
        match self.fields.values.iter_mut().find(|(existing, _)| *existing == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.values.push((name, value)),
        }
    }
}

impl Visit for Collector<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, Value::Text(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, Value::Int(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, Value::Int(value.into()));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.add(field, Value::Int(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, Value::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.add(field, Value::Text(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, Value::Text(format!("{value:?}")));
    }
}

/// The `tracing` layer writing tessera's log lines to `writer` (stderr in production).
pub struct LogLines<W> {
    format: LogFormat,
    excluded: Arc<HashSet<String>>,
    writer: W,
}

/// The layer for `logger`'s format and excluded fields, writing to `writer`.
pub fn layer<W>(logger: &Logger, writer: W) -> LogLines<W> {
    LogLines { format: logger.format, excluded: Arc::new(logger.exclude_fields.iter().cloned().collect()), writer }
}

impl<S, W> tracing_subscriber::Layer<S> for LogLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut Collector { fields: &mut fields, excluded: &self.excluded });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(&mut Collector { fields, excluded: &self.excluded });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut own = Fields::default();
        event.record(&mut Collector { fields: &mut own, excluded: &self.excluded });
        let mut values = own.values;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    values.extend(fields.values.iter().cloned());
                }
            }
        }
        let level = level_name(*event.metadata().level());
        let message = own.message.unwrap_or_default();
        let time = OffsetDateTime::now_utc();
        let line = match self.format {
            LogFormat::Text => text_line(time, level, &message, &values),
            LogFormat::Json => json_line(time, level, &message, &values),
        };
        // One write per line, so lines of concurrent requests never interleave.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

/// slog's level names.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// RFC 3339 in UTC with milliseconds, as slog writes it (`2026-12-02T10:40:00.123Z`).
fn timestamp(time: OffsetDateTime) -> String {
    let millis = time.replace_nanosecond(time.millisecond() as u32 * 1_000_000).unwrap_or(time);
    millis.format(&Rfc3339).unwrap_or_default()
}

fn text_line(time: OffsetDateTime, level: &str, message: &str, values: &[(&str, Value)]) -> String {
    let mut line = format!("time={} level={level} msg={}", timestamp(time), text_value(message));
    for (name, value) in values {
        let _ = match value {
            Value::Text(text) => write!(line, " {name}={}", text_value(text)),
            Value::Int(number) => write!(line, " {name}={number}"),
            Value::Float(number) => write!(line, " {name}={number}"),
            Value::Bool(flag) => write!(line, " {name}={flag}"),
        };
    }
    line.push('\n');
    line
}

/// A value as is when it reads back unambiguously, quoted and escaped otherwise (slog's rule).
fn text_value(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if plain { text.to_owned() } else { format!("{text:?}") }
}

fn json_line(time: OffsetDateTime, level: &str, message: &str, values: &[(&str, Value)]) -> String {
    // Written by hand to keep slog's key order (time, level, msg, then the fields as recorded).
    let mut line = format!("{{\"time\":\"{}\",\"level\":\"{level}\",\"msg\":{}", timestamp(time), json_string(message));
    for (name, value) in values {
        let _ = match value {
            Value::Text(text) => write!(line, ",{}:{}", json_string(name), json_string(text)),
            Value::Int(number) => write!(line, ",{}:{number}", json_string(name)),
            Value::Float(number) if number.is_finite() => write!(line, ",{}:{number}", json_string(name)),
            Value::Float(number) => write!(line, ",{}:\"{number}\"", json_string(name)),
            Value::Bool(flag) => write!(line, ",{}:{flag}", json_string(name)),
        };
    }
    line.push_str("}\n");
    line
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(logger: &Logger, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(layer(logger, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn request_with_a_login() {
        let span = tracing::info_span!("request", request_id = "r-1", method = "POST", route = tracing::field::Empty);
        span.record("route", "/dex/auth/{connector}/login");
        span.in_scope(|| tracing::info!(email = "jane@example.com", attempts = 2, ok = true, "login successful"));
    }

    #[test]
    fn json_lines_carry_the_span_fields_typed() {
        let logger = Logger { format: LogFormat::Json, ..Logger::default() };
        let output = capture(&logger, request_with_a_login);
        let line: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["msg"], "login successful");
        assert_eq!(line["email"], "jane@example.com");
        assert_eq!(line["attempts"], 2);
        assert_eq!(line["ok"], true);
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["route"], "/dex/auth/{connector}/login");
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(output.starts_with("{\"time\":"), "slog's key order: {output}");
        let big = capture(&logger, || tracing::info!(huge = u64::MAX, ratio = 0.5, "numbers"));
        let big: serde_json::Value = serde_json::from_str(big.trim()).unwrap();
        assert_eq!((big["huge"].as_u64(), big["ratio"].as_f64()), (Some(u64::MAX), Some(0.5)));
    }

    #[test]
    fn text_lines_are_key_value_pairs_quoted_when_needed() {
        let output = capture(&Logger::default(), request_with_a_login);
        assert!(output.starts_with("time="), "{output}");
        assert!(
            output.contains(" level=INFO msg=\"login successful\" email=jane@example.com attempts=2 ok=true request_id=r-1 method=POST route=/dex/auth/{connector}/login\n"),
            "{output}"
        );
        assert!(!output.contains('\u{1b}'), "no colour codes");
        assert_eq!(text_value("a=b"), "\"a=b\"");
        assert_eq!(text_value(""), "\"\"");
        assert_eq!(text_value("line\nbreak"), "\"line\\nbreak\"");
    }

    #[test]
    fn excluded_fields_are_left_out_of_events_and_spans() {
        let logger = Logger {
            format: LogFormat::Json,
            exclude_fields: vec!["email".into(), "request_id".into()],
            ..Logger::default()
        };
        let output = capture(&logger, request_with_a_login);
        let line: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
        assert!(line.get("email").is_none() && line.get("request_id").is_none(), "{line}");
        assert_eq!(line["method"], "POST");
    }
}

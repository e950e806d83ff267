//! Capturing the log lines a test's server writes, in tessera's JSON format, through one global
//! subscriber as in production: each test thread captures its own lines (a `#[tokio::test]` runs its
//! server on its own thread), at the level it asks for; other threads' events are not even formatted.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Once;

use serde_json::Value;
use tessera_server::config::{LogFormat, Logger};
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

struct Capture {
    level: Level,
    bytes: Vec<u8>,
}

thread_local! {
    static CAPTURED: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Writes a log line into the capture of the thread that logs it.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(capture) = captured.borrow_mut().as_mut() {
                capture.bytes.extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capturing(metadata: &tracing::Metadata<'_>) -> bool {
    CAPTURED.with(|captured| captured.borrow().as_ref().is_some_and(|capture| *metadata.level() <= capture.level))
}

/// Starts capturing this thread's log lines at `level` and above.
pub fn capture_logs(level: Level) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let logger = Logger { format: LogFormat::Json, ..Logger::default() };
        // Spans are always recorded (a request may start before its thread captures); events only
        // where a capture is running. A dynamic filter: a plain `filter_fn` caches its first answer
        // per callsite, which would leave a line disabled for good in every later capture.
        let filter =
            tracing_subscriber::filter::dynamic_filter_fn(|metadata, _| metadata.is_span() || capturing(metadata));
        let lines = tessera_server::logging::layer(&logger, || ThreadCapture).with_filter(filter);
        let subscriber = tracing_subscriber::registry().with(lines);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this binary");
    });
    // Callsites registered while it was being installed are asked again.
    tracing::callsite::rebuild_interest_cache();
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Capture { level, bytes: Vec::new() }));
}

/// This thread's captured lines, each parsed as the JSON object it must be, and the capture stopped.
pub fn captured_lines() -> Vec<Value> {
    let bytes = CAPTURED.with(|captured| captured.borrow_mut().take()).map(|capture| capture.bytes).unwrap_or_default();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}")))
        .collect()
}

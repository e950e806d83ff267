//! Logs to stderr as Dex does: text or JSON, at the configured level (`RUST_LOG` overrides).

use std::io::IsTerminal;

use tessera_server::config::{LogFormat, LogLevel, Logger};
use tracing_subscriber::EnvFilter;

pub fn init(logger: &Logger) {
    let level = match logger.level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour only for a person at a terminal: escape codes in files and log aggregators are noise.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match logger.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

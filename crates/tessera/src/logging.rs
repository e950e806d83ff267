//! Logs to stderr as Dex does: text or JSON lines (tessera-server's `logging`), at the configured
//! level; `RUST_LOG` overrides the level with a full filter (`info,tessera_server=debug`).

use tessera_server::config::{LogLevel, Logger};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init(logger: &Logger) {
    let level = match logger.level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let lines = tessera_server::logging::layer(logger, std::io::stderr);
    let _ = tracing_subscriber::registry().with(filter).with(lines).try_init();
}

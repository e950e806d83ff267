//! When a pooled connection is worth a ping before it is handed out: when it sat idle (a database
//! restart or a proxy's idle timeout may have cut it), and, for a while after a query failed on a
//! broken connection, always — so after an outage the stale connections are found and replaced by
//! pings instead of by failing requests. A connection used moments ago is handed out as it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A pooled connection idle at least this long is pinged before it is handed out.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);
/// After a query fails on a broken connection, every connection is pinged for this long.
pub const PING_AFTER_BREAKAGE_FOR: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct ConnectionCheck {
    started: Instant,
    /// Milliseconds after `started` of the last query that failed on a broken connection, plus one
    /// (zero: never).
    last_breakage_ms: AtomicU64,
}

impl ConnectionCheck {
    pub fn new() -> Self {
        Self { started: Instant::now(), last_breakage_ms: AtomicU64::new(0) }
    }

    /// Whether a connection idle for `idle_for` should be pinged before use.
    pub fn wants_ping(&self, idle_for: Duration) -> bool {
        idle_for >= PING_WHEN_IDLE_FOR || self.broke_recently()
    }

    /// Records `error` if it says the connection (not the query) failed.
    pub fn observe(&self, error: &sqlx::Error) {
        if is_connection_failure(error) {
            let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            self.last_breakage_ms.store(now_ms + 1, Ordering::Relaxed);
        }
    }

    pub(crate) fn broke_recently(&self) -> bool {
        match self.last_breakage_ms.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let since = Duration::from_millis(at - 1);
                self.started.elapsed().saturating_sub(since) < PING_AFTER_BREAKAGE_FOR
            }
        }
    }
}

/// I/O, TLS and protocol errors, a pool that could not connect, and PostgreSQL's connection
/// exception (08) and operator intervention (57P) classes: the connection is gone, not the query wrong.
pub(crate) fn is_connection_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(database) => {
            database.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_turns_pinging_on_for_a_while() {
        let check = ConnectionCheck::new();
        assert!(!check.broke_recently());
        check.observe(&sqlx::Error::RowNotFound);
        assert!(!check.broke_recently(), "a query error says nothing about the connection");
        check.observe(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
        assert!(check.broke_recently());
        check.last_breakage_ms.store(1, Ordering::Relaxed);
        let long_ago = ConnectionCheck {
            started: Instant::now() - PING_AFTER_BREAKAGE_FOR - Duration::from_secs(1),
            last_breakage_ms: AtomicU64::new(1),
        };
        assert!(!long_ago.broke_recently(), "and off again once the window has passed");
    }
}

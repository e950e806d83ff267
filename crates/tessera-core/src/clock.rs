//! Where "now" comes from: the system clock in production, a settable clock in tests.

use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

/// A source of the current time. Every expiry check takes its time from one, so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock, in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<OffsetDateTime>,
}

/// Where tests start their clocks: `TESSERA_TEST_CLOCK_START` (RFC 3339) when set, a fixed date
/// otherwise. Tests never compare the test clock with the real one, so the suite passes whatever the
/// start; `scripts/test.sh` proves it by running the server suites again with a start a year ahead.
pub fn test_epoch() -> OffsetDateTime {
    const DEFAULT: OffsetDateTime = time::macros::datetime!(2026-11-23 12:00 UTC);
    std::env::var("TESSERA_TEST_CLOCK_START")
        .ok()
        .and_then(|text| OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(DEFAULT)
}

impl TestClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// A clock standing at [`test_epoch`].
    pub fn at_test_epoch() -> Self {
        Self::new(test_epoch())
    }

    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_only_when_told() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let clock = TestClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), start + Duration::seconds(90));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}

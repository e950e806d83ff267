//! Brute-force limits as pure functions of (recorded failures, limit, time): which counters an attempt
//! is charged to, whether the next attempt is allowed, and what recording or withdrawing one does.
//!
//! A counter keeps the times of its most recent failures (never more than its limit allows, so it stays
//! small): a sliding window, so "at most 5 in 15 minutes" holds for every 15 minutes, not only for
//! windows that happen to start at a boundary.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// At most `max` failures in any `window`: the attempt after the `max`-th is refused until the
/// oldest of them leaves the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }
}

/// `rateLimits:`, with the defaults of docs/security.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub enabled: bool,
    /// Failed password logins (form and password grant share them) per account and client IP.
    pub password_per_account_and_ip: Limit,
    pub password_per_ip: Limit,
    pub password_per_account: Limit,
    /// Failed client authentications at `/token` per client ID and client IP.
    pub client_auth_per_client_and_ip: Limit,
    /// Wrong user codes on the device page per client IP.
    pub user_code_per_ip: Limit,
}

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
const FIVE_MINUTES: Duration = Duration::from_secs(5 * 60);

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            password_per_account_and_ip: Limit::new(5, FIFTEEN_MINUTES),
            password_per_ip: Limit::new(50, FIFTEEN_MINUTES),
            password_per_account: Limit::new(100, FIFTEEN_MINUTES),
            client_auth_per_client_and_ip: Limit::new(20, FIVE_MINUTES),
            user_code_per_ip: Limit::new(10, FIVE_MINUTES),
        }
    }
}

/// The failures recorded against one counter (stored, and shared by every replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounter {
    /// What [`CounterKey`] names.
    pub key: String,
    /// Oldest first; only those still inside the window matter.
    #[serde(with = "unix_nanos")]
    pub failures: Vec<OffsetDateTime>,
    /// When every failure here has left its window: garbage collection may delete it then.
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused; the earliest moment another attempt can be allowed is this far away (whole seconds,
    /// at least one, as `Retry-After` says it).
    Refused {
        retry_after: Duration,
    },
}

impl Verdict {
    /// The later of two refusals (an attempt checked against several counters waits for all of them).
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Refused { retry_after: a }, Verdict::Refused { retry_after: b }) => {
                Verdict::Refused { retry_after: a.max(b) }
            }
            (refused @ Verdict::Refused { .. }, Verdict::Allowed) | (Verdict::Allowed, refused) => refused,
        }
    }
}

fn plus(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    at.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .unwrap_or(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT))
}

/// The failures that still count at `now` (those of the last `window`), oldest first.
fn in_window(
    failures: &[OffsetDateTime],
    window: Duration,
    now: OffsetDateTime,
) -> impl Iterator<Item = OffsetDateTime> {
    failures.iter().copied().filter(move |at| plus(*at, window) > now)
}

/// Whether one more attempt is allowed at `now`, given the failures recorded so far.
pub fn verdict(counter: Option<&FailureCounter>, limit: Limit, now: OffsetDateTime) -> Verdict {
    let Some(counter) = counter else {
        return Verdict::Allowed;
    };
    let counted: Vec<OffsetDateTime> = in_window(&counter.failures, limit.window, now).collect();
    let max = limit.max as usize;
    if counted.len() < max {
        return Verdict::Allowed;
    }
    // Allowed again once only max - 1 remain: when the failure `len - max` from the oldest leaves
    // (a limit of 0, which the configuration refuses, would wait for the newest).
    let deciding = counted.get(counted.len() - max).or(counted.last()).copied().unwrap_or(now);
    Verdict::Refused { retry_after: whole_seconds_until(plus(deciding, limit.window), now) }
}

fn whole_seconds_until(at: OffsetDateTime, now: OffsetDateTime) -> Duration {
    let wait = (at - now).max(time::Duration::ZERO);
    let seconds = wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0);
    Duration::from_secs(seconds.max(1).unsigned_abs())
}

/// `counter` (or a new one under `key`) with a failure at `now`: what leaves the window is dropped,
/// and only the newest `limit.max` are kept (older ones can no longer decide anything).
pub fn with_failure(key: &str, counter: Option<FailureCounter>, limit: Limit, now: OffsetDateTime) -> FailureCounter {
    let mut failures: Vec<OffsetDateTime> = match counter {
        Some(counter) => in_window(&counter.failures, limit.window, now).collect(),
        None => Vec::new(),
    };
    failures.push(now);
    failures.sort();
    let keep = (limit.max as usize).max(1);
    if failures.len() > keep {
        failures.drain(..failures.len() - keep);
    }
    let expiry = failures.last().map_or(now, |newest| plus(*newest, limit.window));
    FailureCounter { key: key.to_owned(), failures, expiry }
}

/// `counter` without the failure recorded at `at` (an attempt charged in advance that turned out not
/// to be a failure); unchanged if there is none.
pub fn without_failure(mut counter: FailureCounter, at: OffsetDateTime) -> FailureCounter {
    if let Some(index) = counter.failures.iter().rposition(|recorded| *recorded == at) {
        counter.failures.remove(index);
    }
    counter
}

/// The counters of tessera's limits: each a stored key derived from what it counts. The parts are
/// hashed, so that a key has a fixed length whatever a client sends, and no login name or client ID
/// is stored in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKey<'a> {
    PasswordAccountAndIp { connector: &'a str, account: &'a str, ip: Option<IpAddr> },
    PasswordIp { ip: Option<IpAddr> },
    PasswordAccount { connector: &'a str, account: &'a str },
    ClientAuth { client_id: &'a str, ip: Option<IpAddr> },
    UserCodeIp { ip: Option<IpAddr> },
}

impl CounterKey<'_> {
    /// The stored key: the counter's kind, then a hash of its parts.
    pub fn key(&self) -> String {
        let ip = |ip: &Option<IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
        let (kind, parts) = match self {
            CounterKey::PasswordAccountAndIp { connector, account, ip: addr } => {
                ("password-account-ip", vec![connector.to_string(), account_name(account), ip(addr)])
            }
            CounterKey::PasswordIp { ip: addr } => ("password-ip", vec![ip(addr)]),
            CounterKey::PasswordAccount { connector, account } => {
                ("password-account", vec![connector.to_string(), account_name(account)])
            }
            CounterKey::ClientAuth { client_id, ip: addr } => ("client-auth", vec![client_id.to_string(), ip(addr)]),
            CounterKey::UserCodeIp { ip: addr } => ("user-code-ip", vec![ip(addr)]),
        };
        let mut hash = Sha256::new();
        for part in parts {
            // Length-prefixed, so that no two lists of parts hash alike.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        format!("{kind}:{}", URL_SAFE_NO_PAD.encode(hash.finalize()))
    }
}

/// The account a login name names, as connectors match it: without surrounding spaces and
/// case-insensitively (the password database looks emails up lowercased, LDAP compares names
/// case-insensitively), so `Admin@Example.com` and `admin@example.com` share one budget.
pub fn account_name(login: &str) -> String {
    login.trim().to_lowercase()
}

/// Timestamps as Unix nanoseconds: compact, and exact, so a failure can be withdrawn by its time.
mod unix_nanos {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(times: &[OffsetDateTime], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(times.iter().map(|at| at.unix_timestamp_nanos()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<OffsetDateTime>, D::Error> {
        Vec::<i128>::deserialize(deserializer)?
            .into_iter()
            .map(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = time::macros::datetime!(2030-01-01 00:00:00 UTC);
    const FIVE_IN_15M: Limit = Limit::new(5, FIFTEEN_MINUTES);

    fn after(seconds: i64) -> OffsetDateTime {
        T0 + time::Duration::seconds(seconds)
    }

    fn failed_at(times: &[i64]) -> Option<FailureCounter> {
        times.iter().fold(None, |counter, at| Some(with_failure("k", counter, FIVE_IN_15M, after(*at))))
    }

    #[test]
    fn the_sixth_attempt_after_five_failures_is_refused() {
        let four = failed_at(&[0, 1, 2, 3]);
        assert_eq!(verdict(four.as_ref(), FIVE_IN_15M, after(4)), Verdict::Allowed);
        let five = failed_at(&[0, 1, 2, 3, 4]);
        assert_eq!(
            verdict(five.as_ref(), FIVE_IN_15M, after(5)),
            Verdict::Refused { retry_after: Duration::from_secs(15 * 60 - 5) }
        );
        assert_eq!(verdict(None, FIVE_IN_15M, T0), Verdict::Allowed);
    }

    #[test]
    fn the_window_slides_one_failure_at_a_time() {
        let five = failed_at(&[0, 60, 120, 180, 240]);
        // The first failure leaves the window at 15:00; the second at 16:00.
        assert!(matches!(verdict(five.as_ref(), FIVE_IN_15M, after(899)), Verdict::Refused { .. }));
        assert_eq!(verdict(five.as_ref(), FIVE_IN_15M, after(900)), Verdict::Allowed);
        let six = Some(with_failure("k", five, FIVE_IN_15M, after(900)));
        assert_eq!(
            verdict(six.as_ref(), FIVE_IN_15M, after(901)),
            Verdict::Refused { retry_after: Duration::from_secs(59) }
        );
    }

    #[test]
    fn a_counter_keeps_only_what_can_still_decide() {
        let many = failed_at(&(0..50).collect::<Vec<_>>()).unwrap();
        assert_eq!(many.failures.len(), 5);
        assert_eq!(many.failures[0], after(45));
        assert_eq!(many.expiry, after(49) + time::Duration::minutes(15));
        let later = with_failure("k", Some(many), FIVE_IN_15M, after(2000));
        assert_eq!(later.failures, vec![after(2000)], "failures out of the window are dropped");
    }

    #[test]
    fn a_withdrawn_failure_no_longer_counts() {
        let five = failed_at(&[0, 1, 2, 3, 4]).unwrap();
        let four = without_failure(five, after(4));
        assert_eq!(verdict(Some(&four), FIVE_IN_15M, after(5)), Verdict::Allowed);
        assert_eq!(without_failure(four.clone(), after(99)), four, "nothing to withdraw");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        let limit = Limit::new(1, Duration::from_secs(10));
        let counter = with_failure("k", None, limit, T0);
        let at = T0 + time::Duration::milliseconds(9_500);
        assert_eq!(verdict(Some(&counter), limit, at), Verdict::Refused { retry_after: Duration::from_secs(1) });
        let at = T0 + time::Duration::milliseconds(1_500);
        assert_eq!(verdict(Some(&counter), limit, at), Verdict::Refused { retry_after: Duration::from_secs(9) });
    }

    #[test]
    fn refusals_combine_to_the_longest_wait() {
        let short = Verdict::Refused { retry_after: Duration::from_secs(5) };
        let long = Verdict::Refused { retry_after: Duration::from_secs(50) };
        assert_eq!(short.and(long), long);
        assert_eq!(Verdict::Allowed.and(short), short);
        assert_eq!(long.and(Verdict::Allowed), long);
        assert_eq!(Verdict::Allowed.and(Verdict::Allowed), Verdict::Allowed);
    }

    #[test]
    fn keys_separate_what_they_count_and_fold_case() {
        let ip: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let other: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        let key = |account, ip| CounterKey::PasswordAccountAndIp { connector: "local", account, ip }.key();
        assert_eq!(key("Admin@Example.com ", ip), key("admin@example.com", ip));
        assert_ne!(key("admin@example.com", ip), key("admin@example.com", other));
        assert_ne!(
            CounterKey::PasswordAccount { connector: "ab", account: "c" }.key(),
            CounterKey::PasswordAccount { connector: "a", account: "bc" }.key()
        );
        assert!(CounterKey::PasswordIp { ip }.key().starts_with("password-ip:"));
        assert_eq!(
            CounterKey::ClientAuth { client_id: &"x".repeat(100_000), ip }.key().len(),
            "client-auth:".len() + 43
        );
    }

    #[test]
    fn counters_round_trip_exactly() {
        let counter = with_failure("k", None, FIVE_IN_15M, T0 + time::Duration::nanoseconds(123_456_789));
        let json = serde_json::to_string(&counter).unwrap();
        assert_eq!(serde_json::from_str::<FailureCounter>(&json).unwrap(), counter);
    }
}

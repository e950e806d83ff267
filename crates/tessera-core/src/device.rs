//! The device flow's polling rule (RFC 8628 §3.4–3.5, as Dex applies it): what a poll of the device
//! code gets, as a pure function of the stored device token and the time.

use time::OffsetDateTime;

use crate::model::DeviceToken;

/// A device token waiting for the user.
pub const PENDING: &str = "authorization_pending";
/// A device token whose user finished: the token response is stored on it.
pub const COMPLETE: &str = "complete";
/// RFC 8628's default polling interval, which Dex uses, and the step `slow_down` adds to it.
pub const POLL_INTERVAL_SECONDS: i32 = 5;

/// What a poll gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The device code is past its expiry: `expired_token`.
    Expired,
    /// The user finished: the stored token response (after the PKCE check).
    Complete,
    /// Polled before the interval was over: `slow_down`, and the interval grows by 5 seconds.
    SlowDown { next_interval: i32 },
    /// Still waiting for the user: `authorization_pending`, with the interval back to the default.
    Pending { next_interval: i32 },
}

impl Poll {
    /// The interval and poll time to store, for the polls that record one.
    pub fn next_interval(self) -> Option<i32> {
        match self {
            Poll::SlowDown { next_interval } | Poll::Pending { next_interval } => Some(next_interval),
            Poll::Expired | Poll::Complete => None,
        }
    }
}

pub fn poll(token: &DeviceToken, now: OffsetDateTime) -> Poll {
    if token.expiry < now {
        return Poll::Expired;
    }
    if token.status == COMPLETE {
        return Poll::Complete;
    }
    let earliest = token.last_request_time + time::Duration::seconds(i64::from(token.poll_interval_seconds));
    if now < earliest {
        Poll::SlowDown { next_interval: token.poll_interval_seconds.saturating_add(POLL_INTERVAL_SECONDS) }
    } else {
        Poll::Pending { next_interval: POLL_INTERVAL_SECONDS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pkce;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn token(status: &str, interval: i32) -> DeviceToken {
        DeviceToken {
            device_code: "dc".into(),
            status: status.into(),
            token: String::new(),
            expiry: T0 + time::Duration::minutes(5),
            last_request_time: T0,
            poll_interval_seconds: interval,
            pkce: Pkce::default(),
        }
    }

    #[test]
    fn polling_within_the_interval_slows_the_device_down_step_by_step() {
        let at = T0 + time::Duration::seconds(4);
        assert_eq!(poll(&token(PENDING, 5), at), Poll::SlowDown { next_interval: 10 });
        assert_eq!(poll(&token(PENDING, 10), T0 + time::Duration::seconds(9)), Poll::SlowDown { next_interval: 15 });
    }

    #[test]
    fn polling_after_the_interval_is_pending_at_the_default_interval() {
        assert_eq!(poll(&token(PENDING, 15), T0 + time::Duration::seconds(15)), Poll::Pending { next_interval: 5 });
    }

    #[test]
    fn a_finished_device_gets_its_tokens_until_the_code_expires() {
        assert_eq!(poll(&token(COMPLETE, 5), T0), Poll::Complete, "no interval for a finished device");
        assert_eq!(poll(&token(COMPLETE, 5), T0 + time::Duration::minutes(5)), Poll::Complete);
        assert_eq!(
            poll(&token(COMPLETE, 5), T0 + time::Duration::minutes(5) + time::Duration::seconds(1)),
            Poll::Expired
        );
        assert_eq!(poll(&token(PENDING, 5), T0 + time::Duration::hours(1)), Poll::Expired);
        assert_eq!(Poll::Complete.next_interval(), None);
    }
}

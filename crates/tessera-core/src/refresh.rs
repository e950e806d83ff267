//! Refresh-token rules as pure functions of (token, time, policy): which secrets are accepted, when a
//! token has expired, and whether using it rotates it (Dex's `refresh_lookup.go` and rotation).

use std::time::Duration;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::model::RefreshToken;

/// `expiry.refreshTokens`; zero durations mean disabled or unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub rotation: bool,
    pub reuse_interval: Duration,
    pub absolute_lifetime: Duration,
    pub valid_if_not_used_for: Duration,
}

/// What using a token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// New secret; the old one is kept as obsolete for the reuse interval; identity refreshed.
    Rotate,
    /// Within the reuse interval: hand out the current secret again, change nothing.
    ReuseCurrent,
    /// Rotation disabled: same secret, last use recorded, identity refreshed.
    Touch,
    /// Rotation disabled, within the reuse interval: nothing changes.
    Unchanged,
}

impl Use {
    pub fn refreshes_identity(self) -> bool {
        matches!(self, Use::Rotate | Use::Touch)
    }
}

fn plus(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    at.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .unwrap_or(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT))
}

fn within_reuse_interval(token: &RefreshToken, now: OffsetDateTime, policy: &RefreshPolicy) -> bool {
    !policy.reuse_interval.is_zero() && now <= plus(token.last_used, policy.reuse_interval)
}

/// The presented secret is the current one, or the previous one still inside the reuse interval.
pub fn secret_accepted(token: &RefreshToken, presented: &str, now: OffsetDateTime, policy: &RefreshPolicy) -> bool {
    let equal = |a: &str| bool::from(a.as_bytes().ct_eq(presented.as_bytes()));
    equal(&token.token)
        || (!token.obsolete_token.is_empty()
            && equal(&token.obsolete_token)
            && within_reuse_interval(token, now, policy))
}

pub fn expired(token: &RefreshToken, now: OffsetDateTime, policy: &RefreshPolicy) -> bool {
    (!policy.absolute_lifetime.is_zero() && now > plus(token.created_at, policy.absolute_lifetime))
        || (!policy.valid_if_not_used_for.is_zero() && now > plus(token.last_used, policy.valid_if_not_used_for))
}

pub fn decide(token: &RefreshToken, now: OffsetDateTime, policy: &RefreshPolicy) -> Use {
    match (policy.rotation, within_reuse_interval(token, now, policy)) {
        (true, false) => Use::Rotate,
        (true, true) => Use::ReuseCurrent,
        (false, false) => Use::Touch,
        (false, true) => Use::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Claims;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn token() -> RefreshToken {
        RefreshToken {
            id: "id".into(),
            token: "current".into(),
            obsolete_token: "previous".into(),
            created_at: T0,
            last_used: T0,
            client_id: "app".into(),
            connector_id: "local".into(),
            connector_data: vec![],
            claims: Claims::default(),
            scopes: vec![],
            nonce: String::new(),
        }
    }

    fn policy(rotation: bool, reuse: u64, absolute: u64, idle: u64) -> RefreshPolicy {
        RefreshPolicy {
            rotation,
            reuse_interval: Duration::from_secs(reuse),
            absolute_lifetime: Duration::from_secs(absolute),
            valid_if_not_used_for: Duration::from_secs(idle),
        }
    }

    #[test]
    fn the_previous_secret_works_only_inside_the_reuse_interval() {
        let p = policy(true, 30, 0, 0);
        assert!(secret_accepted(&token(), "current", T0 + time::Duration::hours(9), &p));
        assert!(secret_accepted(&token(), "previous", T0 + time::Duration::seconds(30), &p));
        assert!(!secret_accepted(&token(), "previous", T0 + time::Duration::seconds(31), &p));
        assert!(!secret_accepted(&token(), "previous", T0, &policy(true, 0, 0, 0)), "no interval, no reuse");
        assert!(!secret_accepted(&token(), "guess", T0, &p));
    }

    #[test]
    fn absolute_and_idle_expiry() {
        let p = policy(true, 0, 3600, 600);
        assert!(!expired(&token(), T0 + time::Duration::seconds(600), &p));
        assert!(expired(&token(), T0 + time::Duration::seconds(601), &p), "idle too long");
        let mut used = token();
        used.last_used = T0 + time::Duration::seconds(3500);
        assert!(!expired(&used, T0 + time::Duration::seconds(3600), &p));
        assert!(expired(&used, T0 + time::Duration::seconds(3601), &p), "past the absolute lifetime");
        assert!(!expired(&token(), T0 + time::Duration::days(3650), &policy(true, 0, 0, 0)), "unlimited by default");
    }

    #[test]
    fn rotation_decisions() {
        let later = T0 + time::Duration::seconds(60);
        assert_eq!(decide(&token(), later, &policy(true, 0, 0, 0)), Use::Rotate);
        assert_eq!(decide(&token(), later, &policy(true, 120, 0, 0)), Use::ReuseCurrent);
        assert_eq!(decide(&token(), later, &policy(false, 0, 0, 0)), Use::Touch);
        assert_eq!(decide(&token(), later, &policy(false, 120, 0, 0)), Use::Unchanged);
        assert!(Use::Rotate.refreshes_identity() && Use::Touch.refreshes_identity());
        assert!(!Use::ReuseCurrent.refreshes_identity() && !Use::Unchanged.refreshes_identity());
    }
}

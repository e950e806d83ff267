//! Refresh-token rules as pure functions of (token, time, policy): which secrets are accepted, when a
//! token has expired, whether using it rotates it (Dex's `refresh_lookup.go` and rotation), and
//! where the refreshed identity comes from (Dex's `grants/refresh.go`).

use std::time::Duration;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::model::{Claims, RefreshToken, UserIdentity};

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

/// Where a use of a refresh token takes the user's identity from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource<'a> {
    /// The use refreshes nothing (inside the reuse interval): the claims the token already carries.
    Token,
    /// The identity recorded at the user's last login (sessions on, as Dex master): the connector is
    /// not asked, so the downstream refresh no longer depends on the upstream's (which may have
    /// expired, or answer differently now). The user logs in again to pick up a change.
    Stored(&'a UserIdentity),
    /// The connector, asked again: sessions off, or sessions on but no identity stored for the
    /// token's user and connector — a token issued before sessions were turned on, by the password
    /// grant, or imported from Dex. Dex fails such a refresh with a 500; tessera asks the connector,
    /// as it would without sessions, rather than strand the token.
    Connector,
}

/// Where `planned`'s identity comes from, given the identity stored for the token's user and
/// connector (`None` with sessions off: it is not read then, as in Dex).
pub fn identity_source(planned: Use, stored: Option<&UserIdentity>) -> IdentitySource<'_> {
    match (planned.refreshes_identity(), stored) {
        (false, _) => IdentitySource::Token,
        (true, Some(identity)) => IdentitySource::Stored(identity),
        (true, None) => IdentitySource::Connector,
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

/// Another use of the token won the race between our read and our write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed;

/// A use of a token, planned on a read of it: the secret presented, what [`decide`] said then, and
/// what a rotation writes.
#[derive(Debug, Clone, Copy)]
pub struct PlannedUse<'a> {
    pub presented: &'a str,
    pub planned: Use,
    pub new_secret: &'a str,
    pub claims: &'a Claims,
    pub now: OffsetDateTime,
}

/// The token as the planned use leaves it, applied to `current` (the stored token, possibly written
/// since the plan was made): unchanged inside the reuse interval; a new secret (the old one kept as
/// obsolete) on rotation; the last use and the refreshed claims recorded. [`Claimed`] when somebody
/// else's use changed the token so that this one no longer holds.
pub fn apply_use(
    mut current: RefreshToken,
    planned: &PlannedUse,
    policy: &RefreshPolicy,
) -> Result<RefreshToken, Claimed> {
    if !secret_accepted(&current, planned.presented, planned.now, policy) {
        return Err(Claimed);
    }
    match (decide(&current, planned.now, policy), planned.planned) {
        (Use::ReuseCurrent | Use::Unchanged, _) => Ok(current),
        (Use::Rotate, Use::Rotate) => {
            current.obsolete_token = std::mem::replace(&mut current.token, planned.new_secret.to_owned());
            current.last_used = planned.now;
            current.claims = planned.claims.clone();
            Ok(current)
        }
        (Use::Touch, Use::Touch) => {
            current.last_used = planned.now;
            current.claims = planned.claims.clone();
            Ok(current)
        }
        // Used by someone else between the read and this write.
        _ => Err(Claimed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn a_stored_identity_replaces_the_connector_and_its_absence_falls_back_to_it() {
        let stored = UserIdentity {
            user_id: "u1".into(),
            connector_id: "local".into(),
            claims: Claims { email: "at-login@example.com".into(), ..Claims::default() },
            consents: Default::default(),
            created_at: T0,
            last_login: T0,
        };
        for planned in [Use::Rotate, Use::Touch] {
            assert_eq!(identity_source(planned, Some(&stored)), IdentitySource::Stored(&stored));
            assert_eq!(identity_source(planned, None), IdentitySource::Connector, "sessions off, or none stored");
        }
        for planned in [Use::ReuseCurrent, Use::Unchanged] {
            assert_eq!(identity_source(planned, Some(&stored)), IdentitySource::Token);
            assert_eq!(identity_source(planned, None), IdentitySource::Token);
        }
    }
    fn planned<'a>(planned: Use, presented: &'a str, claims: &'a Claims, now: OffsetDateTime) -> PlannedUse<'a> {
        PlannedUse { presented, planned, new_secret: "next", claims, now }
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_as_obsolete_and_records_the_use() {
        let claims = Claims { email: "new@example.com".into(), ..Claims::default() };
        let later = T0 + time::Duration::seconds(60);
        let p = policy(true, 0, 0, 0);
        let rotated = apply_use(token(), &planned(Use::Rotate, "current", &claims, later), &p).unwrap();
        assert_eq!((rotated.token.as_str(), rotated.obsolete_token.as_str()), ("next", "current"));
        assert_eq!((rotated.last_used, rotated.claims), (later, claims.clone()));
        let touched = apply_use(token(), &planned(Use::Touch, "current", &claims, later), &policy(false, 0, 0, 0));
        let touched = touched.unwrap();
        assert_eq!((touched.token.as_str(), touched.last_used), ("current", later));
    }

    #[test]
    fn inside_the_reuse_interval_nothing_changes() {
        let claims = Claims::default();
        let p = policy(true, 120, 0, 0);
        let now = T0 + time::Duration::seconds(60);
        let same = apply_use(token(), &planned(Use::ReuseCurrent, "current", &claims, now), &p).unwrap();
        assert_eq!(same, token());
    }

    #[test]
    fn a_use_that_lost_the_race_is_claimed() {
        let claims = Claims::default();
        let later = T0 + time::Duration::seconds(60);
        // Rotated by someone else meanwhile: our secret is now the obsolete one, out of any interval.
        let mut rotated = token();
        rotated.obsolete_token = std::mem::replace(&mut rotated.token, "theirs".into());
        let lost = apply_use(rotated, &planned(Use::Rotate, "current", &claims, later), &policy(true, 0, 0, 0));
        assert_eq!(lost, Err(Claimed));
        // Planned as a rotation, but the stored token says reuse: the other use is what the client gets.
        let mut reused = token();
        reused.last_used = later;
        let p = policy(true, 120, 0, 0);
        assert_eq!(apply_use(reused.clone(), &planned(Use::Rotate, "current", &claims, later), &p), Ok(reused));
        // Planned as a touch (rotation off), but the stored token was rotated in the meantime.
        let touched = apply_use(token(), &planned(Use::Touch, "current", &claims, later), &policy(true, 0, 0, 0));
        assert_eq!(touched, Err(Claimed));
    }
}

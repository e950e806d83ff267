//! Dex's browser sessions made into tessera's: each joined with its user's identity, those already
//! over left behind. A pure rule of (sessions, identities, now).

use std::collections::BTreeMap;

use tessera_core::model::{AuthSession, UserIdentity};
use time::OffsetDateTime;

use super::{DexAuthSession, Skipped};

/// What becomes of Dex's sessions at an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSessions {
    /// Alive at `now`, with their identity: what tessera imports.
    pub sessions: Vec<AuthSession>,
    /// Over at `now` (either expiry passed): not imported, as Dex would not honour them either.
    pub expired: usize,
    /// Alive but without the identity of their user and connector, each named.
    pub skipped: Vec<Skipped>,
}

/// Dex's sessions as tessera keeps them at `now`. A session takes its claims from the identity of
/// its (user, connector) and its `auth_time` from that identity's last login, which is where Dex's
/// single sign-on reads both (`server/authflow/sessionlogin.go`); without an identity Dex cannot
/// sign anyone in from the session, so neither can tessera.
pub fn live_sessions(sessions: Vec<DexAuthSession>, identities: &[UserIdentity], now: OffsetDateTime) -> LiveSessions {
    let by_user: BTreeMap<(&str, &str), &UserIdentity> =
        identities.iter().map(|i| ((i.user_id.as_str(), i.connector_id.as_str()), i)).collect();
    let mut live = LiveSessions::default();
    for dex in sessions {
        // Expired as tessera will judge it once imported (no later than Dex would).
        if now >= dex.absolute_expiry || now >= dex.idle_expiry {
            live.expired += 1;
            continue;
        }
        let Some(identity) = by_user.get(&(dex.user_id.as_str(), dex.connector_id.as_str())).copied() else {
            live.skipped.push(Skipped {
                table: "auth_session",
                id: dex.id,
                reason: format!(
                    "no user_identity for user {:?} and connector {:?} to take its claims from",
                    dex.user_id, dex.connector_id
                ),
            });
            continue;
        };
        live.sessions.push(AuthSession {
            id: dex.id,
            secret: dex.secret,
            user_id: dex.user_id,
            connector_id: dex.connector_id,
            claims: identity.claims.clone(),
            client_states: dex.client_states,
            auth_time: identity.last_login,
            created_at: dex.created_at,
            last_activity: dex.last_activity,
            absolute_expiry: dex.absolute_expiry,
            idle_expiry: dex.idle_expiry,
            logout_state: None,
            // Dex keeps the choice only in the browser's cookie (persistent or not), and tessera
            // sets a cookie only at a login, which records that login's choice as Dex does. Until
            // then the browser keeps Dex's cookie with the lifetime Dex gave it; `false` is the
            // value that could never make a cookie outlive what the user chose.
            remember_me: false,
            ip_address: dex.ip_address,
            user_agent: dex.user_agent,
        });
    }
    live
}

#[cfg(test)]
mod tests {
    use tessera_core::model::{Claims, ClientAuthState};
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn identity(user: &str) -> UserIdentity {
        UserIdentity {
            user_id: user.into(),
            connector_id: "local".into(),
            claims: Claims { user_id: user.into(), email: format!("{user}@example.com"), ..Claims::default() },
            consents: [("app".to_owned(), vec!["openid".to_owned()])].into(),
            created_at: NOW - Duration::days(3),
            last_login: NOW - Duration::hours(2),
        }
    }

    fn session(id: &str, user: &str, absolute: Duration, idle: Duration) -> DexAuthSession {
        let state = ClientAuthState {
            authenticated_at: NOW - Duration::hours(2),
            last_activity: NOW - Duration::minutes(5),
            via_sso: false,
            last_token_issued_at: None,
        };
        DexAuthSession {
            id: id.into(),
            secret: format!("{id}-secret"),
            user_id: user.into(),
            connector_id: "local".into(),
            client_states: [("app".to_owned(), state)].into(),
            created_at: NOW - Duration::hours(2),
            last_activity: NOW - Duration::minutes(5),
            absolute_expiry: NOW + absolute,
            idle_expiry: NOW + idle,
            ip_address: "192.0.2.1".into(),
            user_agent: "Firefox".into(),
        }
    }

    #[test]
    fn a_live_session_takes_claims_and_auth_time_from_its_identity() {
        let live = live_sessions(
            vec![session("s1", "jane", Duration::hours(20), Duration::hours(1))],
            &[identity("jane"), identity("john")],
            NOW,
        );
        assert_eq!((live.expired, live.skipped.len()), (0, 0));
        let s = &live.sessions[0];
        assert_eq!((s.id.as_str(), s.secret.as_str()), ("s1", "s1-secret"));
        assert_eq!(s.claims.email, "jane@example.com");
        assert_eq!(s.auth_time, NOW - Duration::hours(2), "Dex reports the identity's last login");
        assert_eq!(s.idle_expiry, NOW + Duration::hours(1));
        assert_eq!(s.client_states["app"].last_activity, NOW - Duration::minutes(5));
        assert!(!s.remember_me && s.logout_state.is_none());
    }

    #[test]
    fn either_expiry_passed_leaves_the_session_behind() {
        let live = live_sessions(
            vec![
                session("absolute", "jane", Duration::ZERO, Duration::hours(1)),
                session("idle", "jane", Duration::hours(20), -Duration::seconds(1)),
            ],
            &[identity("jane")],
            NOW,
        );
        assert_eq!((live.sessions.len(), live.expired, live.skipped.len()), (0, 2, 0));
    }

    #[test]
    fn a_session_without_identity_is_skipped_and_named() {
        let live = live_sessions(
            vec![session("orphan", "ghost", Duration::hours(20), Duration::hours(1))],
            &[identity("jane")],
            NOW,
        );
        assert!(live.sessions.is_empty());
        assert_eq!(live.skipped[0].table, "auth_session");
        assert_eq!(live.skipped[0].id, "orphan");
        assert!(live.skipped[0].reason.contains("\"ghost\""), "{}", live.skipped[0].reason);
    }
}

//! Logout rules (OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0) as pure
//! functions: whether a logout request must be confirmed by the user, where it may send the browser
//! afterwards, what a logout token says, and when a failed delivery is tried again.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::model::{AuthSession, BackchannelLogout, Client};

/// The event a logout token carries (Back-Channel Logout §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token's lifetime: the specification recommends at most two minutes, and delivery is
/// retried until then.
pub const LOGOUT_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(2);

/// How long one delivery attempt may take before another replica may try it again.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a verified `id_token_hint` says about the session it came from.
#[derive(Debug, Clone, Copy)]
pub struct HintedSession<'a> {
    pub user_id: &'a str,
    pub connector_id: &'a str,
    /// `sid`; empty for a token issued outside a session.
    pub session_id: &'a str,
}

/// Whether the hint describes `session`: the same user through the same connector, and, when the
/// token names a session, that one (a token from an earlier session of the same user does not count).
pub fn hint_matches(hint: &HintedSession<'_>, session: &AuthSession) -> bool {
    hint.user_id == session.user_id
        && hint.connector_id == session.connector_id
        && (hint.session_id.is_empty() || hint.session_id == session.id)
}

/// RP-Initiated Logout §2: the user is asked when nothing proves the request comes from the
/// session's own relying party — a hint for another session (any method, so a leaked token cannot be
/// replayed cross-site), or no hint on a GET (so `<img src=/logout>` logs nobody out). The
/// confirmation form itself POSTs without a hint, and that must go through.
pub fn must_confirm(hint: Option<bool>, is_get: bool) -> bool {
    match hint {
        Some(matches) => !matches,
        None => is_get,
    }
}

/// A `post_logout_redirect_uri` is followed only when the client registered it, exactly: another
/// path, a trailing slash or another scheme is another URI.
pub fn post_logout_redirect_allowed(client: &Client, uri: &str) -> bool {
    client.post_logout_redirect_uris.iter().any(|registered| registered == uri)
}

/// The claims of a logout token for one client (Back-Channel Logout §2.4): who, which session, and
/// the logout event; never a `nonce`, so it cannot pass for an ID token.
pub fn logout_token_claims(
    issuer: &str,
    client_id: &str,
    subject: &str,
    session_id: &str,
    jti: &str,
    now: OffsetDateTime,
) -> Value {
    json!({
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "iat": now.unix_timestamp(),
        "exp": (now + LOGOUT_TOKEN_LIFETIME).unix_timestamp(),
        "jti": jti,
        "sid": session_id,
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    })
}

/// The wait before attempt `attempts + 1` after a failure: 1 s, doubling, at most 30 s, so a client
/// down for a minute is tried about six times before its token expires.
pub fn retry_delay(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(5);
    Duration::from_secs((1u64 << exponent).min(30))
}

/// Whether a queued delivery may be attempted at `now`: its time has come and its token is alive.
pub fn is_due(delivery: &BackchannelLogout, now: OffsetDateTime) -> bool {
    delivery.next_attempt <= now && now < delivery.expiry
}

/// The delivery as claimed by one replica for an attempt at `now`: counted, and hidden from the
/// others until the attempt's timeout has passed (a replica that dies mid-attempt loses nothing).
pub fn claim(mut delivery: BackchannelLogout, now: OffsetDateTime) -> BackchannelLogout {
    delivery.attempts += 1;
    delivery.next_attempt = now + time::Duration::try_from(DELIVERY_TIMEOUT * 2).unwrap_or(time::Duration::SECOND);
    delivery
}

/// The delivery after a failed attempt at `now`: retried after its backoff, the reason kept.
pub fn failed(mut delivery: BackchannelLogout, error: String, now: OffsetDateTime) -> BackchannelLogout {
    delivery.next_attempt =
        now + time::Duration::try_from(retry_delay(delivery.attempts)).unwrap_or(time::Duration::SECOND);
    delivery.last_error = error;
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_epoch;
    use crate::model::Claims;

    fn session(id: &str) -> AuthSession {
        let now = test_epoch();
        AuthSession {
            id: id.into(),
            secret: "s".into(),
            user_id: "u1".into(),
            connector_id: "local".into(),
            claims: Claims::default(),
            client_states: Default::default(),
            auth_time: now,
            created_at: now,
            last_activity: now,
            absolute_expiry: now + time::Duration::HOUR,
            idle_expiry: now + time::Duration::HOUR,
            logout_state: None,
            remember_me: false,
            ip_address: String::new(),
            user_agent: String::new(),
        }
    }

    #[test]
    fn a_hint_matches_its_user_and_its_session_only() {
        let s = session("sid-1");
        let hint = |user, connector, sid| HintedSession { user_id: user, connector_id: connector, session_id: sid };
        assert!(hint_matches(&hint("u1", "local", "sid-1"), &s));
        assert!(hint_matches(&hint("u1", "local", ""), &s), "a token without sid: the subject decides");
        assert!(!hint_matches(&hint("u1", "local", "sid-0"), &s), "an earlier session's token");
        assert!(!hint_matches(&hint("u2", "local", "sid-1"), &s));
        assert!(!hint_matches(&hint("u1", "ldap", "sid-1"), &s));
    }

    #[test]
    fn confirmation_is_asked_unless_the_request_proves_itself() {
        assert!(!must_confirm(Some(true), true), "a hint for this session");
        assert!(must_confirm(Some(false), false), "a hint for someone else, even posted");
        assert!(must_confirm(None, true), "a bare GET");
        assert!(!must_confirm(None, false), "the confirmation form's POST");
    }

    #[test]
    fn only_a_registered_uri_exactly() {
        let client = Client { post_logout_redirect_uris: vec!["https://app.example/bye".into()], ..Client::default() };
        assert!(post_logout_redirect_allowed(&client, "https://app.example/bye"));
        for near in [
            "https://app.example/bye/",
            "http://app.example/bye",
            "https://app.example/byebye",
            "https://app.example/bye?x=1",
            "",
        ] {
            assert!(!post_logout_redirect_allowed(&client, near), "{near}");
        }
    }

    #[test]
    fn a_logout_token_names_the_session_and_the_event_and_no_nonce() {
        let claims = logout_token_claims("https://id.example/dex", "app", "sub-1", "sid-1", "jti-1", test_epoch());
        assert_eq!(claims["aud"], "app");
        assert_eq!(claims["sid"], "sid-1");
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
        assert_eq!(claims["events"][BACKCHANNEL_LOGOUT_EVENT], json!({}));
        assert!(claims.get("nonce").is_none());
    }

    #[test]
    fn retries_back_off_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_claimed_delivery_is_hidden_until_its_attempt_times_out_and_a_failure_waits_its_backoff() {
        let now = test_epoch();
        let queued = BackchannelLogout {
            id: "sid-1/app".into(),
            session_id: "sid-1".into(),
            user_id: "u1".into(),
            client_id: "app".into(),
            uri: "https://app.example/logout".into(),
            logout_token: "t".into(),
            attempts: 0,
            next_attempt: now,
            last_error: String::new(),
            expiry: now + LOGOUT_TOKEN_LIFETIME,
        };
        assert!(is_due(&queued, now));
        let claimed = claim(queued.clone(), now);
        assert_eq!(claimed.attempts, 1);
        assert!(!is_due(&claimed, now + time::Duration::seconds(9)));
        assert!(is_due(&claimed, now + time::Duration::seconds(10)), "the claiming replica died");
        let retried = failed(claimed, "503".into(), now);
        assert!(!is_due(&retried, now) && is_due(&retried, now + time::Duration::SECOND));
        assert!(!is_due(&retried, now + LOGOUT_TOKEN_LIFETIME), "expired tokens are not sent");
    }
}

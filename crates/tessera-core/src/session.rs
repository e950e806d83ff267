//! Browser-session rules as pure functions of (session, clients, time): whether a session is still
//! alive, how a use moves its idle expiry, and which clients single sign-on lets it into.

use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{AuthSession, Claims, Client, ClientAuthState};

/// The `sessions:` lifetimes and sharing default that the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub absolute_lifetime: Duration,
    pub valid_if_not_used_for: Duration,
    /// `ssoSharedWithDefault: all`: a client without `ssoSharedWith` shares with every client.
    pub share_by_default: bool,
}

fn plus(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    at.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .unwrap_or(OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap_or(at))
}

/// Alive until the earlier of its two expiries (strictly before, as garbage collection counts it).
pub fn is_alive(session: &AuthSession, now: OffsetDateTime) -> bool {
    now < session.absolute_expiry && now < session.idle_expiry
}

/// When garbage collection may delete it: the earlier expiry.
pub fn expiry(session: &AuthSession) -> OffsetDateTime {
    session.absolute_expiry.min(session.idle_expiry)
}

/// A `User-Agent` is cut to this many bytes: the header is the browser's to choose, and the session
/// is rewritten at every use, so an enormous one would be carried through every write.
pub const MAX_USER_AGENT: usize = 512;

/// Where a login came from, as its session keeps it (Dex's `IPAddress` and `UserAgent`): shown to
/// operators through the gRPC API, never used for a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip_address: String,
    pub user_agent: String,
}

impl Origin {
    /// The resolved client address (`None` when the listener recorded no peer) and the `User-Agent`
    /// header, cut to [`MAX_USER_AGENT`] bytes at a character boundary.
    pub fn new(ip: Option<IpAddr>, user_agent: &str) -> Self {
        let end = user_agent.floor_char_boundary(MAX_USER_AGENT);
        Self {
            ip_address: ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: user_agent.get(..end).unwrap_or_default().to_owned(),
        }
    }
}

/// What a new login starts: the client it served, both expiries counted from `now`.
pub struct NewSession<'a> {
    pub id: String,
    pub secret: String,
    pub connector_id: &'a str,
    pub claims: &'a Claims,
    pub client_id: &'a str,
    pub remember_me: bool,
    pub origin: Origin,
}

/// A login into an existing session: the identity the connector returned and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Relogin<'a> {
    pub claims: &'a Claims,
    pub origin: &'a Origin,
}

pub fn start(new: NewSession<'_>, policy: &SessionPolicy, now: OffsetDateTime) -> AuthSession {
    let state =
        ClientAuthState { authenticated_at: now, last_activity: now, via_sso: false, last_token_issued_at: None };
    AuthSession {
        id: new.id,
        secret: new.secret,
        user_id: new.claims.user_id.clone(),
        connector_id: new.connector_id.to_owned(),
        claims: new.claims.clone(),
        client_states: [(new.client_id.to_owned(), state)].into(),
        auth_time: now,
        created_at: now,
        last_activity: now,
        absolute_expiry: plus(now, policy.absolute_lifetime),
        idle_expiry: plus(now, policy.valid_if_not_used_for),
        logout_state: None,
        remember_me: new.remember_me,
        ip_address: new.origin.ip_address,
        user_agent: new.origin.user_agent,
    }
}

/// Whether a login may continue the browser's current session rather than replace it: the same
/// user through the same connector (anyone else's session is ended, never merged).
pub fn continues(session: &AuthSession, connector_id: &str, user_id: &str) -> bool {
    session.connector_id == connector_id && session.user_id == user_id
}

/// The session after a login (`Some`) or a single sign-on (`None`) for `client_id` at `now`:
/// activity recorded, the idle expiry moved (never past the absolute one, which a use cannot
/// extend). A fresh login renews `auth_time`, the identity and the origin (as Dex: a single sign-on
/// is no new login, so it leaves the address and user agent of the last one).
pub fn record_use(
    mut session: AuthSession,
    client_id: &str,
    login: Option<Relogin<'_>>,
    policy: &SessionPolicy,
    now: OffsetDateTime,
) -> AuthSession {
    session.last_activity = now;
    session.idle_expiry = plus(now, policy.valid_if_not_used_for).min(session.absolute_expiry);
    let via_sso = login.is_none();
    if let Some(login) = login {
        session.auth_time = now;
        session.claims = login.claims.clone();
        session.ip_address.clone_from(&login.origin.ip_address);
        session.user_agent.clone_from(&login.origin.user_agent);
    }
    let state = session.client_states.entry(client_id.to_owned()).or_insert(ClientAuthState {
        authenticated_at: now,
        last_activity: now,
        via_sso,
        last_token_issued_at: None,
    });
    state.last_activity = now;
    if !via_sso {
        // A login for a client that had only been reached by single sign-on makes it a source.
        state.authenticated_at = now;
        state.via_sso = false;
    }
    session
}

/// A code or tokens were just issued to `client_id` from `session`: the session is in use (its idle
/// expiry moves) and the client's state says when (Dex's `LastTokenIssuedAt`).
pub fn record_token_issued(
    mut session: AuthSession,
    client_id: &str,
    policy: &SessionPolicy,
    now: OffsetDateTime,
) -> AuthSession {
    session.last_activity = now;
    session.idle_expiry = plus(now, policy.valid_if_not_used_for).min(session.absolute_expiry);
    if let Some(state) = session.client_states.get_mut(client_id) {
        state.last_activity = now;
        state.last_token_issued_at = Some(now);
    }
    session
}

/// Whether `source`'s sign-in may be reused for `target_id`: its own `ssoSharedWith` (`*` for every
/// client, `[]` for none), else the server's default.
pub fn shares_with(source: &Client, target_id: &str, policy: &SessionPolicy) -> bool {
    match &source.sso_shared_with {
        None => policy.share_by_default,
        Some(peers) => peers.iter().any(|peer| peer == "*" || peer == target_id),
    }
}

/// The `prompt` values of a request (validated before: unknown values and `none` with others were
/// refused then).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    /// No page at all: answer silently from the session, or `login_required`/`consent_required`.
    pub none: bool,
    /// Log in again, whatever the session.
    pub login: bool,
    /// Ask for consent again.
    pub consent: bool,
    /// Let the user pick the account (here: the connector), so no session is reused.
    pub select_account: bool,
}

impl Prompt {
    pub fn parse(text: &str) -> Self {
        let mut prompt = Self::default();
        for value in text.split_whitespace() {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => prompt.select_account = true,
                _ => {}
            }
        }
        prompt
    }
}

/// Whether an `id_token_hint`'s subject is the session's user (the `sub` we would issue for it).
pub fn hint_names_session(hint_subject: &str, session: &AuthSession) -> bool {
    hint_subject == crate::subject::encode_subject(&session.user_id, &session.connector_id)
}

/// Whether the request lets a session stand in for a login at all: not when it asks to log in again
/// (`prompt=login`, `select_account`), nor when the login is older than its `max_age` (seconds; -1
/// when absent).
pub fn request_allows_reuse(prompt: &str, max_age: i64, auth_time: OffsetDateTime, now: OffsetDateTime) -> bool {
    let prompt = Prompt::parse(prompt);
    let asks_again = prompt.login || prompt.select_account;
    let too_old = max_age >= 0 && now - auth_time > time::Duration::seconds(max_age);
    !asks_again && !too_old
}

/// Whether a client's refresh tokens end with the browser session they were issued under
/// (`refreshTokenLifetime: session`) rather than living on their own (`standalone`, the default).
pub fn refresh_bound_to_session(client: &Client) -> bool {
    client.refresh_token_lifetime == "session"
}

/// Whether the scopes approved for a client cover a request's: `openid` needs no consent (it only
/// says the request is OpenID Connect), every other scope must have been approved.
pub fn consent_covers(approved: &[String], requested: &[String]) -> bool {
    requested.iter().all(|scope| scope == crate::scope::OPENID || approved.contains(scope))
}

/// The clients whose policy decides single sign-on into another client: those this session logged
/// into directly (the handler loads them and passes them to [`may_sign_in`]).
pub fn sources(session: &AuthSession) -> impl Iterator<Item = &str> {
    session.client_states.iter().filter(|(_, state)| !state.via_sso).map(|(id, _)| id.as_str())
}

/// Whether this live session signs the browser into `target_id` without a login: the client was
/// reached in this session before, or one of `sources` (clients logged into directly in this session)
/// shares with it.
pub fn may_sign_in(session: &AuthSession, target_id: &str, sources: &[Client], policy: &SessionPolicy) -> bool {
    if session.client_states.contains_key(target_id) {
        return true;
    }
    sources.iter().any(|source| {
        session.client_states.get(&source.id).is_some_and(|state| !state.via_sso)
            && shares_with(source, target_id, policy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_epoch;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> SessionPolicy {
        SessionPolicy { absolute_lifetime: 24 * HOUR, valid_if_not_used_for: HOUR, share_by_default: false }
    }

    fn claims() -> Claims {
        Claims { user_id: "u1".into(), email: "jane@example.com".into(), ..Claims::default() }
    }

    fn session() -> AuthSession {
        let claims = claims();
        let new = NewSession {
            id: "s1".into(),
            secret: "secret".into(),
            connector_id: "local",
            claims: &claims,
            client_id: "a",
            remember_me: false,
            origin: Origin::new(Some(IpAddr::from([192, 0, 2, 1])), "Firefox"),
        };
        start(new, &policy(), test_epoch())
    }

    fn client(id: &str, shared: Option<&[&str]>) -> Client {
        Client {
            id: id.into(),
            sso_shared_with: shared.map(|peers| peers.iter().map(|p| (*p).to_owned()).collect()),
            ..Client::default()
        }
    }

    fn at(d: Duration) -> OffsetDateTime {
        test_epoch() + d
    }

    #[test]
    fn a_session_dies_when_idle_or_old() {
        let s = session();
        assert!(is_alive(&s, at(HOUR - Duration::from_secs(1))));
        assert!(!is_alive(&s, at(HOUR)), "idle for validIfNotUsedFor");
        let mut used = s.clone();
        for hour in 1..24 {
            used = record_use(used, "a", None, &policy(), at(HOUR * hour - Duration::from_secs(60)));
        }
        assert!(is_alive(&used, at(23 * HOUR + Duration::from_secs(1))), "used every hour");
        assert_eq!(expiry(&used), at(24 * HOUR - Duration::from_secs(60)));
        let used = record_use(used, "a", None, &policy(), at(23 * HOUR + HOUR / 2));
        assert_eq!(expiry(&used), at(24 * HOUR), "a use never moves it past absoluteLifetime");
        assert!(!is_alive(&used, at(24 * HOUR)));
    }

    #[test]
    fn a_use_moves_the_idle_expiry_but_not_auth_time_and_a_login_renews_it() {
        let s = record_use(session(), "b", None, &policy(), at(HOUR / 2));
        assert_eq!(s.idle_expiry, at(HOUR + HOUR / 2));
        assert_eq!(s.auth_time, test_epoch());
        assert!(s.client_states["b"].via_sso);
        assert_eq!((s.ip_address.as_str(), s.user_agent.as_str()), ("192.0.2.1", "Firefox"), "SSO is no login");
        let origin = Origin::new(Some(IpAddr::from([198, 51, 100, 7])), "curl/8");
        let s = record_use(s, "b", Some(Relogin { claims: &claims(), origin: &origin }), &policy(), at(HOUR));
        assert_eq!(s.auth_time, at(HOUR));
        assert!(!s.client_states["b"].via_sso, "a login makes the client a source");
        assert_eq!((s.ip_address.as_str(), s.user_agent.as_str()), ("198.51.100.7", "curl/8"));
    }

    #[test]
    fn issuing_to_a_client_moves_the_idle_expiry_and_stamps_that_client_only() {
        let s = record_use(session(), "b", None, &policy(), at(HOUR / 4));
        let s = record_token_issued(s, "a", &policy(), at(HOUR / 2));
        assert_eq!(s.idle_expiry, at(HOUR + HOUR / 2));
        assert_eq!(s.client_states["a"].last_token_issued_at, Some(at(HOUR / 2)));
        assert_eq!(s.client_states["a"].last_activity, at(HOUR / 2));
        assert_eq!(s.client_states["b"].last_token_issued_at, None);
        let s = record_token_issued(s, "stranger", &policy(), at(HOUR));
        assert!(!s.client_states.contains_key("stranger"), "a client the session never reached is not added");
    }

    #[test]
    fn a_session_stored_before_the_origin_was_recorded_still_reads() {
        let mut stored = serde_json::to_value(session()).unwrap();
        let fields = stored.as_object_mut().unwrap();
        fields.remove("ip_address").unwrap();
        fields.remove("user_agent").unwrap();
        let read: AuthSession = serde_json::from_value(stored).unwrap();
        assert_eq!((read.ip_address, read.user_agent), (String::new(), String::new()));
    }

    #[test]
    fn the_origin_keeps_the_address_without_port_and_a_bounded_user_agent() {
        let v6 = Origin::new(Some("2001:db8::1".parse().unwrap()), "");
        assert_eq!(v6, Origin { ip_address: "2001:db8::1".into(), user_agent: String::new() });
        assert_eq!(Origin::new(None, "agent").ip_address, "", "no peer recorded");
        let long = "é".repeat(MAX_USER_AGENT);
        let cut = Origin::new(None, &long).user_agent;
        // 'é' is two bytes: the cut falls on a character boundary, at most MAX_USER_AGENT bytes in.
        assert_eq!(cut.len(), MAX_USER_AGENT);
        assert!(long.starts_with(&cut));
        let odd = format!("x{long}");
        assert_eq!(Origin::new(None, &odd).user_agent.len(), MAX_USER_AGENT - 1);
    }

    #[test]
    fn sharing_follows_the_client_then_the_default() {
        let p = policy();
        assert!(!shares_with(&client("a", None), "b", &p));
        assert!(shares_with(&client("a", None), "b", &SessionPolicy { share_by_default: true, ..p }));
        assert!(!shares_with(&client("a", Some(&[])), "b", &SessionPolicy { share_by_default: true, ..p }));
        assert!(shares_with(&client("a", Some(&["*"])), "b", &p));
        assert!(shares_with(&client("a", Some(&["b"])), "b", &p));
        assert!(!shares_with(&client("a", Some(&["c"])), "b", &p));
    }

    #[test]
    fn single_sign_on_is_one_hop_from_a_login() {
        let p = policy();
        let s = session();
        assert!(may_sign_in(&s, "a", &[], &p), "the client it logged into");
        assert!(may_sign_in(&s, "b", &[client("a", Some(&["b"]))], &p));
        assert!(!may_sign_in(&s, "b", &[client("a", Some(&[]))], &p));
        // b reached by SSO shares with c, but b was never logged into: no way on to c.
        let s = record_use(s, "b", None, &p, at(Duration::from_secs(1)));
        assert_eq!(sources(&s).collect::<Vec<_>>(), ["a"]);
        assert!(!may_sign_in(&s, "c", &[client("a", Some(&["b"])), client("b", Some(&["*"]))], &p));
    }

    #[test]
    fn consent_covers_every_scope_but_openid() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(consent_covers(&s(&["email"]), &s(&["openid", "email"])));
        assert!(consent_covers(&s(&[]), &s(&["openid"])));
        assert!(!consent_covers(&s(&["email"]), &s(&["openid", "email", "groups"])));
        assert!(consent_covers(&s(&["email", "groups"]), &s(&["groups"])));
    }

    #[test]
    fn a_request_may_refuse_the_session() {
        let t = test_epoch();
        assert!(request_allows_reuse("", -1, t, at(HOUR)));
        assert!(request_allows_reuse("consent", -1, t, at(HOUR)));
        assert!(!request_allows_reuse("login", -1, t, t));
        assert!(!request_allows_reuse("consent select_account", -1, t, t));
        assert!(request_allows_reuse("", 60, t, at(Duration::from_secs(60))));
        assert!(!request_allows_reuse("", 60, t, at(Duration::from_secs(61))));
    }

    #[test]
    fn only_the_same_user_and_connector_continue_a_session() {
        let s = session();
        assert!(continues(&s, "local", "u1"));
        assert!(!continues(&s, "local", "u2"));
        assert!(!continues(&s, "ldap", "u1"));
    }
}

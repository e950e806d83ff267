//! Browser sessions (`DEX_SESSIONS_ENABLED=true`): the service between the login pages and storage
//! that finds a request's session by its cookie, records logins, and lets single sign-on in. The
//! rules are `tessera_core::session`; the cookie's format is [`cookie`].

pub mod cookie;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use tessera_core::clock::Clock;
use tessera_core::id::new_id;
use tessera_core::model::{AuthRequest, AuthSession, Claims, Client, UserIdentity};
use tessera_core::session::{self, NewSession, Origin, Relogin, SessionPolicy};
use tessera_storage::{Optional, Storage, StorageError};

use crate::config::{Config, SsoDefault};
use cookie::CookieCodec;

pub struct Sessions {
    storage: Storage,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
    codec: CookieCodec,
    cookie_name: String,
    /// The issuer's path: the cookie goes only to this server's pages.
    cookie_path: String,
    /// Only over TLS when the issuer is https.
    secure: bool,
    remember_me_default: bool,
}

/// What recording a login made: the session (its ID is the tokens' `sid`) and the cookie naming it.
pub struct Recorded {
    pub session_id: String,
    /// `None` only if the value could not be sealed (logged: the login goes on without a cookie).
    pub cookie: Option<HeaderValue>,
}

/// What a request's session cookie leads to.
pub enum ByCookie {
    /// No cookie, or one this server did not make.
    NoCookie,
    /// A genuine cookie for a session that has ended.
    Gone,
    /// The cookie names a session but was not made for it.
    Forged,
    /// The session the cookie was issued for (maybe expired since).
    Proven(Box<AuthSession>),
}

/// A login the session records.
pub struct Login<'a> {
    pub client_id: &'a str,
    pub connector_id: &'a str,
    pub claims: &'a Claims,
    pub remember_me: bool,
    /// The client's address and user agent, recorded on the session at every login into it.
    pub origin: Origin,
}

impl Sessions {
    /// `None` when sessions are off (no `DEX_SESSIONS_ENABLED`).
    pub fn new(config: &Config, storage: Storage, clock: Arc<dyn Clock>) -> Option<Self> {
        let sessions = config.sessions.as_ref()?;
        let codec = CookieCodec::new(sessions.cookie_encryption_key.as_deref())?;
        let path = config.issuer_url.path().trim_end_matches('/');
        Some(Self {
            storage,
            clock,
            policy: SessionPolicy {
                absolute_lifetime: sessions.absolute_lifetime,
                valid_if_not_used_for: sessions.valid_if_not_used_for,
                share_by_default: sessions.sso_shared_with_default == SsoDefault::All,
            },
            codec,
            cookie_name: sessions.cookie_name.clone(),
            cookie_path: if path.is_empty() { "/".to_owned() } else { path.to_owned() },
            secure: config.issuer_url.scheme() == "https",
            remember_me_default: sessions.remember_me_checked_by_default,
        })
    }

    /// Whether the "remember me" checkbox starts ticked.
    pub fn remember_me_default(&self) -> bool {
        self.remember_me_default
    }

    /// The live session the request's cookie proves, if any. A cookie this server did not make, or
    /// one whose MAC does not match its session, is logged and treated as no session.
    pub async fn current(&self, headers: &HeaderMap) -> Result<Option<AuthSession>, StorageError> {
        Ok(match self.by_cookie(headers).await? {
            ByCookie::Proven(stored) if session::is_alive(&stored, self.clock.now()) => Some(*stored),
            _ => None,
        })
    }

    /// The session the request's cookie names, whether or not it is still alive, or why there is
    /// none (the logout callback answers each case differently).
    pub async fn by_cookie(&self, headers: &HeaderMap) -> Result<ByCookie, StorageError> {
        let Some(value) = cookie_value(headers, &self.cookie_name) else {
            return Ok(ByCookie::NoCookie);
        };
        let Some(presented) = self.codec.decode(value) else {
            tracing::warn!(cookie = %self.cookie_name, "ignoring a session cookie this server did not issue");
            return Ok(ByCookie::NoCookie);
        };
        let Some(stored) = self.storage.get::<AuthSession>(&presented.id).await.optional()? else {
            return Ok(ByCookie::Gone);
        };
        if !presented.proves(&stored.secret) {
            tracing::warn!(cookie = %self.cookie_name, "ignoring a session cookie that does not carry its session's secret");
            return Ok(ByCookie::Forged);
        }
        Ok(ByCookie::Proven(Box::new(stored)))
    }

    /// Whether the session with this ID is still alive (not ended, not expired).
    pub async fn alive(&self, id: &str) -> Result<bool, StorageError> {
        let stored = self.storage.get::<AuthSession>(id).await.optional()?;
        Ok(stored.is_some_and(|session| session::is_alive(&session, self.clock.now())))
    }

    /// Records a login on the browser's session (continued when it is the same user and connector,
    /// otherwise a new one replaces it).
    pub async fn record_login(&self, headers: &HeaderMap, login: Login<'_>) -> Result<Recorded, StorageError> {
        let now = self.clock.now();
        self.record_identity(&login, now).await?;
        if let Some(current) = self.current(headers).await? {
            if session::continues(&current, login.connector_id, &login.claims.user_id) {
                let claims = login.claims.clone();
                let updated = self
                    .storage
                    .update::<AuthSession, _, StorageError>(&current.id, |stored| {
                        let relogin = Relogin { claims: &claims, origin: &login.origin };
                        let mut used = session::record_use(stored, login.client_id, Some(relogin), &self.policy, now);
                        used.remember_me = login.remember_me;
                        Ok(used)
                    })
                    .await?;
                return Ok(Recorded { cookie: self.set_cookie(&updated), session_id: updated.id });
            }
            // Another user (or connector) signed in on this browser: the old session ends here
            // rather than lingering unreachable until it expires.
            match self.storage.delete::<AuthSession>(&current.id).await {
                Ok(()) | Err(StorageError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        let new = NewSession {
            id: new_id(),
            secret: new_id(),
            connector_id: login.connector_id,
            claims: login.claims,
            client_id: login.client_id,
            remember_me: login.remember_me,
            origin: login.origin.clone(),
        };
        let created = session::start(new, &self.policy, now);
        self.storage.create(&created).await?;
        Ok(Recorded { cookie: self.set_cookie(&created), session_id: created.id })
    }

    /// Keeps the user's latest identity (consents stay as they were).
    async fn record_identity(&self, login: &Login<'_>, now: time::OffsetDateTime) -> Result<(), StorageError> {
        let first = UserIdentity {
            user_id: login.claims.user_id.clone(),
            connector_id: login.connector_id.to_owned(),
            claims: login.claims.clone(),
            consents: Default::default(),
            created_at: now,
            last_login: now,
        };
        self.storage
            .upsert_user_identity(first, |mut identity| {
                identity.claims = login.claims.clone();
                identity.last_login = now;
                Ok(identity)
            })
            .await
            .map(drop)
    }

    /// The identity recorded at the user's last login through `connector_id`, if any: what a refresh
    /// issues tokens from with sessions on.
    pub async fn last_identity(&self, user_id: &str, connector_id: &str) -> Result<Option<UserIdentity>, StorageError> {
        self.storage.get_user_identity(user_id, connector_id).await.optional()
    }

    /// Whether the user approved every scope `request` asks of its client before.
    pub async fn consented(&self, request: &AuthRequest) -> Result<bool, StorageError> {
        let Some(identity) =
            self.storage.get_user_identity(&request.claims.user_id, &request.connector_id).await.optional()?
        else {
            return Ok(false);
        };
        let approved = identity.consents.get(&request.client_id).map(Vec::as_slice).unwrap_or_default();
        Ok(session::consent_covers(approved, &request.scopes))
    }

    /// Remembers that the user approved `request`'s scopes for its client.
    pub async fn remember_consent(&self, request: &AuthRequest) -> Result<(), StorageError> {
        let now = self.clock.now();
        let first = UserIdentity {
            user_id: request.claims.user_id.clone(),
            connector_id: request.connector_id.clone(),
            claims: request.claims.clone(),
            consents: Default::default(),
            created_at: now,
            last_login: now,
        };
        self.storage
            .upsert_user_identity(first, |mut identity| {
                identity.consents.insert(request.client_id.clone(), request.scopes.clone());
                Ok(identity)
            })
            .await
            .map(drop)
    }

    /// Single sign-on: whether `session` (live, from [`Sessions::current`]) lets the browser into
    /// `client_id` through `connector_id` without a login. When it does, the use is recorded and the
    /// session as written comes back (with its identity and `auth_time`).
    pub async fn sign_in(
        &self,
        session: &AuthSession,
        client_id: &str,
        connector_id: &str,
    ) -> Result<Option<AuthSession>, StorageError> {
        // Only the connector the user logged in with: another connector is another identity.
        if session.connector_id != connector_id {
            return Ok(None);
        }
        let mut sources = Vec::new();
        for id in session::sources(session) {
            if let Some(client) = self.storage.get::<Client>(id).await.optional()? {
                sources.push(client);
            }
        }
        if !session::may_sign_in(session, client_id, &sources, &self.policy) {
            return Ok(None);
        }
        let now = self.clock.now();
        let updated = self
            .storage
            .update::<AuthSession, _, StorageError>(&session.id, |stored| {
                Ok(session::record_use(stored, client_id, None, &self.policy, now))
            })
            .await;
        match updated {
            Ok(updated) => Ok(Some(updated)),
            // Ended (logged out, collected) since it was read: no session to sign in with.
            Err(StorageError::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Records that a code or tokens were issued to `client_id` from the session (it may have ended
    /// meanwhile: then there is nothing to record).
    pub async fn record_token_issued(&self, session_id: &str, client_id: &str) -> Result<(), StorageError> {
        let now = self.clock.now();
        let updated = self
            .storage
            .update::<AuthSession, _, StorageError>(session_id, |stored| {
                Ok(session::record_token_issued(stored, client_id, &self.policy, now))
            })
            .await;
        match updated {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Whether the request carries this server's session cookie at all (valid or not).
    pub fn has_cookie(&self, headers: &HeaderMap) -> bool {
        cookie_value(headers, &self.cookie_name).is_some()
    }

    /// The `Set-Cookie` value that makes the browser forget its session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie =
            format!("{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{secure}", self.cookie_name, self.cookie_path);
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
    }

    fn set_cookie(&self, session: &AuthSession) -> Option<HeaderValue> {
        let Some(value) = self.codec.encode(&session.id, &session.secret) else {
            tracing::error!("sealing the session cookie failed; the login goes on without a session");
            return None;
        };
        let mut cookie = format!("{}={value}; Path={}; HttpOnly; SameSite=Lax", self.cookie_name, self.cookie_path);
        if self.secure {
            cookie.push_str("; Secure");
        }
        if session.remember_me {
            // Persistent, but never beyond the session itself.
            let left = (session.absolute_expiry - self.clock.now()).whole_seconds().max(0);
            cookie.push_str(&format!("; Max-Age={left}"));
        }
        HeaderValue::from_str(&cookie).ok()
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; dex_session=abc.def"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&headers, "dex_session"), Some("abc.def"));
        assert_eq!(cookie_value(&headers, "b"), Some("2"));
        assert_eq!(cookie_value(&headers, "dex"), None);
    }
}

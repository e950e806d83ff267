//! The refresh-token service: creating a token for a login (one per user, connector and client; the
//! user's offline session points at the client's current token and a new one replaces the old),
//! reading one with its offline session, and writing a use of it. It owns the paired storage
//! operations, so callers never see compare-and-swap or the storage's type parameters; the rules it
//! applies are tessera-core's (`refresh::apply_use`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_core::clock::Clock;
use tessera_core::id::new_id;
use tessera_core::model::{AuthSession, Claims, OfflineSessions, RefreshToken, RefreshTokenRef};
use tessera_core::refresh::{Claimed, PlannedUse, RefreshPolicy, apply_use};
use tessera_core::subject::encode_refresh_token;
use tessera_storage::{Optional, Storage, StorageError, Versioned};

/// What a new refresh token is issued for.
pub struct NewRefreshToken<'a> {
    pub client_id: &'a str,
    pub connector_id: &'a str,
    pub claims: &'a Claims,
    pub scopes: &'a [String],
    pub nonce: &'a str,
    /// The upstream's data for later refreshes, kept on the user's offline session (`None`: keep
    /// what the session has).
    pub upstream_data: Option<&'a [u8]>,
    /// The browser session the login came from; empty outside a browser flow.
    pub session_id: &'a str,
}

/// A stored token as read for a use, with the user's offline session: the use is written against
/// these reads.
pub struct StoredRefresh {
    token: Versioned<RefreshToken>,
    sessions: Option<Versioned<OfflineSessions>>,
}

impl StoredRefresh {
    pub fn token(&self) -> &RefreshToken {
        &self.token.value
    }

    /// The browser session the token was first issued under, from the offline session's reference
    /// to it; empty when it came from no browser session.
    pub fn session_id(&self) -> &str {
        let token = &self.token.value;
        self.sessions
            .as_ref()
            .and_then(|read| read.value.refresh.get(&token.client_id))
            .filter(|reference| reference.id == token.id)
            .map_or("", |reference| reference.session_id.as_str())
    }

    /// The upstream's data for a refresh: on the offline session, or, for tokens from before offline
    /// sessions, on the token.
    pub fn upstream_data(&self) -> &[u8] {
        match &self.sessions {
            Some(read) if !read.value.connector_data.is_empty() => &read.value.connector_data,
            _ => &self.token.value.connector_data,
        }
    }
}

/// Why a use was not written.
#[derive(Debug, thiserror::Error)]
pub enum UseError {
    #[error("the refresh token was used concurrently")]
    Claimed,
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl From<Claimed> for UseError {
    fn from(_: Claimed) -> Self {
        UseError::Claimed
    }
}

pub struct RefreshTokens {
    storage: Storage,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
}

impl RefreshTokens {
    pub fn new(storage: Storage, clock: Arc<dyn Clock>, policy: RefreshPolicy) -> Self {
        Self { storage, clock, policy }
    }

    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// Stores a new refresh token and returns it as the client gets it.
    pub async fn create(&self, new: NewRefreshToken<'_>) -> Result<String, StorageError> {
        if let Some(data) = new.upstream_data {
            self.remember_upstream_data(&new.claims.user_id, new.connector_id, data).await?;
        }
        let now = self.clock.now();
        let token = RefreshToken {
            id: new_id(),
            token: new_id(),
            obsolete_token: String::new(),
            created_at: now,
            last_used: now,
            client_id: new.client_id.to_owned(),
            connector_id: new.connector_id.to_owned(),
            // The upstream's data lives on the offline session, shared by the user's tokens.
            connector_data: Vec::new(),
            claims: new.claims.clone(),
            scopes: new.scopes.to_vec(),
            nonce: new.nonce.to_owned(),
        };
        self.storage.create(&token).await?;
        let reference = RefreshTokenRef {
            id: token.id.clone(),
            client_id: token.client_id.clone(),
            created_at: now,
            last_used: now,
            session_id: new.session_id.to_owned(),
        };

        let user = &new.claims.user_id;
        let mut replaced = None;
        let updated = self
            .storage
            .update_offline_sessions::<_, StorageError>(user, new.connector_id, |mut sessions| {
                replaced = sessions.refresh.insert(new.client_id.to_owned(), reference.clone()).map(|old| old.id);
                Ok(sessions)
            })
            .await
            .optional()?;
        if updated.is_none() {
            let sessions = OfflineSessions {
                user_id: user.clone(),
                conn_id: new.connector_id.to_owned(),
                refresh: BTreeMap::from([(new.client_id.to_owned(), reference)]),
                connector_data: Vec::new(),
            };
            self.storage.create(&sessions).await?;
        }
        if let Some(old) = replaced.filter(|old| *old != token.id) {
            self.storage.delete::<RefreshToken>(&old).await.optional()?;
        }
        Ok(encode_refresh_token(&token.id, &token.token))
    }

    /// The user's offline session for this connector keeps the upstream's data that refreshes use.
    pub async fn remember_upstream_data(
        &self,
        user: &str,
        connector_id: &str,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let updated = self
            .storage
            .update_offline_sessions::<_, StorageError>(user, connector_id, |mut sessions| {
                sessions.connector_data = data.to_vec();
                Ok(sessions)
            })
            .await
            .optional()?;
        if updated.is_some() {
            return Ok(());
        }
        let sessions = OfflineSessions {
            user_id: user.to_owned(),
            conn_id: connector_id.to_owned(),
            refresh: BTreeMap::new(),
            connector_data: data.to_vec(),
        };
        match self.storage.create(&sessions).await {
            // Created concurrently by another login of the same user: theirs is as good.
            Ok(()) | Err(StorageError::AlreadyExists) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The token with this ID and the user's offline session, in one read where the storage can.
    pub async fn read(&self, id: &str) -> Result<Option<StoredRefresh>, StorageError> {
        let read = self.storage.get_versioned_linked::<RefreshToken, OfflineSessions>(id).await.optional()?;
        Ok(read.map(|(token, sessions)| StoredRefresh { token, sessions }))
    }

    /// Writes a use planned on `read`, against that read (compare-and-swap: of two uses of one token,
    /// one rotates it). When the use refreshed the identity, the offline session records the client's
    /// last use and the upstream's newest data in the same round trip. The token as written.
    pub async fn record_use(
        &self,
        read: StoredRefresh,
        planned: &PlannedUse<'_>,
        upstream_data: Option<&[u8]>,
    ) -> Result<RefreshToken, UseError> {
        let policy = self.policy;
        let apply = |current: RefreshToken| apply_use(current, planned, &policy).map_err(UseError::from);
        match (upstream_data, read.sessions) {
            (Some(data), Some(sessions)) => {
                let record = |token: &RefreshToken, sessions| Ok(session_after_use(sessions, token, data));
                let (stored, session_written) =
                    self.storage.update_refresh_and_session(read.token, apply, sessions, record).await?;
                // A session deleted meanwhile (the user's sessions revoked) has nothing to record.
                session_written.optional()?;
                Ok(stored)
            }
            _ => self.storage.update_read(read.token, apply).await,
        }
    }
}

impl RefreshTokens {
    /// Revokes the refresh tokens that `clients` received within `session` (their offline-session
    /// reference names it): a token the same client got in another browser's session lives on.
    /// The number revoked.
    pub async fn revoke_session(&self, session: &AuthSession, clients: &[String]) -> Result<usize, StorageError> {
        if clients.is_empty() {
            return Ok(0);
        }
        self.revoke_where(&session.user_id, &session.connector_id, |client_id, reference| {
            clients.iter().any(|c| c == client_id) && reference.session_id == session.id
        })
        .await
    }

    /// Revokes every refresh token of the user on this connector (an operator ending the user's
    /// sessions or erasing the user, as Dex's API does). The number revoked.
    pub async fn revoke_all(&self, user_id: &str, connector_id: &str) -> Result<usize, StorageError> {
        self.revoke_where(user_id, connector_id, |_, _| true).await
    }

    /// Revokes the user's tokens on this connector that `ends` picks (by client and reference): the
    /// offline session forgets them first, so a token is never usable once unlisted, then each token
    /// is deleted. The number revoked.
    async fn revoke_where(
        &self,
        user_id: &str,
        connector_id: &str,
        ends: impl Fn(&str, &RefreshTokenRef) -> bool + Send + Sync,
    ) -> Result<usize, StorageError> {
        let mut revoked = Vec::new();
        let updated = self
            .storage
            .update_offline_sessions::<_, StorageError>(user_id, connector_id, |mut sessions| {
                // The update may run again after a conflict: only its last run counts.
                revoked.clear();
                sessions.refresh.retain(|client_id, reference| {
                    let end = ends(client_id, reference);
                    if end {
                        revoked.push(reference.id.clone());
                    }
                    !end
                });
                Ok(sessions)
            })
            .await
            .optional()?;
        if updated.is_none() {
            return Ok(0);
        }
        for token_id in &revoked {
            self.storage.delete::<RefreshToken>(token_id).await.optional()?;
        }
        Ok(revoked.len())
    }

    /// Revokes the client's refresh token for the user of this connector, as Dex's API does: the
    /// offline session forgets it, then the token is deleted. `false` when there was none.
    pub async fn revoke(&self, user_id: &str, connector_id: &str, client_id: &str) -> Result<bool, StorageError> {
        let mut revoked = None;
        let updated = self
            .storage
            .update_offline_sessions::<_, StorageError>(user_id, connector_id, |mut sessions| {
                revoked = sessions.refresh.remove(client_id).map(|reference| reference.id);
                Ok(sessions)
            })
            .await
            .optional()?;
        let Some(token_id) = revoked.filter(|_| updated.is_some()) else {
            return Ok(false);
        };
        self.storage.delete::<RefreshToken>(&token_id).await.optional()?;
        Ok(true)
    }
}

/// The offline session after `token`'s use: its last use for the client, and the upstream's newest data.
fn session_after_use(mut sessions: OfflineSessions, token: &RefreshToken, upstream_data: &[u8]) -> OfflineSessions {
    if let Some(reference) = sessions.refresh.get_mut(&token.client_id) {
        reference.last_used = token.last_used;
    }
    if !upstream_data.is_empty() {
        sessions.connector_data = upstream_data.to_vec();
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::clock::TestClock;
    use tessera_core::subject::decode_refresh_token;

    fn service() -> RefreshTokens {
        let storage = Storage::new(Arc::new(tessera_storage::memory::MemoryBackend::new()));
        RefreshTokens::new(storage, Arc::new(TestClock::at_test_epoch()), RefreshPolicy::default())
    }

    fn new_token<'a>(claims: &'a Claims, client_id: &'a str, scopes: &'a [String]) -> NewRefreshToken<'a> {
        NewRefreshToken {
            client_id,
            connector_id: "local",
            claims,
            scopes,
            nonce: "",
            upstream_data: Some(b"up"),
            session_id: "",
        }
    }

    #[tokio::test]
    async fn a_new_login_replaces_the_clients_token_and_revoking_removes_it() {
        let service = service();
        let claims = Claims { user_id: "u1".into(), ..Claims::default() };
        let scopes = vec!["openid".to_owned(), "offline_access".to_owned()];
        let (first, _) = decode_refresh_token(&service.create(new_token(&claims, "app", &scopes)).await.unwrap());
        let (second, _) = decode_refresh_token(&service.create(new_token(&claims, "app", &scopes)).await.unwrap());
        let (other, _) = decode_refresh_token(&service.create(new_token(&claims, "cli", &scopes)).await.unwrap());
        assert!(service.read(&first).await.unwrap().is_none(), "the new login replaced the first token");
        let stored = service.read(&second).await.unwrap().expect("the current token");
        assert_eq!(stored.upstream_data(), b"up", "the upstream data is on the offline session");

        assert!(service.revoke("u1", "local", "app").await.unwrap());
        assert!(service.read(&second).await.unwrap().is_none());
        assert!(!service.revoke("u1", "local", "app").await.unwrap(), "nothing left to revoke");
        assert!(!service.revoke("nobody", "local", "app").await.unwrap());
        assert!(service.read(&other).await.unwrap().is_some(), "another client's token is untouched");
    }
}

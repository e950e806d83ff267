//! The `local` connector: the password database (`enablePasswordDB`), static and stored users.
//! bcrypt runs off the async executor, a bounded number at a time, so logins cannot starve requests.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::model::{Claims, Password};
use tessera_core::password::check_bcrypt_hash;
use tessera_storage::{Optional, Storage};
use tokio::sync::Semaphore;

use crate::{ConnectorError, Identity, PasswordConnector, RefreshConnector, Scopes};

pub struct LocalConnector {
    storage: Storage,
    /// bcrypt at cost 10 is ~50-100 ms of CPU: at most this many at once.
    checks: Arc<Semaphore>,
}

impl LocalConnector {
    pub fn new(storage: Storage, concurrent_checks: usize) -> Self {
        Self { storage, checks: Arc::new(Semaphore::new(concurrent_checks.max(1))) }
    }

    fn identity(password: &Password) -> Identity {
        Identity {
            claims: Claims {
                user_id: password.user_id.clone(),
                // Dex: the display name if set, else the username.
                username: if password.name.is_empty() { password.username.clone() } else { password.name.clone() },
                preferred_username: password.preferred_username.clone(),
                email: password.email.clone(),
                email_verified: password.email_verified.unwrap_or(true),
                groups: password.groups.clone(),
            },
            connector_data: Vec::new(),
        }
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool, ConnectorError> {
        // A weak or malformed stored hash is refused outright, as Dex does at login.
        check_bcrypt_hash(hash).map_err(|e| ConnectorError::Failed(format!("stored password hash: {e}")))?;
        let _permit = self.checks.acquire().await.map_err(|e| ConnectorError::Failed(e.to_string()))?;
        let (password, hash) = (password.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .map_err(|e| ConnectorError::Failed(e.to_string()))?
            .map_err(|e| ConnectorError::Failed(e.to_string()))
    }
}

#[async_trait]
impl PasswordConnector for LocalConnector {
    fn prompt(&self) -> &str {
        "Email Address"
    }

    async fn login(&self, _scopes: Scopes, email: &str, password: &str) -> Result<Option<Identity>, ConnectorError> {
        if password.is_empty() {
            return Ok(None);
        }
        let found = self.storage.get_password(email).await.optional();
        let Some(stored) = found.map_err(|err| ConnectorError::Failed(err.to_string()))? else {
            return Ok(None);
        };
        Ok(self.verify(password, &stored.hash).await?.then(|| Self::identity(&stored)))
    }
}

#[async_trait]
impl RefreshConnector for LocalConnector {
    /// Re-reads the user: a deleted user, or one whose ID changed, can no longer refresh.
    async fn refresh(&self, _scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let found = self.storage.get_password(&identity.claims.email).await.optional();
        let Some(stored) = found.map_err(|err| ConnectorError::Failed(err.to_string()))? else {
            return Err(ConnectorError::Revoked("the user no longer exists".into()));
        };
        if stored.user_id != identity.claims.user_id {
            return Err(ConnectorError::Revoked("the user's ID changed".into()));
        }
        Ok(Identity { connector_data: identity.connector_data, ..Self::identity(&stored) })
    }
}

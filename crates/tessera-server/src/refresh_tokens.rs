//! Creating refresh tokens: one per (user, connector, client). The user's offline session points at
//! the client's current token; issuing a new one deletes the one it replaces.

use std::collections::BTreeMap;

use tessera_core::id::new_id;
use tessera_core::model::{Claims, OfflineSessions, RefreshToken, RefreshTokenRef};
use tessera_core::subject::encode_refresh_token;
use tessera_storage::StorageError;

use tessera_connectors::Identity;

use crate::AppState;

pub struct NewRefreshToken<'a> {
    pub client_id: &'a str,
    pub connector_id: &'a str,
    pub claims: &'a Claims,
    pub scopes: &'a [String],
    pub nonce: &'a str,
}

/// Stores a new refresh token and returns it as the client gets it.
pub async fn create(state: &AppState, new: NewRefreshToken<'_>) -> Result<String, StorageError> {
    let now = state.clock.now();
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
    state.storage.create(&token).await?;
    let reference =
        RefreshTokenRef { id: token.id.clone(), client_id: token.client_id.clone(), created_at: now, last_used: now };

    let user = &new.claims.user_id;
    let mut replaced = None;
    let updated = state
        .storage
        .update_offline_sessions::<_, StorageError>(user, new.connector_id, |mut sessions| {
            replaced = sessions.refresh.insert(new.client_id.to_owned(), reference.clone()).map(|old| old.id);
            Ok(sessions)
        })
        .await;
    match updated {
        Ok(_) => {}
        Err(StorageError::NotFound) => {
            let sessions = OfflineSessions {
                user_id: user.clone(),
                conn_id: new.connector_id.to_owned(),
                refresh: BTreeMap::from([(new.client_id.to_owned(), reference)]),
                connector_data: Vec::new(),
            };
            state.storage.create(&sessions).await?;
        }
        Err(err) => return Err(err),
    }
    if let Some(old) = replaced.filter(|old| *old != token.id) {
        match state.storage.delete::<RefreshToken>(&old).await {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(encode_refresh_token(&token.id, &token.token))
}

/// The user's offline session for this connector keeps the upstream's data that refreshes use.
pub async fn remember_upstream_data(
    state: &AppState,
    connector_id: &str,
    identity: &Identity,
) -> Result<(), StorageError> {
    let user = &identity.user_id;
    let data = identity.connector_data.clone();
    let updated = state
        .storage
        .update_offline_sessions::<_, StorageError>(user, connector_id, |mut sessions| {
            sessions.connector_data = data.clone();
            Ok(sessions)
        })
        .await;
    match updated {
        Ok(_) => Ok(()),
        Err(StorageError::NotFound) => {
            let sessions = OfflineSessions {
                user_id: user.clone(),
                conn_id: connector_id.to_owned(),
                refresh: BTreeMap::new(),
                connector_data: identity.connector_data.clone(),
            };
            match state.storage.create(&sessions).await {
                // Created concurrently by another login of the same user: theirs is as good.
                Ok(()) | Err(StorageError::AlreadyExists) => Ok(()),
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

//! The `refresh_token` grant: the token is found and checked (client, secret, expiry, scopes), the
//! identity refreshed through the connector when the token rotates, and the rotation written with
//! compare-and-swap, so two uses of one token cannot both rotate it.

use tessera_connectors::{ConnectorError, Identity, Scopes};
use tessera_core::error::OAuthError;
use tessera_core::grant;
use tessera_core::id::new_id;
use tessera_core::model::{Claims, Client, OfflineSessions, RefreshToken};
use tessera_core::refresh::{Use, decide, expired, secret_accepted};
use tessera_core::scope::{self, go_quoted};
use tessera_core::subject::{decode_refresh_token, encode_refresh_token};
use tessera_storage::{StorageError, Versioned};

use super::TokenForm;
use crate::AppState;
use crate::tokens::{MintRequest, TokenResponse, mint};

fn claimed() -> OAuthError {
    OAuthError::invalid_request("Refresh token is invalid or has already been claimed by another client.")
}

fn internal(err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %err, "refresh failed");
    OAuthError::server_error()
}

/// What can abort the compare-and-swap of a refresh.
enum Abort {
    Storage(StorageError),
    Claimed,
}

impl From<StorageError> for Abort {
    fn from(err: StorageError) -> Self {
        Abort::Storage(err)
    }
}

pub async fn refresh(state: &AppState, client: &Client, form: &TokenForm) -> Result<TokenResponse, OAuthError> {
    let presented = form.get("refresh_token");
    if presented.is_empty() {
        return Err(OAuthError::invalid_request("Required param: refresh_token."));
    }
    let (id, secret) = decode_refresh_token(presented);
    // Read with its version, and with the user's offline session in the same statement: the writes
    // below go against these reads (round trips saved on both sides).
    let (read, sessions) = match state.storage.get_versioned_linked::<RefreshToken, OfflineSessions>(&id).await {
        Ok(read) => read,
        Err(StorageError::NotFound) => return Err(claimed()),
        Err(err) => return Err(internal(err)),
    };
    let token = read.value.clone();
    if token.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "Refresh token is invalid or has already been claimed by another client.",
        ));
    }
    let now = state.clock.now();
    let policy = state.config.expiry.refresh_tokens.policy();
    if !secret_accepted(&token, &secret, now, &policy) {
        return Err(claimed());
    }
    if expired(&token, now, &policy) {
        return Err(OAuthError::invalid_request("Refresh token expired."));
    }
    let scopes = narrowed_scopes(&token.scopes, form.get("scope"))?;
    let connector = state
        .connectors
        .get(&token.connector_id)
        .filter(|_| client.allowed_connectors.is_empty() || client.allowed_connectors.contains(&token.connector_id))
        .ok_or_else(|| OAuthError::invalid_grant("Connector is not allowed for this client."))?;
    if !connector.allows_grant(grant::REFRESH_TOKEN) {
        return Err(OAuthError::invalid_request("Connector does not allow the refresh_token grant."));
    }

    let planned = decide(&token, now, &policy);
    let refreshed = if planned.refreshes_identity() {
        Some(refresh_identity(state, &token, sessions.as_ref()).await?)
    } else {
        None
    };
    let claims =
        refreshed.as_ref().map_or_else(|| token.claims.clone(), |identity| keep_user_id(&token.claims, identity));

    // Tokens before the rotation is written: if minting fails (a custom-claims database is down),
    // the refresh token stays as it was and the client can retry with it.
    // Dex always returns an ID token on refresh, `openid` or not.
    let minted = mint(
        state,
        &MintRequest {
            client_id: &client.id,
            scopes: &scopes,
            claims: &claims,
            connector_id: &token.connector_id,
            nonce: &token.nonce,
            auth_time: None,
            code: None,
            with_id_token: true,
            grant_type: grant::REFRESH_TOKEN,
        },
    )
    .await?;

    let new_secret = new_id();
    let rotate = |mut current: RefreshToken| {
        if !secret_accepted(&current, &secret, now, &policy) {
            return Err(Abort::Claimed);
        }
        match (decide(&current, now, &policy), planned) {
            (Use::ReuseCurrent | Use::Unchanged, _) => Ok(current),
            (Use::Rotate, Use::Rotate) => {
                current.obsolete_token = std::mem::replace(&mut current.token, new_secret.clone());
                current.last_used = now;
                current.claims = claims.clone();
                Ok(current)
            }
            (Use::Touch, Use::Touch) => {
                current.last_used = now;
                current.claims = claims.clone();
                Ok(current)
            }
            // Someone else used the token between our read and this write.
            _ => Err(Abort::Claimed),
        }
    };
    let stored = match (&refreshed, sessions) {
        // The offline session remembers when the client last refreshed and the upstream's newest
        // data; written with the token in one round trip where the storage can.
        (Some(identity), Some(sessions)) => {
            let record_use = |token: &RefreshToken, sessions| Ok(record_use(sessions, token, identity));
            match state
                .storage
                .update_read_then::<_, _, _, _, Abort, StorageError>(read, rotate, sessions, record_use)
                .await
            {
                // A session deleted meanwhile (the user's sessions revoked) has nothing to record.
                Ok((stored, Ok(_) | Err(StorageError::NotFound))) => Ok(stored),
                Ok((_, Err(err))) => return Err(internal(err)),
                Err(abort) => Err(abort),
            }
        }
        _ => state.storage.update_read::<RefreshToken, _, Abort>(read, rotate).await,
    };
    let stored = match stored {
        Ok(stored) => stored,
        Err(Abort::Claimed) => return Err(claimed()),
        Err(Abort::Storage(err)) => return Err(internal(err)),
    };
    Ok(TokenResponse::new(minted, Some(encode_refresh_token(&stored.id, &stored.token))))
}

/// A refresh may narrow the scopes it was granted, never widen them.
fn narrowed_scopes(granted: &[String], requested: &str) -> Result<Vec<String>, OAuthError> {
    let requested = scope::parse(requested);
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    let unauthorized: Vec<&str> = requested.iter().filter(|s| !granted.contains(s)).map(String::as_str).collect();
    if !unauthorized.is_empty() {
        return Err(OAuthError::invalid_request(format!(
            "Requested scopes contain unauthorized scope(s): {}.",
            go_quoted(&unauthorized)
        )));
    }
    Ok(requested)
}

/// The user's current identity from the connector (as stored, for a connector that does not
/// refresh), with the upstream data kept on their offline session (or, for tokens from before offline
/// sessions, on the token).
async fn refresh_identity(
    state: &AppState,
    token: &RefreshToken,
    sessions: Option<&Versioned<OfflineSessions>>,
) -> Result<Identity, OAuthError> {
    let connector = state.connectors.get(&token.connector_id).ok_or_else(claimed)?;
    let data = match sessions {
        Some(read) if !read.value.connector_data.is_empty() => read.value.connector_data.clone(),
        _ => token.connector_data.clone(),
    };
    let Some(refresher) = &connector.refresh else {
        return Ok(Identity::from_claims(&token.claims, data));
    };
    let scopes = Scopes::from_requested(&token.scopes);
    match refresher.refresh(scopes, Identity::from_claims(&token.claims, data)).await {
        Ok(identity) => Ok(identity),
        Err(ConnectorError::Revoked(reason)) => {
            tracing::info!(connector = %token.connector_id, %reason, "refresh refused by the connector");
            Err(OAuthError::invalid_grant("The user's identity can no longer be refreshed; log in again."))
        }
        Err(err) => Err(internal(err)),
    }
}

/// Dex overwrites every claim but the user ID on refresh.
fn keep_user_id(current: &Claims, identity: &Identity) -> Claims {
    Claims { user_id: current.user_id.clone(), ..identity.claims() }
}

/// The offline session after `token`'s use: its last use for the client, and the upstream's newest data.
fn record_use(mut sessions: OfflineSessions, token: &RefreshToken, identity: &Identity) -> OfflineSessions {
    if let Some(reference) = sessions.refresh.get_mut(&token.client_id) {
        reference.last_used = token.last_used;
    }
    if !identity.connector_data.is_empty() {
        sessions.connector_data = identity.connector_data.clone();
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_but_never_widen() {
        let granted = scope::parse("openid email offline_access");
        assert_eq!(narrowed_scopes(&granted, "").unwrap(), granted);
        assert_eq!(narrowed_scopes(&granted, "openid").unwrap(), vec!["openid"]);
        let err = narrowed_scopes(&granted, "openid groups profile").unwrap_err();
        assert_eq!(err.description, r#"Requested scopes contain unauthorized scope(s): ["groups" "profile"]."#);
    }
}

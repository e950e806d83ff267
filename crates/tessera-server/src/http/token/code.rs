//! The `authorization_code` grant: the code is checked (client, expiry, PKCE, redirect URI), then
//! deleted (the single-use gate, safe under concurrent redemption), then tokens are minted.

use tessera_core::error::OAuthError;
use tessera_core::grant;
use tessera_core::model::{AuthCode, Client};
use tessera_core::pkce::check_verifier;
use tessera_core::scope::{self, OFFLINE_ACCESS};
use tessera_storage::StorageError;

use super::TokenForm;
use crate::AppState;
use crate::refresh_tokens::{self, NewRefreshToken};
use crate::tokens::{MintRequest, TokenResponse, mint, wants_id_token};

fn invalid_code() -> OAuthError {
    OAuthError::invalid_grant("Invalid or expired code parameter.")
}

fn internal(err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %err, "code redemption failed");
    OAuthError::server_error()
}

pub async fn redeem(state: &AppState, client: &Client, form: &TokenForm) -> Result<TokenResponse, OAuthError> {
    let verifier = form.get("code_verifier");
    redeem_code(state, client, form.get("code"), form.get("redirect_uri"), (!verifier.is_empty()).then_some(verifier))
        .await
}

/// Redeems a code for `client` (also used by the device flow's callback).
pub async fn redeem_code(
    state: &AppState,
    client: &Client,
    code_id: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if code_id.is_empty() {
        return Err(OAuthError::invalid_request("Required param: code."));
    }
    let code = match state.storage.get::<AuthCode>(code_id).await {
        Ok(code) if code.client_id == client.id && code.expiry > state.clock.now() => code,
        Ok(_) | Err(StorageError::NotFound) => return Err(invalid_code()),
        Err(err) => return Err(internal(err)),
    };
    check_verifier(&code.pkce, verifier)?;
    if code.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_request("redirect_uri did not match URI from initial request."));
    }
    let connector = state.connectors.get(&code.connector_id);
    let allowed = client.allowed_connectors.is_empty() || client.allowed_connectors.contains(&code.connector_id);
    if connector.is_none() || !allowed {
        return Err(OAuthError::invalid_grant("Connector is not allowed for this client."));
    }
    // Tokens first (the custom-claims enrichers may fail: then the code stays usable for a retry),
    // then the single-use gate: only one redemption gets past it, however many race for it.
    let minted = mint(
        state,
        &MintRequest {
            client_id: &client.id,
            scopes: &code.scopes,
            claims: &code.claims,
            connector_id: &code.connector_id,
            nonce: &code.nonce,
            auth_time: code.auth_time,
            code: None,
            with_id_token: wants_id_token(&code.scopes),
            grant_type: grant::AUTHORIZATION_CODE,
        },
    )
    .await?;
    match state.storage.delete::<AuthCode>(&code.id).await {
        Ok(()) => {}
        Err(StorageError::NotFound) => return Err(invalid_code()),
        Err(err) => return Err(internal(err)),
    }
    let refreshable = connector.is_some_and(|c| c.refresh.is_some() && c.allows_grant(grant::REFRESH_TOKEN));
    let refresh_token = if scope::has(&code.scopes, OFFLINE_ACCESS) && refreshable {
        let new = NewRefreshToken {
            client_id: &client.id,
            connector_id: &code.connector_id,
            claims: &code.claims,
            scopes: &code.scopes,
            nonce: &code.nonce,
        };
        Some(refresh_tokens::create(state, new).await.map_err(internal)?)
    } else {
        None
    };
    Ok(TokenResponse::new(minted, refresh_token))
}

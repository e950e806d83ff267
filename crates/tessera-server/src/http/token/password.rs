//! The resource-owner `password` grant, through `oauth2.passwordConnector`, with Dex's scope rules:
//! `openid` required; `openid offline_access email profile groups federated:id` and trusted
//! cross-client scopes only.

use tessera_connectors::{Login, Scopes};
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::Client;
use tessera_core::scope::{self, EMAIL, FEDERATED_ID, GROUPS, OFFLINE_ACCESS, OPENID, PROFILE};

use super::TokenForm;
use crate::AppState;
use crate::refresh_tokens::{self, NewRefreshToken};
use crate::tokens::{MintRequest, PeerTrust, TokenResponse, mint};

fn internal(err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %err, "password grant failed");
    OAuthError::server_error()
}

pub async fn grant(state: &AppState, client: &Client, form: &TokenForm) -> Result<TokenResponse, OAuthError> {
    let scopes = scope::parse(form.get("scope"));
    let peers = PeerTrust::load(state, &scopes).await;
    scope::validate_grant_scopes(
        &scopes,
        &client.id,
        &|peer: &str| peers.trusted_peers_of(peer),
        &[OPENID, OFFLINE_ACCESS, EMAIL, PROFILE, GROUPS, FEDERATED_ID],
        true,
        ErrorCode::InvalidRequest,
    )?;
    let connector_id = state.config.oauth2.password_connector.clone().unwrap_or_default();
    let allowed = client.allowed_connectors.is_empty() || client.allowed_connectors.contains(&connector_id);
    let connector = state
        .connectors
        .get(&connector_id)
        .filter(|_| allowed)
        .ok_or_else(|| OAuthError::invalid_grant("The password connector is not allowed for this client."))?;
    if !connector.allows_grant(grant::PASSWORD) {
        return Err(OAuthError::invalid_request("The password connector does not allow the password grant."));
    }
    let Login::Password(login) = &connector.login else {
        return Err(internal(format!("oauth2.passwordConnector {connector_id:?} is not a password connector")));
    };
    let identity = match login.login(Scopes::from_requested(&scopes), form.get("username"), form.get("password")).await
    {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            return Err(OAuthError::new(ErrorCode::AccessDenied, "Invalid username or password").with_status(401));
        }
        Err(err) => {
            tracing::error!(connector = %connector_id, error = %err, "password connector failed");
            return Err(OAuthError::invalid_request("The password connector failed."));
        }
    };
    let claims = identity.claims();
    let nonce = form.get("nonce");
    let minted = mint(
        state,
        &MintRequest {
            client_id: &client.id,
            scopes: &scopes,
            claims: &claims,
            connector_id: &connector_id,
            nonce,
            auth_time: None,
            code: None,
            with_id_token: true,
            grant_type: grant::PASSWORD,
        },
    )
    .await?;
    let refreshable = connector.refresh.is_some() && connector.allows_grant(grant::REFRESH_TOKEN);
    let refresh_token = if scope::has(&scopes, OFFLINE_ACCESS) && refreshable {
        refresh_tokens::remember_upstream_data(state, &connector_id, &identity).await.map_err(internal)?;
        let new = NewRefreshToken {
            client_id: &client.id,
            connector_id: &connector_id,
            claims: &claims,
            scopes: &scopes,
            nonce,
        };
        Some(refresh_tokens::create(state, new).await.map_err(internal)?)
    } else {
        None
    };
    Ok(TokenResponse::new(minted, refresh_token))
}

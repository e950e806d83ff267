//! The `client_credentials` grant: a confidential client gets tokens about itself. The subject is the
//! client (user ID = client ID, no connector); `profile` names it, `groups` gives its
//! `clientCredentialsClaims.groups`; never a refresh token.

use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::{Claims, Client};
use tessera_core::scope::{self, EMAIL, GROUPS, OPENID, PROFILE};

use super::TokenForm;
use crate::AppState;
use crate::tokens::{MintRequest, PeerTrust, TokenResponse, mint, wants_id_token};

pub async fn grant(state: &AppState, client: &Client, form: &TokenForm) -> Result<TokenResponse, OAuthError> {
    if client.public {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "Public clients cannot use the client_credentials grant.",
        ));
    }
    let scopes = scope::parse(form.get("scope"));
    let peers = PeerTrust::load(state, &scopes).await;
    scope::validate_grant_scopes(
        &scopes,
        &client.id,
        &|peer: &str| peers.trusted_peers_of(peer),
        &[OPENID, EMAIL, PROFILE, GROUPS],
        false,
        ErrorCode::InvalidScope,
    )?;
    let profile = scope::has(&scopes, PROFILE);
    let claims = Claims {
        user_id: client.id.clone(),
        username: if profile { client.name.clone() } else { String::new() },
        preferred_username: if profile { client.name.clone() } else { String::new() },
        groups: if scope::has(&scopes, GROUPS) {
            client.client_credentials_claims.as_ref().map(|c| c.groups.clone()).unwrap_or_default()
        } else {
            Vec::new()
        },
        ..Claims::default()
    };
    let minted = mint(
        state,
        &MintRequest {
            client_id: &client.id,
            scopes: &scopes,
            claims: &claims,
            connector_id: "",
            nonce: "",
            auth_time: None,
            code: None,
            with_id_token: wants_id_token(&scopes),
            grant_type: grant::CLIENT_CREDENTIALS,
        },
    )
    .await?;
    Ok(TokenResponse::new(minted, None))
}

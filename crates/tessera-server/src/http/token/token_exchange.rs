//! Token exchange (RFC 8693): a token an upstream issued, verified by a connector that can
//! (`TokenIdentityConnector`), is exchanged for one of ours: an access token or an ID token.

use serde_json::{Value, json};
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::Client;
use tessera_core::scope;

use super::TokenForm;
use crate::AppState;
use crate::tokens::{MintRequest, mint};

pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

pub async fn grant(state: &AppState, client: &Client, form: &TokenForm) -> Result<Value, OAuthError> {
    let subject_type = form.get("subject_token_type");
    if subject_type != ACCESS_TOKEN_TYPE && subject_type != ID_TOKEN_TYPE {
        return Err(OAuthError::new(ErrorCode::RequestNotSupported, "Invalid subject_token_type."));
    }
    let requested = match form.get("requested_token_type") {
        "" => ACCESS_TOKEN_TYPE,
        requested @ (ACCESS_TOKEN_TYPE | ID_TOKEN_TYPE) => requested,
        _ => return Err(OAuthError::new(ErrorCode::RequestNotSupported, "Invalid requested_token_type.")),
    };
    let subject_token = form.get("subject_token");
    if subject_token.is_empty() {
        return Err(OAuthError::invalid_request("Missing subject_token."));
    }
    let connector_id = form.get("connector_id");
    let connector = state
        .connectors
        .get(connector_id)
        .ok_or_else(|| OAuthError::invalid_request("Requested connector does not exist."))?;
    if !client.allowed_connectors.is_empty() && !client.allowed_connectors.iter().any(|c| c == connector_id) {
        return Err(OAuthError::invalid_grant("Connector is not allowed for this client."));
    }
    if !connector.allows_grant(grant::TOKEN_EXCHANGE) {
        return Err(OAuthError::invalid_request("Requested connector does not allow token exchange."));
    }
    let Some(exchanger) = &connector.token_identity else {
        return Err(OAuthError::invalid_request("Requested connector does not support token exchange."));
    };
    let identity = exchanger.token_identity(subject_type, subject_token).await.map_err(|err| {
        tracing::info!(connector = %connector_id, error = %err, "subject token refused");
        OAuthError::new(ErrorCode::AccessDenied, "Unable to verify the subject token.").with_status(401)
    })?;
    // Dex does not validate the scopes of an exchange: they only shape the claims.
    let scopes = scope::parse(form.get("scope"));
    let minted = mint(
        state,
        &MintRequest {
            client_id: &client.id,
            scopes: &scopes,
            claims: &identity.claims(),
            connector_id,
            nonce: "",
            auth_time: None,
            code: None,
            with_id_token: requested == ID_TOKEN_TYPE,
            grant_type: grant::TOKEN_EXCHANGE,
        },
    )
    .await?;
    let token = if requested == ID_TOKEN_TYPE { minted.id_token.unwrap_or_default() } else { minted.access_token };
    Ok(json!({
        "access_token": token,
        "issued_token_type": requested,
        "token_type": "bearer",
        "expires_in": minted.expires_in,
    }))
}

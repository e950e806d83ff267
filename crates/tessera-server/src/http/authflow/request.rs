//! Validating an authorization request exactly as Dex does (`server/authflow/request.go`): which
//! mistakes are shown to the user as a page (the client or redirect URI cannot be trusted), and which
//! are sent back to the client as `error`, `error_description` and `state` in the redirect's query.

use axum::http::StatusCode;
use tessera_core::authorize;
use tessera_core::error::OAuthError;
use tessera_core::model::{Client, Pkce};
use tessera_core::scope;
use tessera_storage::Optional;

use super::params::Params;
use crate::AppState;
use crate::http::error::EndpointError;
use crate::http::trust::PeerTrust;
use crate::id_token_hint::{self, IdTokenHint};

pub use tessera_core::authorize::{DEVICE_CALLBACK_PATH, OOB_REDIRECT_URI, redirect_uri_allowed};

/// A request that passed validation, ready to become an auth request.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub client: Client,
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub nonce: String,
    pub state: String,
    pub force_approval_prompt: bool,
    pub prompt: String,
    pub max_age: i64,
    pub connector_id: String,
    pub pkce: Pkce,
    /// The verified `id_token_hint`, if one was sent.
    pub hint: Option<IdTokenHint>,
    /// `login_hint`: the username to start the login form with.
    pub login_hint: String,
}

impl ValidRequest {
    pub fn is_implicit_or_hybrid(&self) -> bool {
        self.response_types.iter().any(|t| t == "token" || t == "id_token")
    }
}

/// Why a request was refused, and how the user learns it.
#[derive(Debug)]
pub enum RequestError {
    /// Shown as an error page: the client or its redirect URI cannot be trusted with the error.
    Page(StatusCode, String),
    /// Sent back to the client's redirect URI.
    Redirect { redirect_uri: String, state: String, error: OAuthError },
}

pub async fn parse(state: &AppState, params: &Params) -> Result<ValidRequest, RequestError> {
    let client_id = params.get("client_id");
    let redirect_uri = params.get("redirect_uri").to_owned();
    let client = match state.storage.get::<Client>(client_id).await.optional() {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(RequestError::Page(StatusCode::NOT_FOUND, format!("Invalid client_id ({client_id:?}).")));
        }
        Err(err) => {
            tracing::error!(error = %err, "loading a client failed");
            return Err(RequestError::Page(StatusCode::INTERNAL_SERVER_ERROR, "Database error.".into()));
        }
    };
    if !redirect_uri_allowed(&client, &redirect_uri, state.config.issuer_path()) {
        return Err(RequestError::Page(
            StatusCode::BAD_REQUEST,
            format!("Unregistered redirect_uri ({redirect_uri:?})."),
        ));
    }

    // From here on the redirect URI is trusted: errors go back to the client.
    let fail = |error: OAuthError| RequestError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: params.get("state").to_owned(),
        error,
    };
    let peers = PeerTrust::load(state, &scope::parse(params.get("scope")))
        .await
        .map_err(|err| fail(EndpointError::from(err).into_oauth()))?;
    let request = authorize::Params {
        redirect_uri: &redirect_uri,
        connector_id: params.get("connector_id"),
        request: params.get("request"),
        code_challenge: params.get("code_challenge"),
        code_challenge_method: params.get("code_challenge_method"),
        scope: params.get("scope"),
        response_type: params.get("response_type"),
        nonce: params.get("nonce"),
        prompt: params.get("prompt"),
        max_age: params.get("max_age"),
        id_token_hint: params.get("id_token_hint"),
        approval_prompt: params.get("approval_prompt"),
    };
    let hint = match params.get("id_token_hint") {
        "" => None,
        raw => id_token_hint::verify(&state.signer, &state.config.issuer, raw),
    };
    let oauth2 = &state.config.oauth2;
    let policy = authorize::Policy {
        response_types: &oauth2.response_types,
        code_challenge_methods: &oauth2.code_challenge_methods_supported,
        pkce_enforce: oauth2.pkce_enforce,
    };
    let lookups = authorize::Lookups {
        connector_usable: &|id| state.connectors.get(id).is_some(),
        trusted_peers_of: &|peer| peers.trusted_peers_of(peer),
        hint_valid: &|_| hint.is_some(),
    };
    let valid = authorize::validate(&request, &client, &policy, &lookups).map_err(fail)?;
    Ok(ValidRequest {
        client,
        response_types: valid.response_types,
        scopes: valid.scopes,
        redirect_uri,
        nonce: valid.nonce,
        state: params.get("state").to_owned(),
        force_approval_prompt: valid.force_approval_prompt,
        prompt: valid.prompt,
        max_age: valid.max_age,
        connector_id: valid.connector_id,
        pkce: valid.pkce,
        hint,
        login_hint: params.get("login_hint").to_owned(),
    })
}

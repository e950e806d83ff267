//! Issuing the response to the client: the auth request is consumed (once), then a code, tokens in
//! the fragment (implicit and hybrid), or the out-of-band page.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use tessera_core::id::new_id;
use tessera_core::lifetimes;
use tessera_core::model::{AuthCode, AuthRequest};
use tessera_storage::Optional;

use super::request::OOB_REDIRECT_URI;
use super::{internal_page, redirect, with_parameters};
use crate::AppState;
use crate::http::error::EndpointError;
use crate::token_issuer::MintRequest;

pub async fn issue(state: &AppState, request: AuthRequest) -> Response {
    // Deleting is the single-use gate: a replayed step finds nothing to issue.
    match state.storage.delete::<AuthRequest>(&request.id).await.optional() {
        Ok(Some(())) => {}
        Ok(None) => return state.pages.error(StatusCode::BAD_REQUEST, "Login session expired or already used."),
        Err(err) => return internal_page(state, &err),
    }
    if let Some(sessions) = &state.sessions
        && !request.session_id.is_empty()
        && let Err(err) = sessions.record_token_issued(&request.session_id, &request.client_id).await
    {
        // Bookkeeping only: the client still gets its answer.
        tracing::warn!(session_id = %request.session_id, %err, "recording the issue on the session failed");
    }
    let wants = |t: &str| request.response_types.iter().any(|r| r == t);
    let code = if wants("code") {
        let code = AuthCode {
            id: new_id(),
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            nonce: request.nonce.clone(),
            scopes: request.scopes.clone(),
            connector_id: request.connector_id.clone(),
            connector_data: request.connector_data.clone(),
            claims: request.claims.clone(),
            expiry: state.clock.now() + lifetimes::as_time(lifetimes::AUTH_CODE),
            auth_time: request.auth_time,
            pkce: request.pkce.clone(),
            session_id: request.session_id.clone(),
        };
        if let Err(err) = state.storage.create(&code).await {
            return internal_page(state, &err);
        }
        Some(code.id)
    } else {
        None
    };

    if request.redirect_uri == OOB_REDIRECT_URI {
        return state.pages.render(StatusCode::OK, "oob.html", context! { code => code.unwrap_or_default() });
    }
    if !wants("token") && !wants("id_token") {
        let pairs = [("code", code.as_deref().unwrap_or_default()), ("state", request.state.as_str())];
        return match with_parameters(&request.redirect_uri, &pairs, false) {
            Some(location) => redirect(StatusCode::SEE_OTHER, &location),
            None => state.pages.error(StatusCode::BAD_REQUEST, "Invalid redirect_uri."),
        };
    }

    let minted = state
        .issuer
        .mint(&MintRequest {
            client_id: &request.client_id,
            scopes: &request.scopes,
            claims: &request.claims,
            connector_id: &request.connector_id,
            nonce: &request.nonce,
            auth_time: request.auth_time,
            code: code.as_deref(),
            with_id_token: wants("id_token"),
            grant_type: tessera_core::grant::IMPLICIT,
            session_id: Some(request.session_id.as_str()),
            redirect_uri: &request.redirect_uri,
        })
        .await;
    let minted = match minted {
        Ok(minted) => {
            if let Some(issued) = state.metrics.tokens_issued(tessera_core::grant::IMPLICIT) {
                issued.inc();
            }
            minted
        }
        Err(err) => return EndpointError::from(err).into_redirect(&request.redirect_uri, &request.state),
    };
    // Sorted, as Go's url.Values encodes them.
    let mut fragment = BTreeMap::new();
    if wants("token") {
        fragment.insert("access_token", minted.access_token);
        fragment.insert("token_type", "bearer".to_owned());
        if code.is_none() {
            fragment.insert("expires_in", minted.expires_in.to_string());
        }
    }
    if let Some(id_token) = minted.id_token {
        fragment.insert("id_token", id_token);
    }
    if let Some(code) = code {
        fragment.insert("code", code);
    }
    fragment.insert("state", request.state.clone());
    let pairs: Vec<(&str, &str)> = fragment.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match with_parameters(&request.redirect_uri, &pairs, true) {
        Some(location) => redirect(StatusCode::SEE_OTHER, &location),
        None => state.pages.error(StatusCode::BAD_REQUEST, "Invalid redirect_uri."),
    }
}

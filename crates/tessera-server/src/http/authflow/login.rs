//! `/auth/{connector}`: validates the authorization request, records it as an auth request, and
//! sends the browser to the connector (our password form, or the upstream's login page).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use tessera_connectors::{Login, Scopes};
use tessera_core::grant::{self, client_may_use};
use tessera_core::id::new_id;
use tessera_core::model::{AuthRequest, Claims};

use super::authorize::urlencode;
use super::params::Params;
use super::request::{self, ValidRequest};
use super::steps::new_key;
use super::{internal_page, local_path, redirect};
use crate::AppState;

pub async fn start(
    State(state): State<AppState>,
    Path(connector_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET {
        return state.pages.error(StatusCode::BAD_REQUEST, "Unsupported request method.");
    }
    let params = Params::from_query(&uri);
    let valid = match request::parse(&state, &params).await {
        Ok(valid) => valid,
        Err(err) => return err.into_response(&state),
    };
    let connector = match state.connectors.get(&connector_id) {
        Some(connector) => Some(connector),
        // Perhaps created through the API on another replica since this one last looked.
        None => match state.connectors.refresh(&state.storage).await {
            Ok(()) => state.connectors.get(&connector_id),
            Err(err) => {
                tracing::error!(error = %err, "refreshing the connectors from storage failed");
                None
            }
        },
    };
    let Some(connector) = connector else {
        return state.pages.error(StatusCode::NOT_FOUND, "Connector ID does not match a valid Connector");
    };
    let allowed = valid.client.allowed_connectors.clone();
    if !client_may_use(&allowed, &connector_id) {
        return state.pages.error(StatusCode::FORBIDDEN, "Connector not allowed for this client.");
    }
    if !valid.connector_id.is_empty() && valid.connector_id != connector_id {
        return state.pages.error(StatusCode::BAD_REQUEST, "Connector ID does not match the requested connector.");
    }
    let grant = if valid.is_implicit_or_hybrid() { grant::IMPLICIT } else { grant::AUTHORIZATION_CODE };
    if !connector.allows_grant(grant) {
        return state.pages.error(StatusCode::BAD_REQUEST, "This connector cannot be used for this kind of login.");
    }

    // The "select another login method" link, only when there is another to select.
    let choices =
        state.connectors.all().iter().filter(|c| c.allows_grant(grant) && client_may_use(&allowed, &c.id)).count();
    let hint = valid.hint.clone();
    let mut auth_request = new_auth_request(&state, valid, &connector_id);
    if let Some(answered) = super::sso::before_login(&state, &headers, &auth_request, hint.as_ref()).await {
        return answered;
    }
    let location = match &connector.login {
        Login::Password(_) => {
            let back = if choices > 1 {
                format!(
                    "&back={}",
                    urlencode(&local_path(&state, &format!("/auth?{}", params.query_without("connector_id"))))
                )
            } else {
                String::new()
            };
            local_path(&state, &format!("/auth/{}/login?state={}{back}", urlencode(&connector_id), auth_request.id))
        }
        Login::Callback(callback) => {
            let callback_url = format!("{}/callback", state.config.issuer.trim_end_matches('/'));
            let scopes = Scopes::from_requested(&auth_request.scopes);
            match callback.login_url(scopes, &callback_url, &auth_request.id) {
                Ok((url, data)) => {
                    auth_request.connector_data = data;
                    url
                }
                Err(err) => return internal_page(&state, &err),
            }
        }
    };
    if let Err(err) = state.storage.create(&auth_request).await {
        return internal_page(&state, &err);
    }
    redirect(StatusCode::FOUND, &location)
}

fn new_auth_request(state: &AppState, valid: ValidRequest, connector_id: &str) -> AuthRequest {
    let lifetime = time::Duration::try_from(state.config.expiry.auth_requests).unwrap_or(time::Duration::DAY);
    AuthRequest {
        id: new_id(),
        client_id: valid.client.id,
        response_types: valid.response_types,
        scopes: valid.scopes,
        redirect_uri: valid.redirect_uri,
        nonce: valid.nonce,
        state: valid.state,
        force_approval_prompt: valid.force_approval_prompt,
        prompt: valid.prompt,
        max_age: valid.max_age,
        auth_time: None,
        expiry: state.clock.now() + lifetime,
        logged_in: false,
        claims: Claims::default(),
        connector_id: connector_id.to_owned(),
        connector_data: Vec::new(),
        pkce: valid.pkce,
        hmac_key: new_key(),
        session_id: String::new(),
        login_hint: valid.login_hint,
    }
}

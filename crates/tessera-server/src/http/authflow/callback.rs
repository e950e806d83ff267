//! `/callback` and `/callback/{connector}`: the browser returning from an upstream login.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_connectors::authproxy::callback_headers;
use tessera_connectors::{CallbackRequest, ConnectorError, Login, Scopes};

use super::finalize::finalize_login;
use super::{internal_page, load_auth_request};
use crate::AppState;
use crate::http::brute_force::{Ip, ip_of};
use crate::http::client_ip::ClientIp;
use crate::metrics::LoginOutcome;

/// The bare callback: `X-Remote-*` headers are dropped, so a forged `X-Remote-User` sent here is
/// never trusted (the authenticating proxy's headers are read at `/callback/{id}` only).
pub async fn bare(
    State(state): State<AppState>,
    headers: HeaderMap,
    client_ip: Option<Extension<ClientIp>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let request = CallbackRequest { query, headers: collect(&headers, false) };
    handle(&state, &headers, ip_of(client_ip), None, request).await
}

pub async fn named(
    State(state): State<AppState>,
    Path(connector_id): Path<String>,
    headers: HeaderMap,
    client_ip: Option<Extension<ClientIp>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let request = CallbackRequest { query, headers: collect(&headers, true) };
    handle(&state, &headers, ip_of(client_ip), Some(connector_id), request).await
}

pub(crate) fn collect(headers: &HeaderMap, trust_proxy_headers: bool) -> HashMap<String, String> {
    let pairs = headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    callback_headers(pairs, trust_proxy_headers)
}

async fn handle(
    state: &AppState,
    browser: &HeaderMap,
    client_ip: Ip,
    connector_id: Option<String>,
    request: CallbackRequest,
) -> Response {
    let query = &request.query;
    let id = query.get("state").map(String::as_str).unwrap_or("");
    let auth_request = match load_auth_request(state, id).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    if connector_id.is_some_and(|c| c != auth_request.connector_id) {
        return state.pages.error(StatusCode::BAD_REQUEST, "Requested resource does not exist.");
    }
    let Some(Login::Callback(connector)) = state.connectors.get(&auth_request.connector_id).map(|c| c.login.clone())
    else {
        return state.pages.error(StatusCode::BAD_REQUEST, "Requested resource does not exist.");
    };
    let scopes = Scopes::from_requested(&auth_request.scopes);
    let connector_id = auth_request.connector_id.clone();
    match connector.handle_callback(scopes, &auth_request.connector_data, &request).await {
        Ok(identity) => {
            state.metrics.login(&connector_id, LoginOutcome::Success);
            // An upstream login page asks nothing of ours, so no "remember me" (as Dex).
            finalize_login(state, browser, client_ip, auth_request, identity, false).await
        }
        Err(ConnectorError::NotInRequiredGroups) => {
            state.metrics.login(&connector_id, LoginOutcome::Denied);
            state.pages.error(StatusCode::FORBIDDEN, "You are not a member of a group allowed to log in.")
        }
        Err(err) => {
            state.metrics.login(&connector_id, LoginOutcome::Error);
            internal_page(state, &err)
        }
    }
}

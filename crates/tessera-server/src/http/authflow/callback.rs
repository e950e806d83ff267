//! `/callback` and `/callback/{connector}`: the browser returning from an upstream login.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tessera_connectors::{ConnectorError, Login, Scopes};

use super::finalize::finalize_login;
use super::{internal_page, load_auth_request};
use crate::AppState;

/// The bare callback. (Authenticating-proxy headers are only read at `/callback/{id}`, so a
/// forged `X-Remote-User` sent here is never trusted.)
pub async fn bare(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    handle(&state, None, query).await
}

pub async fn named(
    State(state): State<AppState>,
    Path(connector_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    handle(&state, Some(connector_id), query).await
}

async fn handle(state: &AppState, connector_id: Option<String>, query: HashMap<String, String>) -> Response {
    let id = query.get("state").map(String::as_str).unwrap_or("");
    let request = match load_auth_request(state, id).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    if connector_id.is_some_and(|c| c != request.connector_id) {
        return state.pages.error(StatusCode::BAD_REQUEST, "Requested resource does not exist.");
    }
    let Some(Login::Callback(connector)) = state.connectors.get(&request.connector_id).map(|c| &c.login) else {
        return state.pages.error(StatusCode::BAD_REQUEST, "Requested resource does not exist.");
    };
    let scopes = Scopes::from_requested(&request.scopes);
    match connector.handle_callback(scopes, &request.connector_data, &query).await {
        Ok(identity) => finalize_login(state, request, identity).await,
        Err(ConnectorError::NotInRequiredGroups) => {
            state.pages.error(StatusCode::FORBIDDEN, "You are not a member of a group allowed to log in.")
        }
        Err(err) => internal_page(state, &err),
    }
}

//! Single sign-on at `/auth/{connector}`: a live browser session that may reach this client stands
//! in for the connector's login, and the request goes on to consent and the response as if logged in.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::model::AuthRequest;
use tessera_core::session::request_allows_reuse;

use super::steps::{self, Step};
use super::{internal_page, local_path, redirect};
use crate::AppState;

/// The response that continues `request` without a login, or `None` to log in as usual.
pub async fn try_session(state: &AppState, headers: &HeaderMap, request: &AuthRequest) -> Option<Response> {
    let sessions = state.sessions.as_ref()?;
    let signed_in = async {
        let Some(session) = sessions.current(headers).await? else {
            return Ok(None);
        };
        if !request_allows_reuse(&request.prompt, request.max_age, session.auth_time, state.clock.now()) {
            return Ok(None);
        }
        sessions.sign_in(&session, &request.client_id, &request.connector_id).await
    };
    let session = match signed_in.await {
        Ok(Some(session)) => session,
        Ok(None) => return None,
        Err(err) => return Some(internal_page(state, &err)),
    };
    let request = AuthRequest {
        logged_in: true,
        claims: session.claims.clone(),
        auth_time: Some(session.auth_time),
        connector_data: Vec::new(),
        ..request.clone()
    };
    if let Err(err) = state.storage.create(&request).await {
        return Some(internal_page(state, &err));
    }
    tracing::info!(
        connector_id = %request.connector_id,
        client_id = %request.client_id,
        user_id = %session.user_id,
        "single sign-on from the browser session"
    );
    let mac = steps::sign(&request.hmac_key, &request.id, Step::Continue);
    Some(redirect(StatusCode::SEE_OTHER, &local_path(state, &format!("/auth?req={}&hmac={mac}", request.id))))
}

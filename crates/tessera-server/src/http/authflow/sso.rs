//! The browser session at `/auth/{connector}`, before any login page: a live session that may reach
//! this client stands in for the connector's login (single sign-on), and the OpenID Connect request
//! parameters decide whether it may (`prompt`, `max_age`, `id_token_hint`). With sessions on,
//! `prompt=none` never shows a page: without a usable session it answers `login_required` to the
//! client. Without sessions the request goes to the connector as in Dex (which may log in silently).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::model::{AuthRequest, AuthSession};
use tessera_core::session::{Prompt, hint_names_session, request_allows_reuse};

use super::steps::{self, Step};
use super::{internal_page, local_path, redirect, redirect_error};
use crate::AppState;
use crate::id_token_hint::IdTokenHint;
use crate::sessions::Sessions;

/// The response that continues `request` without a login page (signed in from the session, or
/// refused for `prompt=none`), or `None` to log in as usual.
pub async fn before_login(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthRequest,
    hint: Option<&IdTokenHint>,
) -> Option<Response> {
    let prompt = Prompt::parse(&request.prompt);
    let sessions = state.sessions.as_ref()?;
    let current = match sessions.current(headers).await {
        Ok(current) => current,
        Err(err) => return Some(internal_page(state, &err)),
    };
    // A hint naming someone else: this browser's session must not answer for them.
    let hinted_away = hint.is_some_and(|hint| current.as_ref().is_some_and(|s| !hint_names_session(&hint.subject, s)));
    let session = current.filter(|_| !hinted_away);
    match sign_in(state, sessions, session, request).await {
        Ok(Some(response)) => Some(response),
        Ok(None) if prompt.none && hinted_away => {
            Some(login_required(request, "id_token_hint does not match the signed-in user."))
        }
        Ok(None) if prompt.none => Some(login_required(request, "User not authenticated.")),
        Ok(None) => None,
        Err(page) => Some(page),
    }
}

fn login_required(request: &AuthRequest, description: &str) -> Response {
    let error = OAuthError::new(ErrorCode::LoginRequired, description);
    redirect_error(&request.redirect_uri, &request.state, &error)
}

/// Signs the browser in from `session` when the request and the client's sharing policy allow it:
/// the request is recorded as logged in with the session's identity, its `auth_time` and its ID.
async fn sign_in(
    state: &AppState,
    sessions: &Sessions,
    session: Option<AuthSession>,
    request: &AuthRequest,
) -> Result<Option<Response>, Response> {
    let Some(session) = session else { return Ok(None) };
    if !request_allows_reuse(&request.prompt, request.max_age, session.auth_time, state.clock.now()) {
        return Ok(None);
    }
    // The auth policy judges a sign-in from the session as it judges a login.
    if let Err(denied) = state.issuer.authorize_login(request, &session.claims).await {
        return Err(denied.into_page(&state.pages));
    }
    let signed_in = sessions
        .sign_in(&session, &request.client_id, &request.connector_id)
        .await
        .map_err(|err| internal_page(state, &err))?;
    let Some(session) = signed_in else { return Ok(None) };
    let request = AuthRequest {
        logged_in: true,
        claims: session.claims.clone(),
        auth_time: Some(session.auth_time),
        connector_data: Vec::new(),
        session_id: session.id.clone(),
        ..request.clone()
    };
    state.storage.create(&request).await.map_err(|err| internal_page(state, &err))?;
    tracing::info!(
        connector_id = %request.connector_id,
        client_id = %request.client_id,
        user_id = %session.user_id,
        "single sign-on from the browser session"
    );
    let mac = steps::sign(&request.hmac_key, &request.id, Step::Continue);
    Ok(Some(redirect(StatusCode::SEE_OTHER, &local_path(state, &format!("/auth?req={}&hmac={mac}", request.id)))))
}

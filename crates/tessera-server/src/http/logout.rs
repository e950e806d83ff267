//! `/logout` (OpenID Connect RP-Initiated Logout 1.0), with sessions on only, as in Dex. The cookie
//! decides whose session ends, never the `id_token_hint`: a hint is accepted past its expiry, so
//! trusting it alone would let anyone holding an old ID token log its user out. The hint names the
//! client (for `post_logout_redirect_uri`) and, when it is the session's own, spares the user the
//! confirmation page. When the session's connector can end the upstream's session too (an OIDC
//! upstream with an `end_session_endpoint`, as Dex), the browser goes there first and the session
//! ends when it comes back to `/logout/callback`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use tessera_connectors::CallbackRequest;
use tessera_core::logout::{HintedSession, hint_matches, must_confirm, post_logout_redirect_allowed};
use tessera_core::model::{AuthSession, Client, LogoutState};
use tessera_storage::{Optional, StorageError};

use crate::AppState;
use crate::http::authflow::callback::collect;
use crate::http::authflow::params::Params;
use crate::http::authflow::{internal_page, local_path, redirect, with_parameters};
use crate::id_token_hint;
use crate::logout::{Ending, end_session};
use crate::sessions::ByCookie;

pub fn router(state: AppState) -> Router {
    if state.sessions.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/logout", get(handle).post(handle))
        .route("/logout/callback", get(upstream_done))
        .with_state(state)
}

async fn handle(State(state): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(sessions) = state.sessions.clone() else {
        return state.pages.error(StatusCode::NOT_FOUND, "Sessions are not enabled.");
    };
    let params = Params::from_request(&method, &uri, &headers, &body);
    let redirect_uri = params.get("post_logout_redirect_uri");
    let client_state = params.get("state");
    let session = match sessions.current(&headers).await {
        Ok(session) => session,
        Err(err) => return internal_page(&state, &err),
    };

    let mut client_id = String::new();
    let mut hint_is_the_sessions = None;
    let raw_hint = params.get("id_token_hint");
    if !raw_hint.is_empty() {
        let Some(hint) = id_token_hint::verify(&state.signer, &state.config.issuer, raw_hint) else {
            tracing::warn!("logout refused: an id_token_hint this server did not sign");
            return state.pages.error(StatusCode::BAD_REQUEST, "Invalid id_token_hint.");
        };
        let hinted =
            HintedSession { user_id: &hint.user_id, connector_id: &hint.connector_id, session_id: &hint.session_id };
        hint_is_the_sessions = Some(session.as_ref().is_some_and(|s| hint_matches(&hinted, s)));
        client_id = hint.client_id;
    }

    if session.is_some() && must_confirm(hint_is_the_sessions, method == Method::GET) {
        let logout_url = local_path(&state, "/logout");
        return state.pages.render(StatusCode::OK, "logout.html", context! { confirm => true, logout_url });
    }

    if !redirect_uri.is_empty() {
        if client_id.is_empty() {
            return state.pages.error(StatusCode::BAD_REQUEST, "post_logout_redirect_uri requires id_token_hint.");
        }
        let client = match state.storage.get::<Client>(&client_id).await.optional() {
            Ok(Some(client)) => client,
            Ok(None) => return state.pages.error(StatusCode::BAD_REQUEST, "Invalid client."),
            Err(err) => return internal_page(&state, &err),
        };
        if !post_logout_redirect_allowed(&client, redirect_uri) {
            tracing::warn!(client_id = %client.id, uri = redirect_uri, "logout refused: unregistered post_logout_redirect_uri");
            return state.pages.error(StatusCode::BAD_REQUEST, "Unregistered post_logout_redirect_uri.");
        }
    }

    // The upstream's session ends first; this one ends when the browser is back. Ending it now would
    // sign the relying parties out while a user who abandons the upstream's page is still signed in.
    if let Some(session) = &session
        && let Some(location) = upstream_logout(&state, session, redirect_uri, client_state, &client_id).await
    {
        return redirect(StatusCode::SEE_OTHER, &location);
    }

    let logged_out = match &session {
        Some(session) => match end_session(&state, session, Ending::Logout).await {
            Ok(ended) => ended,
            Err(err) => return internal_page(&state, &err),
        },
        None => false,
    };
    let mut response = finish(&state, redirect_uri, client_state, logged_out);
    if sessions.has_cookie(&headers) {
        response.headers_mut().append(header::SET_COOKIE, sessions.clear_cookie());
    }
    response
}

/// The upstream's logout page for the session's connector, with the relying party's request parked on
/// the session for `/logout/callback`; `None` to log out here alone (the connector has no upstream
/// logout, or preparing it failed: logged, and the logout goes on without it, as Dex).
async fn upstream_logout(
    state: &AppState,
    session: &AuthSession,
    redirect_uri: &str,
    client_state: &str,
    client_id: &str,
) -> Option<String> {
    let logout = state.connectors.get(&session.connector_id)?.logout.clone()?;
    let callback_url = format!("{}/logout/callback", state.config.issuer.trim_end_matches('/'));
    let location = match logout.logout_url(&callback_url) {
        Ok(location) => location?,
        Err(err) => {
            tracing::warn!(connector_id = %session.connector_id, %err, "upstream logout skipped");
            return None;
        }
    };
    let parked = LogoutState {
        post_logout_redirect_uri: redirect_uri.to_owned(),
        state: client_state.to_owned(),
        client_id: client_id.to_owned(),
        connector_id: session.connector_id.clone(),
    };
    let saved = state
        .storage
        .update::<AuthSession, _, StorageError>(&session.id, |mut stored| {
            stored.logout_state = Some(parked.clone());
            Ok(stored)
        })
        .await;
    match saved {
        Ok(_) => Some(location),
        Err(err) => {
            tracing::error!(session_id = %session.id, %err, "upstream logout skipped: the logout could not be saved");
            None
        }
    }
}

/// `/logout/callback`: back from the upstream's logout page. The cookie names the session, which must
/// have a logout parked on it; the session ends here and the relying party gets its answer.
async fn upstream_done(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(sessions) = state.sessions.clone() else {
        return state.pages.error(StatusCode::NOT_FOUND, "Sessions are not enabled.");
    };
    let session = match sessions.by_cookie(&headers).await {
        Ok(ByCookie::Proven(session)) => session,
        Ok(ByCookie::NoCookie) => return state.pages.error(StatusCode::BAD_REQUEST, "Invalid session cookie."),
        Ok(ByCookie::Gone) => return state.pages.error(StatusCode::BAD_REQUEST, "Session not found."),
        Ok(ByCookie::Forged) => return state.pages.error(StatusCode::BAD_REQUEST, "Invalid session."),
        Err(err) => return internal_page(&state, &err),
    };
    let Some(parked) = session.logout_state.clone() else {
        return state.pages.error(StatusCode::BAD_REQUEST, "No logout in progress.");
    };
    if let Some(logout) = state.connectors.get(&parked.connector_id).and_then(|c| c.logout.clone()) {
        let answer = CallbackRequest { query, headers: collect(&headers, false) };
        // The upstream's session is its business: a bad answer is logged, and this one still ends.
        if let Err(err) = logout.handle_logout_callback(&answer).await {
            tracing::warn!(connector_id = %parked.connector_id, %err, "the upstream's logout answer was refused");
        }
    }
    let logged_out = match end_session(&state, &session, Ending::Logout).await {
        Ok(ended) => ended,
        Err(err) => return internal_page(&state, &err),
    };
    let mut response = finish(&state, &parked.post_logout_redirect_uri, &parked.state, logged_out);
    response.headers_mut().append(header::SET_COOKIE, sessions.clear_cookie());
    response
}

/// To the client's registered URI with its `state` (RP-Initiated Logout §3), or the logged-out page.
fn finish(state: &AppState, redirect_uri: &str, client_state: &str, logged_out: bool) -> Response {
    if client_state.is_empty() && !redirect_uri.is_empty() {
        return redirect(StatusCode::FOUND, redirect_uri);
    }
    if !redirect_uri.is_empty()
        && let Some(location) = with_parameters(redirect_uri, &[("state", client_state)], false)
    {
        return redirect(StatusCode::FOUND, &location);
    }
    state.pages.render(StatusCode::OK, "logout.html", context! { confirm => false, logged_out })
}

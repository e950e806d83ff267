//! `/logout` (OpenID Connect RP-Initiated Logout 1.0), with sessions on only, as in Dex. The cookie
//! decides whose session ends, never the `id_token_hint`: a hint is accepted past its expiry, so
//! trusting it alone would let anyone holding an old ID token log its user out. The hint names the
//! client (for `post_logout_redirect_uri`) and, when it is the session's own, spares the user the
//! confirmation page.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use tessera_core::logout::{HintedSession, hint_matches, must_confirm, post_logout_redirect_allowed};
use tessera_core::model::Client;
use tessera_storage::Optional;

use crate::AppState;
use crate::http::authflow::params::Params;
use crate::http::authflow::{internal_page, local_path, redirect, with_parameters};
use crate::id_token_hint;
use crate::logout::{Ending, end_session};

pub fn router(state: AppState) -> Router {
    if state.sessions.is_none() {
        return Router::new();
    }
    Router::new().route("/logout", get(handle).post(handle)).with_state(state)
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

//! `/auth`: a new request picks a connector (or goes straight to the only one); a request carrying
//! `req` and `hmac` is a step returning to the dispatcher, which sends it on to consent or issues
//! the response.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::{AuthRequest, Client};
use tessera_core::session::Prompt;
use tessera_storage::Optional;

use super::params::Params;
use super::request::{self, DEVICE_CALLBACK_PATH};
use super::steps::{self, Step};
use super::{internal_page, load_auth_request, local_path, redirect, redirect_error, respond};
use crate::AppState;

pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::from_request(&method, &uri, &headers, &body);
    if !params.get("req").is_empty() {
        return dispatch(&state, params.get("req"), params.get("hmac")).await;
    }
    choose_connector(&state, &headers, &params).await
}

/// The grant a login is for, by its redirect URI and response type (Dex filters connectors by it).
fn flow_grant(params: &Params) -> &'static str {
    if params.get("redirect_uri").ends_with(DEVICE_CALLBACK_PATH) {
        grant::DEVICE_CODE
    } else if params.get("response_type").split_whitespace().any(|t| t == "token" || t == "id_token") {
        grant::IMPLICIT
    } else {
        grant::AUTHORIZATION_CODE
    }
}

#[derive(Serialize)]
struct ConnectorLink {
    name: String,
    kind: String,
    url: String,
}

async fn choose_connector(state: &AppState, headers: &HeaderMap, params: &Params) -> Response {
    let client = match state.storage.get::<Client>(params.get("client_id")).await.optional() {
        Ok(Some(client)) => client,
        Ok(None) => return state.pages.error(StatusCode::BAD_REQUEST, "Invalid client_id provided."),
        Err(err) => return internal_page(state, &err),
    };
    // Connectors created or deleted through the API, here or on another replica, show at once.
    if let Err(err) = state.connectors.refresh(&state.storage).await {
        tracing::error!(error = %err, "refreshing the connectors from storage failed; showing the current ones");
    }
    let grant = flow_grant(params);
    let connectors = state.connectors.all();
    let mut available: Vec<_> = connectors
        .iter()
        .filter(|c| c.allows_grant(grant))
        .filter(|c| tessera_core::grant::client_may_use(&client.allowed_connectors, &c.id))
        .collect();
    if available.is_empty() {
        return state.pages.error(StatusCode::BAD_REQUEST, "No connectors available");
    }
    let query = params.query_without("connector_id");
    let connector_url = |id: &str| local_path(state, &format!("/auth/{}?{query}", urlencode(id)));
    let requested = params.get("connector_id");
    if !requested.is_empty() {
        if !available.iter().any(|c| c.id == requested) {
            return state.pages.error(StatusCode::BAD_REQUEST, "Connector ID does not match a valid Connector");
        }
        return redirect(StatusCode::FOUND, &connector_url(requested));
    }
    if available.len() == 1 && !state.config.oauth2.always_show_login_screen {
        return redirect(StatusCode::FOUND, &connector_url(&available[0].id));
    }
    let prompt = Prompt::parse(params.get("prompt"));
    // The connector the browser's session signed in with is the choice already made, unless the
    // client asks to choose again or the operator always shows the list.
    if !prompt.select_account && !state.config.oauth2.always_show_login_screen {
        match session_connector(state, headers).await {
            Ok(Some(id)) if available.iter().any(|c| c.id == id) => {
                return redirect(StatusCode::FOUND, &connector_url(&id));
            }
            Ok(_) => {}
            Err(page) => return page,
        }
    }
    if prompt.none && state.sessions.is_some() {
        // No page may be shown, and without a session nothing decides the connector.
        return match request::parse(state, params).await {
            Ok(valid) => {
                let error = OAuthError::new(ErrorCode::LoginRequired, "User not authenticated.");
                redirect_error(&valid.redirect_uri, &valid.state, &error)
            }
            Err(err) => err.into_response(state),
        };
    }
    available.sort_by_key(|c| c.name.to_lowercase());
    let connectors: Vec<ConnectorLink> = available
        .iter()
        .map(|c| ConnectorLink { name: c.name.clone(), kind: c.kind.clone(), url: connector_url(&c.id) })
        .collect();
    state.pages.render(StatusCode::OK, "login.html", context! { connectors => minijinja::value::Serde(&connectors) })
}

/// The connector of the browser's live session (sessions on).
async fn session_connector(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(sessions) = &state.sessions else { return Ok(None) };
    match sessions.current(headers).await {
        Ok(session) => Ok(session.map(|s| s.connector_id)),
        Err(err) => Err(internal_page(state, &err)),
    }
}

pub(crate) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Dex's dispatcher: a logged-in request goes to consent unless it is satisfied, then to the response.
async fn dispatch(state: &AppState, id: &str, mac: &str) -> Response {
    let request = match load_auth_request(state, id).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    let approved = steps::verify(&request.hmac_key, &request.id, Step::Approved, mac);
    let continuing = steps::verify(&request.hmac_key, &request.id, Step::Continue, mac);
    if !(approved || continuing) || !request.logged_in {
        return state.pages.error(StatusCode::UNAUTHORIZED, "Unauthorized request.");
    }
    if continuing && !consent_satisfied(state, &request).await {
        if Prompt::parse(&request.prompt).none {
            // OpenID Connect Core §3.1.2.6: the one thing missing is the user's consent.
            let error = OAuthError::new(ErrorCode::ConsentRequired, "The user has not approved these scopes.");
            return redirect_error(&request.redirect_uri, &request.state, &error);
        }
        let mac = steps::sign(&request.hmac_key, &request.id, Step::Approval);
        let location = local_path(state, &format!("/approval?req={}&hmac={mac}", request.id));
        return redirect(StatusCode::SEE_OTHER, &location);
    }
    respond::issue(state, request).await
}

/// A forced prompt always shows the screen; otherwise it is skipped by configuration, or (sessions
/// on) when the user approved these scopes for this client before. Without sessions Dex stores no
/// consent.
async fn consent_satisfied(state: &AppState, request: &AuthRequest) -> bool {
    if request.force_approval_prompt {
        return false;
    }
    if state.config.oauth2.skip_approval_screen {
        return true;
    }
    let Some(sessions) = &state.sessions else {
        return false;
    };
    sessions.consented(request).await.unwrap_or_else(|err| {
        tracing::error!(error = %err, "reading the user's consents failed; asking again");
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::from_query(&format!("/auth?{query}").parse().unwrap())
    }

    #[test]
    fn the_flow_grant_follows_dex() {
        assert_eq!(flow_grant(&params("response_type=code")), grant::AUTHORIZATION_CODE);
        assert_eq!(flow_grant(&params("response_type=code%20id_token")), grant::IMPLICIT);
        assert_eq!(flow_grant(&params("redirect_uri=http://x/dex/device/callback")), grant::DEVICE_CODE);
    }
}

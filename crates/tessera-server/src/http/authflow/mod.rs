//! The browser login: `/auth` (connector choice, then the dispatcher between steps),
//! `/auth/{connector}` (start a login), `/auth/{connector}/login` (password form), `/callback`
//! (return from an upstream), `/approval` (consent), and the response to the client.

mod authorize;
pub(crate) mod callback;
mod consent;
mod finalize;
mod login;
pub mod params;
mod password;
pub mod request;
mod respond;
mod sso;
pub mod steps;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tessera_core::error::OAuthError;
use tessera_core::model::AuthRequest;
use tessera_storage::Optional;

use crate::AppState;
use crate::http::error::EndpointError;
use request::RequestError;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/auth", get(authorize::handle).post(authorize::handle))
        .route("/auth/{connector}", any(login::start))
        .route("/auth/{connector}/login", get(password::form).post(password::submit))
        .route("/callback", get(callback::bare))
        .route("/callback/{connector}", get(callback::named))
        .route("/approval", get(consent::show).post(consent::decide))
        .with_state(state)
}

/// A redirect to `location` with the status Dex uses for that hop.
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (status, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `redirect_uri` with `pairs` added to its query (or set as its fragment). The device flow's
/// redirect URI is a path on this server (`/dex/device/callback`), so relative URIs are kept relative.
pub(crate) fn with_parameters(redirect_uri: &str, pairs: &[(&str, &str)], fragment: bool) -> Option<String> {
    let relative = redirect_uri.starts_with('/');
    let mut url = if relative {
        url::Url::parse("http://relative.invalid").ok()?.join(redirect_uri).ok()?
    } else {
        url::Url::parse(redirect_uri).ok()?
    };
    let pairs = pairs.iter().filter(|(_, v)| !v.is_empty());
    if fragment {
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        url.set_fragment(Some(&encoded));
    } else {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    if relative {
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        if let Some(fragment) = url.fragment() {
            path.push('#');
            path.push_str(fragment);
        }
        return Some(path);
    }
    Some(url.into())
}

/// An error sent back to the client: 303 to its redirect URI with the error in the query (Dex does
/// this for every response type, implicit included).
pub(crate) fn redirect_error(redirect_uri: &str, state: &str, error: &OAuthError) -> Response {
    let pairs = [("error", error.code.as_str()), ("error_description", error.description.as_str()), ("state", state)];
    match with_parameters(redirect_uri, &pairs, false) {
        Some(location) => redirect(StatusCode::SEE_OTHER, &location),
        None => redirect(StatusCode::SEE_OTHER, redirect_uri),
    }
}

impl RequestError {
    pub(crate) fn into_response(self, state: &AppState) -> Response {
        match self {
            RequestError::Page(status, message) => state.pages.error(status, &message),
            RequestError::Redirect { redirect_uri, state: client_state, error } => {
                redirect_error(&redirect_uri, &client_state, &error)
            }
        }
    }
}

/// The auth request a step names, or the page to show when it is gone or expired.
pub(crate) async fn load_auth_request(state: &AppState, id: &str) -> Result<AuthRequest, Response> {
    match state.storage.get::<AuthRequest>(id).await.optional() {
        Ok(Some(request)) if request.expiry < state.clock.now() => {
            Err(state.pages.error(StatusCode::BAD_REQUEST, "User session has expired."))
        }
        Ok(Some(request)) => Ok(request),
        Ok(None) => Err(state
            .pages
            .error(StatusCode::BAD_REQUEST, "Login session expired or invalid: start again from the application.")),
        Err(err) => Err(internal_page(state, &err)),
    }
}

/// A generic 500 page; what went wrong goes to the log only.
pub(crate) fn internal_page(state: &AppState, err: &dyn std::fmt::Display) -> Response {
    EndpointError::internal("login flow failed", err).into_page(&state.pages)
}

/// `{issuer path}{suffix}`: links between our own pages.
pub(crate) fn local_path(state: &AppState, suffix: &str) -> String {
    format!("{}{suffix}", state.config.issuer_path())
}

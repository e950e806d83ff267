//! `/auth/{connector}/login`: the password form of a password connector (local database, LDAP,
//! mockPassword). Wrong credentials show the form again with a 401.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use minijinja::context;
use serde::Deserialize;
use tessera_connectors::{Login, PasswordConnector, Scopes};
use tessera_core::model::AuthRequest;

use super::authorize::urlencode;
use super::finalize::finalize_login;
use super::{internal_page, load_auth_request, local_path};
use crate::AppState;
use crate::http::brute_force::{self, Blocked, Refused};
use crate::http::client_ip::ClientIp;
use crate::metrics::LoginOutcome;

#[derive(Debug, Deserialize)]
pub struct FormQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    back: String,
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    /// The "remember me" checkbox: `on` when ticked (shown only with sessions on).
    #[serde(default)]
    remember_me: String,
}

/// The auth request and its password connector, or the page to show instead.
async fn resolve(
    state: &AppState,
    connector_id: &str,
    query: &FormQuery,
) -> Result<(AuthRequest, std::sync::Arc<dyn PasswordConnector>), Response> {
    let request = load_auth_request(state, &query.state).await?;
    if request.connector_id != connector_id {
        return Err(state.pages.error(StatusCode::BAD_REQUEST, "Requested resource does not exist."));
    }
    match state.connectors.get(connector_id).map(|c| c.login.clone()) {
        Some(Login::Password(connector)) => Ok((request, connector)),
        _ => Err(state.pages.error(StatusCode::BAD_REQUEST, "Requested resource does not exist.")),
    }
}

/// Only same-site absolute paths may be linked back to (no open redirect through `back`).
fn safe_back(back: &str) -> &str {
    if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') { back } else { "" }
}

fn render_form(
    state: &AppState,
    status: StatusCode,
    connector_id: &str,
    query: &FormQuery,
    prompt: &str,
    username: &str,
    locked: Option<Refused>,
) -> Response {
    let mut post_url =
        local_path(state, &format!("/auth/{}/login?state={}", urlencode(connector_id), urlencode(&query.state)));
    let back = safe_back(&query.back);
    if !back.is_empty() {
        post_url.push_str(&format!("&back={}", urlencode(back)));
    }
    let invalid = status == StatusCode::UNAUTHORIZED;
    // The checkbox exists only with sessions: without them there is nothing to remember.
    let remember_me = state.sessions.as_ref().map(|s| s.remember_me_default());
    let wait = locked.map(Refused::wait);
    let page = state.pages.render(
        status,
        "password.html",
        context! { post_url, back, prompt, username, invalid, wait, remember_me },
    );
    match locked {
        Some(refused) => ([refused.header()], page).into_response(),
        None => page,
    }
}

pub async fn form(
    State(state): State<AppState>,
    Path(connector_id): Path<String>,
    Query(query): Query<FormQuery>,
) -> Response {
    match resolve(&state, &connector_id, &query).await {
        // The client's `login_hint` starts the username field.
        Ok((request, connector)) => {
            render_form(&state, StatusCode::OK, &connector_id, &query, connector.prompt(), &request.login_hint, None)
        }
        Err(page) => page,
    }
}

pub async fn submit(
    State(state): State<AppState>,
    Path(connector_id): Path<String>,
    Query(query): Query<FormQuery>,
    headers: HeaderMap,
    client_ip: Option<Extension<ClientIp>>,
    Form(credentials): Form<Credentials>,
) -> Response {
    let (request, connector) = match resolve(&state, &connector_id, &query).await {
        Ok(resolved) => resolved,
        Err(page) => return page,
    };
    let limits = brute_force::limits(&state);
    let ip = brute_force::ip_of(client_ip);
    let attempt = match limits.password_attempt(&connector_id, &credentials.login, ip).await {
        Ok(attempt) => attempt,
        Err(Blocked::Refused(refused)) => {
            let (status, prompt, login) = (StatusCode::TOO_MANY_REQUESTS, connector.prompt(), &credentials.login);
            return render_form(&state, status, &connector_id, &query, prompt, login, Some(refused));
        }
        Err(Blocked::Storage(err)) => return internal_page(&state, &err),
    };
    let scopes = Scopes::from_requested(&request.scopes);
    match connector.login(scopes, &credentials.login, &credentials.password).await {
        Ok(Some(identity)) => {
            attempt.succeeded().await;
            state.metrics.login(&connector_id, LoginOutcome::Success);
            let remember_me = credentials.remember_me == "on";
            finalize_login(&state, &headers, ip, request, identity, remember_me).await
        }
        Ok(None) => {
            attempt.failed();
            state.metrics.login(&connector_id, LoginOutcome::InvalidCredentials);
            tracing::info!(connector = %connector_id, "failed login attempt");
            let (status, prompt, login) = (StatusCode::UNAUTHORIZED, connector.prompt(), &credentials.login);
            render_form(&state, status, &connector_id, &query, prompt, login, None)
        }
        Err(err) => {
            attempt.abandoned().await;
            state.metrics.login(&connector_id, LoginOutcome::Error);
            internal_page(&state, &err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_back;

    #[test]
    fn back_links_stay_on_this_site() {
        assert_eq!(safe_back("/dex/auth?client_id=a"), "/dex/auth?client_id=a");
        assert_eq!(safe_back("//evil.example/"), "");
        assert_eq!(safe_back("https://evil.example/"), "");
        assert_eq!(safe_back("/\\evil.example"), "");
    }
}

//! After a connector vouched for the user: record the identity on the auth request, keep the
//! upstream's data for refresh when offline access was asked for, and continue the flow.

use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use tessera_connectors::Identity;
use tessera_core::model::AuthRequest;
use tessera_core::scope::{self, OFFLINE_ACCESS};
use tessera_core::session::Origin;
use tessera_storage::StorageError;

use super::steps::{self, Step};
use super::{internal_page, local_path, redirect};
use crate::AppState;
use crate::sessions::Login;

/// `remember_me` is the user's choice for the session cookie (sessions on only); `client_ip` is the
/// request's [`crate::http::client_ip::ClientIp`], kept on the session with the user agent.
pub async fn finalize_login(
    state: &AppState,
    headers: &HeaderMap,
    client_ip: Option<IpAddr>,
    request: AuthRequest,
    identity: Identity,
    remember_me: bool,
) -> Response {
    if let Err(denied) = state.issuer.authorize_login(&request, &identity.claims).await {
        return denied.into_page(&state.pages);
    }
    let now = state.clock.now();
    // The session first: its ID goes on the auth request, to become the tokens' `sid`.
    let recorded = match &state.sessions {
        None => None,
        Some(sessions) => {
            let login = Login {
                client_id: &request.client_id,
                connector_id: &request.connector_id,
                claims: &identity.claims,
                remember_me,
                origin: origin(headers, client_ip),
            };
            match sessions.record_login(headers, login).await {
                Ok(recorded) => Some(recorded),
                Err(err) => return internal_page(state, &err),
            }
        }
    };
    let session_id = recorded.as_ref().map(|r| r.session_id.clone()).unwrap_or_default();
    let claims = identity.claims.clone();
    let updated = state
        .storage
        .update::<AuthRequest, _, StorageError>(&request.id, |mut stored| {
            stored.logged_in = true;
            stored.claims = claims.clone();
            stored.connector_data = identity.connector_data.clone();
            stored.auth_time = Some(now);
            stored.session_id = session_id.clone();
            Ok(stored)
        })
        .await;
    let request = match updated {
        Ok(request) => request,
        Err(err) => return internal_page(state, &err),
    };
    log_login(&request.connector_id, &identity.claims);
    let refreshable = state.connectors.get(&request.connector_id).is_some_and(|c| c.refresh.is_some());
    if scope::has(&request.scopes, OFFLINE_ACCESS)
        && refreshable
        && let Err(err) = state
            .refresh_tokens
            .remember_upstream_data(&identity.claims.user_id, &request.connector_id, &identity.connector_data)
            .await
    {
        return internal_page(state, &err);
    }
    let cookie = recorded.and_then(|r| r.cookie);
    let mac = steps::sign(&request.hmac_key, &request.id, Step::Continue);
    let mut response =
        redirect(StatusCode::SEE_OTHER, &local_path(state, &format!("/auth?req={}&hmac={mac}", request.id)));
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Where the login came from. The `User-Agent` is kept as sent, except bytes that are not UTF-8
/// (replaced: Go would keep them raw, but they could not go through the gRPC API's string), and cut
/// to a bounded length by [`Origin::new`].
fn origin(headers: &HeaderMap, client_ip: Option<IpAddr>) -> Origin {
    let agent = headers.get(header::USER_AGENT).map(|value| String::from_utf8_lossy(value.as_bytes()));
    Origin::new(client_ip, agent.as_deref().unwrap_or_default())
}

/// Dex's audit line for a login, with the same field names, so `logger.excludeFields` redacts the
/// same ones (`email`, `username`, ...).
fn log_login(connector_id: &str, claims: &tessera_core::model::Claims) {
    let unverified = if claims.email_verified { "" } else { " (unverified)" };
    tracing::info!(
        connector_id,
        user_id = %claims.user_id,
        username = %claims.username,
        preferred_username = %claims.preferred_username,
        email = %format_args!("{}{unverified}", claims.email),
        groups = ?claims.groups,
        "login successful"
    );
}

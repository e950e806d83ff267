//! `/approval`: the consent screen ("<client> would like to: …") and the user's answer.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use tessera_core::model::Client;

use super::steps::{self, Step};
use super::{internal_page, load_auth_request, local_path, redirect};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct Approval {
    #[serde(default)]
    req: String,
    #[serde(default)]
    hmac: String,
    #[serde(default)]
    approval: String,
}

/// What each scope lets the client do, in the words Dex shows (other scopes are not listed).
fn describe(scope: &str) -> Option<&'static str> {
    match scope {
        "offline_access" => Some("Have offline access"),
        "profile" => Some("View basic profile information"),
        "email" => Some("View your email address"),
        "groups" => Some("View your groups"),
        _ => None,
    }
}

pub async fn show(State(state): State<AppState>, Query(query): Query<Approval>) -> Response {
    let request = match load_auth_request(&state, &query.req).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    if !request.logged_in || !steps::verify(&request.hmac_key, &request.id, Step::Approval, &query.hmac) {
        return state.pages.error(StatusCode::UNAUTHORIZED, "Unauthorized request.");
    }
    let client = match state.storage.get::<Client>(&request.client_id).await {
        Ok(client) => client,
        Err(err) => return internal_page(&state, &err),
    };
    let scopes: Vec<&str> = request.scopes.iter().filter_map(|s| describe(s)).collect();
    let name = if client.name.is_empty() { client.id.clone() } else { client.name.clone() };
    let post_url = local_path(&state, "/approval");
    state.pages.render(
        StatusCode::OK,
        "approval.html",
        context! { client => name, scopes, req => request.id, hmac => query.hmac, post_url },
    )
}

pub async fn decide(State(state): State<AppState>, Form(form): Form<Approval>) -> Response {
    let request = match load_auth_request(&state, &form.req).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    if !request.logged_in || !steps::verify(&request.hmac_key, &request.id, Step::Approval, &form.hmac) {
        return state.pages.error(StatusCode::UNAUTHORIZED, "Unauthorized request.");
    }
    if form.approval != "approve" {
        // Dex shows this page rather than telling the client.
        return state.pages.error(StatusCode::INTERNAL_SERVER_ERROR, "Approval rejected.");
    }
    if let Some(sessions) = &state.sessions
        && let Err(err) = sessions.remember_consent(&request).await
    {
        // The approval stands; only the memory of it is lost, so the screen shows again next time.
        tracing::error!(error = %err, "remembering the user's consent failed");
    }
    let mac = steps::sign(&request.hmac_key, &request.id, Step::Approved);
    redirect(StatusCode::SEE_OTHER, &local_path(&state, &format!("/auth?req={}&hmac={mac}", request.id)))
}

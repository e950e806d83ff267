//! The issuer's home page (`/` under the issuer path), as Dex master serves it: the discovery link,
//! and with sessions on, who is signed in on this browser, until when, and a log-out button.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use minijinja::context;
use serde::Serialize;
use tessera_core::model::AuthSession;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::http::authflow::{internal_page, local_path};

/// At the issuer path itself (`/dex` inside the nested router); [`with_trailing_slash`] adds `/dex/`.
pub fn router(state: AppState) -> Router {
    Router::new().route("/", get(home)).with_state(state)
}

/// The same page at `{issuer path}/`, which a nested router's `/` does not match.
pub fn with_trailing_slash(state: AppState, issuer_path: &str) -> Router {
    Router::new().route(&format!("{issuer_path}/"), get(home)).with_state(state)
}

/// What the page shows of a session.
#[derive(Serialize)]
struct SignedIn {
    name: String,
    email: String,
    preferred_username: String,
    connector: String,
    signed_in: String,
    signed_in_text: String,
    ends: String,
    ends_text: String,
    /// The idle timeout comes before the absolute one: the end moves with every use.
    idle: bool,
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match &state.sessions {
        Some(sessions) => match sessions.current(&headers).await {
            Ok(session) => session,
            Err(err) => return internal_page(&state, &err),
        },
        None => None,
    };
    let user = session.map(|session| minijinja::value::Serde(signed_in(&state, &session)));
    let discovery_url = local_path(&state, "/.well-known/openid-configuration");
    let logout_url = local_path(&state, "/logout");
    state.pages.render(StatusCode::OK, "home.html", context! { user, discovery_url, logout_url })
}

fn signed_in(state: &AppState, session: &AuthSession) -> SignedIn {
    let idle = session.idle_expiry < session.absolute_expiry;
    let ends = session.idle_expiry.min(session.absolute_expiry);
    let connector =
        state.connectors.get(&session.connector_id).map_or(session.connector_id.clone(), |c| c.name.clone());
    SignedIn {
        name: session.claims.username.clone(),
        email: session.claims.email.clone(),
        preferred_username: session.claims.preferred_username.clone(),
        connector,
        signed_in: iso(session.auth_time),
        signed_in_text: readable(session.auth_time),
        ends: iso(ends),
        ends_text: readable(ends),
        idle,
    }
}

fn iso(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn readable(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

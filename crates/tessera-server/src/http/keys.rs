//! `/keys`: the JWKS, current signing key first, then the keys still valid for verification.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new().route("/keys", get(keys)).with_state(state)
}

async fn keys(State(state): State<AppState>) -> Response {
    match state.signer.active() {
        Some(active) => (
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "max-age=600, must-revalidate")],
            active.jwks.clone(),
        )
            .into_response(),
        // Dex answers 500 when it has no keys (storage never reached at start-up).
        None => (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error: no signing keys").into_response(),
    }
}

//! `/healthz` on the public listener: plain text, as Dex answers it.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.status().healthy {
        (StatusCode::OK, "Health check passed")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "Health check failed")
    }
}

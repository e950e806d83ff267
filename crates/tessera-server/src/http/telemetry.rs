//! The telemetry listener (`telemetry.http`): Prometheus metrics, and liveness and readiness probes
//! for orchestrators.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(ready))
        .route("/healthz/ready", get(ready))
        .route("/healthz/live", get(|| async { "ok" }))
        .with_state(state)
}

/// The exposition, with the connection pools sampled now.
async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state.storage, &state.claims) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "rendering the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Ready while the last storage check passed; the body says which check failed, never why.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let status = state.health.status();
    let code = if status.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let checked_at = status.checked_at.format(&Rfc3339).unwrap_or_default();
    (
        code,
        Json(json!({ "storage": { "healthy": status.healthy, "message": status.message, "checkedAt": checked_at } })),
    )
}

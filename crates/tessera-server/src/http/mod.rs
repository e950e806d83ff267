//! The HTTP surface, one module per domain, each exposing `router()`; all of it is mounted under
//! the issuer's path (issuer `https://id.example/dex` ⇒ `/dex/healthz`).

pub mod authflow;
pub mod discovery;
pub mod health;
pub mod introspect;
pub mod keys;
pub mod telemetry;
pub mod token;
pub mod userinfo;

use axum::Router;
use axum::http::StatusCode;

use crate::AppState;

/// The public router: every domain's routes, under the issuer path.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::router(state.clone()))
        .merge(discovery::router(state.clone()))
        .merge(keys::router(state.clone()))
        .merge(authflow::router(state.clone()))
        .merge(token::router(state.clone()))
        .merge(userinfo::router(state.clone()))
        .merge(introspect::router(state.clone()))
        .merge(crate::web::router(state.pages.clone()));
    mount_under(routes, state.config.issuer_path()).fallback(not_found)
}

fn mount_under(routes: Router, path: &str) -> Router {
    if path.is_empty() { routes } else { Router::new().nest(path, routes) }
}

/// Dex (Go's http.NotFound) answers unknown paths with this plain text.
async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}

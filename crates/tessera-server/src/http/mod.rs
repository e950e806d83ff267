//! The HTTP surface, one module per domain, each exposing `router()`; all of it is mounted under
//! the issuer's path (issuer `https://id.example/dex` ⇒ `/dex/healthz`).

pub mod authflow;
pub mod brute_force;
pub mod client_ip;
pub mod device;
pub mod discovery;
pub mod error;
pub mod health;
pub mod introspect;
pub mod keys;
pub mod request_id;
pub mod request_limits;
pub mod telemetry;
pub mod token;
pub mod trust;
pub mod userinfo;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::AppState;
use crate::config::Web;

/// The public router: every domain's routes, under the issuer path.
pub fn router(state: AppState) -> Router {
    // The endpoints browsers call from other origins get CORS, as in Dex, when origins are configured.
    let api = Router::new()
        .merge(discovery::router(state.clone()))
        .merge(keys::router(state.clone()))
        .merge(token::router(state.clone()))
        .merge(userinfo::router(state.clone()))
        .merge(introspect::router(state.clone()));
    let api = match cors(&state.config.web) {
        Some(layer) => api.layer(layer),
        None => api,
    };
    let routes = Router::new()
        .merge(health::router(state.clone()))
        .merge(authflow::router(state.clone()))
        .merge(device::router(state.clone()))
        .merge(crate::web::router(state.pages.clone()))
        .merge(api);
    let routes = request_limits::layer(routes, state.config.request_limits);
    let routes = routes.route_layer(request_id::RecordRouteLayer);
    let routes = mount_under(routes, state.config.issuer_path())
        // Dex's HTTP metrics, for matched routes only: made-up paths add no series.
        .route_layer(state.metrics.http_layer(state.config.issuer_path()))
        .fallback(not_found);
    // Outermost: every request, the 404s included, gets its ID before anything logs.
    let request_ids = request_id::RequestIdLayer::new(state.config.web.client_ip.clone());
    with_configured_headers(routes, &state.config.web).layer(request_ids)
}

fn mount_under(routes: Router, path: &str) -> Router {
    if path.is_empty() { routes } else { Router::new().nest(path, routes) }
}

/// Dex (Go's http.NotFound) answers unknown paths with this plain text.
async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}

/// `web.allowedOrigins` (`*` for any) and `web.allowedHeaders` (Dex's default: `Authorization`).
fn cors(web: &Web) -> Option<CorsLayer> {
    if web.allowed_origins.is_empty() {
        return None;
    }
    let origins = if web.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(web.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let headers: Vec<HeaderName> = if web.allowed_headers.is_empty() {
        vec![axum::http::header::AUTHORIZATION]
    } else {
        web.allowed_headers.iter().filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()).collect()
    };
    Some(CorsLayer::new().allow_origin(origins).allow_headers(headers).allow_methods([
        Method::GET,
        Method::HEAD,
        Method::POST,
    ]))
}

/// `web.headers`: security headers added to every response.
fn with_configured_headers(routes: Router, web: &Web) -> Router {
    let headers: Vec<(HeaderName, HeaderValue)> = web
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?))
        })
        .collect();
    if headers.is_empty() {
        return routes;
    }
    routes.layer(axum::middleware::map_response(move |mut response: axum::response::Response| {
        let headers = headers.clone();
        async move {
            for (name, value) in headers {
                response.headers_mut().insert(name, value);
            }
            response
        }
    }))
}

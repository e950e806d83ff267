//! The HTTP surface, one module per domain, each exposing `router()`; all of it is mounted under
//! the issuer's path (issuer `https://id.example/dex` ⇒ `/dex/healthz`).

pub mod authflow;
pub mod brute_force;
pub mod client_ip;
pub mod device;
pub mod discovery;
pub mod error;
pub mod health;
pub mod home;
pub mod introspect;
pub mod keys;
pub mod logout;
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
        .merge(logout::router(state.clone()))
        .merge(home::router(state.clone()))
        .merge(crate::web::router(state.pages.clone()))
        .merge(api);
    let routes = request_limits::layer(routes, state.config.request_limits);
    let routes = routes.route_layer(request_id::RecordRouteLayer);
    let issuer_path = state.config.issuer_path();
    let routes = if issuer_path.is_empty() {
        routes
    } else {
        Router::new().nest(issuer_path, routes).merge(home::with_trailing_slash(state.clone(), issuer_path))
    };
    let routes = routes
        // Dex's HTTP metrics, for matched routes only: made-up paths add no series.
        .route_layer(state.metrics.http_layer(state.config.issuer_path()))
        .fallback(not_found);
    // Outermost: every request, the 404s included, gets its ID before anything logs.
    let request_ids = request_id::RequestIdLayer::new(state.config.web.client_ip.clone());
    with_configured_headers(routes, &state.config.web).layer(request_ids)
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

/// Sent on every response unless `web.headers` names the header: no page may be framed by another
/// site (clickjacking the login and approval forms), and no response is sniffed into another type.
const DEFAULT_HEADERS: [(&str, &str); 3] = [
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
];

/// The headers every response gets: the defaults, overridden by `web.headers` (case-insensitively;
/// an empty value sends none), plus the other configured ones.
fn security_headers(web: &Web) -> Vec<(HeaderName, HeaderValue)> {
    let configured = |name: &str| web.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name));
    let defaults = DEFAULT_HEADERS.iter().filter(|(name, _)| configured(name).is_none()).map(|(n, v)| (*n, *v));
    let chosen = web.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).filter(|(_, value)| !value.is_empty());
    defaults
        .chain(chosen)
        .filter_map(|(name, value)| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?))
        })
        .collect()
}

/// Adds [`security_headers`] to every response.
fn with_configured_headers(routes: Router, web: &Web) -> Router {
    let headers = security_headers(web);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_values(web: &Web) -> Vec<(String, String)> {
        security_headers(web).into_iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())).collect()
    }

    #[test]
    fn framing_and_sniffing_are_refused_by_default_and_configuration_overrides() {
        let defaults = names_and_values(&Web::default());
        assert_eq!(
            defaults,
            [
                ("x-frame-options".to_owned(), "DENY".to_owned()),
                ("content-security-policy".to_owned(), "frame-ancestors 'none'".to_owned()),
                ("x-content-type-options".to_owned(), "nosniff".to_owned()),
            ]
        );
        let mut web = Web::default();
        web.headers.insert("x-frame-options".into(), "SAMEORIGIN".into());
        web.headers.insert("Content-Security-Policy".into(), String::new());
        web.headers.insert("Strict-Transport-Security".into(), "max-age=31536000".into());
        let set = names_and_values(&web);
        assert!(set.contains(&("x-frame-options".into(), "SAMEORIGIN".into())), "{set:?}");
        assert!(!set.iter().any(|(n, _)| n == "content-security-policy"), "an empty value sends none: {set:?}");
        assert!(set.contains(&("x-content-type-options".into(), "nosniff".into())));
        assert!(set.contains(&("strict-transport-security".into(), "max-age=31536000".into())));
        assert_eq!(set.iter().filter(|(n, _)| n == "x-frame-options").count(), 1);
    }
}

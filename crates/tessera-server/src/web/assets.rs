//! `/static/*`, `/theme/*` and `/robots.txt`: embedded assets, or files from `frontend.dir`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Pages;

/// One embedded file: its path under its folder and its bytes.
pub type Asset = (&'static str, &'static [u8]);

const STATIC: &[Asset] = &[("main.css", include_bytes!("../../../../web/static/main.css"))];

const THEMES: &[Asset] = &[
    ("light/styles.css", include_bytes!("../../../../web/themes/light/styles.css")),
    ("light/logo.svg", include_bytes!("../../../../web/themes/light/logo.svg")),
    ("light/favicon.svg", include_bytes!("../../../../web/themes/light/favicon.svg")),
    ("dark/styles.css", include_bytes!("../../../../web/themes/dark/styles.css")),
    ("dark/logo.svg", include_bytes!("../../../../web/themes/dark/logo.svg")),
    ("dark/favicon.svg", include_bytes!("../../../../web/themes/dark/favicon.svg")),
];

pub fn router(pages: Arc<Pages>) -> Router {
    Router::new()
        .route("/static/{*path}", get(static_asset))
        .route("/theme/{*path}", get(theme_asset))
        .route("/robots.txt", get(|| async { "User-agent: *\nDisallow: /\n" }))
        .with_state(pages)
}

async fn static_asset(State(pages): State<Arc<Pages>>, Path(path): Path<String>) -> Response {
    serve(&pages, "static", &path, STATIC)
}

async fn theme_asset(State(pages): State<Arc<Pages>>, Path(path): Path<String>) -> Response {
    let themed = format!("{}/{path}", pages.theme);
    serve(&pages, "themes", &themed, THEMES)
}

fn serve(pages: &Pages, folder: &str, path: &str, embedded: &[Asset]) -> Response {
    // Only plain relative paths: no way out of the asset folders.
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let from_dir = pages.dir.as_ref().map(|dir| dir.join(folder).join(path)).and_then(|file| std::fs::read(file).ok());
    let body = match from_dir {
        Some(bytes) => bytes,
        None => match embedded.iter().find(|(name, _)| *name == path) {
            Some((_, bytes)) => bytes.to_vec(),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    ([(header::CONTENT_TYPE, content_type(path)), (header::CACHE_CONTROL, "public, max-age=3600")], body)
        .into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("js") => "text/javascript; charset=utf-8",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

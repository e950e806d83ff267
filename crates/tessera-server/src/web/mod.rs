//! The pages people see: Jinja templates (embedded, or overridden from `frontend.dir`), the static
//! assets and Dex's `light` and `dark` themes.

mod assets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

pub use assets::{Asset, router};

use crate::config::Config;

/// The templates Dex requires (those of the features tessera has).
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../../web/templates/base.html")),
    ("login.html", include_str!("../../../../web/templates/login.html")),
    ("password.html", include_str!("../../../../web/templates/password.html")),
    ("approval.html", include_str!("../../../../web/templates/approval.html")),
    ("oob.html", include_str!("../../../../web/templates/oob.html")),
    ("error.html", include_str!("../../../../web/templates/error.html")),
    ("device.html", include_str!("../../../../web/templates/device.html")),
    ("device_success.html", include_str!("../../../../web/templates/device_success.html")),
    ("logout.html", include_str!("../../../../web/templates/logout.html")),
    ("home.html", include_str!("../../../../web/templates/home.html")),
];

#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error("frontend.dir: cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("template {name}: {source}")]
    Template { name: String, source: minijinja::Error },
}

/// The rendered pages and assets of one server.
pub struct Pages {
    env: Environment<'static>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) theme: String,
}

impl Pages {
    /// Loads every template (a file in `frontend.dir/templates` replaces the embedded one of its
    /// name) and checks that each compiles, so a broken template fails at start-up.
    pub fn new(config: &Config) -> Result<Arc<Self>, PagesError> {
        let dir = config.frontend.dir.as_ref().map(PathBuf::from);
        let mut env = Environment::new();
        for (name, embedded) in TEMPLATES {
            let source = match dir.as_ref().map(|d| d.join("templates").join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|source| PagesError::Read { path: path.display().to_string(), source })?,
                None => (*embedded).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|source| PagesError::Template { name: (*name).to_owned(), source })?;
        }
        let prefix = config.issuer_path().to_owned();
        let theme = config.frontend.theme.clone();
        let (static_prefix, theme_prefix) = (format!("{prefix}/static/"), format!("{prefix}/theme/"));
        let logo = config.frontend.logo_url.clone().unwrap_or_else(|| format!("{theme_prefix}logo.svg"));
        let issuer = config.frontend.issuer.clone();
        let extra: BTreeMap<String, String> = config.frontend.extra.clone();
        env.add_function("issuer", move || issuer.clone());
        env.add_function("logo", move || logo.clone());
        env.add_function("static_url", move |path: String| format!("{static_prefix}{path}"));
        env.add_function("theme_url", move |path: String| format!("{theme_prefix}{path}"));
        env.add_function("extra", move |key: String| extra.get(&key).cloned().unwrap_or_default());
        Ok(Arc::new(Self { env, dir, theme }))
    }

    /// Renders a page; a rendering failure becomes a plain 500 (and a log line), never a panic.
    pub fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        let rendered = self.env.get_template(name).and_then(|template| template.render(ctx));
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(template = name, error = %err, "rendering a page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
            }
        }
    }

    /// Dex's error page: the status text as the title, and a message for the user.
    pub fn error(&self, status: StatusCode, message: &str) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        self.render(status, "error.html", context! { title, message })
    }
}

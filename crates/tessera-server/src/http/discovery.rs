//! `/.well-known/openid-configuration`: Dex's discovery document, derived from the configuration and
//! rendered once.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tessera_jose::Algorithm;

use crate::AppState;
use crate::config::Config;

/// The document's fields, in Dex's order.
#[derive(Debug, Serialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: String,
    pub device_authorization_endpoint: String,
    pub introspection_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<String>,
    pub scopes_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
    /// RP-initiated and back-channel logout: advertised only with sessions on, as in Dex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_supported: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_supported: bool,
}

impl Discovery {
    pub fn new(config: &Config, algorithm: Algorithm) -> Self {
        // Dex joins the endpoint onto the issuer URL's path, so a trailing slash does not double.
        let endpoint = |suffix: &str| format!("{}{suffix}", config.issuer.trim_end_matches('/'));
        let mut response_types = config.oauth2.response_types.clone();
        response_types.sort();
        let sessions = config.sessions.is_some();
        let mut claims_supported = tessera_core::claim_names::ADVERTISED.to_vec();
        if sessions {
            claims_supported.push(tessera_core::claim_names::SID);
        }
        Self {
            issuer: config.issuer.clone(),
            authorization_endpoint: endpoint("/auth"),
            token_endpoint: endpoint("/token"),
            jwks_uri: endpoint("/keys"),
            userinfo_endpoint: endpoint("/userinfo"),
            device_authorization_endpoint: endpoint("/device/code"),
            introspection_endpoint: endpoint("/token/introspect"),
            grant_types_supported: config.grant_types(),
            response_types_supported: response_types,
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec![algorithm.as_str()],
            code_challenge_methods_supported: config.oauth2.code_challenge_methods_supported.clone(),
            scopes_supported: vec!["openid", "email", "groups", "profile", "offline_access"],
            token_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post"],
            claims_supported,
            end_session_endpoint: sessions.then(|| endpoint("/logout")),
            // Every logout token carries `sid`, so clients need not ask for it.
            backchannel_logout_supported: sessions,
            backchannel_logout_session_supported: sessions,
        }
    }
}

pub fn router(state: AppState) -> Router {
    let document = Discovery::new(&state.config, state.signer.algorithm());
    let body = serde_json::to_string_pretty(&document).unwrap_or_default();
    Router::new().route(
        "/.well-known/openid-configuration",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body).into_response() }
        }),
    )
}

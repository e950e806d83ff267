//! `/token`: client authentication, then the grant the request names. Errors are Dex's JSON
//! `{"error", "error_description"}` with Dex's statuses; every answer is `Cache-Control: no-store`.

mod client_auth;
mod code;
mod refresh;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant::{self, effective_grant_types};

use crate::AppState;
use crate::tokens::TokenResponse;

pub fn router(state: AppState) -> Router {
    Router::new().route("/token", any(token)).with_state(state)
}

/// The form fields of a token request (first value of each name wins).
pub struct TokenForm(Vec<(String, String)>);

impl TokenForm {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

const NO_STORE: [(header::HeaderName, &str); 2] = [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];

pub fn error_response(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = json!({ "error": error.code.as_str() });
    if !error.description.is_empty() {
        body["error_description"] = json!(error.description);
    }
    let mut response = (status, NO_STORE, Json(body)).into_response();
    if error.code == ErrorCode::InvalidClient {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic"));
    }
    response
}

pub fn success_response(body: TokenResponse) -> Response {
    (StatusCode::OK, NO_STORE, Json(body)).into_response()
}

async fn token(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    if method != Method::POST {
        return error_response(&OAuthError::invalid_request("method not allowed"));
    }
    let form = TokenForm(url::form_urlencoded::parse(&body).into_owned().collect());
    let result = match client_auth::authenticate(&state, &headers, &form).await {
        Ok(client) => {
            let grant_type = form.get("grant_type");
            let config = &state.config;
            let offered = effective_grant_types(
                &config.oauth2.grant_types,
                &config.oauth2.response_types,
                config.oauth2.password_connector.is_some(),
                config.flags.client_credential_grant_enabled_by_default,
            );
            match grant_type {
                g if !offered.contains(&g) || g == grant::IMPLICIT => Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("Unsupported grant type: {grant_type:?}"),
                )),
                grant::AUTHORIZATION_CODE => code::redeem(&state, &client, &form).await,
                grant::REFRESH_TOKEN => refresh::refresh(&state, &client, &form).await,
                other => Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("Grant type {other:?} is not implemented yet."),
                )),
            }
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(body) => success_response(body),
        Err(error) => error_response(&error),
    }
}

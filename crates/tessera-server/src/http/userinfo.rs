//! `/userinfo`: the claims of a valid access token, verbatim (Dex's access tokens carry the ID
//! token's claims). A missing bearer token is 401, a bad one 403, both `access_denied`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tessera_core::error::{ErrorCode, OAuthError};

use super::error::oauth_json;
use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new().route("/userinfo", any(userinfo)).with_state(state)
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        let error = OAuthError::new(ErrorCode::AccessDenied, "Invalid bearer token.").with_status(401);
        let mut response = oauth_json(&error);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    match state.issuer.verify(token) {
        Some(claims) => (StatusCode::OK, axum::Json(serde_json::Value::Object(claims))).into_response(),
        None => oauth_json(&OAuthError::new(ErrorCode::AccessDenied, "Invalid bearer token.").with_status(403)),
    }
}

//! `/token`: client authentication, then the grant the request names. Errors are Dex's JSON
//! `{"error", "error_description"}` with Dex's statuses; every answer is `Cache-Control: no-store`.

mod client_auth;
mod client_credentials;
pub mod code;
pub mod device_code;
mod password;
mod refresh;
mod token_exchange;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;

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

/// What a grant answers: tokens, or (device polling, token exchange) a body of its own shape.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Tokens(TokenResponse),
    Other(Value),
}

fn success_response(body: impl Serialize) -> Response {
    (StatusCode::OK, NO_STORE, Json(body)).into_response()
}

async fn token(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    if method != Method::POST {
        return error_response(&OAuthError::invalid_request("method not allowed"));
    }
    let form = TokenForm(url::form_urlencoded::parse(&body).into_owned().collect());
    match grant(&state, &headers, &form).await {
        Ok(body) => success_response(body),
        Err(error) => error_response(&error),
    }
}

async fn grant(state: &AppState, headers: &HeaderMap, form: &TokenForm) -> Result<Answer, OAuthError> {
    let grant_type = form.get("grant_type");
    if !state.config.grant_types().contains(&grant_type) || grant_type == grant::IMPLICIT {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("Unsupported grant type: {grant_type:?}"),
        ));
    }
    // A device polls with its device code alone, as RFC 8628 and Dex have it.
    if grant_type == grant::DEVICE_CODE {
        return device_code::poll(state, form).await.map(Answer::Other);
    }
    let client = client_auth::authenticate(state, headers, form).await?;
    let answer = match grant_type {
        grant::AUTHORIZATION_CODE => code::redeem(state, &client, form).await?,
        grant::REFRESH_TOKEN => refresh::refresh(state, &client, form).await?,
        grant::CLIENT_CREDENTIALS => client_credentials::grant(state, &client, form).await?,
        grant::PASSWORD => password::grant(state, &client, form).await?,
        grant::TOKEN_EXCHANGE => return token_exchange::grant(state, &client, form).await.map(Answer::Other),
        other => {
            return Err(OAuthError::new(ErrorCode::UnsupportedGrantType, format!("Unsupported grant type: {other:?}")));
        }
    };
    Ok(Answer::Tokens(answer))
}

//! `/token`: the grant-type policy, client authentication, then the grant through the token
//! pipeline (`pipeline.rs`), which owns every step the grants share. Errors are Dex's JSON
//! `{"error", "error_description"}` with Dex's statuses; every answer is `Cache-Control: no-store`.

mod client_auth;
mod client_credentials;
pub mod code;
mod device_poll;
mod password;
pub mod pipeline;
mod refresh;
mod token_exchange;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use prometheus::IntCounter;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;

use self::pipeline::{Answer, complete};
use super::brute_force::{self, Ip};
use super::client_ip::ClientIp;
use super::error::{EndpointError, NO_STORE, oauth_json};
use crate::AppState;

pub fn router(state: AppState) -> Router {
    // The grants on offer follow from the configuration alone: decided once, not per request.
    let offered = state.config.grant_types();
    let issued = offered.iter().map(|grant_type| state.metrics.tokens_issued(grant_type)).collect();
    Router::new().route("/token", any(token)).with_state(Arc::new(Endpoint { state, offered, issued }))
}

struct Endpoint {
    state: AppState,
    /// The grant types `/token` serves (as discovery lists them).
    offered: Vec<&'static str>,
    /// `tessera_tokens_issued_total` of each offered grant type, in the same order.
    issued: Vec<Option<IntCounter>>,
}

impl Endpoint {
    /// Counts the tokens issued for a grant type that `dispatch` accepted.
    fn count_issued(&self, grant_type: &str) {
        let at = self.offered.iter().position(|offered| *offered == grant_type);
        if let Some(counter) = at.and_then(|at| self.issued.get(at)).and_then(Option::as_ref) {
            counter.inc();
        }
    }

    /// The error's JSON answer, counted by its OAuth code.
    fn refuse(&self, error: EndpointError) -> Response {
        let error = error.into_oauth();
        self.state.metrics.token_error(error.code);
        oauth_json(&error)
    }
}

/// The form fields of a token request (first value of each name wins).
pub struct TokenForm(Vec<(String, String)>);

impl TokenForm {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

async fn token(
    State(endpoint): State<Arc<Endpoint>>,
    method: Method,
    headers: HeaderMap,
    client_ip: Option<axum::Extension<ClientIp>>,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return endpoint.refuse(OAuthError::invalid_request("method not allowed").into());
    }
    let form = TokenForm(url::form_urlencoded::parse(&body).into_owned().collect());
    let answer = dispatch(&endpoint, &headers, &form, brute_force::ip_of(client_ip)).await;
    if answer.is_ok() {
        endpoint.count_issued(form.get("grant_type"));
    }
    match answer {
        Ok(Answer::Tokens(tokens)) => {
            let json = [(header::CONTENT_TYPE, "application/json")];
            (StatusCode::OK, NO_STORE, json, tokens.to_json()).into_response()
        }
        Ok(other) => (StatusCode::OK, NO_STORE, Json(other)).into_response(),
        Err(error) => endpoint.refuse(error),
    }
}

async fn dispatch(endpoint: &Endpoint, headers: &HeaderMap, form: &TokenForm, ip: Ip) -> Result<Answer, EndpointError> {
    let state = &endpoint.state;
    let grant_type = form.get("grant_type");
    if !endpoint.offered.contains(&grant_type) || grant_type == grant::IMPLICIT {
        return Err(unsupported(grant_type));
    }
    // A device polls with its device code alone, as RFC 8628 and Dex have it; its tokens were minted
    // through the pipeline when the user finished (`http::device`).
    if grant_type == grant::DEVICE_CODE {
        return device_poll::answer(state, form).await.map(Answer::Other);
    }
    let client = client_auth::authenticate(state, headers, form, ip).await?;
    match grant_type {
        grant::AUTHORIZATION_CODE => {
            let verifier = form.get("code_verifier");
            let redeem = code::CodeGrant::new(
                form.get("code"),
                form.get("redirect_uri"),
                (!verifier.is_empty()).then_some(verifier),
            );
            complete(state, &client, redeem).await
        }
        grant::REFRESH_TOKEN => complete(state, &client, refresh::RefreshGrant::new(form)).await,
        grant::CLIENT_CREDENTIALS => {
            complete(state, &client, client_credentials::ClientCredentialsGrant::new(form)).await
        }
        grant::PASSWORD => complete(state, &client, password::PasswordGrant::new(form, ip)).await,
        grant::TOKEN_EXCHANGE => complete(state, &client, token_exchange::TokenExchangeGrant::new(form)).await,
        other => Err(unsupported(other)),
    }
}

fn unsupported(grant_type: &str) -> EndpointError {
    OAuthError::new(ErrorCode::UnsupportedGrantType, format!("Unsupported grant type: {grant_type:?}")).into()
}

//! The one error of every endpoint: a protocol error the client may read, or an internal cause only
//! the log sees. Handlers return it with `?`; it is rendered here and nowhere else: as Dex's JSON, as
//! an error page, or as a redirect back to the client. An internal cause is logged once, when it is
//! rendered, inside the request's span, so the log line carries the request ID of the response.

use std::fmt;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_storage::StorageError;

use crate::web::Pages;

/// Token responses and their errors are never cached (RFC 6749 §5.1).
pub const NO_STORE: [(header::HeaderName, &str); 2] =
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];

#[derive(Debug)]
pub enum EndpointError {
    /// What the client got wrong, or an answer such as `authorization_pending`: sent as it is.
    Protocol(OAuthError),
    /// Our own failure: `what` failed because of `cause`. The client sees a bare `server_error`.
    Internal { what: &'static str, cause: String },
}

impl EndpointError {
    pub fn internal(what: &'static str, cause: impl fmt::Display) -> Self {
        EndpointError::Internal { what, cause: cause.to_string() }
    }

    /// The error as the client may see it; an internal cause is logged here, once.
    pub fn into_oauth(self) -> OAuthError {
        match self {
            EndpointError::Protocol(error) => error,
            EndpointError::Internal { what, cause } => {
                tracing::error!(error = %cause, "{what}");
                OAuthError::server_error()
            }
        }
    }

    /// Dex's JSON error body, with its status (401 `invalid_client` challenges Basic).
    pub fn into_json(self) -> Response {
        oauth_json(&self.into_oauth())
    }

    /// An error page (a login step, the device pages) with the error's status: its description, or
    /// a generic text for a 500.
    pub fn into_page(self, pages: &Pages) -> Response {
        match self.into_oauth() {
            error if error.code == ErrorCode::ServerError => {
                pages.error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
            }
            error => {
                pages.error(StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST), &error.description)
            }
        }
    }

    /// Sent back to the client's redirect URI (the browser flow, once the redirect URI is trusted):
    /// `error`, `error_description` and `state` in the query, as Dex does for every response type.
    pub fn into_redirect(self, redirect_uri: &str, state: &str) -> Response {
        crate::http::authflow::redirect_error(redirect_uri, state, &self.into_oauth())
    }

    /// A refusal shown as a page: `status` with `message`.
    pub fn page(status: StatusCode, message: impl Into<String>) -> Self {
        EndpointError::Protocol(OAuthError::invalid_request(message).with_status(status.as_u16()))
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Protocol(error) => error.fmt(f),
            EndpointError::Internal { what, cause } => write!(f, "{what}: {cause}"),
        }
    }
}

impl From<OAuthError> for EndpointError {
    fn from(error: OAuthError) -> Self {
        EndpointError::Protocol(error)
    }
}

/// A storage error that reaches a handler is a failure: a missing object that is an answer is
/// handled before, with [`tessera_storage::Optional`].
impl From<StorageError> for EndpointError {
    fn from(err: StorageError) -> Self {
        EndpointError::internal("storage failed", err)
    }
}

impl From<crate::signer::SignerError> for EndpointError {
    fn from(err: crate::signer::SignerError) -> Self {
        EndpointError::internal("signing failed", err)
    }
}

impl From<serde_json::Error> for EndpointError {
    fn from(err: serde_json::Error) -> Self {
        EndpointError::internal("encoding failed", err)
    }
}

impl IntoResponse for EndpointError {
    fn into_response(self) -> Response {
        self.into_json()
    }
}

/// Dex's `{"error", "error_description"}` with the error's status, never cached.
pub fn oauth_json(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = json!({ "error": error.code.as_str() });
    if !error.description.is_empty() {
        body["error_description"] = json!(error.description);
    }
    let mut response = (status, NO_STORE, Json(body)).into_response();
    if error.code == ErrorCode::InvalidClient {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    }
    if let Some(seconds) = error.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_cause_never_reaches_the_client() {
        let error = EndpointError::from(StorageError::Backend { backend: "postgres", message: "secret".into() });
        assert_eq!(error.into_oauth(), OAuthError::server_error());
    }

    #[test]
    fn a_protocol_error_is_sent_as_it_is() {
        let error = OAuthError::invalid_grant("Invalid or expired code parameter.");
        assert_eq!(EndpointError::from(error.clone()).into_oauth(), error);
    }

    #[tokio::test]
    async fn json_errors_are_dex_shaped_and_not_cached() {
        let response = EndpointError::from(OAuthError::invalid_client("Invalid client credentials.")).into_json();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Basic");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"error": "invalid_client", "error_description": "Invalid client credentials."}));
    }
}

//! OAuth 2.0 / OpenID Connect protocol errors: the codes Dex sends (RFC 6749, 8628, OIDC Core) and
//! the HTTP status each gets by default, in one place.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    RequestNotSupported,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    UnsupportedGrantType,
    InvalidGrant,
    InvalidClient,
    LoginRequired,
    InteractionRequired,
    ConsentRequired,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
        }
    }

    /// The status a JSON error response gets unless the endpoint says otherwise: 401 for a client
    /// that failed to authenticate, 500 for our own failures, 400 for everything the request got wrong.
    pub fn default_status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error to send to a client, with the status to send it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub status: u16,
    /// Seconds to wait before trying again (`Retry-After`), for a refusal that ends by itself.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into(), status: code.default_status(), retry_after: None }
    }

    /// A refusal the client may retry after `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Dex answers some errors with a status other than the code's default (401 `access_denied` for
    /// bad resource-owner credentials, for example).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// A failure on our side: the description is generic on purpose, the details go to the log.
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "")
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.description.is_empty() {
            f.write_str(self.code.as_str())
        } else {
            write!(f, "{}: {}", self.code.as_str(), self.description)
        }
    }
}

impl std::error::Error for OAuthError {}

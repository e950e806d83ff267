//! tessera-connectors: how users prove who they are. Each connector kind implements one of the login
//! traits ([`PasswordConnector`] for forms, [`CallbackConnector`] for redirects to an upstream) and,
//! optionally, [`RefreshConnector`], [`TokenIdentityConnector`] and [`LogoutConnector`]. [`open`] builds a connector from
//! its configuration.

pub mod authproxy;
pub mod github;
mod identity;
pub mod ldap;
pub mod local;
pub mod mock;
pub mod oauth;
mod oauth2_client;
pub mod oidc;
mod open;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use identity::{ConnectorError, Identity, Scopes};
pub use open::{IMPLEMENTED_TYPES, OpenedConnector, open};

/// A connector that checks a username and password itself (local database, LDAP, mockPassword).
#[async_trait]
pub trait PasswordConnector: Send + Sync {
    /// The label of the username field ("Email Address", "Username").
    fn prompt(&self) -> &str;
    /// `Ok(None)` for wrong credentials; `Err` when the connector itself failed.
    async fn login(&self, scopes: Scopes, username: &str, password: &str) -> Result<Option<Identity>, ConnectorError>;
}

/// A connector that sends the browser to an upstream and gets it back at `/callback`.
#[async_trait]
pub trait CallbackConnector: Send + Sync {
    /// Where to send the browser, and connector data to keep with the login until the callback.
    fn login_url(&self, scopes: Scopes, callback_url: &str, state: &str) -> Result<(String, Vec<u8>), ConnectorError>;
    /// The identity from the upstream's answer: the callback's query parameters and headers.
    async fn handle_callback(
        &self,
        scopes: Scopes,
        connector_data: &[u8],
        request: &CallbackRequest,
    ) -> Result<Identity, ConnectorError>;
}

/// What the browser brought back to `/callback`.
#[derive(Debug, Clone, Default)]
pub struct CallbackRequest {
    pub query: HashMap<String, String>,
    /// Header names in lowercase. At the bare `/callback`, `X-Remote-*` headers are removed so a
    /// client cannot pose as an authenticating proxy.
    pub headers: HashMap<String, String>,
}

impl CallbackRequest {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// A connector that can refresh an identity without the user (for refresh tokens).
#[async_trait]
pub trait RefreshConnector: Send + Sync {
    async fn refresh(&self, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError>;
}

/// A connector that can vouch for a token the upstream issued (RFC 8693 token exchange).
#[async_trait]
pub trait TokenIdentityConnector: Send + Sync {
    async fn token_identity(&self, subject_token_type: &str, subject_token: &str) -> Result<Identity, ConnectorError>;
}

/// A connector whose upstream can end its own session when the user logs out of tessera (Dex's
/// `LogoutCallbackConnector`): the browser goes to the upstream's logout page and comes back to
/// `/logout/callback`.
#[async_trait]
pub trait LogoutConnector: Send + Sync {
    /// Where to send the browser to end the upstream session, asking it to come back to
    /// `callback_url`; `None` when the upstream offers no logout.
    fn logout_url(&self, callback_url: &str) -> Result<Option<String>, ConnectorError>;
    /// Checks what the upstream sent back to `/logout/callback` (an OIDC upstream sends nothing to
    /// check; a SAML one would send a signed response).
    async fn handle_logout_callback(&self, request: &CallbackRequest) -> Result<(), ConnectorError>;
}

/// How a connector logs users in.
#[derive(Clone)]
pub enum Login {
    Password(Arc<dyn PasswordConnector>),
    Callback(Arc<dyn CallbackConnector>),
}

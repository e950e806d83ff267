//! tessera-connectors: how users prove who they are. Each connector kind implements one of the login
//! traits ([`PasswordConnector`] for forms, [`CallbackConnector`] for redirects to an upstream) and,
//! optionally, [`RefreshConnector`] and [`TokenIdentityConnector`]. [`open`] builds a connector from
//! its configuration.

mod identity;
pub mod ldap;
pub mod local;
pub mod mock;
pub mod oidc;
mod open;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use identity::{ConnectorError, Identity, Scopes};
pub use open::{OpenedConnector, open};

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
    /// The identity from the upstream's answer (`query` holds the callback's query parameters).
    async fn handle_callback(
        &self,
        scopes: Scopes,
        connector_data: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Identity, ConnectorError>;
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

/// How a connector logs users in.
#[derive(Clone)]
pub enum Login {
    Password(Arc<dyn PasswordConnector>),
    Callback(Arc<dyn CallbackConnector>),
}

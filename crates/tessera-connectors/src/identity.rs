//! What connectors return and the few things they are told.

use tessera_core::model::Claims;

/// The scopes a connector may act on (Dex tells connectors only these two).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    /// Keep what is needed to refresh the identity later.
    pub offline_access: bool,
    /// Fetch the user's groups.
    pub groups: bool,
}

impl Scopes {
    pub fn from_requested(scopes: &[String]) -> Self {
        let has = |s: &str| scopes.iter().any(|x| x == s);
        Self { offline_access: has(tessera_core::scope::OFFLINE_ACCESS), groups: has(tessera_core::scope::GROUPS) }
    }
}

/// A user as a connector vouches for them: the one identity model (tessera-core's `Claims`, as Dex
/// stores it), and what the connector keeps to refresh it later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub claims: Claims,
    /// Opaque to everyone but the connector; never shown to clients.
    pub connector_data: Vec<u8>,
}

impl Identity {
    pub fn new(claims: Claims, connector_data: Vec<u8>) -> Self {
        Self { claims, connector_data }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The connector's configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The upstream or the backing store failed; the user sees a generic error page.
    #[error("{0}")]
    Failed(String),
    /// The user is not allowed in (e.g. not in a required group): a 403 page.
    #[error("user not in required groups")]
    NotInRequiredGroups,
    /// The identity is gone (user deleted): refresh fails.
    #[error("identity no longer valid: {0}")]
    Revoked(String),
}

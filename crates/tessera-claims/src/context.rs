//! What an enricher knows about the token being minted.

use tessera_core::model::Claims;

/// The user (tessera-core's identity model, as the connector reported it), the client and the grant.
/// The fork's template fields (`{{.UserID}}`, `{{.Email}}`, …) read the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrichmentContext {
    pub identity: Claims,
    pub connector_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub grant_type: String,
    /// The client's redirect URI, where the flow has one (the CEL policies' `request.redirect_uri`).
    pub redirect_uri: String,
}

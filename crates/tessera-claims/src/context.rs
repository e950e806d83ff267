//! What an enricher knows about the token being minted.

/// The user, the client and the grant. Field names follow the fork's templates (`{{.UserID}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrichmentContext {
    pub user_id: String,
    pub username: String,
    pub preferred_username: String,
    pub email: String,
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub connector_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub grant_type: String,
}

//! What every request handler and background task shares, passed explicitly (no global state).

use std::sync::Arc;

use tessera_core::clock::Clock;
use tessera_storage::Storage;

use crate::config::Config;
use crate::connectors::Connectors;
use crate::logout::backchannel::Backchannel;
use crate::metrics::Metrics;
use crate::refresh_tokens::RefreshTokens;
use crate::sessions::Sessions;
use crate::signer::Signer;
use crate::storage_health::Health;
use crate::token_issuer::TokenIssuer;
use crate::web::Pages;

/// Cheap to clone (one reference count): axum clones the state for every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the handlers and tasks share.
pub struct Shared {
    pub config: Arc<Config>,
    pub storage: Storage,
    pub clock: Arc<dyn Clock>,
    pub health: Arc<Health>,
    pub signer: Arc<Signer>,
    pub connectors: Arc<Connectors>,
    pub pages: Arc<Pages>,
    /// The custom-claims enrichers, run for every token minted.
    pub claims: Arc<tessera_claims::Chain>,
    /// Mints and verifies our tokens (over the signer and the claims chain).
    pub issuer: Arc<TokenIssuer>,
    /// Creates refresh tokens and writes their uses.
    pub refresh_tokens: Arc<RefreshTokens>,
    /// This server's Prometheus registry (served on the telemetry listener).
    pub metrics: Arc<Metrics>,
    /// Browser sessions and single sign-on; `None` unless `DEX_SESSIONS_ENABLED=true`.
    pub sessions: Option<Arc<Sessions>>,
    /// Wakes this replica's back-channel logout deliverer, and its HTTP client.
    pub backchannel: Arc<Backchannel>,
}

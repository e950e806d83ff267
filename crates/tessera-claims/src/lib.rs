//! tessera-claims: custom claims added to tokens after login.
//!
//! A [`Chain`] runs [`ClaimsEnricher`]s in order (a later one wins a key conflict; an error stops the
//! chain and blocks the token). Enrichers cannot touch the [reserved](reserved) claims. Two enrichers
//! come with tessera: [`StaticEnricher`] (a JSON object) and [`PostgresEnricher`] (one row of a query,
//! its arguments rendered from `{{.Field}}` [templates](template) and bound as parameters).

mod chain;
mod context;
pub mod postgres;
pub mod reserved;
mod static_claims;
pub mod template;

pub use chain::{Chain, ChainError, Destinations, Enriched, Link};
pub use context::EnrichmentContext;
pub use postgres::{OnEmpty, PostgresEnricher, PostgresEnricherSettings};
pub use static_claims::StaticEnricher;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Why an enricher could not produce its claims. Never carries claim values: it is logged.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

/// Adds claims for one token.
#[async_trait]
pub trait ClaimsEnricher: Send + Sync {
    /// Writes this enricher's claims into `claims` (the chain decides what survives).
    async fn enrich(&self, context: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError>;
}

//! tessera-claims: custom claims added to tokens after login.
//!
//! A [`Chain`] runs [`ClaimsEnricher`]s in order (a later one wins a key conflict; an error stops the
//! chain and blocks the token). Enrichers cannot touch the [reserved](reserved) claims. Two enrichers
//! come with tessera: [`StaticEnricher`] (a JSON object) and [`PostgresEnricher`] (one row of a query,
//! its arguments rendered from `{{.Field}}` [templates](template) and bound as parameters).

pub mod cache;
pub mod cel;
mod chain;
mod context;
pub mod http;
pub mod policy;
pub mod postgres;
pub mod reserved;
mod static_claims;
pub mod template;

pub use cache::{CacheSettings, Cacheable, Cached};
pub use chain::{Chain, ChainError, ChainObserver, Destinations, Enriched, Link, OnError, Source};
pub use context::EnrichmentContext;
pub use http::{HttpEnricher, HttpEnricherSettings, TlsFiles};
pub use postgres::{OnEmpty, PostgresEnricher, PostgresEnricherSettings};
pub use static_claims::StaticEnricher;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Why an enricher could not produce its claims. Never carries claim values: it is logged.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// A failure of its own kind (an enricher built into a program that embeds tessera).
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// No connection to the source could be had (refused, timed out, the pool exhausted).
    #[error("no connection: {0}")]
    Unavailable(String),
    /// The query failed on its connection.
    #[error("query failed: {0}")]
    Query(String),
    /// The query found no row, and the enricher is told that is an error.
    #[error("the query returned no row")]
    NoRow,
    #[error("the query returned more than one row")]
    TooManyRows,
    /// An argument or a column that cannot be what it must be (a malformed UUID, a column that is
    /// no claim value).
    #[error("{0}")]
    Invalid(String),
}

impl EnrichError {
    /// The kind of failure, as a bounded name for a metric label.
    pub fn cause(&self) -> &'static str {
        match self {
            EnrichError::Failed(_) => "failed",
            EnrichError::Timeout(_) => "timeout",
            EnrichError::Unavailable(_) => "unavailable",
            EnrichError::Query(_) => "query",
            EnrichError::NoRow => "no_row",
            EnrichError::TooManyRows => "too_many_rows",
            EnrichError::Invalid(_) => "invalid",
        }
    }
}

/// Adds claims for one token.
#[async_trait]
pub trait ClaimsEnricher: Send + Sync {
    /// Writes this enricher's claims into `claims` (the chain decides what survives).
    async fn enrich(&self, context: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError>;

    /// How its database connection pool is used right now; `None` for an enricher without one.
    fn pool_stats(&self) -> Option<tessera_storage::PoolStats> {
        None
    }

    /// Tells a caching enricher whom to report hits and misses to (others ignore it).
    fn observe_cache(&self, _observer: std::sync::Arc<dyn cache::CacheObserver>) {}
}

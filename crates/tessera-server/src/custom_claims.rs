//! Building the custom-claims chain from the configuration (connecting and checking each Postgres
//! enricher), and running it for a token.

use std::sync::Arc;

use tessera_claims::{Chain, ClaimsEnricher, EnrichmentContext, Link, PostgresEnricher, StaticEnricher};
use tessera_core::model::Claims;

use crate::config::{Config, EnricherSource};

#[derive(Debug, thiserror::Error)]
#[error("custom claims enricher {name:?}: {message}")]
pub struct ClaimsSetupError {
    pub name: String,
    pub message: String,
}

/// The chain the configuration describes; a Postgres enricher that cannot connect or whose query does
/// not pass its checks stops start-up.
pub async fn build_chain(config: &Config) -> Result<Chain, ClaimsSetupError> {
    let mut links = Vec::new();
    for enricher in &config.custom_claims {
        let failed = |message: String| ClaimsSetupError { name: enricher.name.clone(), message };
        let built: Arc<dyn ClaimsEnricher> = match &enricher.source {
            EnricherSource::Static(claims) => {
                Arc::new(StaticEnricher::new(claims.clone(), &enricher.guard).map_err(|e| failed(e.to_string()))?)
            }
            EnricherSource::Postgres(settings) => {
                Arc::new(PostgresEnricher::connect(settings, &enricher.guard).await.map_err(|e| failed(e.to_string()))?)
            }
        };
        links.push(Link {
            guard: enricher.guard.clone(),
            destinations: enricher.destinations,
            grant_types: enricher.grant_types.clone(),
            clients: enricher.clients.clone(),
            on_error: enricher.on_error,
            ..Link::new(enricher.name.clone(), built)
        });
    }
    Ok(Chain::new(links).with_policies(config.policies.clone()))
}

/// What the enrichers are told about a token being minted.
pub fn context(
    claims: &Claims,
    connector_id: &str,
    client_id: &str,
    scopes: &[String],
    grant_type: &str,
    redirect_uri: &str,
) -> EnrichmentContext {
    EnrichmentContext {
        identity: claims.clone(),
        connector_id: connector_id.to_owned(),
        client_id: client_id.to_owned(),
        scopes: scopes.to_vec(),
        grant_type: grant_type.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
    }
}

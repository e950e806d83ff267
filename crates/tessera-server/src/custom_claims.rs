//! Building the custom-claims chain from the configuration (connecting and checking each Postgres
//! enricher), and running it for a token.

use std::sync::Arc;

use tessera_claims::{
    CacheSettings, Cacheable, Cached, Chain, ClaimsEnricher, EnrichmentContext, HttpEnricher, Link, PostgresEnricher,
    StaticEnricher,
};
use tessera_core::model::Claims;

use crate::config::{Config, ENV_POSTGRES, EnricherSource};

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
            EnricherSource::Http(settings) => {
                let hook = HttpEnricher::new(settings, &enricher.guard).map_err(|e| failed(e.to_string()))?;
                cached(hook, enricher.cache.as_ref(), None).await.map_err(failed)?
            }
            EnricherSource::Postgres(settings) => {
                let pg = PostgresEnricher::connect(settings, &enricher.guard)
                    .await
                    .map_err(|e| failed(named_for_environment(&enricher.name, &e)))?;
                cached(pg, enricher.cache.as_ref(), Some(&settings.uri)).await.map_err(failed)?
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

/// The fork's variables are what the operator wrote: an error of the `env-postgres` enricher names the
/// variable it comes from.
fn named_for_environment(name: &str, error: &tessera_claims::postgres::SetupError) -> String {
    use tessera_claims::postgres::SetupPart;
    if name != ENV_POSTGRES {
        return error.to_string();
    }
    let variable = match error.part() {
        SetupPart::Uri => crate::config::ENV_URI,
        SetupPart::Query => crate::config::ENV_QUERY,
        SetupPart::Args => crate::config::ENV_ARGS,
    };
    format!("{variable}: {error}")
}

/// The enricher behind its cache when one is configured, with the LISTEN task of `notifyChannel`.
async fn cached<E: Cacheable + 'static>(
    enricher: E,
    settings: Option<&CacheSettings>,
    uri: Option<&str>,
) -> Result<Arc<dyn ClaimsEnricher>, String> {
    let Some(settings) = settings else {
        return Ok(Arc::new(enricher));
    };
    let cache = Cached::new(enricher, settings);
    match (&settings.notify_channel, uri) {
        (Some(channel), Some(uri)) => {
            let task = tessera_claims::cache::listen(uri, channel, cache.store()).await?;
            Ok(Arc::new(cache.with_listener(task)))
        }
        _ => Ok(Arc::new(cache)),
    }
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

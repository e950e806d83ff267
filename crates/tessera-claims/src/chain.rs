//! Enrichers run in order; a later one wins a key conflict; an error stops everything (no token,
//! no partial token). Reserved names that still arrive at run time are dropped, logged and counted.
//! What each run cost and how it ended is told to a [`ChainObserver`] (the server's metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::reserved::Guard;
use crate::{ClaimsEnricher, EnrichError, EnrichmentContext};

/// Where an enricher's claims go. `/userinfo` and introspection answer from the access token, so
/// they show what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destinations {
    pub id_token: bool,
    pub access_token: bool,
}

impl Default for Destinations {
    fn default() -> Self {
        Self { id_token: true, access_token: true }
    }
}

/// One enricher in the chain, with its name (for logs and errors) and policy.
pub struct Link {
    pub name: String,
    pub enricher: Arc<dyn ClaimsEnricher>,
    pub guard: Guard,
    pub destinations: Destinations,
    /// Only for these grant types (empty: all).
    pub grant_types: Vec<String>,
    /// Only for these clients (empty: all).
    pub clients: Vec<String>,
}

impl Link {
    pub fn new(name: impl Into<String>, enricher: Arc<dyn ClaimsEnricher>) -> Self {
        Self {
            name: name.into(),
            enricher,
            guard: Guard::default(),
            destinations: Destinations::default(),
            grant_types: Vec::new(),
            clients: Vec::new(),
        }
    }

    fn applies_to(&self, context: &EnrichmentContext) -> bool {
        (self.grant_types.is_empty() || self.grant_types.contains(&context.grant_type))
            && (self.clients.is_empty() || self.clients.contains(&context.client_id))
    }
}

/// The chain's claims, per destination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enriched {
    pub id_token: Map<String, Value>,
    pub access_token: Map<String, Value>,
}

/// Which enricher failed, and why (no claim values: this is logged).
#[derive(Debug, thiserror::Error)]
#[error("custom claims enricher {enricher:?} failed: {error}")]
pub struct ChainError {
    pub enricher: String,
    #[source]
    pub error: EnrichError,
}

/// Told what happened in the chain. Links are named by their place in it ([`Chain::names`]), so an
/// observer can resolve its labels once, when it is made.
pub trait ChainObserver: Send + Sync {
    /// The link at `link` ran for `elapsed`, and failed with `failure` if it did.
    fn enriched(&self, link: usize, elapsed: Duration, failure: Option<&EnrichError>);
    /// The link at `link` produced a reserved claim, which was dropped.
    fn reserved_dropped(&self, link: usize);
}

#[derive(Default)]
pub struct Chain {
    links: Vec<Link>,
    reserved_dropped: AtomicU64,
    observer: Option<Arc<dyn ChainObserver>>,
}

impl Chain {
    pub fn new(links: Vec<Link>) -> Self {
        Self { links, reserved_dropped: AtomicU64::new(0), observer: None }
    }

    /// The same chain, telling `observer` about every run of a link.
    pub fn observed(self, observer: Arc<dyn ChainObserver>) -> Self {
        Self { observer: Some(observer), ..self }
    }

    /// The connection pools of the enrichers that have one, by enricher name.
    pub fn pool_stats(&self) -> Vec<(&str, tessera_storage::PoolStats)> {
        self.links.iter().filter_map(|link| Some((link.name.as_str(), link.enricher.pool_stats()?))).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.links.iter().map(|link| link.name.as_str()).collect()
    }

    /// How many reserved claims enrichers produced at run time and the chain dropped.
    pub fn reserved_dropped(&self) -> u64 {
        self.reserved_dropped.load(Ordering::Relaxed)
    }

    pub async fn run(&self, context: &EnrichmentContext) -> Result<Enriched, ChainError> {
        let mut enriched = Enriched::default();
        for (index, link) in self.links.iter().enumerate().filter(|(_, link)| link.applies_to(context)) {
            let mut claims = Map::new();
            let started = Instant::now();
            let outcome = link.enricher.enrich(context, &mut claims).await;
            if let Some(observer) = &self.observer {
                observer.enriched(index, started.elapsed(), outcome.as_ref().err());
            }
            outcome.map_err(|error| ChainError { enricher: link.name.clone(), error })?;
            for (name, value) in claims {
                if let Err(reserved) = link.guard.check(&name) {
                    // The start-up checks passed, so the source changed since (a new column, say):
                    // the standard value stands.
                    self.reserved_dropped.fetch_add(1, Ordering::Relaxed);
                    if let Some(observer) = &self.observer {
                        observer.reserved_dropped(index);
                    }
                    tracing::warn!(enricher = %link.name, claim = %name, "dropped a reserved claim: {reserved}");
                    continue;
                }
                let targets = [
                    (link.destinations.id_token, &mut enriched.id_token),
                    (link.destinations.access_token, &mut enriched.access_token),
                ];
                for (wanted, target) in targets {
                    if wanted {
                        target.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        Ok(enriched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::json;

    struct Fixed(Value);

    #[async_trait]
    impl ClaimsEnricher for Fixed {
        async fn enrich(&self, _: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError> {
            if let Value::Object(map) = &self.0 {
                claims.extend(map.clone());
            }
            Ok(())
        }
    }

    struct Failing;

    #[async_trait]
    impl ClaimsEnricher for Failing {
        async fn enrich(&self, _: &EnrichmentContext, _: &mut Map<String, Value>) -> Result<(), EnrichError> {
            Err(EnrichError::Failed("database is down".into()))
        }
    }

    fn link(name: &str, enricher: impl ClaimsEnricher + 'static, destinations: Destinations) -> Link {
        Link { destinations, ..Link::new(name, Arc::new(enricher)) }
    }

    #[tokio::test]
    async fn links_can_be_limited_to_grants_and_clients() {
        let mut machines = link("machines", Fixed(json!({"kind": "machine"})), Destinations::default());
        machines.grant_types = vec!["client_credentials".into()];
        let mut web = link("web", Fixed(json!({"ui": true})), Destinations::default());
        web.clients = vec!["web-app".into()];
        let chain = Chain::new(vec![machines, web]);
        let context = |grant: &str, client: &str| EnrichmentContext {
            grant_type: grant.into(),
            client_id: client.into(),
            ..EnrichmentContext::default()
        };
        let run = |c| {
            let chain = &chain;
            async move { Value::Object(chain.run(&c).await.unwrap().id_token) }
        };
        assert_eq!(run(context("client_credentials", "cli")).await, json!({"kind": "machine"}));
        assert_eq!(run(context("authorization_code", "web-app")).await, json!({"ui": true}));
        assert_eq!(run(context("authorization_code", "cli")).await, json!({}));
    }

    #[tokio::test]
    async fn later_enrichers_win_and_destinations_filter() {
        let access_only = Destinations { id_token: false, access_token: true };
        let chain = Chain::new(vec![
            link("first", Fixed(json!({"org": "acme", "plan": "free"})), Destinations::default()),
            link("second", Fixed(json!({"plan": "enterprise", "internal": 1})), access_only),
        ]);
        let enriched = chain.run(&EnrichmentContext::default()).await.unwrap();
        assert_eq!(Value::Object(enriched.id_token), json!({"org": "acme", "plan": "free"}));
        assert_eq!(Value::Object(enriched.access_token), json!({"org": "acme", "plan": "enterprise", "internal": 1}));
    }

    #[tokio::test]
    async fn an_error_stops_the_chain_and_names_the_enricher() {
        let chain = Chain::new(vec![
            link("static", Fixed(json!({"org": "acme"})), Destinations::default()),
            link("tenants", Failing, Destinations::default()),
        ]);
        let err = chain.run(&EnrichmentContext::default()).await.unwrap_err();
        assert_eq!(err.enricher, "tenants");
        assert_eq!(err.to_string(), "custom claims enricher \"tenants\" failed: database is down");
    }

    /// What an observer was told, as text.
    #[derive(Default)]
    struct Told(std::sync::Mutex<Vec<String>>);

    impl ChainObserver for Told {
        fn enriched(&self, link: usize, _elapsed: Duration, failure: Option<&EnrichError>) {
            let outcome = failure.map_or("ok", EnrichError::cause);
            self.0.lock().unwrap().push(format!("{link} {outcome}"));
        }
        fn reserved_dropped(&self, link: usize) {
            self.0.lock().unwrap().push(format!("{link} dropped"));
        }
    }

    #[tokio::test]
    async fn the_observer_hears_of_every_run_failure_and_dropped_claim_by_link() {
        let told = Arc::new(Told::default());
        let mut skipped = link("skipped", Fixed(json!({"a": 1})), Destinations::default());
        skipped.clients = vec!["another-app".into()];
        let chain = Chain::new(vec![
            link("static", Fixed(json!({"org": "acme", "iss": "forged"})), Destinations::default()),
            skipped,
            link("tenants", Failing, Destinations::default()),
        ])
        .observed(told.clone());
        chain.run(&EnrichmentContext::default()).await.unwrap_err();
        assert_eq!(*told.0.lock().unwrap(), ["0 ok", "0 dropped", "2 failed"], "a link that does not apply is not run");
    }

    #[tokio::test]
    async fn reserved_claims_arriving_at_run_time_are_dropped_and_counted() {
        let chain = Chain::new(vec![link(
            "db",
            Fixed(json!({"sub": "admin", "email": "x@y", "org": "acme"})),
            Destinations::default(),
        )]);
        let enriched = chain.run(&EnrichmentContext::default()).await.unwrap();
        assert_eq!(Value::Object(enriched.id_token), json!({"org": "acme"}));
        assert_eq!(chain.reserved_dropped(), 2);
    }
}

//! Enrichers run in order; a later one wins a key conflict; an error stops everything (no token,
//! no partial token) unless the enricher's failure policy is `omit`. Reserved names that still arrive
//! at run time are dropped, logged and counted. Then the CEL [policies](crate::policy) run: the auth
//! policy, the token filter and the token claims, with the enrichers' claims as `custom`.
//! What each run cost and how it ended is told to a [`ChainObserver`] (the server's metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::cel::Input;
use crate::policy::{Policies, Refusal};
use crate::reserved::Guard;
use crate::{ClaimsEnricher, EnrichError, EnrichmentContext};

/// What a failing enricher means for the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// No token (the default: a claim the relying party counts on is never silently missing).
    #[default]
    Deny,
    /// The token without this enricher's claims; counted and logged.
    Omit,
}

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
    pub on_error: OnError,
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
            on_error: OnError::Deny,
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

/// Why the chain gave no claims (no claim values: this is logged).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// An enricher whose failure policy is `deny` failed.
    #[error("custom claims enricher {enricher:?} failed: {error}")]
    Enricher {
        enricher: String,
        #[source]
        error: EnrichError,
    },
    /// A policy refused the login or the token; `message` is for the user.
    #[error("denied by {origin}")]
    Denied { origin: String, message: String },
    /// A policy expression could not be evaluated: no token.
    #[error("policy {origin}: {error}")]
    Policy {
        origin: String,
        #[source]
        error: crate::cel::EvalError,
    },
}

impl From<Refusal> for ChainError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Denied { origin, message } => ChainError::Denied { origin, message },
            Refusal::Failed { origin, error } => ChainError::Policy { origin, error },
        }
    }
}

/// Where a claim of the token came from: an enricher or a policy rule (`tessera claims preview`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub claim: String,
    pub origin: String,
}

/// Told what happened in the chain. Links are named by their place in it ([`Chain::names`]), so an
/// observer can resolve its labels once, when it is made.
pub trait ChainObserver: Send + Sync {
    /// The link at `link` ran for `elapsed`, and failed with `failure` if it did.
    fn enriched(&self, link: usize, elapsed: Duration, failure: Option<&EnrichError>);
    /// The link at `link` produced a reserved claim, which was dropped.
    fn reserved_dropped(&self, link: usize);
    /// The link at `link` failed and its claims were left out (`onError: omit`).
    fn omitted(&self, _link: usize) {}
    /// The cache of the link at `link` answered (`hit`) or not.
    fn cached(&self, _link: usize, _hit: bool) {}
}

/// A link's cache reporting to the chain's observer under the link's index.
struct LinkCache {
    observer: Arc<dyn ChainObserver>,
    link: usize,
}

impl crate::cache::CacheObserver for LinkCache {
    fn hit(&self) {
        self.observer.cached(self.link, true);
    }
    fn miss(&self) {
        self.observer.cached(self.link, false);
    }
}

#[derive(Default)]
pub struct Chain {
    links: Vec<Link>,
    reserved_dropped: AtomicU64,
    observer: Option<Arc<dyn ChainObserver>>,
    policies: Option<Arc<Policies>>,
}

impl Chain {
    pub fn new(links: Vec<Link>) -> Self {
        Self { links, reserved_dropped: AtomicU64::new(0), observer: None, policies: None }
    }

    /// The same chain, with the CEL policies run after the enrichers.
    pub fn with_policies(self, policies: Arc<Policies>) -> Self {
        Self { policies: (!policies.is_empty()).then_some(policies), ..self }
    }

    /// The same chain, telling `observer` about every run of a link.
    pub fn observed(self, observer: Arc<dyn ChainObserver>) -> Self {
        for (link, l) in self.links.iter().enumerate() {
            l.enricher.observe_cache(Arc::new(LinkCache { observer: observer.clone(), link }));
        }
        Self { observer: Some(observer), ..self }
    }

    /// The connection pools of the enrichers that have one, by enricher name.
    pub fn pool_stats(&self) -> Vec<(&str, tessera_storage::PoolStats)> {
        self.links.iter().filter_map(|link| Some((link.name.as_str(), link.enricher.pool_stats()?))).collect()
    }

    /// No enricher and no policy: nothing to run for a token.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.policies.is_none()
    }

    pub fn names(&self) -> Vec<&str> {
        self.links.iter().map(|link| link.name.as_str()).collect()
    }

    /// How many reserved claims enrichers produced at run time and the chain dropped.
    pub fn reserved_dropped(&self) -> u64 {
        self.reserved_dropped.load(Ordering::Relaxed)
    }

    pub async fn run(&self, context: &EnrichmentContext) -> Result<Enriched, ChainError> {
        self.run_traced(context, None).await
    }

    /// [`Chain::run`], telling `sources` where each claim came from (later entries win).
    pub async fn run_traced(
        &self,
        context: &EnrichmentContext,
        mut sources: Option<&mut Vec<Source>>,
    ) -> Result<Enriched, ChainError> {
        let mut enriched = self.enrich(context, sources.as_deref_mut()).await?;
        let Some(policies) = self.policies.as_deref() else {
            return Ok(enriched);
        };
        let auth = policies.auth_needs(&context.client_id).0
            && crate::policy::AUTH_AT_TOKEN.contains(&context.grant_type.as_str());
        if !auth && !policies.has_token_policy(&context.client_id) {
            return Ok(enriched);
        }
        let input = Input::new(context, custom(&enriched));
        if auth {
            policies.authorize(&context.client_id, &input)?;
        }
        let claims =
            policies.apply(&context.client_id, &input, &mut [&mut enriched.id_token, &mut enriched.access_token])?;
        if let Some(sources) = sources {
            sources.extend(claims.into_iter().map(|c| Source { claim: c.name, origin: c.origin }));
        }
        Ok(enriched)
    }

    /// The auth policy alone, right after a connector vouched for the user: the enrichers run first
    /// only when a rule for this client reads `custom`.
    pub async fn authorize(&self, context: &EnrichmentContext) -> Result<(), ChainError> {
        let Some(policies) = self.policies.as_deref() else {
            return Ok(());
        };
        let (auth, needs_custom) = policies.auth_needs(&context.client_id);
        if !auth {
            return Ok(());
        }
        let enriched = if needs_custom { self.enrich(context, None).await? } else { Enriched::default() };
        Ok(policies.authorize(&context.client_id, &Input::new(context, custom(&enriched)))?)
    }

    /// The enrichers alone.
    async fn enrich(
        &self,
        context: &EnrichmentContext,
        mut sources: Option<&mut Vec<Source>>,
    ) -> Result<Enriched, ChainError> {
        let mut enriched = Enriched::default();
        for (index, link) in self.links.iter().enumerate().filter(|(_, link)| link.applies_to(context)) {
            let mut claims = Map::new();
            let started = Instant::now();
            let outcome = link.enricher.enrich(context, &mut claims).await;
            if let Some(observer) = &self.observer {
                observer.enriched(index, started.elapsed(), outcome.as_ref().err());
            }
            if let Err(error) = outcome {
                match link.on_error {
                    OnError::Deny => return Err(ChainError::Enricher { enricher: link.name.clone(), error }),
                    OnError::Omit => {
                        if let Some(observer) = &self.observer {
                            observer.omitted(index);
                        }
                        tracing::warn!(enricher = %link.name, cause = error.cause(), %error, "custom claims enricher failed; its claims are left out (onError: omit)");
                        continue;
                    }
                }
            }
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
                if let Some(sources) = sources.as_deref_mut() {
                    sources.push(Source { claim: name.clone(), origin: format!("enricher {:?}", link.name) });
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

/// The enrichers' claims as the policies see them (`custom`): every claim, whatever its destination.
fn custom(enriched: &Enriched) -> Map<String, Value> {
    let mut all = enriched.id_token.clone();
    all.extend(enriched.access_token.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
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
        assert!(matches!(&err, ChainError::Enricher { enricher, .. } if enricher == "tenants"));
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
        fn omitted(&self, link: usize) {
            self.0.lock().unwrap().push(format!("{link} omitted"));
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

    #[tokio::test]
    async fn omit_issues_the_token_without_the_failing_enrichers_claims() {
        let told = Arc::new(Told::default());
        let mut optional = link("tenants", Failing, Destinations::default());
        optional.on_error = OnError::Omit;
        let chain = Chain::new(vec![link("static", Fixed(json!({"org": "acme"})), Destinations::default()), optional])
            .observed(told.clone());
        let enriched = chain.run(&EnrichmentContext::default()).await.unwrap();
        assert_eq!(Value::Object(enriched.id_token), json!({"org": "acme"}));
        assert_eq!(*told.0.lock().unwrap(), ["0 ok", "1 failed", "1 omitted"]);
    }

    #[tokio::test]
    async fn policies_run_after_the_enrichers_and_see_their_claims_as_custom() {
        use crate::cel::{DEFAULT_COST_BUDGET, Environment};
        use crate::policy::{Scope, claim_rule, rule};
        let env = Environment::new(DEFAULT_COST_BUDGET).unwrap();
        let guard = Guard::default();
        let mut global = Scope::default();
        global.auth.push(
            rule(&env, "authPolicy[0]".into(), "custom.suspended == true", Some("'Your tenant is suspended'")).unwrap(),
        );
        global.token.claims.push(
            claim_rule(
                &env,
                &guard,
                "tokenPolicy.claims[0]".into(),
                "'features'",
                "custom.plan == 'enterprise' ? ['sso'] : []",
                None,
            )
            .unwrap(),
        );
        let policies = Arc::new(Policies { global, clients: Default::default(), guard });
        let chain = |row: Value| {
            Chain::new(vec![link("tenants", Fixed(row), Destinations::default())]).with_policies(policies.clone())
        };
        let active = chain(json!({"plan": "enterprise", "suspended": false}));
        let mut sources = Vec::new();
        let enriched = active.run_traced(&EnrichmentContext::default(), Some(&mut sources)).await.unwrap();
        assert_eq!(enriched.id_token["features"], json!(["sso"]));
        let origins: Vec<String> = sources.iter().map(|s| format!("{} <- {}", s.claim, s.origin)).collect();
        assert_eq!(
            origins,
            ["plan <- enricher \"tenants\"", "suspended <- enricher \"tenants\"", "features <- tokenPolicy.claims[0]"]
        );
        let suspended = chain(json!({"plan": "free", "suspended": true}));
        let refresh = EnrichmentContext { grant_type: "refresh_token".into(), ..EnrichmentContext::default() };
        let err = suspended.run(&refresh).await.unwrap_err();
        assert!(matches!(&err, ChainError::Denied { message, .. } if message == "Your tenant is suspended"), "{err}");
        assert!(suspended.authorize(&EnrichmentContext::default()).await.is_err());
        assert!(active.authorize(&EnrichmentContext::default()).await.is_ok());
    }
}

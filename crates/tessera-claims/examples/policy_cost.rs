//! What the CEL policies add to a token: runs the chain (one static enricher) N times, without policies
//! or with the DEP's examples as a token policy plus an auth rule, so callgrind can count the
//! instructions per token: `policy_cost none|policy N`, per token = (I(N2) − I(N1)) / (N2 − N1).
//! Also prints the wall time per run, for a rough figure without valgrind. See bench/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark stops on any failure

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tessera_claims::cel::{DEFAULT_COST_BUDGET, Environment};
use tessera_claims::policy::{Policies, Scope, claim_rule, rule};
use tessera_claims::reserved::Guard;
use tessera_claims::{Chain, EnrichmentContext, Link, StaticEnricher};

fn policies() -> Policies {
    let env = Environment::new(DEFAULT_COST_BUDGET).unwrap();
    let guard = Guard::default();
    let mut global = Scope::default();
    global.auth.push(rule(&env, "authPolicy[0]".into(), "!identity.email.endsWith('@example.com')", None).unwrap());
    for (key, value, condition) in [
        ("'role'", "identity.groups.exists(g, g == 'admins') ? 'admin' : 'user'", None),
        ("'idp'", "request.connector_id", None),
        ("'features'", "custom.plan == 'enterprise' ? ['sso', 'audit'] : []", None),
        ("'on_call'", "true", Some("identity.groups.exists(g, g == 'ops')")),
    ] {
        global.token.claims.push(claim_rule(&env, &guard, key.into(), key, value, condition).unwrap());
    }
    Policies { global, clients: HashMap::new(), guard }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "policy".into());
    let runs: usize = args.next().map_or(10_000, |n| n.parse().unwrap());
    let enricher = StaticEnricher::new(json!({"plan": "enterprise", "org": "acme"}), &Guard::default()).unwrap();
    let mut chain = Chain::new(vec![Link::new("static", Arc::new(enricher))]);
    if mode == "policy" {
        chain = chain.with_policies(Arc::new(policies()));
    }
    let context = EnrichmentContext {
        identity: tessera_core::model::Claims {
            user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
            username: "jane".into(),
            preferred_username: "jane".into(),
            email: "jane@example.com".into(),
            email_verified: true,
            groups: vec!["admins".into(), "developers".into()],
        },
        connector_id: "ldap".into(),
        client_id: "web-app".into(),
        scopes: vec!["openid".into(), "email".into(), "groups".into()],
        // A refresh: the auth policy runs too.
        grant_type: "refresh_token".into(),
        redirect_uri: String::new(),
    };
    let started = Instant::now();
    let mut claims = 0;
    for _ in 0..runs {
        claims += chain.run(&context).await.unwrap().id_token.len();
    }
    let per_run = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
    println!("{mode}: {runs} runs, {per_run:.2} µs per run, {} claims per token", claims / runs.max(1));
}

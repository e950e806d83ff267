//! Dex's CEL policies (the CEL DEP's config shape): `authPolicy` and `tokenPolicy` at the top level
//! and in each static client. Every expression is compiled and type-checked here, so a typo
//! (`identity.emial`), a wrong result type, an expression over the cost budget or a reserved claim
//! key is an error naming the file line and key, before anything starts.

use std::sync::Arc;

use tessera_claims::cel::{DEFAULT_COST_BUDGET, Environment};
use tessera_claims::policy::{self, Policies, PolicyError, Scope};
use tessera_claims::reserved::Guard;

use super::diagnostics::Diagnostics;
use super::reader::Map;

/// Collects the policies while the sections are read.
pub struct PolicyReader {
    env: Option<Environment>,
    policies: Policies,
}

impl PolicyReader {
    pub fn new() -> Self {
        Self { env: Environment::new(DEFAULT_COST_BUDGET).ok(), policies: Policies::default() }
    }

    /// The top-level `authPolicy` and `tokenPolicy` (whose `allowOverride` lets the policy set Dex's
    /// identity claims, as an enricher's does).
    pub fn top_level(&mut self, top: &mut Map, d: &mut Diagnostics, strict: bool) {
        if let Some(mut token) = top.map(d, "tokenPolicy") {
            let allowed = token.strings(d, "allowOverride");
            match Guard::new(allowed) {
                Ok(guard) => self.policies.guard = guard,
                Err(err) => d.error(token.line_of("allowOverride"), &token.key_path("allowOverride"), err),
            }
            let mut global = std::mem::take(&mut self.policies.global);
            self.token_policy(&mut token, d, strict, &mut global, "tokenPolicy");
            token.finish(d, strict);
            self.policies.global = global;
        }
        let mut global = std::mem::take(&mut self.policies.global);
        self.auth_policy(top, d, strict, &mut global, "");
        self.policies.global = global;
    }

    /// A static client's `authPolicy` and `tokenPolicy`.
    pub fn client(&mut self, m: &mut Map, d: &mut Diagnostics, strict: bool, client_id: Option<&str>) {
        let origin = format!("staticClients[{}]", client_id.unwrap_or("?"));
        let mut scope = Scope::default();
        if let Some(mut token) = m.map(d, "tokenPolicy") {
            self.token_policy(&mut token, d, strict, &mut scope, &format!("{origin}.tokenPolicy"));
            token.finish(d, strict);
        }
        self.auth_policy(m, d, strict, &mut scope, &format!("{origin}."));
        if let Some(id) = client_id
            && !(scope.auth.is_empty() && scope.token.claims.is_empty() && scope.token.filter.is_none())
        {
            self.policies.clients.insert(id.to_owned(), scope);
        }
    }

    pub fn finish(self) -> Arc<Policies> {
        Arc::new(self.policies)
    }

    fn environment(&mut self, d: &mut Diagnostics, line: u32, path: &str) -> Option<&Environment> {
        if self.env.is_none() {
            d.error(line, path, "the CEL environment could not be built");
        }
        self.env.as_ref()
    }

    fn auth_policy(&mut self, m: &mut Map, d: &mut Diagnostics, strict: bool, scope: &mut Scope, origin: &str) {
        for (index, (path, node)) in m.list(d, "authPolicy").into_iter().enumerate() {
            let Some(mut rule) = Map::new(node, &path, d) else { continue };
            let expression = rule.required_string(d, "expression");
            let message = rule.string(d, "message");
            if let Some(expression) = expression
                && let Some(env) = self.environment(d, rule.line, &path)
            {
                let at = format!("{origin}authPolicy[{index}]");
                match policy::rule(env, at, &expression, message.as_deref()) {
                    Ok(compiled) => scope.auth.push(compiled),
                    Err((part, err)) => report(d, &rule, part, &err),
                }
            }
            rule.finish(d, strict);
        }
    }

    fn token_policy(&mut self, token: &mut Map, d: &mut Diagnostics, strict: bool, scope: &mut Scope, origin: &str) {
        let guard = self.policies.guard.clone();
        for (index, (path, node)) in token.list(d, "claims").into_iter().enumerate() {
            let Some(mut claim) = Map::new(node, &path, d) else { continue };
            let key = claim.required_string(d, "key");
            let value = claim.required_string(d, "value");
            let condition = claim.string(d, "condition");
            if let (Some(key), Some(value)) = (key, value)
                && let Some(env) = self.environment(d, claim.line, &path)
            {
                let at = format!("{origin}.claims[{index}]");
                match policy::claim_rule(env, &guard, at, &key, &value, condition.as_deref()) {
                    Ok(compiled) => scope.token.claims.push(compiled),
                    Err((part, err)) => report(d, &claim, part, &err),
                }
            }
            claim.finish(d, strict);
        }
        if let Some(mut filter) = token.map(d, "filter") {
            let expression = filter.required_string(d, "expression");
            let message = filter.string(d, "message");
            if let Some(expression) = expression
                && let Some(env) = self.environment(d, filter.line, &filter.key_path("expression"))
            {
                match policy::rule(env, format!("{origin}.filter"), &expression, message.as_deref()) {
                    Ok(compiled) => scope.token.filter = Some(compiled),
                    Err((part, err)) => report(d, &filter, part, &err),
                }
            }
            filter.finish(d, strict);
        }
    }
}

fn report(d: &mut Diagnostics, m: &Map, part: &str, err: &PolicyError) {
    d.error(m.line_of(part), &m.key_path(part), err);
}

//! Dex's CEL policies (the CEL DEP, phases 2 and 3), global and per client:
//! - `authPolicy: [{expression, message}]`: an expression that is true denies, with its message;
//! - `tokenPolicy.filter: {expression, message}`: an expression that is false refuses the token;
//! - `tokenPolicy.claims: [{key, value, condition}]`: claims added after the enrichers, global first,
//!   then the client's (which win), under the reserved-claim guard.
//!
//! Every expression is compiled and checked when the policy is built (at start-up); this module only
//! evaluates. Nothing here logs a claim value.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::cel::{CompileError, Environment, EvalError, Expression, Input, Output};
use crate::reserved::{Guard, ReservedError};

/// A deny rule (`authPolicy`) or a filter (`tokenPolicy.filter`): an expression and its message.
#[derive(Debug)]
pub struct Rule {
    /// Where it is configured (`authPolicy[0]`), for logs and `claims preview`.
    pub origin: String,
    pub expression: Expression,
    pub message: Option<Expression>,
}

/// One `tokenPolicy.claims` entry.
#[derive(Debug)]
pub struct ClaimRule {
    pub origin: String,
    pub key: Expression,
    pub value: Expression,
    pub condition: Option<Expression>,
}

#[derive(Debug, Default)]
pub struct TokenPolicy {
    pub claims: Vec<ClaimRule>,
    pub filter: Option<Rule>,
}

/// The policies of one scope (global, or one client).
#[derive(Debug, Default)]
pub struct Scope {
    pub auth: Vec<Rule>,
    pub token: TokenPolicy,
}

impl Scope {
    fn is_empty(&self) -> bool {
        self.auth.is_empty() && self.token.claims.is_empty() && self.token.filter.is_none()
    }
}

/// Why a policy said no, or could not say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `authPolicy` matched or `tokenPolicy.filter` did not: the message is for the user.
    #[error("denied by {origin}")]
    Denied { origin: String, message: String },
    /// An expression could not be evaluated (fail closed: no token).
    #[error("{origin}: {error}")]
    Failed { origin: String, error: EvalError },
}

/// The grants at whose token the auth policy runs again: those where a connector vouches for the user
/// at the token endpoint (password, token exchange) and every refresh. The browser flows (code,
/// implicit, device) ran it when the user logged in.
pub const AUTH_AT_TOKEN: [&str; 3] =
    [tessera_core::grant::PASSWORD, tessera_core::grant::REFRESH_TOKEN, tessera_core::grant::TOKEN_EXCHANGE];

/// The message shown when a rule has none, or its message cannot be evaluated.
pub const DEFAULT_DENIAL: &str = "Access denied by policy.";

/// All policies, compiled.
#[derive(Debug, Default)]
pub struct Policies {
    pub global: Scope,
    pub clients: HashMap<String, Scope>,
    pub guard: Guard,
}

/// A claim a policy produced, and the rule that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyClaim {
    pub name: String,
    pub value: Value,
    pub origin: String,
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.clients.values().all(Scope::is_empty)
    }

    fn scopes<'a>(&'a self, client_id: &str) -> impl Iterator<Item = &'a Scope> {
        std::iter::once(&self.global).chain(self.clients.get(client_id))
    }

    /// Whether any auth rule applies to this client, and whether one reads `custom` (then the
    /// enrichers must run first).
    pub fn auth_needs(&self, client_id: &str) -> (bool, bool) {
        if self.global.auth.is_empty() && self.clients.get(client_id).is_none_or(|s| s.auth.is_empty()) {
            return (false, false);
        }
        let rules: Vec<&Rule> = self.scopes(client_id).flat_map(|s| &s.auth).collect();
        (!rules.is_empty(), rules.iter().any(|r| r.expression.uses_custom()))
    }

    /// Whether the token policy for this client does anything.
    pub fn has_token_policy(&self, client_id: &str) -> bool {
        self.scopes(client_id).any(|s| !s.token.claims.is_empty() || s.token.filter.is_some())
    }

    /// `authPolicy`, global then the client's: the first true expression denies.
    pub fn authorize(&self, client_id: &str, input: &Input) -> Result<(), Refusal> {
        for rule in self.scopes(client_id).flat_map(|s| &s.auth) {
            if rule.expression.eval_bool(input).map_err(|error| failed(rule, error))? {
                return Err(denied(rule, input));
            }
        }
        Ok(())
    }

    /// `tokenPolicy.filter`, global then the client's: a false expression refuses the token.
    pub fn filter(&self, client_id: &str, input: &Input) -> Result<(), Refusal> {
        for rule in self.scopes(client_id).filter_map(|s| s.token.filter.as_ref()) {
            if !rule.expression.eval_bool(input).map_err(|error| failed(rule, error))? {
                return Err(denied(rule, input));
            }
        }
        Ok(())
    }

    /// `tokenPolicy.claims`, global then the client's, in order (a later one wins). A claim whose key
    /// is reserved (only possible for a key computed at run time) is dropped, logged and reported in
    /// `dropped`.
    pub fn claims(&self, client_id: &str, input: &Input) -> Result<(Vec<PolicyClaim>, usize), Refusal> {
        let mut out = Vec::new();
        let mut dropped = 0;
        for rule in self.scopes(client_id).flat_map(|s| &s.token.claims) {
            let origin = || rule.origin.clone();
            if let Some(condition) = &rule.condition
                && !condition.eval_bool(input).map_err(|error| Refusal::Failed { origin: origin(), error })?
            {
                continue;
            }
            let name = rule.key.eval_string(input).map_err(|error| Refusal::Failed { origin: origin(), error })?;
            if let Err(reserved) = self.guard.check(&name) {
                dropped += 1;
                tracing::warn!(policy = %rule.origin, claim = %name, "dropped a reserved claim: {reserved}");
                continue;
            }
            let value = rule.value.eval_json(input).map_err(|error| Refusal::Failed { origin: origin(), error })?;
            out.push(PolicyClaim { name, value, origin: rule.origin.clone() });
        }
        Ok((out, dropped))
    }

    /// The filter, then the claims, merged into `claims` (the enrichers' output, per destination).
    pub fn apply(
        &self,
        client_id: &str,
        input: &Input,
        targets: &mut [&mut Map<String, Value>],
    ) -> Result<Vec<PolicyClaim>, Refusal> {
        self.filter(client_id, input)?;
        let (claims, _) = self.claims(client_id, input)?;
        for claim in &claims {
            for target in targets.iter_mut() {
                target.insert(claim.name.clone(), claim.value.clone());
            }
        }
        Ok(claims)
    }
}

fn failed(rule: &Rule, error: EvalError) -> Refusal {
    Refusal::Failed { origin: rule.origin.clone(), error }
}

/// The rule's message (a CEL string expression), or the default when it has none or fails.
fn denied(rule: &Rule, input: &Input) -> Refusal {
    let message = match &rule.message {
        None => DEFAULT_DENIAL.to_owned(),
        Some(message) => message.eval_string(input).unwrap_or_else(|error| {
            tracing::warn!(policy = %rule.origin, %error, "the denial message could not be evaluated");
            DEFAULT_DENIAL.to_owned()
        }),
    };
    Refusal::Denied { origin: rule.origin.clone(), message }
}

/// Why a configured expression was refused, with which part of the rule (`key`, `value`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Reserved(#[from] ReservedError),
}

/// Compiles one deny rule or filter.
pub fn rule(
    env: &Environment,
    origin: String,
    expression: &str,
    message: Option<&str>,
) -> Result<Rule, (&'static str, PolicyError)> {
    let expression = env.compile(expression, Output::Bool).map_err(|e| ("expression", e.into()))?;
    let message = message.map(|m| env.compile(m, Output::String)).transpose().map_err(|e| ("message", e.into()))?;
    Ok(Rule { origin, expression, message })
}

/// Compiles one claim rule; a key that is a constant is checked against the guard now.
pub fn claim_rule(
    env: &Environment,
    guard: &Guard,
    origin: String,
    key: &str,
    value: &str,
    condition: Option<&str>,
) -> Result<ClaimRule, (&'static str, PolicyError)> {
    let key = env.compile(key, Output::String).map_err(|e| ("key", e.into()))?;
    if let Some(name) = key.constant_string() {
        guard.check(&name).map_err(|e| ("key", e.into()))?;
    }
    let value = env.compile(value, Output::Any).map_err(|e| ("value", e.into()))?;
    let condition = condition.map(|c| env.compile(c, Output::Bool)).transpose().map_err(|e| ("condition", e.into()))?;
    Ok(ClaimRule { origin, key, value, condition })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnrichmentContext;
    use crate::cel::DEFAULT_COST_BUDGET;
    use serde_json::json;
    use tessera_core::model::Claims;

    fn env() -> Environment {
        Environment::new(DEFAULT_COST_BUDGET).unwrap()
    }

    fn input(groups: &[&str], client: &str) -> Input {
        let context = EnrichmentContext {
            identity: Claims {
                email: "jane@example.com".into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..Claims::default()
            },
            client_id: client.into(),
            connector_id: "ldap".into(),
            scopes: vec!["openid".into(), "groups".into()],
            ..EnrichmentContext::default()
        };
        let Value::Object(custom) = json!({"plan": "enterprise"}) else { panic!() };
        Input::new(&context, custom)
    }

    fn policies() -> Policies {
        let env = env();
        let guard = Guard::default();
        let mut admin = Scope::default();
        admin.auth.push(
            rule(
                &env,
                "staticClients[admin].authPolicy[0]".into(),
                "!('admin' in identity.groups)",
                Some("'Admin group membership required'"),
            )
            .unwrap(),
        );
        admin.token.filter = Some(
            rule(
                &env,
                "staticClients[admin].tokenPolicy.filter".into(),
                "request.scopes.all(s, s in ['openid', 'email', 'groups'])",
                Some("'Unsupported scope requested'"),
            )
            .unwrap(),
        );
        admin.token.claims.push(claim_rule(&env, &guard, "c1".into(), "'role'", "'superuser'", None).unwrap());
        let mut global = Scope::default();
        global.auth.push(rule(&env, "authPolicy[0]".into(), "!identity.email.endsWith('@example.com')", None).unwrap());
        global.token.claims.push(
            claim_rule(
                &env,
                &guard,
                "g0".into(),
                "'role'",
                "identity.groups.exists(g, g == 'admin') ? 'admin' : 'user'",
                None,
            )
            .unwrap(),
        );
        global.token.claims.push(
            claim_rule(
                &env,
                &guard,
                "g1".into(),
                "'features'",
                "custom.plan == 'enterprise' ? ['sso', 'audit'] : []",
                None,
            )
            .unwrap(),
        );
        global.token.claims.push(
            claim_rule(&env, &guard, "g2".into(), "'on_call'", "true", Some("identity.groups.exists(g, g == 'ops')"))
                .unwrap(),
        );
        Policies { global, clients: HashMap::from([("admin".to_owned(), admin)]), guard }
    }

    #[test]
    fn auth_policy_denies_with_the_message_global_first() {
        let p = policies();
        assert_eq!(p.authorize("web", &input(&[], "web")), Ok(()));
        assert_eq!(
            p.authorize("admin", &input(&["dev"], "admin")),
            Err(Refusal::Denied {
                origin: "staticClients[admin].authPolicy[0]".into(),
                message: "Admin group membership required".into()
            })
        );
        assert_eq!(p.authorize("admin", &input(&["admin"], "admin")), Ok(()));
        assert_eq!(p.auth_needs("web"), (true, false));
    }

    #[test]
    fn token_claims_merge_global_then_client_and_respect_conditions() {
        let p = policies();
        let mut id = Map::new();
        let claims = p.apply("web", &input(&["dev"], "web"), &mut [&mut id]).unwrap();
        assert_eq!(Value::Object(id), json!({"role": "user", "features": ["sso", "audit"]}));
        assert_eq!(claims.iter().map(|c| c.origin.as_str()).collect::<Vec<_>>(), ["g0", "g1"]);
        let mut id = Map::new();
        p.apply("admin", &input(&["admin", "ops"], "admin"), &mut [&mut id]).unwrap();
        assert_eq!(Value::Object(id), json!({"role": "superuser", "features": ["sso", "audit"], "on_call": true}));
    }

    #[test]
    fn the_filter_refuses_a_request() {
        let p = policies();
        let mut i = input(&["admin"], "admin");
        assert_eq!(p.filter("admin", &i), Ok(()));
        let context = EnrichmentContext {
            client_id: "admin".into(),
            scopes: vec!["openid".into(), "offline_access".into()],
            ..EnrichmentContext::default()
        };
        i = Input::new(&context, Map::new());
        assert!(
            matches!(p.filter("admin", &i), Err(Refusal::Denied { message, .. }) if message == "Unsupported scope requested")
        );
    }

    #[test]
    fn reserved_keys_are_refused_at_start_up() {
        let env = env();
        let err = claim_rule(&env, &Guard::default(), "x".into(), "'sub'", "'admin'", None).unwrap_err();
        assert_eq!(err.0, "key");
        assert!(err.1.to_string().contains("reserved"), "{}", err.1);
        assert!(claim_rule(&env, &Guard::default(), "x".into(), "'groups'", "[]", None).is_err());
        let allowed = Guard::new(vec!["groups".into()]).unwrap();
        assert!(claim_rule(&env, &allowed, "x".into(), "'groups'", "[]", None).is_ok());
    }
}

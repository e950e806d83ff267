//! CEL expressions as Dex's CEL DEP defines them: compiled once at start-up against the declared
//! variables (`identity`, `request`, and tessera's `custom`), type-checked, held to a length limit and
//! a cost budget; evaluated per token under the same budget for the token's actual inputs.
//!
//! The `cel` crate parses and evaluates; the checker ([`check`]) and the cost estimator ([`cost`]) are
//! ours, as the crate has neither.

mod check;
pub mod cost;
mod library;
pub mod types;

use std::sync::Arc;

use std::collections::HashMap;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Program, Value};
use serde_json::Value as Json;

use crate::EnrichmentContext;
pub use cost::{DEFAULT_COST_BUDGET, DEFAULT_SIZE_HINT, MAX_EXPRESSION_LENGTH};
use types::Ty;

/// What an expression must evaluate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Bool,
    String,
    /// Anything that is a JSON value (a claim's value).
    Any,
}

impl Output {
    fn ty(self) -> Ty {
        match self {
            Output::Bool => Ty::Bool,
            Output::String => Ty::String,
            Output::Any => Ty::Dyn,
        }
    }
}

/// Why an expression was refused at start-up. Positions are columns in the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("the expression is {0} characters long; the limit is {MAX_EXPRESSION_LENGTH}")]
    TooLong(usize),
    #[error("the expression is empty")]
    Empty,
    #[error("does not parse: {0}")]
    Syntax(String),
    #[error("{message} (column {column})")]
    Type { message: String, column: u32 },
    #[error("must evaluate to {want}, but evaluates to {found}")]
    Output { want: String, found: String },
    #[error("its estimated cost, {estimate}, exceeds the budget of {budget}")]
    Cost { estimate: u64, budget: u64 },
}

/// Why an evaluation produced no value. Never carries a value of the inputs: it is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error(
        "for these inputs (strings or lists up to {size} long) its cost could reach {estimate}, over the budget of {budget}: not evaluated"
    )]
    CostLimit { size: u64, estimate: u64, budget: u64 },
    #[error("evaluation failed: {0}")]
    Failed(&'static str),
    #[error("evaluated to {found}, not {want}")]
    WrongType { want: &'static str, found: &'static str },
}

/// The environment every expression is compiled and evaluated in: the standard library, the
/// extensions Kubernetes and the DEP use (strings, lists, math, base64), and the DEP's `dex.*`.
pub struct Environment {
    env: Arc<Env>,
    budget: u64,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl Environment {
    pub fn new(budget: u64) -> Result<Self, String> {
        let mut env = Env::stdlib();
        for extension in [cel::extensions::strings, cel::extensions::lists, cel::extensions::math] {
            env.add_extension(extension).map_err(|e| e.to_string())?;
        }
        env.add_extension(cel::extensions::encoders).map_err(|e| e.to_string())?;
        env.add_extension(library::dex).map_err(|e| e.to_string())?;
        Ok(Self { env: Arc::new(env), budget })
    }

    /// Parses, type-checks, checks the output type and the cost: every refusal is here.
    pub fn compile(&self, source: &str, output: Output) -> Result<Expression, CompileError> {
        let length = source.chars().count();
        if length > MAX_EXPRESSION_LENGTH {
            return Err(CompileError::TooLong(length));
        }
        if source.trim().is_empty() {
            return Err(CompileError::Empty);
        }
        let program = self.env.compile(source).map_err(|errors| {
            let text: Vec<String> =
                errors.errors.iter().map(|e| format!("{} (column {})", e.msg, e.pos.1 + 1)).collect();
            CompileError::Syntax(text.join("; "))
        })?;
        let found = check::Checker::new().check(program.expression()).map_err(|err| CompileError::Type {
            column: program.source_info().offset_for(err.expr_id).map_or(1, |(start, _)| start + 1),
            message: err.message,
        })?;
        if !found.fits(&output.ty()) || (output == Output::Any && matches!(found, Ty::Optional(_) | Ty::Type)) {
            return Err(CompileError::Output { want: output.ty().to_string(), found: found.to_string() });
        }
        let estimate = cost::estimate(program.expression(), DEFAULT_SIZE_HINT);
        if estimate > self.budget {
            return Err(CompileError::Cost { estimate, budget: self.budget });
        }
        let uses_custom = program.references().has_variable("custom");
        let constant = (types::VARIABLES.iter().all(|v| !program.references().has_variable(v)))
            .then(|| program.execute(&Context::with_env(self.env.clone())).ok())
            .flatten();
        Ok(Expression {
            source: source.to_owned(),
            program,
            output,
            estimate,
            uses_custom,
            constant,
            env: self.env.clone(),
            budget: self.budget,
        })
    }
}

/// A checked expression, ready to evaluate.
pub struct Expression {
    source: String,
    program: Program,
    output: Output,
    /// Its cost bound at the size hints.
    estimate: u64,
    uses_custom: bool,
    /// Its value, when it uses no variable (a claim's key is usually a literal).
    constant: Option<Value>,
    env: Arc<Env>,
    budget: u64,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression").field("source", &self.source).field("estimate", &self.estimate).finish()
    }
}

impl Expression {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Its cost bound with strings and lists at the DEP's size hints.
    pub fn estimated_cost(&self) -> u64 {
        self.estimate
    }

    /// Whether it reads `custom`, so the enrichers must run before it.
    pub fn uses_custom(&self) -> bool {
        self.uses_custom
    }

    /// The value of an expression that uses no variable, as JSON.
    pub fn constant(&self) -> Option<Json> {
        self.constant.as_ref().and_then(|v| v.json().ok())
    }

    /// A constant string expression's value (a claim's key written as `'role'`).
    pub fn constant_string(&self) -> Option<String> {
        match &self.constant {
            Some(Value::String(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    fn run(&self, input: &Input) -> Result<Value, EvalError> {
        if let Some(value) = &self.constant {
            return Ok(value.clone());
        }
        // The start-up bound holds for inputs within the hints; larger inputs are bounded again.
        if input.size > DEFAULT_SIZE_HINT {
            let estimate = cost::estimate(self.program.expression(), input.size);
            if estimate > self.budget {
                return Err(EvalError::CostLimit { size: input.size, estimate, budget: self.budget });
            }
        }
        let mut context = Context::with_env(self.env.clone());
        context.set_variable_resolver(input);
        self.program.execute(&context).map_err(|e| EvalError::Failed(kind(&e)))
    }

    pub fn eval_bool(&self, input: &Input) -> Result<bool, EvalError> {
        match self.run(input)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::WrongType { want: "bool", found: value_kind(&other) }),
        }
    }

    pub fn eval_string(&self, input: &Input) -> Result<String, EvalError> {
        match self.run(input)? {
            Value::String(s) => Ok(s.to_string()),
            other => Err(EvalError::WrongType { want: "string", found: value_kind(&other) }),
        }
    }

    /// The value as JSON (a claim's value).
    pub fn eval_json(&self, input: &Input) -> Result<Json, EvalError> {
        debug_assert_eq!(self.output, Output::Any);
        let value = self.run(input)?;
        value.json().map_err(|_| EvalError::WrongType { want: "a JSON value", found: value_kind(&value) })
    }
}

/// The variables of one evaluation, shared by every expression of a token. Nothing is converted up
/// front: the interpreter asks for `identity.email` or `custom.plan` by its qualified name, and gets
/// that one value, borrowed from here (converting whole objects for each expression cost more than
/// evaluating it).
pub struct Input {
    context: EnrichmentContext,
    custom: serde_json::Map<String, Json>,
    /// The longest string or list in them: the size the cost bound is computed for.
    size: u64,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("size", &self.size).finish_non_exhaustive()
    }
}

impl Input {
    /// `custom` is the claims the enrichers produced (empty when none ran).
    pub fn new(context: &EnrichmentContext, custom: serde_json::Map<String, Json>) -> Self {
        let identity = &context.identity;
        let texts = [
            &identity.user_id,
            &identity.username,
            &identity.preferred_username,
            &identity.email,
            &context.client_id,
            &context.connector_id,
            &context.grant_type,
            &context.redirect_uri,
        ];
        let mut size = texts.iter().map(|t| t.len()).max().unwrap_or(0) as u64;
        for list in [&identity.groups, &context.scopes] {
            size = size.max(list.len() as u64).max(list.iter().map(|s| s.len() as u64).max().unwrap_or(0));
        }
        size = size.max(custom.len() as u64);
        for value in custom.values() {
            size = size.max(json_size(value));
        }
        Self { context: context.clone(), custom, size }
    }

    fn identity(&self) -> Box<dyn Val + '_> {
        let identity = &self.context.identity;
        object(vec![
            ("user_id", string(&identity.user_id)),
            ("username", string(&identity.username)),
            ("preferred_username", string(&identity.preferred_username)),
            ("email", string(&identity.email)),
            ("email_verified", Box::new(CelBool::from(identity.email_verified))),
            ("groups", strings(&identity.groups)),
        ])
    }

    fn request(&self) -> Box<dyn Val + '_> {
        let c = &self.context;
        object(vec![
            ("client_id", string(&c.client_id)),
            ("connector_id", string(&c.connector_id)),
            ("scopes", strings(&c.scopes)),
            ("redirect_uri", string(&c.redirect_uri)),
            ("grant_type", string(&c.grant_type)),
        ])
    }
}

impl VariableResolver for Input {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let identity = &self.context.identity;
        let c = &self.context;
        let value: Box<dyn Val + 'b> = match name {
            "identity.user_id" => string(&identity.user_id),
            "identity.username" => string(&identity.username),
            "identity.preferred_username" => string(&identity.preferred_username),
            "identity.email" => string(&identity.email),
            "identity.email_verified" => Box::new(CelBool::from(identity.email_verified)),
            "identity.groups" => strings(&identity.groups),
            "request.client_id" => string(&c.client_id),
            "request.connector_id" => string(&c.connector_id),
            "request.scopes" => strings(&c.scopes),
            "request.redirect_uri" => string(&c.redirect_uri),
            "request.grant_type" => string(&c.grant_type),
            "identity" => self.identity(),
            "request" => self.request(),
            "custom" => json_object(&self.custom),
            // `custom.a.b` is asked for whole first: answer `custom.a` only, the rest is selected on it.
            _ => {
                let key = name.strip_prefix("custom.").filter(|k| !k.contains('.'))?;
                json_val(self.custom.get(key)?)
            }
        };
        Some(CowVal::Owned(value))
    }
}

fn string(text: &str) -> Box<dyn Val + '_> {
    Box::new(CelString::from(text))
}

fn strings(values: &[String]) -> Box<dyn Val + '_> {
    Box::new(CelList::from(values.iter().map(|s| string(s)).collect::<Vec<_>>()))
}

fn object<'b>(entries: Vec<(&'b str, Box<dyn Val + 'b>)>) -> Box<dyn Val + 'b> {
    let map: HashMap<CelMapKey<'b>, Box<dyn Val + 'b>> =
        entries.into_iter().map(|(k, v)| (CelMapKey::from(k), v)).collect();
    Box::new(CelMap::from(map))
}

fn json_object(map: &serde_json::Map<String, Json>) -> Box<dyn Val + '_> {
    let map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> =
        map.iter().map(|(k, v)| (CelMapKey::from(k.as_str()), json_val(v))).collect();
    Box::new(CelMap::from(map))
}

fn json_val(value: &Json) -> Box<dyn Val + '_> {
    match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(s) => string(s),
        Json::Array(items) => Box::new(CelList::from(items.iter().map(json_val).collect::<Vec<_>>())),
        Json::Object(map) => json_object(map),
    }
}

/// The longest string or collection anywhere in a JSON value.
fn json_size(value: &Json) -> u64 {
    match value {
        Json::String(s) => s.len() as u64,
        Json::Array(items) => items.iter().map(json_size).fold(items.len() as u64, u64::max),
        Json::Object(map) => map.values().map(json_size).fold(map.len() as u64, u64::max),
        _ => 1,
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Function(..) => "a function",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        _ => "a value of another kind",
    }
}

/// The kind of an evaluation error, without the values the crate's messages quote.
fn kind(error: &ExecutionError) -> &'static str {
    match error {
        ExecutionError::NoSuchKey(_) => "no such key (use has() or ?. for optional members)",
        ExecutionError::NoSuchOverload(_) => "no function takes these argument types",
        ExecutionError::UnexpectedType { .. } => "unexpected type",
        ExecutionError::DivisionByZero(_) | ExecutionError::RemainderByZero(_) => "division by zero",
        ExecutionError::Overflow(..) => "overflow",
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds",
        ExecutionError::ValuesNotComparable(..) => "values not comparable",
        ExecutionError::FunctionError { .. } => "a function failed",
        ExecutionError::DuplicateKey(_) => "duplicate map key",
        _ => "unsupported operation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_core::model::Claims;

    fn env() -> Environment {
        Environment::new(DEFAULT_COST_BUDGET).unwrap()
    }

    fn input(custom: Json) -> Input {
        let context = EnrichmentContext {
            identity: Claims {
                user_id: "u1".into(),
                email: "jane@example.com".into(),
                email_verified: true,
                groups: vec!["admin".into(), "team:web".into()],
                ..Claims::default()
            },
            connector_id: "ldap".into(),
            client_id: "web".into(),
            scopes: vec!["openid".into(), "email".into()],
            grant_type: "authorization_code".into(),
            redirect_uri: "https://app/cb".into(),
        };
        let Json::Object(custom) = custom else { panic!() };
        Input::new(&context, custom)
    }

    #[test]
    fn evaluates_against_the_declared_variables() {
        let env = env();
        let i = input(json!({"plan": "enterprise", "seats": 12}));
        let role = env.compile("identity.groups.exists(g, g == 'admin') ? 'admin' : 'user'", Output::Any).unwrap();
        assert_eq!(role.eval_json(&i).unwrap(), json!("admin"));
        let features = env.compile("custom.plan == 'enterprise' ? ['sso', 'audit'] : []", Output::Any).unwrap();
        assert!(features.uses_custom());
        assert_eq!(features.eval_json(&i).unwrap(), json!(["sso", "audit"]));
        let deny = env.compile("!identity.email.endsWith('@example.com')", Output::Bool).unwrap();
        assert!(!deny.eval_bool(&i).unwrap());
        let uri = env.compile("request.redirect_uri + ' ' + request.grant_type", Output::String).unwrap();
        assert_eq!(uri.eval_string(&i).unwrap(), "https://app/cb authorization_code");
        let domain = env.compile("dex.emailDomain(identity.email)", Output::String).unwrap();
        assert_eq!(domain.eval_string(&i).unwrap(), "example.com");
        let teams = env.compile("dex.groupMatches(identity.groups, 'team:*')", Output::Any).unwrap();
        assert_eq!(teams.eval_json(&i).unwrap(), json!(["team:web"]));
        let key = env.compile("'role'", Output::String).unwrap();
        assert_eq!(key.constant_string().as_deref(), Some("role"));
        let seats = env.compile("custom.seats * 2", Output::Any).unwrap();
        assert_eq!(seats.eval_json(&i).unwrap(), json!(24));
    }

    #[test]
    fn start_up_refusals() {
        let env = env();
        let err = env.compile("identity.emial == 'x'", Output::Bool).unwrap_err();
        assert_eq!(
            err.to_string(),
            "identity has no field \"emial\" (its fields are user_id, username, preferred_username, email, email_verified, groups) (column 9)"
        );
        assert!(matches!(env.compile("identity.email", Output::Bool), Err(CompileError::Output { .. })));
        assert!(matches!(env.compile("identity.email ==", Output::Bool), Err(CompileError::Syntax(_))));
        assert!(matches!(env.compile(&"a".repeat(10_241), Output::Bool), Err(CompileError::TooLong(10_241))));
        let expensive = "identity.groups.all(a, identity.groups.all(b, identity.groups.all(c, a + b + c != '')))";
        assert!(matches!(env.compile(expensive, Output::Bool), Err(CompileError::Cost { .. })));
    }

    #[test]
    fn inputs_larger_than_the_hints_are_bounded_again() {
        let env = env();
        let pairs =
            env.compile("custom.items.exists(a, custom.items.exists(b, a != b && a == b))", Output::Bool).unwrap();
        assert!(!pairs.eval_bool(&input(json!({"items": ["x", "y"]}))).unwrap());
        let many: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let err = pairs.eval_bool(&input(json!({ "items": many }))).unwrap_err();
        assert!(matches!(err, EvalError::CostLimit { size: 5000, .. }), "{err}");
    }

    #[test]
    fn runtime_errors_name_no_value() {
        let env = env();
        let missing = env.compile("custom.tier == 'gold'", Output::Bool).unwrap();
        let err = missing.eval_bool(&input(json!({}))).unwrap_err();
        assert_eq!(err.to_string(), "evaluation failed: no such key (use has() or ?. for optional members)");
    }
}

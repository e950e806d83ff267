//! The Postgres enricher: one row of the operator's query becomes claims, one per column.
//!
//! At start-up the query is prepared: the number of parameters must match the argument templates, each
//! parameter's type must be one tessera can bind, and each column must have a name that is neither
//! reserved nor repeated and a type from the mapping table below. The query is then wrapped so that
//! Postgres renders each column as text in one canonical form, which this module turns into JSON:
//!
//! | column type | claim |
//! | --- | --- |
//! | text, varchar, char (padding dropped), name, citext, uuid, enums | string |
//! | int2, int4 | number |
//! | int8 | number within ±(2^53−1), else string |
//! | numeric | number when a JSON number holds it exactly, else string |
//! | float4, float8 | number (NaN and infinities are errors) |
//! | bool | boolean |
//! | timestamptz | RFC 3339 in UTC |
//! | date | `YYYY-MM-DD` |
//! | json, jsonb | the JSON itself |
//! | arrays of the scalar types above (not dates or times) | arrays |
//! | bytea | base64url |
//!
//! NULL leaves the claim out. Every query runs read-only, under a statement timeout, from a bounded
//! pool; a database restart is survived by the pool reconnecting.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde_json::{Map, Number, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgStatement, PgTypeInfo, PgTypeKind};
use sqlx::{Column, Executor, Row, Statement, TypeInfo};

use tessera_storage::pool::{Pool, PoolLimits};

use crate::reserved::{Guard, ReservedError};
use crate::template::{Argument, Template, TemplateError};
use crate::{ClaimsEnricher, EnrichError, EnrichmentContext};

/// What to do when the query returns no row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnEmpty {
    /// Add no claims (the fork's behaviour).
    #[default]
    Ignore,
    /// Block the token.
    Error,
}

#[derive(Debug, Clone)]
pub struct PostgresEnricherSettings {
    /// A libpq URI (`sslmode` honoured).
    pub uri: String,
    pub query: String,
    /// One template per `$n`.
    pub args: Vec<String>,
    pub on_empty: OnEmpty,
    pub statement_timeout: Duration,
    pub acquire_timeout: Duration,
    pub max_connections: u32,
}

impl PostgresEnricherSettings {
    pub fn new(uri: impl Into<String>, query: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            uri: uri.into(),
            query: query.into(),
            args,
            on_empty: OnEmpty::Ignore,
            statement_timeout: Duration::from_secs(2),
            acquire_timeout: Duration::from_secs(2),
            max_connections: 4,
        }
    }
}

/// Why the enricher cannot start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid connection URI: {0}")]
    Uri(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("argument template: {0}")]
    Template(#[from] TemplateError),
    #[error("the query does not prepare: {0}")]
    Prepare(String),
    #[error("the query has {expected} parameter(s) but {given} argument template(s) are given")]
    ParameterCount { expected: usize, given: usize },
    #[error(
        "parameter ${index} has type {type_name}, which tessera cannot bind: cast it in the query (${index}::text)"
    )]
    ParameterType { index: usize, type_name: String },
    #[error("parameter ${index} is {type_name} but its argument {template:?} {problem}")]
    ParameterMismatch { index: usize, type_name: String, template: String, problem: &'static str },
    #[error("column {position} has no name: give it one with AS")]
    UnnamedColumn { position: usize },
    #[error("column {0:?} appears twice")]
    DuplicateColumn(String),
    #[error(
        "column {name:?} has type {type_name}, which has no claim mapping (see the type table): cast it in the query"
    )]
    ColumnType { name: String, type_name: String },
    #[error("column {column:?}: {reserved}")]
    Reserved { column: String, reserved: ReservedError },
}

/// Which setting a [`SetupError`] is about, so a configuration that came from environment variables
/// can name the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupPart {
    Uri,
    Query,
    Args,
}

impl SetupError {
    pub fn part(&self) -> SetupPart {
        match self {
            SetupError::Uri(_) | SetupError::Connect(_) => SetupPart::Uri,
            SetupError::Template(_)
            | SetupError::ParameterCount { .. }
            | SetupError::ParameterType { .. }
            | SetupError::ParameterMismatch { .. } => SetupPart::Args,
            SetupError::Prepare(_)
            | SetupError::UnnamedColumn { .. }
            | SetupError::DuplicateColumn(_)
            | SetupError::ColumnType { .. }
            | SetupError::Reserved { .. } => SetupPart::Query,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    Text,
    Uuid,
    Int2,
    Int4,
    Int8,
    Bool,
    TextArray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Int8,
    Numeric,
    Float,
    Bool,
    Timestamp,
    Date,
    Json,
    Bytes,
    Array,
}

#[derive(Debug, Clone)]
struct ClaimColumn {
    name: String,
    kind: Kind,
}

pub struct PostgresEnricher {
    pool: Pool<PgConnection>,
    sql: String,
    params: Vec<(Template, Param)>,
    columns: Vec<ClaimColumn>,
    on_empty: OnEmpty,
    deadline: Duration,
}

/// The type's name with domains resolved to their base type.
fn base_type(info: &PgTypeInfo) -> (String, &PgTypeKind) {
    match info.kind() {
        PgTypeKind::Domain(base) => base_type(base),
        kind => (info.name().to_ascii_uppercase(), kind),
    }
}

fn scalar_kind(name: &str, kind: &PgTypeKind) -> Option<Kind> {
    if matches!(kind, PgTypeKind::Enum(_)) {
        return Some(Kind::Text);
    }
    Some(match name {
        "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT" | "UUID" => Kind::Text,
        "INT2" | "INT4" => Kind::Int,
        "INT8" => Kind::Int8,
        "NUMERIC" => Kind::Numeric,
        "FLOAT4" | "FLOAT8" => Kind::Float,
        "BOOL" => Kind::Bool,
        "TIMESTAMPTZ" => Kind::Timestamp,
        "DATE" => Kind::Date,
        "JSON" | "JSONB" => Kind::Json,
        "BYTEA" => Kind::Bytes,
        _ => return None,
    })
}

fn column_kind(info: &PgTypeInfo) -> Option<Kind> {
    let (name, kind) = base_type(info);
    if let PgTypeKind::Array(element) = kind {
        let (element_name, element_kind) = base_type(element);
        // Arrays go through to_jsonb, which renders dates, times and bytes its own way: not mapped.
        return match scalar_kind(&element_name, element_kind)? {
            Kind::Timestamp | Kind::Date | Kind::Bytes | Kind::Array => None,
            _ => Some(Kind::Array),
        };
    }
    scalar_kind(&name, kind)
}

fn param_kind(info: &PgTypeInfo) -> Option<Param> {
    let (name, kind) = base_type(info);
    if let PgTypeKind::Array(element) = kind {
        let (element_name, _) = base_type(element);
        return matches!(element_name.as_str(), "TEXT" | "VARCHAR").then_some(Param::TextArray);
    }
    Some(match name.as_str() {
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" => Param::Text,
        "UUID" => Param::Uuid,
        "INT2" => Param::Int2,
        "INT4" => Param::Int4,
        "INT8" => Param::Int8,
        "BOOL" => Param::Bool,
        _ => return None,
    })
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The expression that renders a column of the wrapped query as canonical text.
fn render_expression(column: &ClaimColumn) -> String {
    let c = format!("q.{}", quote_identifier(&column.name));
    match column.kind {
        Kind::Timestamp => format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
        Kind::Date => format!("to_char({c}, 'YYYY-MM-DD')"),
        Kind::Bytes => format!("encode({c}, 'base64')"),
        Kind::Array => format!("to_jsonb({c})::text"),
        _ => format!("{c}::text"),
    }
}

/// sqlx's defaults, which the enricher used before tessera had its own pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_LIFETIME: Duration = Duration::from_secs(1800);

/// Prepares `sql` on one of the pool's connections: its parameter and column types, or the database's
/// objection.
async fn prepare(pool: &Pool<PgConnection>, sql: &str) -> Result<PgStatement, SetupError> {
    let failed = |e: sqlx::Error| SetupError::Prepare(e.to_string());
    let mut connection = pool.acquire().await.map_err(|e| SetupError::Connect(e.to_string()))?;
    let outcome = connection.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_owned()))).await;
    connection.settle(outcome).map_err(failed)
}

impl PostgresEnricher {
    /// Connects, prepares and checks the query; every mistake is reported here, not at the first login.
    pub async fn connect(settings: &PostgresEnricherSettings, guard: &Guard) -> Result<Self, SetupError> {
        let templates = settings.args.iter().map(|a| Template::compile(a)).collect::<Result<Vec<_>, _>>()?;
        let timeout_ms = settings.statement_timeout.as_millis().max(1).to_string();
        let options = PgConnectOptions::from_str(&settings.uri)
            .map_err(|e| SetupError::Uri(e.to_string()))?
            .application_name("tessera-claims")
            .options([("statement_timeout", timeout_ms.as_str()), ("default_transaction_read_only", "on")]);
        let limits = PoolLimits {
            max_connections: settings.max_connections.max(1),
            acquire_timeout: settings.acquire_timeout,
            idle_timeout: Some(IDLE_TIMEOUT),
            max_lifetime: Some(MAX_LIFETIME),
        };
        let pool = Pool::connect(options, limits).await.map_err(|e| SetupError::Connect(e.to_string()))?;

        let inner = settings.query.trim().trim_end_matches(';').trim().to_owned();
        let statement = prepare(&pool, &inner).await?;
        let parameter_types: Vec<PgTypeInfo> = match statement.parameters() {
            Some(either) => either.left().map(<[PgTypeInfo]>::to_vec).unwrap_or_default(),
            None => Vec::new(),
        };
        if parameter_types.len() != templates.len() {
            return Err(SetupError::ParameterCount { expected: parameter_types.len(), given: templates.len() });
        }
        let mut params = Vec::new();
        for (i, (template, info)) in templates.into_iter().zip(&parameter_types).enumerate() {
            let index = i + 1;
            let type_name = info.name().to_owned();
            let param =
                param_kind(info).ok_or_else(|| SetupError::ParameterType { index, type_name: type_name.clone() })?;
            let mismatch = |problem| SetupError::ParameterMismatch {
                index,
                type_name: type_name.clone(),
                template: template.source().to_owned(),
                problem,
            };
            match (param == Param::TextArray, template.is_array()) {
                (true, false) => return Err(mismatch("is not {{.Groups}}")),
                (false, true) => return Err(mismatch("is {{.Groups}}, which binds as text[]")),
                _ => {}
            }
            params.push((template, param));
        }

        let mut columns: Vec<ClaimColumn> = Vec::new();
        for (position, column) in statement.columns().iter().enumerate() {
            let name = column.name().to_owned();
            if name.is_empty() || name == "?column?" {
                return Err(SetupError::UnnamedColumn { position: position + 1 });
            }
            if columns.iter().any(|c| c.name == name) {
                return Err(SetupError::DuplicateColumn(name));
            }
            guard.check(&name).map_err(|reserved| SetupError::Reserved { column: name.clone(), reserved })?;
            let kind = column_kind(column.type_info()).ok_or_else(|| SetupError::ColumnType {
                name: name.clone(),
                type_name: column.type_info().name().to_owned(),
            })?;
            columns.push(ClaimColumn { name, kind });
        }
        let expressions: Vec<String> = columns.iter().map(render_expression).collect();
        let select = if expressions.is_empty() { "1".to_owned() } else { expressions.join(", ") };
        let sql = format!("SELECT {select} FROM ({inner}) AS q LIMIT 2");
        prepare(&pool, &sql).await?;
        Ok(Self {
            pool,
            sql,
            params,
            columns,
            on_empty: settings.on_empty,
            deadline: settings.statement_timeout + settings.acquire_timeout + Duration::from_secs(1),
        })
    }

    async fn fetch(&self, context: &EnrichmentContext) -> Result<Vec<sqlx::postgres::PgRow>, EnrichError> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for (i, (template, param)) in self.params.iter().enumerate() {
            let invalid = |what: &str| EnrichError::Invalid(format!("argument ${} is not a valid {what}", i + 1));
            query = match (template.render(context), param) {
                (Argument::TextArray(values), _) => query.bind(values),
                (Argument::Text(text), Param::Uuid) => {
                    query.bind(uuid::Uuid::parse_str(&text).map_err(|_| invalid("uuid"))?)
                }
                (Argument::Text(text), Param::Int2) => query.bind(text.parse::<i16>().map_err(|_| invalid("int2"))?),
                (Argument::Text(text), Param::Int4) => query.bind(text.parse::<i32>().map_err(|_| invalid("int4"))?),
                (Argument::Text(text), Param::Int8) => query.bind(text.parse::<i64>().map_err(|_| invalid("int8"))?),
                (Argument::Text(text), Param::Bool) => {
                    query.bind(text.parse::<bool>().map_err(|_| invalid("boolean"))?)
                }
                (Argument::Text(text), _) => query.bind(text),
            };
        }
        let mut connection = self.pool.acquire().await.map_err(|e| EnrichError::Unavailable(e.to_string()))?;
        let outcome = query.fetch_all(&mut *connection).await;
        connection.settle(outcome).map_err(|e| EnrichError::Query(e.to_string()))
    }
}

#[async_trait]
impl ClaimsEnricher for PostgresEnricher {
    async fn enrich(&self, context: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError> {
        let rows = tokio::time::timeout(self.deadline, self.fetch(context))
            .await
            .map_err(|_| EnrichError::Timeout(self.deadline))??;
        let row = match rows.as_slice() {
            [] if self.on_empty == OnEmpty::Error => {
                return Err(EnrichError::NoRow);
            }
            [] => return Ok(()),
            [row] => row,
            _ => return Err(EnrichError::TooManyRows),
        };
        for (i, column) in self.columns.iter().enumerate() {
            let text: Option<String> =
                row.try_get(i).map_err(|e| EnrichError::Invalid(format!("column {:?}: {e}", column.name)))?;
            if let Some(text) = text {
                let value = convert(column.kind, &text)
                    .map_err(|problem| EnrichError::Invalid(format!("column {:?}: {problem}", column.name)))?;
                claims.insert(column.name.clone(), value);
            }
        }
        Ok(())
    }

    fn pool_stats(&self) -> Option<tessera_storage::PoolStats> {
        Some(self.pool.stats())
    }
}

impl crate::cache::Cacheable for PostgresEnricher {
    /// The rendered arguments: the row can only depend on them.
    fn cache_key(&self, context: &EnrichmentContext) -> String {
        let rendered: Vec<Value> = self
            .params
            .iter()
            .map(|(template, _)| match template.render(context) {
                Argument::Text(text) => Value::String(text),
                Argument::TextArray(values) => Value::from(values),
            })
            .collect();
        Value::Array(rendered).to_string()
    }
}

/// The largest integer a JSON number (an IEEE double) holds exactly.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A column's canonical text as a claim value. Errors never include the value.
fn convert(kind: Kind, text: &str) -> Result<Value, &'static str> {
    let float = |text: &str| -> Result<Value, &'static str> {
        let f: f64 = text.parse().map_err(|_| "not a number")?;
        Number::from_f64(f).map(Value::Number).ok_or("NaN and infinities are not JSON numbers")
    };
    Ok(match kind {
        Kind::Text | Kind::Date => Value::String(text.to_owned()),
        Kind::Int => Value::from(text.parse::<i64>().map_err(|_| "not an integer")?),
        Kind::Int8 => {
            let n: i64 = text.parse().map_err(|_| "not an integer")?;
            if n.abs() <= MAX_SAFE_INTEGER { Value::from(n) } else { Value::String(text.to_owned()) }
        }
        Kind::Numeric => numeric(text)?,
        Kind::Float => float(text)?,
        Kind::Bool => Value::Bool(text == "true"),
        Kind::Timestamp => Value::String(text.replace(".000000Z", "Z")),
        Kind::Json | Kind::Array => serde_json::from_str(text).map_err(|_| "invalid JSON")?,
        Kind::Bytes => {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| "invalid bytea")?;
            Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        }
    })
}

/// A number when a JSON number (integer, or double) represents the decimal exactly, else the text.
fn numeric(text: &str) -> Result<Value, &'static str> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Err("NaN and infinities are not JSON numbers");
    }
    if let Ok(n) = text.parse::<i64>()
        && n.abs() <= MAX_SAFE_INTEGER
    {
        return Ok(Value::from(n));
    }
    let f: f64 = text.parse().map_err(|_| "not a number")?;
    let exact = normalize_decimal(text) == normalize_decimal(&format!("{f}"));
    match Number::from_f64(f) {
        Some(number) if exact && f.fract() != 0.0 => Ok(Value::Number(number)),
        Some(_) if exact && f.abs() <= MAX_SAFE_INTEGER as f64 => Ok(Value::from(f as i64)),
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// A decimal without insignificant zeros: `-012.3400` → `-12.34`, `5.000` → `5`.
fn normalize_decimal(text: &str) -> String {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() { int.to_owned() } else { format!("{int}.{frac}") };
    if body == "0" { body } else { format!("{sign}{body}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_stay_exact_or_become_strings() {
        assert_eq!(convert(Kind::Int8, "9007199254740991").unwrap(), json!(9007199254740991_i64));
        assert_eq!(convert(Kind::Int8, "9007199254740992").unwrap(), json!("9007199254740992"));
        assert_eq!(convert(Kind::Int8, "-9007199254740992").unwrap(), json!("-9007199254740992"));
        assert_eq!(numeric("12.50").unwrap(), json!(12.5));
        assert_eq!(numeric("42").unwrap(), json!(42));
        assert_eq!(numeric("42.000").unwrap(), json!(42));
        assert_eq!(numeric("12345678901234.123456").unwrap(), json!("12345678901234.123456"));
        assert_eq!(numeric("0.1").unwrap(), json!(0.1));
        assert!(numeric("NaN").is_err());
        assert!(convert(Kind::Float, "NaN").is_err());
        assert!(convert(Kind::Float, "Infinity").is_err());
        assert_eq!(convert(Kind::Float, "1.5").unwrap(), json!(1.5));
    }

    #[test]
    fn other_kinds() {
        assert_eq!(convert(Kind::Bool, "true").unwrap(), json!(true));
        assert_eq!(convert(Kind::Timestamp, "2026-11-23T12:00:00.000000Z").unwrap(), json!("2026-11-23T12:00:00Z"));
        assert_eq!(
            convert(Kind::Timestamp, "2026-11-23T12:00:00.250000Z").unwrap(),
            json!("2026-11-23T12:00:00.250000Z")
        );
        assert_eq!(convert(Kind::Bytes, "3q2+\n7w==").unwrap(), json!("3q2-7w"));
        assert_eq!(convert(Kind::Json, r#"{"a": [1]}"#).unwrap(), json!({"a": [1]}));
        assert_eq!(normalize_decimal("-012.3400"), "-12.34");
        assert_eq!(normalize_decimal("-0.000"), "0");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier(r#"we"ird"#), r#""we""ird""#);
    }
}

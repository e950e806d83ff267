//! A Dex database built as Dex master's SQL migrations and CRUD code leave one, on SQLite, PostgreSQL or
//! MySQL: Dex's table layout with each dialect's column types (Dex writes `text`, `bytea`, `boolean` and
//! `timestamptz` and translates them per dialect), its `migrations` count, and rows in Dex's
//! encodings: JSON arrays and objects in byte columns, go-jose JWKs for the keys, Go's field names in
//! the offline sessions' `refresh` map, and timestamps as each Go driver writes them.

use sqlx::{ConnectOptions, Connection, Executor};
use time::OffsetDateTime;
use time::macros::format_description;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

/// Where the database is, and the `storage` section (Dex's keys) that names it.
pub struct DexDb {
    pub dialect: Dialect,
    pub storage_yaml: String,
    target: Target,
}

enum Target {
    Sqlite(std::path::PathBuf),
    Postgres { admin: sqlx::postgres::PgConnectOptions, name: String },
    Mysql { admin: sqlx::mysql::MySqlConnectOptions, name: String },
}

/// A test server's URL from the environment; `None` (loudly) when it is not set, a failure under CI.
fn service_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but {variable} is not"),
        Err(_) => {
            eprintln!("SKIPPED: {variable} is not set; a Dex import test did not run (use scripts/test.sh)");
            None
        }
    }
}

impl DexDb {
    /// An empty database of the dialect (`None` when its server is not configured).
    pub async fn empty(dialect: Dialect) -> Option<DexDb> {
        let name = format!("dex_{}", tessera_core::id::new_id());
        match dialect {
            Dialect::Sqlite => {
                let dir = std::env::temp_dir().join(format!("tessera-dex-{name}"));
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join("dex.db");
                let storage_yaml = format!("  type: sqlite3\n  config:\n    file: {}\n", file.display());
                Some(DexDb { dialect, storage_yaml, target: Target::Sqlite(file) })
            }
            Dialect::Postgres => {
                let admin: sqlx::postgres::PgConnectOptions =
                    service_url("TESSERA_TEST_POSTGRES_URL")?.parse().unwrap();
                let mut conn = admin.connect().await.unwrap();
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
                let storage_yaml = format!(
                    "  type: postgres\n  config:\n    host: {}\n    port: {}\n    database: {name}\n    user: {}\n    ssl:\n      mode: disable\n",
                    admin.get_host(),
                    admin.get_port(),
                    admin.get_username()
                );
                Some(DexDb { dialect, storage_yaml, target: Target::Postgres { admin, name } })
            }
            Dialect::Mysql => {
                let admin: sqlx::mysql::MySqlConnectOptions = service_url("TESSERA_TEST_MYSQL_URL")?.parse().unwrap();
                let mut conn = admin.connect().await.unwrap();
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
                let storage_yaml = format!(
                    "  type: mysql\n  config:\n    host: {}\n    port: {}\n    database: {name}\n    user: {}\n    ssl:\n      mode: \"false\"\n",
                    admin.get_host(),
                    admin.get_port(),
                    admin.get_username()
                );
                Some(DexDb { dialect, storage_yaml, target: Target::Mysql { admin, name } })
            }
        }
    }

    /// Runs SQL statements (separated by `;\n`) in the database.
    pub async fn execute(&self, sql: &str) {
        match &self.target {
            Target::Sqlite(file) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(file).create_if_missing(true);
                let mut conn = options.connect().await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Target::Postgres { admin, name } => {
                let mut conn = admin.clone().database(name).connect().await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Target::Mysql { admin, name } => {
                let mut conn = admin.clone().database(name).connect().await.unwrap();
                for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut conn).await.unwrap();
                }
                conn.close().await.unwrap();
            }
        }
    }

    /// Dex master's tables (those tessera reads) and its migration count for this dialect.
    pub async fn create_schema(&self) {
        self.execute(&self.schema()).await;
        let count = match self.dialect {
            Dialect::Mysql => 24,
            _ => 23,
        };
        self.set_migrations(count).await;
    }

    /// Rewrites Dex's `migrations` table to say `count` migrations ran.
    pub async fn set_migrations(&self, count: i64) {
        let mut sql = String::from("DELETE FROM migrations;\n");
        for num in 1..=count {
            sql.push_str(&format!(
                "INSERT INTO migrations (num, at) VALUES ({num}, {});\n",
                self.time(tessera_core::clock::test_epoch())
            ));
        }
        self.execute(&sql).await;
    }

    /// Dex master's session tables (`DEX_SESSIONS_ENABLED`): `user_identity`, and `auth_session` as
    /// its last migration rebuilt it around `id`.
    pub async fn create_session_tables(&self) {
        let (text, bytes, boolean, timestamp) = self.types();
        self.execute(&format!(
            "create table user_identity (user_id {text} not null, connector_id {text} not null,
  claims_user_id {text} not null, claims_username {text} not null, claims_preferred_username {text} not null default '',
  claims_email {text} not null, claims_email_verified {boolean} not null, claims_groups {bytes} not null,
  consents {bytes} not null, created_at {timestamp} not null, last_login {timestamp} not null,
  blocked_until {timestamp} not null, mfa_secrets {bytes}, webauthn_credentials {bytes},
  primary key (user_id, connector_id));
create table auth_session (id {text} not null primary key, secret {text} not null default '',
  user_id {text} not null, connector_id {text} not null, client_states {bytes} not null,
  created_at {timestamp} not null, last_activity {timestamp} not null, ip_address {text} not null default '',
  user_agent {text} not null default '', absolute_expiry {timestamp} not null default '1970-01-01 00:00:00',
  idle_expiry {timestamp} not null default '1970-01-01 00:00:00', logout_state {bytes});
"
        ))
        .await;
    }

    /// `auth_session` as Dex's earlier migrations left it: keyed by user and connector, no secret.
    pub async fn create_auth_session_keyed_by_user(&self) {
        let (text, bytes, _, timestamp) = self.types();
        self.execute(&format!(
            "create table auth_session (user_id {text} not null, connector_id {text} not null,
  nonce {text} not null default '', client_states {bytes} not null, created_at {timestamp} not null,
  last_activity {timestamp} not null, ip_address {text} not null default '', user_agent {text} not null default '',
  absolute_expiry {timestamp} not null default '1970-01-01 00:00:00',
  idle_expiry {timestamp} not null default '1970-01-01 00:00:00', logout_state {bytes},
  primary key (user_id, connector_id));
"
        ))
        .await;
    }

    /// Dex's generic types (`text`, `bytea`, `boolean`, `timestamptz`) as it translates them.
    fn types(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self.dialect {
            Dialect::Postgres => ("text", "bytea", "boolean", "timestamptz"),
            Dialect::Sqlite => ("text", "blob", "integer", "timestamp"),
            Dialect::Mysql => ("varchar(384)", "blob", "boolean", "datetime(3)"),
        }
    }

    fn schema(&self) -> String {
        let (text, bytes, boolean, timestamp) = self.types();
        let quote = |name: &str| if self.dialect == Dialect::Mysql { format!("`{name}`") } else { name.to_owned() };
        let keys = quote("keys");
        let groups = quote("groups");
        format!(
            "create table migrations (num integer not null, at {timestamp} not null);
create table client (id {text} not null primary key, secret {text} not null, redirect_uris {bytes} not null,
  trusted_peers {bytes} not null, public {boolean} not null, name {text} not null, logo_url {text} not null,
  allowed_connectors {bytes}, mfa_chain {bytes}, post_logout_redirect_uris {bytes}, sso_shared_with {bytes},
  backchannel_logout_uri {text} not null default '', refresh_token_lifetime {text} not null default '');
create table password (email {text} not null primary key, hash {bytes} not null, username {text} not null,
  user_id {text} not null, preferred_username {text} not null default '', {groups} {bytes} not null,
  name {text} not null default '', email_verified {boolean});
create table {keys} (id {text} not null primary key, verification_keys {bytes} not null, signing_key {bytes} not null,
  signing_key_pub {bytes} not null, next_rotation {timestamp} not null);
create table connector (id {text} not null primary key, type {text} not null, name {text} not null,
  resource_version {text} not null, config {bytes}, grant_types {bytes});
create table refresh_token (id {text} not null primary key, client_id {text} not null, scopes {bytes} not null,
  nonce {text} not null, claims_user_id {text} not null, claims_username {text} not null, claims_email {text} not null,
  claims_email_verified {boolean} not null, claims_groups {bytes} not null, connector_id {text} not null,
  connector_data {bytes}, token {text} not null default '', created_at {timestamp} not null,
  last_used {timestamp} not null, claims_preferred_username {text} not null default '', obsolete_token {text});
create table offline_session (user_id {text} not null, conn_id {text} not null, refresh {bytes} not null,
  connector_data {bytes}, primary key (user_id, conn_id));
create table auth_code (id {text} not null primary key, client_id {text} not null, scopes {bytes} not null,
  nonce {text} not null, redirect_uri {text} not null, claims_user_id {text} not null, claims_username {text} not null,
  claims_email {text} not null, claims_email_verified {boolean} not null, claims_groups {bytes} not null,
  connector_id {text} not null, connector_data {bytes}, expiry {timestamp} not null,
  claims_preferred_username {text} not null default '', code_challenge {text} not null default '',
  code_challenge_method {text} not null default '', auth_time {timestamp} not null default '1970-01-01 00:00:00',
  session_id {text} not null default '');
create table device_request (user_code {text} not null primary key, device_code {text} not null,
  client_id {text} not null, client_secret {text}, scopes {bytes} not null, expiry {timestamp} not null);
create table device_token (device_code {text} not null primary key, status {text} not null, token {bytes},
  expiry {timestamp} not null, last_request {timestamp} not null, poll_interval integer not null,
  code_challenge {text} not null default '', code_challenge_method {text} not null default '');
"
        )
    }

    /// A byte column's literal.
    pub fn bytes(&self, value: &[u8]) -> String {
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        match self.dialect {
            Dialect::Postgres => format!("'\\x{hex}'::bytea"),
            Dialect::Sqlite | Dialect::Mysql => format!("X'{hex}'"),
        }
    }

    /// A JSON value in a byte column, as Dex's `encoder` writes it.
    pub fn json(&self, value: &serde_json::Value) -> String {
        self.bytes(serde_json::to_string(value).unwrap().as_bytes())
    }

    pub fn boolean(&self, value: bool) -> &'static str {
        match (self.dialect, value) {
            (Dialect::Sqlite, true) => "1",
            (Dialect::Sqlite, false) => "0",
            (_, true) => "true",
            (_, false) => "false",
        }
    }

    /// A timestamp as each Go driver sends it: go-sqlite3 as text with its zone, lib/pq as a
    /// timestamptz, go-sql-driver/mysql as a UTC datetime.
    pub fn time(&self, at: OffsetDateTime) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        let text = at.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap();
        match self.dialect {
            Dialect::Sqlite => format!("'{text}+00:00'"),
            Dialect::Postgres => format!("'{text}+00'::timestamptz"),
            Dialect::Mysql => format!("'{text}'"),
        }
    }

    /// A string literal.
    pub fn text(&self, value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    pub fn keys_table(&self) -> &'static str {
        if self.dialect == Dialect::Mysql { "`keys`" } else { "keys" }
    }

    pub fn groups_column(&self) -> &'static str {
        if self.dialect == Dialect::Mysql { "`groups`" } else { "groups" }
    }

    pub async fn drop(self) {
        match self.target {
            Target::Sqlite(file) => {
                if let Some(dir) = file.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Target::Postgres { admin, name } => {
                if let Ok(mut conn) = admin.connect().await {
                    let _ =
                        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
                }
            }
            Target::Mysql { admin, name } => {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await;
                }
            }
        }
    }
}

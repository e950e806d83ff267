//! The `postgres` backend, for several replicas on one database. Updates are compare-and-swap on a
//! version column, so no transaction is held open while an updater runs.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

use crate::pool::{Pool, PoolLimits};
use crate::{PostgresSettings, StorageError, migrate};

const NAME: &str = "postgres";

/// Dex's defaults for a pool: 5 connections; we add a bounded wait so an unreachable database fails
/// start-up and requests promptly instead of hanging.
const DEFAULT_MAX_OPEN_CONNS: u32 = 5;
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// sqlx's default, which tessera used before it had its own pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: Pool<PgConnection>,
}

crate::sql::sql_backend!(PostgresBackend, NAME, PgConnection, sqlx::postgres::PgRow, crate::sql::POSTGRES);

/// libpq-style connection options from Dex's keys.
pub fn connect_options(settings: &PostgresSettings) -> Result<PgConnectOptions, StorageError> {
    let mut options = PgConnectOptions::new_without_pgpass();
    let (host, port) = split_host_port(&settings.host, settings.port);
    if !host.is_empty() {
        options = options.host(host);
    }
    if let Some(port) = port {
        options = options.port(port);
    }
    if !settings.database.is_empty() {
        options = options.database(&settings.database);
    }
    if !settings.user.is_empty() {
        options = options.username(&settings.user);
    }
    if !settings.password.is_empty() {
        options = options.password(&settings.password);
    }
    let mode = settings.ssl.mode.as_deref().unwrap_or("verify-full");
    let mode = PgSslMode::from_str(mode).map_err(|_| {
        err(format!("unknown ssl.mode {mode:?} (expected disable, allow, prefer, require, verify-ca or verify-full)"))
    })?;
    options = options.ssl_mode(mode);
    if let Some(ca) = &settings.ssl.ca_file {
        options = options.ssl_root_cert(ca);
    }
    if let Some(cert) = &settings.ssl.cert_file {
        options = options.ssl_client_cert(cert);
    }
    if let Some(key) = &settings.ssl.key_file {
        options = options.ssl_client_key(key);
    }
    Ok(options)
}

/// Dex accepts `host: db.example:5432` as well as separate `host` and `port` keys.
fn split_host_port(host: &str, port: Option<u16>) -> (&str, Option<u16>) {
    if port.is_none()
        && !host.starts_with('/')
        && let Some((name, text)) = host.rsplit_once(':')
        && let Ok(parsed) = text.parse()
    {
        return (name.trim_start_matches('[').trim_end_matches(']'), Some(parsed));
    }
    (host, port)
}

impl PostgresBackend {
    /// Connects with Dex's settings and applies pending migrations.
    pub async fn open(settings: &PostgresSettings) -> Result<Self, StorageError> {
        Self::connect(connect_options(settings)?, Self::limits(settings)).await
    }

    /// The pool Dex's settings ask for.
    pub fn limits(settings: &PostgresSettings) -> PoolLimits {
        PoolLimits {
            max_connections: settings.max_open_conns.filter(|n| *n > 0).unwrap_or(DEFAULT_MAX_OPEN_CONNS),
            acquire_timeout: settings.connection_timeout.unwrap_or(DEFAULT_CONNECTION_TIMEOUT),
            idle_timeout: Some(IDLE_TIMEOUT),
            max_lifetime: settings.conn_max_lifetime,
        }
    }

    /// Connects with explicit options (tests, tools) and applies pending migrations.
    pub async fn connect(options: PgConnectOptions, limits: PoolLimits) -> Result<Self, StorageError> {
        let target = format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or(""));
        let pool = Pool::connect(options, limits).await.map_err(|e| err(format!("cannot connect to {target}: {e}")))?;
        let backend = Self { pool };
        backend.migrate(migrate::POSTGRES).await?;
        Ok(backend)
    }

    /// The versions recorded in the migrations table.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StorageError> {
        on_connection!(self, |c| sqlx::query_scalar("SELECT version FROM tessera_migrations ORDER BY version")
            .fetch_all(c))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_may_carry_the_port() {
        assert_eq!(split_host_port("db.example:6543", None), ("db.example", Some(6543)));
        assert_eq!(split_host_port("db.example", Some(5433)), ("db.example", Some(5433)));
        assert_eq!(split_host_port("[::1]:5432", None), ("::1", Some(5432)));
        assert_eq!(split_host_port("/var/run/postgresql", None), ("/var/run/postgresql", None));
    }

    #[test]
    fn ssl_mode_defaults_to_verify_full_like_dex() {
        let options = connect_options(&PostgresSettings::default()).unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        let mut settings = PostgresSettings::default();
        settings.ssl.mode = Some("bogus".into());
        assert!(connect_options(&settings).unwrap_err().to_string().contains("unknown ssl.mode"));
    }
}

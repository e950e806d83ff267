//! The `postgres` backend, for several replicas on one database. Updates are compare-and-swap on a
//! version column, so no transaction is held open while an updater runs.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

use crate::migrate::{self, CREATE_MIGRATIONS_TABLE};
use crate::{Backend, Document, Kind, PostgresSettings, StorageError};

const NAME: &str = "postgres";

/// Arbitrary but fixed: the advisory lock that serializes migrations across instances.
const MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261; // "tessera" in ASCII

/// Dex's defaults for a pool: 5 connections; we add a bounded wait so an unreachable database fails
/// start-up and requests promptly instead of hanging.
const DEFAULT_MAX_OPEN_CONNS: u32 = 5;
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend(NAME, e)
}

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
        err(format!(
            "unknown ssl.mode {mode:?} (expected disable, allow, prefer, require, verify-ca or verify-full)"
        ))
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
        return (
            name.trim_start_matches('[').trim_end_matches(']'),
            Some(parsed),
        );
    }
    (host, port)
}

impl PostgresBackend {
    /// Connects with Dex's settings and applies pending migrations.
    pub async fn open(settings: &PostgresSettings) -> Result<Self, StorageError> {
        let pool = PgPoolOptions::new()
            .max_connections(
                settings
                    .max_open_conns
                    .filter(|n| *n > 0)
                    .unwrap_or(DEFAULT_MAX_OPEN_CONNS),
            )
            .acquire_timeout(
                settings
                    .connection_timeout
                    .unwrap_or(DEFAULT_CONNECTION_TIMEOUT),
            )
            .max_lifetime(settings.conn_max_lifetime);
        Self::connect(connect_options(settings)?, pool).await
    }

    /// Connects with explicit options (tests, tools) and applies pending migrations.
    pub async fn connect(
        options: PgConnectOptions,
        pool: PgPoolOptions,
    ) -> Result<Self, StorageError> {
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| err(format!("cannot connect to {target}: {e}")))?;
        let backend = Self { pool };
        backend.migrate().await?;
        Ok(backend)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        // DDL is transactional in Postgres and the advisory lock makes instances that start together
        // take turns: the first applies the migrations, the others then find nothing pending.
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM tessera_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        for migration in migrate::pending(migrate::POSTGRES, &applied) {
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query("INSERT INTO tessera_migrations (version, description) VALUES ($1, $2)")
                .bind(migration.version)
                .bind(migration.description)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    /// The versions recorded in the migrations table.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StorageError> {
        sqlx::query_scalar("SELECT version FROM tessera_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn document(row: &sqlx::postgres::PgRow) -> Result<Document, StorageError> {
    Ok(Document {
        data: row.try_get("data").map_err(err)?,
        version: row.try_get("version").map_err(err)?,
        expiry: row.try_get("expiry").map_err(err)?,
    })
}

#[async_trait]
impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn insert(
        &self,
        kind: Kind,
        key: &str,
        data: &str,
        expiry: Option<i64>,
    ) -> Result<(), StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO tessera_objects (kind, id, version, expiry, data) VALUES ($1, $2, 1, $3, $4)
             ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(kind.as_str())
        .bind(key)
        .bind(expiry)
        .bind(data)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::AlreadyExists);
        }
        Ok(())
    }

    async fn get(&self, kind: Kind, key: &str) -> Result<Document, StorageError> {
        let row = sqlx::query(
            "SELECT data, version, expiry FROM tessera_objects WHERE kind = $1 AND id = $2",
        )
        .bind(kind.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        document(&row.ok_or(StorageError::NotFound)?)
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Document>, StorageError> {
        let rows = sqlx::query(
            "SELECT data, version, expiry FROM tessera_objects WHERE kind = $1 ORDER BY id",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(document).collect()
    }

    async fn delete(&self, kind: Kind, key: &str) -> Result<(), StorageError> {
        let deleted = sqlx::query("DELETE FROM tessera_objects WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        if deleted.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn compare_and_swap(
        &self,
        kind: Kind,
        key: &str,
        version: i64,
        data: &str,
        expiry: Option<i64>,
    ) -> Result<bool, StorageError> {
        let updated = sqlx::query(
            "UPDATE tessera_objects SET data = $1, expiry = $2, version = version + 1
             WHERE kind = $3 AND id = $4 AND version = $5",
        )
        .bind(data)
        .bind(expiry)
        .bind(kind.as_str())
        .bind(key)
        .bind(version)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_expired(&self, kind: Kind, now: i64) -> Result<u64, StorageError> {
        let deleted = sqlx::query("DELETE FROM tessera_objects WHERE kind = $1 AND expiry < $2")
            .bind(kind.as_str())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(deleted.rows_affected())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(err)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_may_carry_the_port() {
        assert_eq!(
            split_host_port("db.example:6543", None),
            ("db.example", Some(6543))
        );
        assert_eq!(
            split_host_port("db.example", Some(5433)),
            ("db.example", Some(5433))
        );
        assert_eq!(split_host_port("[::1]:5432", None), ("::1", Some(5432)));
        assert_eq!(
            split_host_port("/var/run/postgresql", None),
            ("/var/run/postgresql", None)
        );
    }

    #[test]
    fn ssl_mode_defaults_to_verify_full_like_dex() {
        let options = connect_options(&PostgresSettings::default()).unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        let mut settings = PostgresSettings::default();
        settings.ssl.mode = Some("bogus".into());
        assert!(
            connect_options(&settings)
                .unwrap_err()
                .to_string()
                .contains("unknown ssl.mode")
        );
    }
}

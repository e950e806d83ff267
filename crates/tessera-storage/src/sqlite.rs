//! The `sqlite3` backend, tessera's embedded default: one file, WAL journal, safe for concurrent
//! requests (writers queue on SQLite's lock for up to the busy timeout).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::migrate::{self, CREATE_MIGRATIONS_TABLE};
use crate::{Backend, Document, Kind, SqliteSettings, StorageError};

const NAME: &str = "sqlite3";

#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend(NAME, e)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(settings: &SqliteSettings) -> Result<Self, StorageError> {
        let in_memory = settings.file.as_os_str() == ":memory:";
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(err)?
        } else {
            SqliteConnectOptions::new()
                .filename(&settings.file)
                .create_if_missing(true)
        }
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
        // Each connection to ":memory:" is its own database, so keep exactly one open forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .connect_with(options)
            .await
            .map_err(|e| err(format!("cannot open {}: {e}", settings.file.display())))?;
        let backend = Self { pool };
        backend.migrate().await?;
        Ok(backend)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        // BEGIN IMMEDIATE takes the write lock first, so two processes starting on one file migrate
        // one after the other.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM tessera_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        for migration in migrate::pending(migrate::SQLITE, &applied) {
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query("INSERT INTO tessera_migrations (version, description) VALUES (?, ?)")
                .bind(migration.version)
                .bind(migration.description)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }
}

fn document(row: &sqlx::sqlite::SqliteRow) -> Result<Document, StorageError> {
    Ok(Document {
        data: row.try_get("data").map_err(err)?,
        version: row.try_get("version").map_err(err)?,
        expiry: row.try_get("expiry").map_err(err)?,
    })
}

#[async_trait]
impl Backend for SqliteBackend {
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
            "INSERT INTO tessera_objects (kind, id, version, expiry, data) VALUES (?, ?, 1, ?, ?)
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
            "SELECT data, version, expiry FROM tessera_objects WHERE kind = ? AND id = ?",
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
            "SELECT data, version, expiry FROM tessera_objects WHERE kind = ? ORDER BY id",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(document).collect()
    }

    async fn delete(&self, kind: Kind, key: &str) -> Result<(), StorageError> {
        let deleted = sqlx::query("DELETE FROM tessera_objects WHERE kind = ? AND id = ?")
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
            "UPDATE tessera_objects SET data = ?, expiry = ?, version = version + 1
             WHERE kind = ? AND id = ? AND version = ?",
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
        let deleted = sqlx::query("DELETE FROM tessera_objects WHERE kind = ? AND expiry < ?")
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

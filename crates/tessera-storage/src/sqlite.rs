//! The `sqlite3` backend, tessera's embedded default: one file, WAL journal, safe for concurrent
//! requests (writers queue on SQLite's lock for up to the busy timeout).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

use crate::pool::{Pool, PoolLimits};
use crate::{SqliteSettings, StorageError, migrate};

const NAME: &str = "sqlite3";

#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: Pool<SqliteConnection>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(settings: &SqliteSettings) -> Result<Self, StorageError> {
        let in_memory = settings.file.as_os_str() == ":memory:";
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(err)?
        } else {
            SqliteConnectOptions::new().filename(&settings.file).create_if_missing(true)
        }
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
        // Each connection to ":memory:" is its own database, so keep exactly one open forever (the
        // pool closes connections only when they outlive these limits or fail).
        let limits = PoolLimits {
            max_connections: if in_memory { 1 } else { 8 },
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: (!in_memory).then_some(Duration::from_secs(600)),
            max_lifetime: (!in_memory).then_some(Duration::from_secs(1800)),
        };
        let pool = Pool::connect(options, limits)
            .await
            .map_err(|e| err(format!("cannot open {}: {e}", settings.file.display())))?;
        let backend = Self { pool };
        backend.migrate(migrate::SQLITE).await?;
        Ok(backend)
    }
}

crate::sql::sql_backend!(SqliteBackend, NAME, SqliteConnection, sqlx::sqlite::SqliteRow, crate::sql::SQLITE);

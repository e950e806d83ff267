//! The `mysql` backend (MySQL 5.7+ and MariaDB 10.3+), for Dex users on MySQL. The same document table
//! and compare-and-swap as on PostgreSQL; what differs is MySQL's SQL: `?` placeholders, no partial
//! indexes, no `ON CONFLICT` (a taken key is a duplicate-key error), and DDL that commits on its own,
//! so concurrent migrations are serialized by a named lock rather than by a transaction.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};

use crate::migrate::Migration;
use crate::pool::{Pool, PoolLimits};
use crate::sql::Statements;
use crate::{MysqlSettings, StorageError};

const NAME: &str = "mysql";

/// Dex leaves MySQL's pool unbounded; tessera keeps Postgres' default of 5 and a bounded wait, so an
/// unreachable database fails start-up and requests promptly.
const DEFAULT_MAX_OPEN_CONNS: u32 = 5;
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_PORT: u16 = 3306;

/// The SSL modes Dex's `ssl.mode` takes for MySQL (those of Go's MySQL driver).
pub const SSL_MODES: [&str; 4] = ["true", "false", "skip-verify", "preferred"];

pub(crate) const MYSQL: Statements = Statements {
    begin_migration: "BEGIN",
    // A named lock belongs to the session, so it holds across the implicit commits of the DDL; instances
    // starting together take turns, and the later ones find nothing pending.
    lock_migrations: Some("SELECT GET_LOCK('tessera_migrations', 300)"),
    unlock_migrations: Some("SELECT RELEASE_LOCK('tessera_migrations')"),
    record_migration: "INSERT INTO tessera_migrations (version, description) VALUES (?, ?)",
    insert: "INSERT INTO tessera_objects (kind, id, version, expiry, data, link) VALUES (?, ?, 1, ?, ?, ?)",
    get: "SELECT data, version, expiry, link FROM tessera_objects WHERE kind = ? AND id = ?",
    // Positional placeholders bind in the order they appear: the token's kind and key, then the linked kind.
    get_linked: "SELECT t.data, t.version, t.expiry, t.link,
                        l.data AS linked_data, l.version AS linked_version, l.expiry AS linked_expiry,
                        l.link AS linked_link
                 FROM (SELECT data, version, expiry, link FROM tessera_objects WHERE kind = ? AND id = ?) t
                 LEFT JOIN tessera_objects l ON l.kind = ? AND l.id = t.link",
    list: "SELECT data, version, expiry, link FROM tessera_objects WHERE kind = ? ORDER BY id",
    delete: "DELETE FROM tessera_objects WHERE kind = ? AND id = ?",
    compare_and_swap: "UPDATE tessera_objects SET data = ?, expiry = ?, link = ?, version = version + 1
                       WHERE kind = ? AND id = ? AND version = ?",
    compare_and_swap_then: None,
    delete_expired: "DELETE FROM tessera_objects WHERE kind = ? AND expiry < ?",
};

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "objects table", sql: include_str!("../migrations/mysql/0001_objects.sql") },
    Migration { version: 2, description: "object links", sql: include_str!("../migrations/mysql/0002_links.sql") },
];

#[derive(Debug, Clone)]
pub struct MysqlBackend {
    pool: Pool<MySqlConnection>,
}

crate::sql::sql_backend!(MysqlBackend, NAME, MySqlConnection, sqlx::mysql::MySqlRow, crate::mysql::MYSQL);

/// Connection options from Dex's `mysql` keys, read as Dex reads them.
pub fn connect_options(settings: &MysqlSettings) -> Result<MySqlConnectOptions, StorageError> {
    let mut options = MySqlConnectOptions::new();
    if settings.host.starts_with('/') {
        options = options.socket(&settings.host);
    } else {
        let (host, port) = split_host_port(&settings.host, settings.port);
        options = options.host(if host.is_empty() { "127.0.0.1" } else { host }).port(port.unwrap_or(DEFAULT_PORT));
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
    options = options.ssl_mode(ssl_mode(settings)?);
    if let Some(ca) = &settings.ssl.ca_file {
        options = options.ssl_ca(ca);
    }
    if let Some(cert) = &settings.ssl.cert_file {
        options = options.ssl_client_cert(cert);
    }
    if let Some(key) = &settings.ssl.key_file {
        options = options.ssl_client_key(key);
    }
    Ok(options)
}

/// Dex's reading of `ssl`: any of the files makes a verified connection with them; otherwise no mode
/// means `true` (TLS, verified), `skip-verify` is TLS without verification, `false` is plain text.
fn ssl_mode(settings: &MysqlSettings) -> Result<MySqlSslMode, StorageError> {
    let ssl = &settings.ssl;
    if ssl.ca_file.is_some() || ssl.cert_file.is_some() || ssl.key_file.is_some() {
        return Ok(MySqlSslMode::VerifyIdentity);
    }
    match ssl.mode.as_deref().unwrap_or("true") {
        "true" => Ok(MySqlSslMode::VerifyIdentity),
        "false" => Ok(MySqlSslMode::Disabled),
        "skip-verify" => Ok(MySqlSslMode::Required),
        "preferred" => Ok(MySqlSslMode::Preferred),
        other => Err(err(format!("unknown ssl.mode {other:?} (expected one of {})", SSL_MODES.join(", ")))),
    }
}

/// `host: db.example:3306` as well as separate `host` and `port` keys.
fn split_host_port(host: &str, port: Option<u16>) -> (&str, Option<u16>) {
    if port.is_none()
        && let Some((name, text)) = host.rsplit_once(':')
        && let Ok(parsed) = text.parse()
    {
        return (name.trim_start_matches('[').trim_end_matches(']'), Some(parsed));
    }
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

impl MysqlBackend {
    /// Connects with Dex's settings and applies pending migrations.
    pub async fn open(settings: &MysqlSettings) -> Result<Self, StorageError> {
        Self::connect(connect_options(settings)?, Self::limits(settings)).await
    }

    /// The pool Dex's settings ask for.
    pub fn limits(settings: &MysqlSettings) -> PoolLimits {
        PoolLimits {
            max_connections: settings.max_open_conns.filter(|n| *n > 0).unwrap_or(DEFAULT_MAX_OPEN_CONNS),
            acquire_timeout: settings.connection_timeout.unwrap_or(DEFAULT_CONNECTION_TIMEOUT),
            idle_timeout: Some(IDLE_TIMEOUT),
            max_lifetime: settings.conn_max_lifetime,
        }
    }

    /// Connects with explicit options (tests, tools) and applies pending migrations.
    pub async fn connect(options: MySqlConnectOptions, limits: PoolLimits) -> Result<Self, StorageError> {
        let target = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        let target = format!("{target}/{}", options.get_database().unwrap_or(""));
        let pool = Pool::connect(options, limits).await.map_err(|e| err(format!("cannot connect to {target}: {e}")))?;
        let backend = Self { pool };
        backend.migrate(MIGRATIONS).await?;
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
        assert_eq!(split_host_port("db.example:3307", None), ("db.example", Some(3307)));
        assert_eq!(split_host_port("db.example", Some(3308)), ("db.example", Some(3308)));
        assert_eq!(split_host_port("[::1]:3306", None), ("::1", Some(3306)));
        assert_eq!(split_host_port("", None), ("", None));
    }

    #[test]
    fn ssl_follows_dex() {
        let mut settings = MysqlSettings::default();
        assert!(matches!(ssl_mode(&settings).unwrap(), MySqlSslMode::VerifyIdentity), "no mode: verified TLS");
        settings.ssl.mode = Some("false".into());
        assert!(matches!(ssl_mode(&settings).unwrap(), MySqlSslMode::Disabled));
        settings.ssl.mode = Some("skip-verify".into());
        assert!(matches!(ssl_mode(&settings).unwrap(), MySqlSslMode::Required));
        settings.ssl.ca_file = Some("/ca.pem".into());
        assert!(matches!(ssl_mode(&settings).unwrap(), MySqlSslMode::VerifyIdentity), "a CA file means verify");
        settings.ssl = Default::default();
        settings.ssl.mode = Some("bogus".into());
        assert!(ssl_mode(&settings).unwrap_err().to_string().contains("unknown ssl.mode"));
    }

    #[test]
    fn a_socket_path_is_a_socket() {
        let settings = MysqlSettings { host: "/run/mysqld/mysqld.sock".into(), ..MysqlSettings::default() };
        let options = connect_options(&settings).unwrap();
        assert_eq!(options.get_socket().map(|p| p.display().to_string()).as_deref(), Some("/run/mysqld/mysqld.sock"));
    }
}

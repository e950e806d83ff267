//! Which backend to open and how, as Dex's `storage` section describes it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    Memory,
    Sqlite(SqliteSettings),
    Postgres(Box<PostgresSettings>),
    Mysql(Box<MysqlSettings>),
    Etcd(Box<EtcdSettings>),
}

impl StorageSettings {
    /// Dex's name for the backend, as written in `storage.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            StorageSettings::Memory => "memory",
            StorageSettings::Sqlite(_) => "sqlite3",
            StorageSettings::Postgres(_) => "postgres",
            StorageSettings::Mysql(_) => "mysql",
            StorageSettings::Etcd(_) => "etcd",
        }
    }
}

/// Dex's `sqlite3` storage: `{file}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    pub file: PathBuf,
}

/// Dex's `postgres` storage keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostgresSettings {
    pub database: String,
    pub user: String,
    pub password: String,
    /// A host name, `host:port`, or a Unix socket directory (starting with `/`).
    pub host: String,
    pub port: Option<u16>,
    /// How long to wait for a connection (Dex: `connectionTimeout`, seconds; 0 = Dex's default).
    pub connection_timeout: Option<Duration>,
    pub max_open_conns: Option<u32>,
    pub max_idle_conns: Option<u32>,
    pub conn_max_lifetime: Option<Duration>,
    pub ssl: PostgresSsl,
}

/// Dex's `mysql` storage keys: the same as `postgres` (Dex's `NetworkDB` and `SSL`), but `ssl.mode`
/// takes the MySQL driver's values (`true`, `false`, `skip-verify`, `preferred`).
pub type MysqlSettings = PostgresSettings;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostgresSsl {
    /// libpq's `sslmode`; Dex defaults to `verify-full`.
    pub mode: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Dex's `etcd` storage keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdSettings {
    /// `host:port` or `http(s)://host:port`; without a scheme, https when a CA or client certificate is set.
    pub endpoints: Vec<String>,
    /// Prepended to every key, to share a cluster.
    pub namespace: String,
    pub username: String,
    pub password: String,
    pub ssl: EtcdSsl,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdSsl {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

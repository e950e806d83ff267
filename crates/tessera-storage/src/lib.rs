//! tessera-storage: where tessera keeps its state.
//!
//! Every backend ([`memory`], [`sqlite`], [`postgres`], [`mysql`], [`etcd`]) is a small keyed document store implementing
//! [`Backend`]: insert, get, list, delete, compare-and-swap and expiry-based collection. Dex's typed,
//! entity-by-entity API ([`Storage`]) is written once on top of it, so every backend gets the same
//! semantics (the same design as Dex's etcd backend: one JSON document per key, versioned for CAS).

mod backend;
mod counters;
pub mod dex;
mod entity;
mod error;
pub mod etcd;
pub mod memory;
mod migrate;
pub mod mysql;
mod observe;
pub mod pool;
pub mod postgres;
mod settings;
mod sql;
pub mod sqlite;
mod statics;
mod storage;

pub use backend::{Backend, Document, Kind, Swap};
pub use entity::Entity;
pub use error::{Optional, StorageError};
pub use observe::{Operation, StorageObserver};
pub use pool::PoolStats;
pub use settings::{
    EtcdSettings, EtcdSsl, MysqlSettings, PostgresSettings, PostgresSsl, SqliteSettings, StorageSettings,
};
pub use statics::StaticObjects;
pub use storage::{GcResult, MAX_UPDATE_ATTEMPTS, Storage, Versioned};

/// Opens the backend that the settings name, running its migrations.
pub async fn open(settings: &StorageSettings) -> Result<Storage, StorageError> {
    let backend: std::sync::Arc<dyn Backend> = match settings {
        StorageSettings::Memory => std::sync::Arc::new(memory::MemoryBackend::new()),
        StorageSettings::Sqlite(sqlite) => std::sync::Arc::new(sqlite::SqliteBackend::open(sqlite).await?),
        StorageSettings::Postgres(pg) => std::sync::Arc::new(postgres::PostgresBackend::open(pg).await?),
        StorageSettings::Mysql(my) => std::sync::Arc::new(mysql::MysqlBackend::open(my).await?),
        StorageSettings::Etcd(etcd) => std::sync::Arc::new(etcd::EtcdBackend::open(etcd).await?),
    };
    Ok(Storage::new(backend))
}

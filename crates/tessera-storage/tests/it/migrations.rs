//! Migrations run at start, are idempotent, and are safe when instances start together.

use std::sync::Arc;

use tessera_core::model::Client;
use tessera_storage::postgres::PostgresBackend;
use tessera_storage::sqlite::SqliteBackend;
use tessera_storage::{SqliteSettings, Storage};

use crate::backends::{fresh_postgres_database, pool_of};
use crate::conformance::client;

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_migrates_nothing_twice() {
    let dir = std::env::temp_dir().join(format!("tessera-reopen-{}", tessera_core::id::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = SqliteSettings { file: dir.join("state.db") };
    let first = Storage::new(Arc::new(SqliteBackend::open(&settings).await.unwrap()));
    first.create(&client("app")).await.unwrap();
    drop(first);
    let second = Storage::new(Arc::new(SqliteBackend::open(&settings).await.unwrap()));
    assert_eq!(second.get::<Client>("app").await.unwrap(), client("app"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_reports_an_unopenable_file() {
    let settings = SqliteSettings { file: "/nonexistent-dir/for/sure/tessera.db".into() };
    let err = SqliteBackend::open(&settings).await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent-dir/for/sure/tessera.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_instances_starting_together_migrate_once() {
    let Some((admin, name)) = fresh_postgres_database().await else {
        return;
    };
    let options = admin.database(&name);
    let mut starts = Vec::new();
    for _ in 0..4 {
        let options = options.clone();
        starts.push(tokio::spawn(async move { PostgresBackend::connect(options, pool_of(2)).await }));
    }
    let mut backends = Vec::new();
    for start in starts {
        backends.push(start.await.unwrap().expect("every instance starts"));
    }
    for backend in &backends {
        assert_eq!(backend.applied_migrations().await.unwrap(), vec![1]);
    }
    let storage = Storage::new(Arc::new(backends[0].clone()));
    storage.create(&client("app")).await.unwrap();
    let again = PostgresBackend::connect(options, pool_of(1)).await.unwrap();
    assert_eq!(again.applied_migrations().await.unwrap(), vec![1]);
    assert_eq!(Storage::new(Arc::new(again)).get::<Client>("app").await.unwrap(), client("app"));
}

#[tokio::test]
async fn postgres_unreachable_fails_with_the_address() {
    let settings = tessera_storage::PostgresSettings {
        host: "127.0.0.1".into(),
        port: Some(1),
        database: "nothing".into(),
        connection_timeout: Some(std::time::Duration::from_secs(2)),
        ssl: tessera_storage::PostgresSsl { mode: Some("disable".into()), ..Default::default() },
        ..Default::default()
    };
    let err = PostgresBackend::open(&settings).await.unwrap_err().to_string();
    assert!(err.contains("127.0.0.1:1/nothing"), "{err}");
}

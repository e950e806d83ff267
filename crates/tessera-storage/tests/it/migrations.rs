//! Migrations run at start, are idempotent, and are safe when instances start together.

use std::sync::Arc;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tessera_core::model::{Client, OfflineSessions, RefreshToken};
use tessera_storage::mysql::MysqlBackend;
use tessera_storage::postgres::PostgresBackend;
use tessera_storage::sqlite::SqliteBackend;
use tessera_storage::{Entity, SqliteSettings, Storage, StorageError};

use crate::backends::{fresh_mysql_database, fresh_postgres_database, pool_of};
use crate::conformance::{client, refresh_token, sessions_of};

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
        assert_eq!(backend.applied_migrations().await.unwrap(), vec![1, 2]);
    }
    let storage = Storage::new(Arc::new(backends[0].clone()));
    storage.create(&client("app")).await.unwrap();
    let again = PostgresBackend::connect(options, pool_of(1)).await.unwrap();
    assert_eq!(again.applied_migrations().await.unwrap(), vec![1, 2]);
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

/// A database as the first schema left it (`first_migration` is its SQL), holding a refresh token and
/// its session as tessera wrote them then: without a link.
fn database_before_links(first_migration: &str, token: &RefreshToken) -> String {
    let sessions = sessions_of(token);
    let rows = [
        ("refresh_token", token.id.clone(), serde_json::to_string(token).unwrap()),
        ("offline_sessions", sessions.key(), serde_json::to_string(&sessions).unwrap()),
    ];
    let mut script = format!(
        "{first_migration};
         CREATE TABLE tessera_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL);
         INSERT INTO tessera_migrations VALUES (1, 'objects table');"
    );
    for (kind, id, data) in rows {
        let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
        script += &format!(
            "INSERT INTO tessera_objects (kind, id, version, data) VALUES ({}, {}, 1, {});",
            quoted(kind),
            quoted(&id),
            quoted(&data)
        );
    }
    script
}

/// A database from before links (migration 2): its refresh tokens have no link, and are read with
/// their session all the same; the next write adds the link.
async fn upgraded_tokens_are_read_with_their_session(storage: &Storage, token: &RefreshToken) {
    let (read, sessions) = storage.get_versioned_linked::<RefreshToken, OfflineSessions>(&token.id).await.unwrap();
    assert_eq!(read.value, *token);
    let sessions = sessions.expect("found by a second read");
    assert_eq!(sessions.value, sessions_of(token));
    let (rotated, recorded) = storage
        .update_read_then(
            read,
            |mut t: RefreshToken| {
                t.token = "rotated".into();
                Ok::<_, StorageError>(t)
            },
            sessions,
            |_: &RefreshToken, o| Ok::<_, StorageError>(o),
        )
        .await
        .unwrap();
    recorded.unwrap();
    let (read, sessions) = storage.get_versioned_linked::<RefreshToken, OfflineSessions>(&token.id).await.unwrap();
    assert_eq!((read.value, sessions.map(|s| s.value)), (rotated, Some(sessions_of(token))));
}

#[tokio::test]
async fn sqlite_database_from_before_links_is_upgraded_in_place() {
    let dir = std::env::temp_dir().join(format!("tessera-upgrade-{}", tessera_core::id::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.db");
    let token = refresh_token();
    {
        let options = SqliteConnectOptions::new().filename(&file).create_if_missing(true);
        let mut old = SqliteConnection::connect_with(&options).await.unwrap();
        let script = database_before_links(include_str!("../../migrations/sqlite/0001_objects.sql"), &token);
        sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut old).await.unwrap();
    }
    let storage = Storage::new(Arc::new(SqliteBackend::open(&SqliteSettings { file }).await.unwrap()));
    upgraded_tokens_are_read_with_their_session(&storage, &token).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn postgres_database_from_before_links_is_upgraded_in_place() {
    let Some((admin, name)) = fresh_postgres_database().await else {
        return;
    };
    let options = admin.database(&name);
    let token = refresh_token();
    {
        let mut old = PgConnection::connect_with(&options).await.unwrap();
        let script = database_before_links(include_str!("../../migrations/postgres/0001_objects.sql"), &token);
        sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut old).await.unwrap();
    }
    let backend = PostgresBackend::connect(options, pool_of(2)).await.unwrap();
    assert_eq!(backend.applied_migrations().await.unwrap(), vec![1, 2]);
    upgraded_tokens_are_read_with_their_session(&Storage::new(Arc::new(backend)), &token).await;
}

/// MySQL's DDL commits on its own, so only the named lock keeps instances starting together from
/// running one migration twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_instances_starting_together_migrate_once() {
    let Some((admin, name)) = fresh_mysql_database().await else {
        return;
    };
    let options = admin.database(&name);
    let mut starts = Vec::new();
    for _ in 0..4 {
        let options = options.clone();
        starts.push(tokio::spawn(async move { MysqlBackend::connect(options, pool_of(2)).await }));
    }
    let mut backends = Vec::new();
    for start in starts {
        backends.push(start.await.unwrap().expect("every instance starts"));
    }
    for backend in &backends {
        assert_eq!(backend.applied_migrations().await.unwrap(), vec![1, 2]);
    }
    let storage = Storage::new(Arc::new(backends[0].clone()));
    storage.create(&client("app")).await.unwrap();
    let again = MysqlBackend::connect(options, pool_of(1)).await.unwrap();
    assert_eq!(again.applied_migrations().await.unwrap(), vec![1, 2]);
    assert_eq!(Storage::new(Arc::new(again)).get::<Client>("app").await.unwrap(), client("app"));
    for backend in backends {
        backend.close().await;
    }
    let mut conn =
        sqlx::mysql::MySqlConnection::connect_with(&crate::backends::mysql_admin_options().unwrap()).await.unwrap();
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).await.unwrap();
}

/// Keys compare byte for byte, as on the other databases: MySQL's default collations would make
/// these one key.
#[tokio::test]
async fn mysql_keys_differ_by_case_and_trailing_space() {
    let Some(harness) = crate::backends::mysql().await else {
        return;
    };
    for id in ["app", "App", "app "] {
        harness.storage.create(&client(id)).await.unwrap();
    }
    assert_eq!(harness.storage.list::<Client>().await.unwrap().len(), 3);
    assert_eq!(harness.storage.get::<Client>("App").await.unwrap().id, "App");
    harness.cleanup().await;
}

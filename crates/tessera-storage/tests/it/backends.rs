//! Runs every conformance case against memory, SQLite (a real file, WAL) and PostgreSQL (a fresh
//! database per test on the server named by TESSERA_TEST_POSTGRES_URL).

use std::sync::Arc;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use tessera_storage::etcd::EtcdBackend;
use tessera_storage::memory::MemoryBackend;
use tessera_storage::mysql::MysqlBackend;
use tessera_storage::pool::PoolLimits;
use tessera_storage::postgres::PostgresBackend;
use tessera_storage::sqlite::SqliteBackend;
use tessera_storage::{EtcdSettings, PostgresSettings, SqliteSettings, Storage};

/// A storage for one test, and what to remove afterwards.
pub struct Harness {
    pub storage: Storage,
    cleanup: Cleanup,
}

#[allow(clippy::large_enum_variant)] // one per test: size does not matter
enum Cleanup {
    Nothing,
    Directory(std::path::PathBuf),
    Database {
        admin: PgConnectOptions,
        name: String,
        backend: PostgresBackend,
    },
    MysqlDatabase {
        admin: MySqlConnectOptions,
        name: String,
        backend: MysqlBackend,
    },
    /// An etcd namespace of its own: every key under it is deleted.
    EtcdNamespace {
        endpoint: String,
        namespace: String,
    },
}

impl Harness {
    pub async fn cleanup(self) {
        drop(self.storage);
        match self.cleanup {
            Cleanup::Nothing => {}
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin, name, backend } => {
                backend.close().await;
                if let Ok(mut conn) = admin.connect().await {
                    let _ =
                        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
                    let _ = conn.close().await;
                }
            }
            Cleanup::EtcdNamespace { endpoint, namespace } => {
                use base64::Engine;
                let b64 = |text: &[u8]| base64::engine::general_purpose::STANDARD.encode(text);
                let mut end = namespace.clone().into_bytes();
                if let Some(last) = end.last_mut() {
                    *last += 1;
                }
                let body = serde_json::json!({ "key": b64(namespace.as_bytes()), "range_end": b64(&end) });
                let _ = reqwest::Client::new().post(format!("{endpoint}/v3/kv/deleterange")).json(&body).send().await;
            }
            Cleanup::MysqlDatabase { admin, name, backend } => {
                backend.close().await;
                if let Ok(mut conn) = admin.connect().await {
                    let _ = conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).await;
                    let _ = conn.close().await;
                }
            }
        }
    }
}

pub async fn memory() -> Option<Harness> {
    Some(Harness { storage: Storage::new(Arc::new(MemoryBackend::new())), cleanup: Cleanup::Nothing })
}

pub async fn sqlite() -> Option<Harness> {
    let dir = std::env::temp_dir().join(format!("tessera-sqlite-{}", tessera_core::id::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let backend = SqliteBackend::open(&SqliteSettings { file: dir.join("tessera.db") }).await.unwrap();
    Some(Harness { storage: Storage::new(Arc::new(backend)), cleanup: Cleanup::Directory(dir) })
}

/// The server the test script started, or `None` (with a loud note) when running without one.
/// Under CI a missing server is a failure, so CI can never pass by skipping.
pub fn postgres_admin_options() -> Option<PgConnectOptions> {
    match std::env::var("TESSERA_TEST_POSTGRES_URL") {
        Ok(url) => Some(url.parse().expect("TESSERA_TEST_POSTGRES_URL is not a valid postgres URL")),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TESSERA_TEST_POSTGRES_URL is not: run the tests through scripts/test.sh")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: TESSERA_TEST_POSTGRES_URL is not set; PostgreSQL tests did not run (use scripts/test.sh)"
            );
            None
        }
    }
}

/// A new, empty database on the test server, returning its connect options.
/// The storage's pool limits, with `max_connections` connections.
pub fn pool_of(max_connections: u32) -> PoolLimits {
    PoolLimits { max_connections, ..PostgresBackend::limits(&PostgresSettings::default()) }
}

pub async fn fresh_postgres_database() -> Option<(PgConnectOptions, String)> {
    let admin = postgres_admin_options()?;
    let name = format!("tessera_test_{}", tessera_core::id::new_id());
    let mut conn = admin.connect().await.expect("cannot connect to TESSERA_TEST_POSTGRES_URL");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    conn.close().await.unwrap();
    Some((admin, name))
}

pub async fn postgres() -> Option<Harness> {
    let (admin, name) = fresh_postgres_database().await?;
    let backend = PostgresBackend::connect(admin.clone().database(&name), pool_of(10)).await.unwrap();
    Some(Harness {
        storage: Storage::new(Arc::new(backend.clone())),
        cleanup: Cleanup::Database { admin, name, backend },
    })
}

/// The MariaDB (or MySQL) server the test script started, or `None` (with a loud note) without one;
/// under CI a missing server is a failure.
pub fn mysql_admin_options() -> Option<MySqlConnectOptions> {
    match std::env::var("TESSERA_TEST_MYSQL_URL") {
        Ok(url) => Some(url.parse().expect("TESSERA_TEST_MYSQL_URL is not a valid mysql URL")),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TESSERA_TEST_MYSQL_URL is not: run the tests through scripts/test.sh")
        }
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_MYSQL_URL is not set; MySQL tests did not run (use scripts/test.sh)");
            None
        }
    }
}

/// A new, empty database on the MySQL test server: the admin options and its name.
pub async fn fresh_mysql_database() -> Option<(MySqlConnectOptions, String)> {
    let admin = mysql_admin_options()?;
    let name = format!("tessera_test_{}", tessera_core::id::new_id());
    let mut conn = admin.connect().await.expect("cannot connect to TESSERA_TEST_MYSQL_URL");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    conn.close().await.unwrap();
    Some((admin, name))
}

pub async fn mysql() -> Option<Harness> {
    let (admin, name) = fresh_mysql_database().await?;
    let backend = MysqlBackend::connect(admin.clone().database(&name), pool_of(10)).await.unwrap();
    Some(Harness {
        storage: Storage::new(Arc::new(backend.clone())),
        cleanup: Cleanup::MysqlDatabase { admin, name, backend },
    })
}

/// The etcd the test script started (`TESSERA_TEST_ETCD_URL`), or `None` (loudly); a failure under CI.
pub fn etcd_endpoint() -> Option<String> {
    match std::env::var("TESSERA_TEST_ETCD_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TESSERA_TEST_ETCD_URL is not: run the tests through scripts/test.sh")
        }
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_ETCD_URL is not set; etcd tests did not run (use scripts/test.sh)");
            None
        }
    }
}

/// Each test in a namespace of its own on the shared etcd.
pub async fn etcd() -> Option<Harness> {
    let endpoint = etcd_endpoint()?;
    let namespace = format!("test-{}/", tessera_core::id::new_id());
    let settings =
        EtcdSettings { endpoints: vec![endpoint.clone()], namespace: namespace.clone(), ..EtcdSettings::default() };
    let backend = EtcdBackend::open(&settings).await.unwrap();
    Some(Harness { storage: Storage::new(Arc::new(backend)), cleanup: Cleanup::EtcdNamespace { endpoint, namespace } })
}

macro_rules! conformance_suite {
    ($backend:ident) => {
        mod $backend {
            conformance_suite!(@cases $backend;
                client_round_trip,
                auth_request_round_trip,
                auth_code_round_trip,
                refresh_token_round_trip,
                password_round_trip_with_case_insensitive_email,
                offline_sessions_round_trip,
                connector_round_trip,
                device_request_round_trip,
                device_token_round_trip,
                keys_round_trip,
                auth_session_round_trip_and_collection,
                user_identity_upsert_creates_once_then_updates,
                updater_error_keeps_the_old_value,
                updater_may_not_change_the_key,
                update_of_missing_object_is_not_found,
                nested_update_exactly_one_fails,
                update_that_lost_a_race_retries_without_losing_it,
                update_against_an_earlier_read_detects_writes_since,
                linked_read_returns_the_token_and_its_session,
                paired_update_writes_both_and_detects_writes_since,
                paired_update_errors_write_only_what_came_before,
                concurrent_paired_updates_lose_nothing,
                concurrent_refresh_token_updates_lose_nothing,
                concurrent_deletes_have_one_winner,
                concurrent_first_key_updates_create_once,
                garbage_collection_at_the_expiry_boundary_in_several_time_zones,
                static_objects_are_read_only_overlays,
                failure_counters_charge_withdraw_reset_and_expire,
                concurrent_charges_never_pass_the_limit
            );
        }
    };
    (@cases $backend:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(harness) = crate::backends::$backend().await else { return };
                crate::conformance::$case(harness.storage.clone()).await;
                harness.cleanup().await;
            }
        )*
    };
}

conformance_suite!(memory);
conformance_suite!(sqlite);
conformance_suite!(postgres);
conformance_suite!(mysql);
conformance_suite!(etcd);

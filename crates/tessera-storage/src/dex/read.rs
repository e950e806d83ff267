//! The queries over Dex's tables, once per sqlx driver. Rows are read with `SELECT t.*` and their
//! columns by name, so a column added by a later Dex migration is simply absent on an older schema;
//! timestamps are formatted as text by each database (Dex stores them in native types).

use sqlx::{ConnectOptions, Connection};
use tessera_core::model::{
    AuthCode, Claims, Client, Connector, DeviceRequest, DeviceToken, OfflineSessions, Password, Pkce, RefreshToken,
    UserIdentity,
};

use super::decode::{
    DexVerificationKeyJson, client_states, consents, holds_something, json_or_default, offline_refresh, set, timestamp,
};
use super::{DexAuthSession, DexKeys, DexReadError, DexState, DexVerificationKey, Skipped};
use crate::StorageSettings;

/// The schema versions read on each dialect: Dex v2.44 to Dex master (the `migrations` table counts
/// the migrations of that dialect, and MySQL has one more than the others).
const SUPPORTED: [(&str, i64, i64); 3] = [("sqlite3", 11, 23), ("postgres", 11, 23), ("mysql", 12, 24)];

/// How one dialect writes what differs.
struct Dialect {
    name: &'static str,
    /// A timestamp column as RFC 3339 text (SQLite's is text already).
    timestamp: fn(&str) -> String,
    /// The keys table's name, quoted where it is a keyword.
    keys_table: &'static str,
    /// Dex's schema version as a 64-bit integer (`num` is a 32-bit `integer`).
    version_sql: &'static str,
}

const SQLITE: Dialect = Dialect {
    name: "sqlite3",
    timestamp: |column| format!("t.{column}"),
    keys_table: "keys",
    version_sql: "SELECT CAST(MAX(num) AS INTEGER) FROM migrations",
};
const POSTGRES: Dialect = Dialect {
    name: "postgres",
    timestamp: |column| format!("to_char(t.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
    keys_table: "keys",
    version_sql: "SELECT CAST(MAX(num) AS BIGINT) FROM migrations",
};
// Dex writes MySQL's datetime(3) columns in UTC.
const MYSQL: Dialect = Dialect {
    name: "mysql",
    timestamp: |column| format!("DATE_FORMAT(t.{column}, '%Y-%m-%dT%H:%i:%s.%fZ')"),
    keys_table: "`keys`",
    version_sql: "SELECT CAST(MAX(num) AS SIGNED) FROM migrations",
};

/// Reads everything from the Dex storage `settings` describe. Never writes.
pub async fn read(settings: &StorageSettings) -> Result<DexState, DexReadError> {
    match settings {
        StorageSettings::Sqlite(sqlite) => {
            let source = format!("sqlite3 {}", sqlite.file.display());
            if !sqlite.file.exists() {
                return Err(DexReadError::Unreachable { source_name: source, message: "no such file".into() });
            }
            // Read-only, so that not even a journal file is left behind in Dex's directory.
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&sqlite.file).read_only(true);
            let mut conn = options.connect().await.map_err(|e| unreachable(&source, e))?;
            let state = read_sqlite(&mut conn, source).await;
            let _ = conn.close().await;
            state
        }
        StorageSettings::Postgres(pg) => {
            let options = crate::postgres::connect_options(pg).map_err(|e| unreachable("postgres", e))?;
            let source = format!(
                "postgres {}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or("")
            );
            let mut conn = connect_within(options.connect(), &source).await?;
            let state = read_postgres(&mut conn, source).await;
            let _ = conn.close().await;
            state
        }
        StorageSettings::Mysql(my) => {
            let options = crate::mysql::connect_options(my).map_err(|e| unreachable("mysql", e))?;
            let host = match options.get_socket() {
                Some(socket) => socket.display().to_string(),
                None => format!("{}:{}", options.get_host(), options.get_port()),
            };
            let source = format!("mysql {host}/{}", options.get_database().unwrap_or(""));
            let mut conn = connect_within(options.connect(), &source).await?;
            let state = read_mysql(&mut conn, source).await;
            let _ = conn.close().await;
            state
        }
        StorageSettings::Memory => Err(DexReadError::Unsupported("memory")),
        StorageSettings::Etcd(etcd) => super::etcd::read(etcd).await,
    }
}

/// A connection attempt bounded in time, so an unreachable host fails promptly.
async fn connect_within<C>(
    connecting: impl std::future::Future<Output = Result<C, sqlx::Error>>,
    source: &str,
) -> Result<C, DexReadError> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(unreachable(source, e)),
        Err(_) => Err(unreachable(source, "no answer within 10 s")),
    }
}

fn unreachable(source: &str, e: impl std::fmt::Display) -> DexReadError {
    DexReadError::Unreachable { source_name: source.to_owned(), message: e.to_string() }
}

/// Expands one reader per driver: the same queries and decoding, over that driver's connection and rows.
macro_rules! dex_reader {
    ($name:ident, $connection:ty, $row:ty, $dialect:expr) => {
        async fn $name(conn: &mut $connection, source: String) -> Result<DexState, DexReadError> {
            use sqlx::Row;
            let dialect: &Dialect = &$dialect;
            let query_error = |table: &'static str, e: sqlx::Error| DexReadError::Query {
                source_name: source.clone(),
                table,
                message: e.to_string(),
            };

            // Dex's version table and two of its tables; without them this is no Dex database (another
            // program's `migrations` table alone must not make tessera refuse to start).
            let probes = [
                "SELECT num FROM migrations WHERE 1 = 0".to_owned(),
                "SELECT id, secret FROM client WHERE 1 = 0".to_owned(),
                format!("SELECT id, signing_key FROM {} WHERE 1 = 0", dialect.keys_table),
            ];
            for probe in probes {
                let found: Result<Vec<$row>, _> = sqlx::query(sqlx::AssertSqlSafe(probe)).fetch_all(&mut *conn).await;
                if found.is_err() {
                    return Err(DexReadError::NoDexTables { source_name: source });
                }
            }
            let version: i64 = sqlx::query_scalar::<_, Option<i64>>(dialect.version_sql)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| query_error("migrations", e))?
                .unwrap_or(0);
            let (_, min, max) =
                SUPPORTED.iter().copied().find(|(name, _, _)| *name == dialect.name).unwrap_or(("", 0, 0));
            if !(min..=max).contains(&version) {
                return Err(DexReadError::UnknownSchema {
                    source_name: source,
                    dialect: dialect.name,
                    found: version,
                    min,
                    max,
                });
            }

            let mut state = DexState { source: source.clone(), schema_version: version, ..DexState::default() };
            let ts = dialect.timestamp;

            // Each table: its rows, decoded one by one; a row that fails is skipped and named.
            macro_rules! each_row {
                ($table:literal, $key:literal, $sql:expr, |$r:ident| $decode:expr, $into:expr) => {{
                    let rows: Vec<$row> = sqlx::query(sqlx::AssertSqlSafe($sql))
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(|e| query_error($table, e))?;
                    for $r in &rows {
                        let decoded = (|| -> Result<_, String> { $decode })();
                        match decoded {
                            Ok(value) => $into.push(value),
                            Err(reason) => state.skipped.push(Skipped {
                                table: $table,
                                id: $r.try_get::<String, _>($key).unwrap_or_else(|_| "?".into()),
                                reason,
                            }),
                        }
                    }
                }};
            }

            // A column every supported schema has.
            fn col<'r, T: sqlx::Decode<'r, <$row as Row>::Database> + sqlx::Type<<$row as Row>::Database>>(
                row: &'r $row,
                name: &str,
            ) -> Result<T, String> {
                row.try_get(name).map_err(|e| format!("column {name}: {e}"))
            }
            // A column a later Dex migration added: absent (or NULL) reads as `None`.
            fn opt<'r, T: sqlx::Decode<'r, <$row as Row>::Database> + sqlx::Type<<$row as Row>::Database>>(
                row: &'r $row,
                name: &str,
            ) -> Result<Option<T>, String> {
                match row.try_get::<Option<T>, _>(name) {
                    Ok(value) => Ok(value),
                    Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
                    Err(e) => Err(format!("column {name}: {e}")),
                }
            }
            fn text(row: &$row, name: &str) -> Result<String, String> {
                Ok(opt::<String>(row, name)?.unwrap_or_default())
            }
            fn bytes(row: &$row, name: &str) -> Result<Option<Vec<u8>>, String> {
                opt::<Vec<u8>>(row, name)
            }
            fn time_of(row: &$row, name: &str) -> Result<time::OffsetDateTime, String> {
                timestamp(&col::<String>(row, name)?).map_err(|e| format!("column {name}: {e}"))
            }
            fn claims(row: &$row) -> Result<Claims, String> {
                Ok(Claims {
                    user_id: col(row, "claims_user_id")?,
                    username: col(row, "claims_username")?,
                    preferred_username: text(row, "claims_preferred_username")?,
                    email: col(row, "claims_email")?,
                    email_verified: col(row, "claims_email_verified")?,
                    groups: json_or_default(bytes(row, "claims_groups")?.as_deref())
                        .map_err(|e| format!("column claims_groups: {e}"))?,
                })
            }
            fn json<T: serde::de::DeserializeOwned + Default>(row: &$row, name: &str) -> Result<T, String> {
                json_or_default(bytes(row, name)?.as_deref()).map_err(|e| format!("column {name}: {e}"))
            }

            let keys_sql = format!(
                "SELECT t.*, {} AS next_rotation_text FROM {} t WHERE t.id = 'keys'",
                ts("next_rotation"),
                dialect.keys_table
            );
            let mut keys = Vec::new();
            each_row!(
                "keys",
                "id",
                keys_sql,
                |r| {
                    let verification: Option<Vec<DexVerificationKeyJson>> = json(r, "verification_keys")?;
                    Ok(DexKeys {
                        signing_key: json::<Option<serde_json::Value>>(r, "signing_key")?,
                        signing_key_pub: json::<Option<serde_json::Value>>(r, "signing_key_pub")?,
                        verification_keys: verification
                            .unwrap_or_default()
                            .into_iter()
                            .map(|key| DexVerificationKey { public_key: key.public_key, expiry: key.expiry })
                            .collect(),
                        next_rotation: time_of(r, "next_rotation_text")?,
                    })
                },
                keys
            );
            state.keys = keys.pop();

            each_row!(
                "client",
                "id",
                "SELECT t.* FROM client t ORDER BY t.id".to_owned(),
                |r| {
                    let sso_shared_with: Option<Vec<String>> = json(r, "sso_shared_with")?;
                    Ok(Client {
                        id: col(r, "id")?,
                        secret: col(r, "secret")?,
                        redirect_uris: json(r, "redirect_uris")?,
                        post_logout_redirect_uris: json(r, "post_logout_redirect_uris")?,
                        trusted_peers: json(r, "trusted_peers")?,
                        public: col(r, "public")?,
                        name: col(r, "name")?,
                        logo_url: col(r, "logo_url")?,
                        allowed_connectors: json(r, "allowed_connectors")?,
                        refresh_token_lifetime: text(r, "refresh_token_lifetime")?,
                        client_credentials_claims: None,
                        sso_shared_with,
                        backchannel_logout_uri: text(r, "backchannel_logout_uri")?,
                    })
                },
                state.clients
            );

            each_row!(
                "password",
                "email",
                "SELECT t.* FROM password t ORDER BY t.email".to_owned(),
                |r| {
                    let hash = col::<Vec<u8>>(r, "hash")?;
                    Ok(Password {
                        email: col(r, "email")?,
                        hash: String::from_utf8(hash).map_err(|_| "column hash: not a bcrypt hash".to_owned())?,
                        username: col(r, "username")?,
                        name: text(r, "name")?,
                        preferred_username: text(r, "preferred_username")?,
                        email_verified: opt(r, "email_verified")?,
                        user_id: col(r, "user_id")?,
                        groups: json(r, "groups")?,
                    })
                },
                state.passwords
            );

            each_row!(
                "connector",
                "id",
                "SELECT t.* FROM connector t ORDER BY t.id".to_owned(),
                |r| {
                    let config = match bytes(r, "config")? {
                        Some(config) if !config.is_empty() => {
                            serde_json::from_slice(&config).map_err(|e| format!("column config: invalid JSON: {e}"))?
                        }
                        _ => serde_json::Value::Null,
                    };
                    Ok(Connector {
                        id: col(r, "id")?,
                        kind: col(r, "type")?,
                        name: col(r, "name")?,
                        resource_version: col(r, "resource_version")?,
                        config,
                        grant_types: json(r, "grant_types")?,
                    })
                },
                state.connectors
            );

            let refresh_sql = format!(
                "SELECT t.*, {} AS created_at_text, {} AS last_used_text FROM refresh_token t ORDER BY t.id",
                ts("created_at"),
                ts("last_used")
            );
            each_row!(
                "refresh_token",
                "id",
                refresh_sql,
                |r| {
                    Ok(RefreshToken {
                        id: col(r, "id")?,
                        token: col(r, "token")?,
                        obsolete_token: text(r, "obsolete_token")?,
                        created_at: time_of(r, "created_at_text")?,
                        last_used: time_of(r, "last_used_text")?,
                        client_id: col(r, "client_id")?,
                        connector_id: col(r, "connector_id")?,
                        connector_data: bytes(r, "connector_data")?.unwrap_or_default(),
                        claims: claims(r)?,
                        scopes: json(r, "scopes")?,
                        nonce: col(r, "nonce")?,
                    })
                },
                state.refresh_tokens
            );

            each_row!(
                "offline_session",
                "user_id",
                "SELECT t.* FROM offline_session t ORDER BY t.user_id, t.conn_id".to_owned(),
                |r| {
                    Ok(OfflineSessions {
                        user_id: col(r, "user_id")?,
                        conn_id: col(r, "conn_id")?,
                        refresh: offline_refresh(bytes(r, "refresh")?.as_deref())
                            .map_err(|e| format!("column refresh: {e}"))?,
                        connector_data: bytes(r, "connector_data")?.unwrap_or_default(),
                    })
                },
                state.offline_sessions
            );

            let code_sql = format!("SELECT t.*, {} AS expiry_text FROM auth_code t ORDER BY t.id", ts("expiry"));
            each_row!(
                "auth_code",
                "id",
                code_sql,
                |r| {
                    Ok(AuthCode {
                        id: col(r, "id")?,
                        client_id: col(r, "client_id")?,
                        redirect_uri: col(r, "redirect_uri")?,
                        nonce: col(r, "nonce")?,
                        scopes: json(r, "scopes")?,
                        connector_id: col(r, "connector_id")?,
                        connector_data: bytes(r, "connector_data")?.unwrap_or_default(),
                        claims: claims(r)?,
                        expiry: time_of(r, "expiry_text")?,
                        // Dex master's auth_time: tessera reads the login time from the code only when set.
                        auth_time: None,
                        pkce: Pkce {
                            code_challenge: text(r, "code_challenge")?,
                            code_challenge_method: text(r, "code_challenge_method")?,
                        },
                        session_id: String::new(),
                    })
                },
                state.auth_codes
            );

            let device_request_sql =
                format!("SELECT t.*, {} AS expiry_text FROM device_request t ORDER BY t.user_code", ts("expiry"));
            each_row!(
                "device_request",
                "user_code",
                device_request_sql,
                |r| {
                    Ok(DeviceRequest {
                        user_code: col(r, "user_code")?,
                        device_code: col(r, "device_code")?,
                        client_id: col(r, "client_id")?,
                        client_secret: text(r, "client_secret")?,
                        scopes: json(r, "scopes")?,
                        expiry: time_of(r, "expiry_text")?,
                    })
                },
                state.device_requests
            );

            let device_token_sql = format!(
                "SELECT t.*, {} AS expiry_text, {} AS last_request_text FROM device_token t ORDER BY t.device_code",
                ts("expiry"),
                ts("last_request")
            );
            each_row!(
                "device_token",
                "device_code",
                device_token_sql,
                |r| {
                    let token = bytes(r, "token")?.unwrap_or_default();
                    Ok(DeviceToken {
                        device_code: col(r, "device_code")?,
                        status: col(r, "status")?,
                        token: String::from_utf8(token).map_err(|_| "column token: not UTF-8".to_owned())?,
                        expiry: time_of(r, "expiry_text")?,
                        last_request_time: time_of(r, "last_request_text")?,
                        poll_interval_seconds: col(r, "poll_interval")?,
                        pkce: Pkce {
                            code_challenge: text(r, "code_challenge")?,
                            code_challenge_method: text(r, "code_challenge_method")?,
                        },
                    })
                },
                state.device_tokens
            );

            // Dex's session tables exist from Dex master on (used with `DEX_SESSIONS_ENABLED`); a
            // schema from before them has nothing to read. Sessions are read only from the table Dex's
            // last migration rebuilt around `id`: the older one, keyed by user, had no cookie secret.
            // Whether a probe (`SELECT … WHERE 1 = 0`) runs: its table and columns exist.
            macro_rules! exists {
                ($probe:literal) => {{
                    let found: Result<Vec<$row>, _> = sqlx::query($probe).fetch_all(&mut *conn).await;
                    found.is_ok()
                }};
            }
            if exists!("SELECT user_id, connector_id FROM user_identity WHERE 1 = 0") {
                let identity_sql = format!(
                    "SELECT t.*, {} AS created_at_text, {} AS last_login_text, {} AS blocked_until_text FROM user_identity t ORDER BY t.user_id, t.connector_id",
                    ts("created_at"),
                    ts("last_login"),
                    ts("blocked_until")
                );
                let mut with_mfa = Vec::new();
                let mut locked = Vec::new();
                each_row!(
                    "user_identity",
                    "user_id",
                    identity_sql,
                    |r| {
                        let identity = UserIdentity {
                            user_id: col(r, "user_id")?,
                            connector_id: col(r, "connector_id")?,
                            claims: claims(r)?,
                            consents: consents(json(r, "consents")?),
                            created_at: time_of(r, "created_at_text")?,
                            last_login: time_of(r, "last_login_text")?,
                        };
                        if holds_something(bytes(r, "mfa_secrets")?.as_deref())
                            || holds_something(bytes(r, "webauthn_credentials")?.as_deref())
                        {
                            with_mfa.push(format!("{}|{}", identity.user_id, identity.connector_id));
                        }
                        if let Some(until) = set(time_of(r, "blocked_until_text")?) {
                            locked.push((format!("{}|{}", identity.user_id, identity.connector_id), until));
                        }
                        Ok(identity)
                    },
                    state.user_identities
                );
                state.identities_with_mfa = with_mfa;
                state.locked_identities = locked;
            }
            if exists!("SELECT id, secret FROM auth_session WHERE 1 = 0") {
                let session_sql = format!(
                    "SELECT t.*, {} AS created_at_text, {} AS last_activity_text, {} AS absolute_expiry_text, {} AS idle_expiry_text FROM auth_session t ORDER BY t.id",
                    ts("created_at"),
                    ts("last_activity"),
                    ts("absolute_expiry"),
                    ts("idle_expiry")
                );
                each_row!(
                    "auth_session",
                    "id",
                    session_sql,
                    |r| {
                        Ok(DexAuthSession {
                            id: col(r, "id")?,
                            secret: col(r, "secret")?,
                            user_id: col(r, "user_id")?,
                            connector_id: col(r, "connector_id")?,
                            client_states: client_states(json(r, "client_states")?),
                            created_at: time_of(r, "created_at_text")?,
                            last_activity: time_of(r, "last_activity_text")?,
                            absolute_expiry: time_of(r, "absolute_expiry_text")?,
                            idle_expiry: time_of(r, "idle_expiry_text")?,
                            ip_address: text(r, "ip_address")?,
                            user_agent: text(r, "user_agent")?,
                        })
                    },
                    state.auth_sessions
                );
            }

            Ok(state)
        }
    };
}

dex_reader!(read_sqlite, sqlx::sqlite::SqliteConnection, sqlx::sqlite::SqliteRow, SQLITE);
dex_reader!(read_postgres, sqlx::postgres::PgConnection, sqlx::postgres::PgRow, POSTGRES);
dex_reader!(read_mysql, sqlx::mysql::MySqlConnection, sqlx::mysql::MySqlRow, MYSQL);

//! A Dex run with `DEX_SESSIONS_ENABLED` keeps its users' identities (with the consents they gave) and
//! one session per signed-in browser. Imported from each storage as Dex leaves them: the identities
//! whole but for their second factors, the live sessions with the identity Dex would sign them in
//! with, the expired ones left behind and the one without an identity named.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_core::model::{AuthSession, UserIdentity};
use tessera_server::config::Env;
use tessera_server::dex_import::{ImportOptions, ImportReport, import};
use tessera_storage::Storage;
use time::{Duration, OffsetDateTime};

use crate::dex_db::{DexDb, Dialect};
use crate::dex_import::{config_for, counts, etcd_put, etcd_url, now, rfc3339};

const JANE_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
const JOHN_ID: &str = "1b7e2a3c-0000-4000-8000-00000000john";

fn claims(user: &str, name: &str) -> Value {
    json!({"userID": user, "username": name, "preferredUsername": format!("{name}-p"),
           "email": format!("{name}@example.com"), "emailVerified": true, "groups": ["admins"]})
}

/// The consents column as Dex's `encoder` writes a map with a nil slice in it.
fn jane_consents() -> Value {
    json!({"dex-api-app": ["openid", "email"], "dex-mock-app": null})
}

/// Jane's live session reached two clients: one by a login (tokens issued since), one by single
/// sign-on (nothing issued: Go's zero time).
fn live_client_states() -> Value {
    json!({
        "dex-api-app": {
            "AuthenticatedAt": rfc3339(now() - Duration::hours(2)), "LastActivity": rfc3339(now() - Duration::minutes(10)),
            "LastTokenIssuedAt": rfc3339(now() - Duration::minutes(10)), "ViaSSO": false
        },
        "dex-mock-app": {
            "AuthenticatedAt": rfc3339(now() - Duration::hours(1)), "LastActivity": rfc3339(now() - Duration::hours(1)),
            "LastTokenIssuedAt": "0001-01-01T00:00:00Z", "ViaSSO": true
        }
    })
}

/// John is locked in Dex past the import (Dex's `blocked_until`); tessera has no lock.
fn john_locked_until() -> OffsetDateTime {
    now() + Duration::hours(1)
}

/// Jane's refresh tokens, each bound by Dex to the session it was issued under.
fn jane_refresh_refs() -> Value {
    let at = rfc3339(now() - Duration::hours(1));
    let reference = |token: &str, client: &str, session: &str| json!({"ID": token, "ClientID": client, "CreatedAt": at, "LastUsed": at, "SessionID": session});
    json!({
        "dex-api-app": reference("rt-live", "dex-api-app", "sess-live"),
        "dex-mock-app": reference("rt-expired", "dex-mock-app", "sess-expired"),
        "third-app": reference("rt-orphan", "third-app", "sess-orphan"),
    })
}

fn logout_in_flight() -> Value {
    json!({"PostLogoutRedirectURI": "https://app.example/bye", "State": "st", "ClientID": "dex-api-app", "ConnectorID": "local"})
}

/// Two identities (John's with a TOTP secret tessera cannot use, and locked) and three sessions: Jane's live one,
/// Jane's idle-expired one, and a live one whose user has no identity.
async fn seed_sql(db: &DexDb) {
    let t = |at| db.time(at);
    let j = |value: Value| db.json(&value);
    let b = |value| db.boolean(value);
    let zero = OffsetDateTime::UNIX_EPOCH.replace_year(1).unwrap();
    let identity = |user: &str, name: &str, consents: Value, mfa: &str, blocked: OffsetDateTime| {
        format!(
            "INSERT INTO user_identity (user_id, connector_id, claims_user_id, claims_username, claims_preferred_username,
  claims_email, claims_email_verified, claims_groups, consents, created_at, last_login, blocked_until, mfa_secrets,
  webauthn_credentials) VALUES ('{user}', 'local', '{user}', '{name}', '{name}-p', '{name}@example.com', {yes},
  {groups}, {consents}, {created}, {last_login}, {zero}, {mfa}, NULL);\n",
            yes = b(true),
            groups = j(json!(["admins"])),
            consents = j(consents),
            created = t(now() - Duration::days(30)),
            last_login = t(now() - Duration::hours(2)),
            zero = t(blocked),
        )
    };
    let session = |id: &str, user: &str, states: Value, idle: OffsetDateTime, logout: String| {
        format!(
            "INSERT INTO auth_session (id, secret, user_id, connector_id, client_states, created_at, last_activity,
  ip_address, user_agent, absolute_expiry, idle_expiry, logout_state) VALUES ('{id}', '{id}-secret', '{user}',
  'local', {states}, {created}, {activity}, '192.0.2.7', 'Mozilla/5.0 Firefox', {absolute}, {idle}, {logout});\n",
            states = j(states),
            created = t(now() - Duration::hours(2)),
            activity = t(now() - Duration::minutes(10)),
            absolute = t(now() + Duration::hours(22)),
            idle = t(idle),
        )
    };
    let mut sql = identity(JANE_ID, "jane", jane_consents(), "NULL", zero);
    sql += &identity(JOHN_ID, "john", Value::Null, &j(json!({"totp": {"secret": "JBSWY3DP"}})), john_locked_until());
    sql += &session("sess-live", JANE_ID, live_client_states(), now() + Duration::minutes(50), j(logout_in_flight()));
    sql += &session("sess-expired", JANE_ID, json!({}), now() - Duration::minutes(1), "NULL".into());
    sql += &session("sess-orphan", "ghost", Value::Null, now() + Duration::minutes(50), "NULL".into());
    sql += &format!(
        "INSERT INTO offline_session (user_id, conn_id, refresh, connector_data) VALUES ('{JANE_ID}', 'local', {}, NULL);\n",
        j(jane_refresh_refs())
    );
    db.execute(&sql).await;
}

/// What every storage must come to: both identities, Jane's live session whole.
async fn check_imported(report: &ImportReport, storage: &Storage) {
    assert_eq!(counts(report, "user identities"), (2, 2, 0, 0, 0));
    // Found 3: 1 imported, 1 skipped (no identity), and 1 expired.
    assert_eq!(counts(report, "browser sessions"), (3, 1, 0, 0, 1));
    let sessions = report.kinds.iter().find(|k| k.kind == "browser sessions").unwrap();
    assert_eq!(sessions.expired, 1);
    let lines = report.lines().join("\n");
    assert!(lines.contains("skipped auth_session \"sess-orphan\": no user_identity for user \"ghost\""), "{lines}");
    assert!(lines.contains(&format!("MFA secrets and WebAuthn credentials of user identity \"{JOHN_ID}|local\"")));
    let until = rfc3339(john_locked_until());
    assert!(
        lines.contains(&format!("the lock on user identity \"{JOHN_ID}|local\" (until {until} in Dex)")),
        "{lines}"
    );
    assert!(!lines.contains(JANE_ID), "Jane has no second factor and no lock: {lines}");
    assert_eq!(report.left_out(), 1, "the orphan session is left out; an expired one is not");

    let jane: UserIdentity = storage.get_user_identity(JANE_ID, "local").await.unwrap();
    assert_eq!(jane.claims.username, "jane");
    assert_eq!(jane.claims.preferred_username, "jane-p");
    assert_eq!(jane.claims.email, "jane@example.com");
    assert!(jane.claims.email_verified);
    assert_eq!(jane.claims.groups, ["admins"]);
    assert_eq!(jane.consents["dex-api-app"], ["openid", "email"]);
    assert!(jane.consents["dex-mock-app"].is_empty(), "Go's nil slice is no scope approved");
    assert_eq!(jane.consents.len(), 2);
    assert_eq!(jane.created_at, now() - Duration::days(30));
    assert_eq!(jane.last_login, now() - Duration::hours(2));
    let john: UserIdentity = storage.get_user_identity(JOHN_ID, "local").await.unwrap();
    assert!(john.consents.is_empty());
    assert_eq!(john.claims.email, "john@example.com");

    let live: AuthSession = storage.get("sess-live").await.unwrap();
    assert_eq!(
        (live.secret.as_str(), live.user_id.as_str(), live.connector_id.as_str()),
        ("sess-live-secret", JANE_ID, "local")
    );
    assert_eq!(live.claims, jane.claims, "the identity Dex's single sign-on would use");
    assert_eq!(live.auth_time, jane.last_login, "Dex reports the identity's last login as auth_time");
    assert_eq!(live.created_at, now() - Duration::hours(2));
    assert_eq!(live.last_activity, now() - Duration::minutes(10));
    assert_eq!(live.absolute_expiry, now() + Duration::hours(22));
    assert_eq!(live.idle_expiry, now() + Duration::minutes(50));
    assert_eq!((live.ip_address.as_str(), live.user_agent.as_str()), ("192.0.2.7", "Mozilla/5.0 Firefox"));
    assert!(live.logout_state.is_none(), "a logout in flight at the takeover starts again");
    assert!(!live.remember_me);
    assert_eq!(live.client_states.len(), 2);
    let api = &live.client_states["dex-api-app"];
    assert_eq!((api.authenticated_at, api.last_activity), (now() - Duration::hours(2), now() - Duration::minutes(10)));
    assert_eq!(api.last_token_issued_at, Some(now() - Duration::minutes(10)));
    assert!(!api.via_sso);
    let sso = &live.client_states["dex-mock-app"];
    assert!(sso.via_sso);
    assert_eq!(sso.last_token_issued_at, None, "Go's zero time: nothing issued");
    assert_eq!(sso.authenticated_at, now() - Duration::hours(1));
    assert!(storage.get::<AuthSession>("sess-expired").await.is_err());
    assert!(storage.get::<AuthSession>("sess-orphan").await.is_err());

    // A refresh token keeps the session Dex issued it under, even one over (a session-bound client's
    // refresh is refused then, in Dex and here); from the session left out though alive in Dex, it
    // is unbound, or the swap alone would end it.
    let offline = storage.get_offline_sessions(JANE_ID, "local").await.unwrap();
    assert_eq!(offline.refresh["dex-api-app"].session_id, "sess-live");
    assert_eq!(offline.refresh["dex-mock-app"].session_id, "sess-expired");
    assert_eq!(offline.refresh["third-app"].session_id, "");
    assert_eq!(offline.refresh["dex-mock-app"].id, "rt-expired");
}

async fn read_and_import(settings: &tessera_storage::StorageSettings, storage: &Storage) -> ImportReport {
    let state = tessera_storage::dex::read(settings).await.unwrap();
    import(storage, state, ImportOptions::default(), now()).await.unwrap()
}

async fn sessions_import_from(dialect: Dialect) {
    let Some(db) = DexDb::empty(dialect).await else { return };
    db.create_schema().await;
    db.create_session_tables().await;
    seed_sql(&db).await;
    let settings = config_for(&db.storage_yaml, 1, &Env::default()).storage;
    let storage = Storage::new(Arc::new(tessera_storage::memory::MemoryBackend::new()));
    let report = read_and_import(&settings, &storage).await;
    check_imported(&report, &storage).await;
    let again = read_and_import(&settings, &storage).await;
    assert_eq!(counts(&again, "user identities"), (2, 0, 2, 0, 0));
    assert_eq!(counts(&again, "browser sessions"), (3, 0, 1, 0, 1));
    db.drop().await;
}

#[tokio::test]
async fn sessions_and_identities_import_from_sqlite() {
    sessions_import_from(Dialect::Sqlite).await;
}

#[tokio::test]
async fn sessions_and_identities_import_from_postgres() {
    sessions_import_from(Dialect::Postgres).await;
}

#[tokio::test]
async fn sessions_and_identities_import_from_mariadb() {
    sessions_import_from(Dialect::Mysql).await;
}

/// Before Dex's last migration, sessions were keyed by user and had no secret for the cookie: such a
/// table is not read (Dex itself drops it), and the rest imports.
#[tokio::test]
async fn sessions_keyed_by_user_are_not_read() {
    let Some(db) = DexDb::empty(Dialect::Sqlite).await else { return };
    db.create_schema().await;
    db.create_auth_session_keyed_by_user().await;
    db.execute(&format!(
        "INSERT INTO auth_session (user_id, connector_id, client_states, created_at, last_activity, absolute_expiry,
  idle_expiry) VALUES ('{JANE_ID}', 'local', {}, {t}, {t}, {later}, {later});\n",
        db.json(&json!({})),
        t = db.time(now()),
        later = db.time(now() + Duration::hours(1)),
    ))
    .await;
    let settings = config_for(&db.storage_yaml, 1, &Env::default()).storage;
    let state = tessera_storage::dex::read(&settings).await.unwrap();
    assert!(state.auth_sessions.is_empty() && state.user_identities.is_empty());
    assert!(state.skipped.is_empty(), "{:?}", state.skipped);
    db.drop().await;
}

/// The same identities and sessions as Dex's etcd storage keeps them: its `user_identity/` keys (user
/// and connector lowercased) and `auth_session/` keys, its etcd types' JSON tags, Go's field names in
/// the client states.
#[tokio::test]
async fn sessions_and_identities_import_from_etcd() {
    let Some(url) = etcd_url() else { return };
    let namespace = format!("dex-{}/", tessera_core::id::new_id());
    let identity = |user: &str, name: &str, consents: Value, mfa: Option<Value>| {
        let mut value = json!({
            "user_id": user, "connector_id": "local", "claims": claims(user, name), "consents": consents,
            "created_at": rfc3339(now() - Duration::days(30)), "last_login": rfc3339(now() - Duration::hours(2)),
            "blocked_until": "0001-01-01T00:00:00Z"
        });
        if let Some(mfa) = mfa {
            value["mfa_secrets"] = mfa;
            value["blocked_until"] = json!(rfc3339(john_locked_until()));
        }
        (format!("user_identity/{}|local", user.to_lowercase()), value)
    };
    let session = |id: &str, user: &str, states: Value, idle: OffsetDateTime, logout: Option<Value>| {
        let mut value = json!({
            "id": id, "secret": format!("{id}-secret"), "user_id": user, "connector_id": "local",
            "client_states": states, "created_at": rfc3339(now() - Duration::hours(2)),
            "last_activity": rfc3339(now() - Duration::minutes(10)), "ip_address": "192.0.2.7",
            "user_agent": "Mozilla/5.0 Firefox", "absolute_expiry": rfc3339(now() + Duration::hours(22)),
            "idle_expiry": rfc3339(idle)
        });
        if let Some(logout) = logout {
            value["logout_state"] = logout;
        }
        (format!("auth_session/{id}"), value)
    };
    let offline = (
        format!("offline_session/{}|local", JANE_ID.to_lowercase()),
        json!({"user_id": JANE_ID, "conn_id": "local", "refresh": jane_refresh_refs()}),
    );
    let values = [
        offline,
        identity(JANE_ID, "jane", jane_consents(), None),
        identity(JOHN_ID, "john", Value::Null, Some(json!({"totp": {"secret": "JBSWY3DP"}}))),
        session("sess-live", JANE_ID, live_client_states(), now() + Duration::minutes(50), Some(logout_in_flight())),
        session("sess-expired", JANE_ID, json!({}), now() - Duration::minutes(1), None),
        session("sess-orphan", "ghost", Value::Null, now() + Duration::minutes(50), None),
    ];
    for (key, value) in values {
        etcd_put(&url, &format!("{namespace}{key}"), value.to_string().as_bytes()).await;
    }
    let storage_yaml = format!("  type: etcd\n  config:\n    endpoints: [{url}]\n    namespace: {namespace}\n");
    let settings = config_for(&storage_yaml, 1, &Env::default()).storage;
    let storage = Storage::new(Arc::new(tessera_storage::memory::MemoryBackend::new()));
    let report = read_and_import(&settings, &storage).await;
    check_imported(&report, &storage).await;

    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut end = namespace.clone().into_bytes();
    *end.last_mut().unwrap() += 1;
    let body = json!({ "key": b64(namespace.as_bytes()), "range_end": b64(&end) });
    reqwest::Client::new().post(format!("{url}/v3/kv/deleterange")).json(&body).send().await.unwrap();
}

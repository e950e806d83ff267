//! Taking over a running Dex: a Dex database (SQLite, PostgreSQL, MariaDB) as Dex leaves it, then
//! tessera started on it. What Dex issued must keep working: an ID token it signed verifies at
//! `/keys` and opens `/userinfo`, its refresh token is redeemed and rotated, and the client, password
//! and connector created through its API log in, all with the same `sub`.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::clock::TestClock;
use tessera_core::model::{AuthCode, Client, Connector, Keys, OfflineSessions, Password, RefreshToken};
use tessera_core::subject::{encode_refresh_token, encode_subject};
use tessera_jose::PrivateKey;
use tessera_server::config::{Env, parse};
use tessera_server::dex_import::{ImportOptions, import};
use tessera_storage::Storage;
use tessera_storage::dex::DexReadError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::browser::{Browser, params};
use crate::dex_db::{DexDb, Dialect};
use crate::login::{REDIRECT, auth_url, code_query, redeem, verify};
use crate::serve::{Running, free_port, start, try_start};

const JANE_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
/// Dex's example hash of "password".
const JANE_HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
const REFRESH_ID: &str = "rt-dex-1";
const REFRESH_SECRET: &str = "dex-refresh-secret";

pub fn now() -> OffsetDateTime {
    tessera_core::clock::test_epoch()
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn dex_signing_key() -> Value {
    serde_json::from_str(include_str!("../../../tessera-jose/testdata/dex-rsa.jwk.json")).unwrap()
}

fn dex_old_key() -> Value {
    serde_json::from_str(include_str!("../../../tessera-jose/testdata/dex-ec.jwk.json")).unwrap()
}

/// A JWK without its private parameters, as go-jose's `Public()` gives it.
fn public_half(jwk: &Value) -> Value {
    let mut public = jwk.clone();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        public.as_object_mut().unwrap().remove(private);
    }
    public
}

fn config(db: &DexDb, port: u16, env: &Env) -> tessera_server::config::Config {
    config_for(&db.storage_yaml, port, env)
}

pub fn config_for(storage_yaml: &str, port: u16, env: &Env) -> tessera_server::config::Config {
    let text = format!(
        "issuer: http://127.0.0.1:{port}/dex\nstorage:\n{storage_yaml}web:\n  http: 127.0.0.1:{port}\nenablePasswordDB: true\noauth2:\n  skipApprovalScreen: true\n  passwordConnector: local\n  grantTypes: [authorization_code, refresh_token, password]\n"
    );
    parse(&text, "tessera.yaml", env).unwrap().config
}

/// What a Dex that has served for a while holds: keys (one rotated out), two clients and a password
/// made through its API, a connector made through its API (and one of a type tessera lacks), a user's
/// refresh token and offline session, an authorization code, and one client row gone bad.
async fn seed(db: &DexDb) {
    let t = |at| db.time(at);
    let j = |value: Value| db.json(&value);
    let s = |text: &str| db.text(text);
    let b = |value| db.boolean(value);
    let issued = now() - time::Duration::hours(1);
    let refresh_map = json!({
        "dex-api-app": {
            "ID": REFRESH_ID, "ClientID": "dex-api-app",
            "CreatedAt": rfc3339(issued), "LastUsed": rfc3339(issued), "SessionID": ""
        }
    });
    let sql = format!(
        "INSERT INTO {keys} (id, verification_keys, signing_key, signing_key_pub, next_rotation) VALUES
           ('keys', {verification}, {signing}, {signing_pub}, {next_rotation});
INSERT INTO client (id, secret, redirect_uris, trusted_peers, public, name, logo_url) VALUES
  ('dex-api-app', 'dex-secret', {redirects}, {empty}, {no}, 'Dex API App', '');
INSERT INTO client (id, secret, redirect_uris, trusted_peers, public, name, logo_url, allowed_connectors, mfa_chain,
  post_logout_redirect_uris, sso_shared_with, backchannel_logout_uri, refresh_token_lifetime) VALUES
  ('dex-mock-app', 'mock-secret', {redirects}, {null}, {no}, 'Dex Mock App', '', {only_mock}, {null}, {null}, {null}, '', '');
INSERT INTO client (id, secret, redirect_uris, trusted_peers, public, name, logo_url) VALUES
  ('broken-app', 'x', {corrupt}, {empty}, {no}, 'Broken', '');
INSERT INTO password (email, hash, username, user_id, preferred_username, {groups}, name, email_verified) VALUES
  ('jane@example.com', {hash}, 'jane', '{JANE_ID}', 'jd', {admins}, 'Jane Doe', NULL);
INSERT INTO connector (id, type, name, resource_version, config, grant_types) VALUES
  ('api-mock', 'mockPassword', 'API Mock', '1', {mock_config}, {null});
INSERT INTO connector (id, type, name, resource_version, config, grant_types) VALUES
  ('corp-saml', 'saml', 'Corporate SAML', '1', {saml_config}, {null});
INSERT INTO refresh_token (id, client_id, scopes, nonce, claims_user_id, claims_username, claims_email,
  claims_email_verified, claims_groups, connector_id, connector_data, token, created_at, last_used,
  claims_preferred_username, obsolete_token) VALUES
  ({refresh_id}, 'dex-api-app', {scopes}, '', '{JANE_ID}', 'jane', 'jane@example.com', {yes}, {admins}, 'local',
   NULL, {refresh_secret}, {issued}, {issued}, 'jd', '');
INSERT INTO offline_session (user_id, conn_id, refresh, connector_data) VALUES
  ('{JANE_ID}', 'local', {refresh_map}, NULL);
INSERT INTO auth_code (id, client_id, scopes, nonce, redirect_uri, claims_user_id, claims_username, claims_email,
  claims_email_verified, claims_groups, connector_id, connector_data, expiry) VALUES
  ('code-1', 'dex-api-app', {scopes}, '', {redirect}, '{JANE_ID}', 'jane', 'jane@example.com', {yes}, {admins},
   'local', NULL, {code_expiry});
",
        keys = db.keys_table(),
        groups = db.groups_column(),
        verification = j(json!([{ "publicKey": public_half(&dex_old_key()), "expiry": rfc3339(now() + time::Duration::hours(1)) }])),
        signing = j(dex_signing_key()),
        signing_pub = j(public_half(&dex_signing_key())),
        next_rotation = t(now() + time::Duration::hours(3)),
        redirects = j(json!([REDIRECT])),
        empty = j(json!([])),
        null = db.bytes(b"null"),
        only_mock = j(json!(["api-mock"])),
        corrupt = db.bytes(b"[\"https://app.example/cb\""),
        no = b(false),
        yes = b(true),
        hash = db.bytes(JANE_HASH.as_bytes()),
        admins = j(json!(["admins"])),
        mock_config = j(json!({"username": "kilgore", "password": "secret"})),
        saml_config = j(json!({"ssoURL": "https://idp.example/sso"})),
        refresh_id = s(REFRESH_ID),
        scopes = j(json!(["openid", "email", "offline_access"])),
        refresh_secret = s(REFRESH_SECRET),
        issued = t(issued),
        refresh_map = j(refresh_map),
        redirect = s(REDIRECT),
        code_expiry = t(now() + time::Duration::minutes(5)),
    );
    db.execute(&sql).await;
}

/// An ID token as Dex signs them: RS256 with its key, `sub` its encoding of user and connector.
fn dex_id_token(issuer: &str) -> String {
    let key = PrivateKey::from_jwk(&dex_signing_key()).unwrap();
    let claims = json!({
        "iss": issuer,
        "sub": encode_subject(JANE_ID, "local"),
        "aud": "dex-api-app",
        "exp": (now() + time::Duration::hours(1)).unix_timestamp(),
        "iat": (now() - time::Duration::minutes(5)).unix_timestamp(),
        "at_hash": "abc",
        "c_hash": "def",
        "email": "jane@example.com",
        "email_verified": true,
        "groups": ["admins"],
        "name": "jane",
        "preferred_username": "jd",
    });
    key.sign_jwt(&claims).unwrap()
}

async fn bearer_userinfo(running: &Running, token: &str) -> (StatusCode, Value) {
    let response =
        reqwest::Client::new().get(format!("{}/dex/userinfo", running.base)).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every point of the swap on one dialect: tessera started on Dex's database imports on its own, and
/// what Dex issued keeps working.
async fn swap_keeps_everything(dialect: Dialect) {
    let Some(db) = DexDb::empty(dialect).await else { return };
    db.create_schema().await;
    seed(&db).await;
    let port = free_port();
    let clock = Arc::new(TestClock::new(now()));
    let running = start(config(&db, port, &Env::default()), clock.clone()).await;
    check_swap(&running, &clock).await;
    running.shutdown().await;
    db.drop().await;
}

/// Every point of the acceptance, on a server that started on Dex's state.
async fn check_swap(running: &Running, clock: &TestClock) {
    let storage = running.state.storage.clone();

    // The keys: Dex's signing key still signs, and both of its keys are published.
    let keys: Keys = storage.get_keys().await.unwrap();
    assert_eq!(keys.signing_key_pub.as_ref().unwrap()["kid"], dex_signing_key()["kid"]);
    assert_eq!(keys.next_rotation, now() + time::Duration::hours(3), "rotation stays when Dex planned it");
    let jwks: Value = reqwest::get(format!("{}/dex/keys", running.base)).await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [dex_signing_key()["kid"].as_str().unwrap(), dex_old_key()["kid"].as_str().unwrap()]);

    // An ID token Dex signed before the swap verifies against tessera's /keys and opens /userinfo.
    let issuer = running.state.config.issuer.clone();
    let dex_token = dex_id_token(&issuer);
    let claims = verify(running, &dex_token, "dex-api-app").await;
    assert_eq!(claims["sub"], encode_subject(JANE_ID, "local"));
    let (status, info) = bearer_userinfo(running, &dex_token).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["sub"], encode_subject(JANE_ID, "local"));
    assert_eq!(info["email"], "jane@example.com");

    // A refresh token in Dex's format is redeemed, rotated, and its offline session kept.
    let dex_refresh = encode_refresh_token(REFRESH_ID, REFRESH_SECRET);
    let form = [("grant_type", "refresh_token"), ("refresh_token", dex_refresh.as_str())];
    let (status, tokens) = redeem(running, &form, Some(("dex-api-app", "dex-secret"))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let rotated = tokens["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, dex_refresh, "rotated");
    let claims = verify(running, tokens["id_token"].as_str().unwrap(), "dex-api-app").await;
    assert_eq!(claims["sub"], encode_subject(JANE_ID, "local"), "the sub Dex gave");
    assert_eq!(
        tokens["id_token"].as_str().map(|t| jsonwebtoken::decode_header(t).unwrap().kid),
        Some(dex_signing_key()["kid"].as_str().map(str::to_owned)),
        "signed with Dex's key"
    );
    let session = storage.get_offline_sessions(JANE_ID, "local").await.unwrap();
    assert_eq!(session.refresh["dex-api-app"].id, REFRESH_ID, "the offline session still names the token");
    let (status, again) = redeem(running, &form, Some(("dex-api-app", "dex-secret"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the old secret is spent: {again}");
    let next = [("grant_type", "refresh_token"), ("refresh_token", rotated)];
    assert_eq!(redeem(running, &next, Some(("dex-api-app", "dex-secret"))).await.0, StatusCode::OK);

    // The password made through Dex's API, with the client made through it.
    let password = [
        ("grant_type", "password"),
        ("username", "jane@example.com"),
        ("password", "password"),
        ("scope", "openid email"),
    ];
    let (status, tokens) = redeem(running, &password, Some(("dex-api-app", "dex-secret"))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(running, tokens["id_token"].as_str().unwrap(), "dex-api-app").await;
    assert_eq!(claims["sub"], encode_subject(JANE_ID, "local"));

    // The connector made through Dex's API, through its login form, for the client limited to it.
    let browser = Browser::new("http://127.0.0.1:5555");
    let query = code_query("openid email").replace("client_id=example-app", "client_id=dex-mock-app");
    let form = browser.follow(browser.get(&auth_url(running, &query)).await).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let back = browser.submit(&form, &[("login", "kilgore"), ("password", "secret")], None).await;
    let code = params(back.location.as_deref().unwrap_or_else(|| panic!("{}", back.body)), false)["code"].clone();
    let exchange = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = redeem(running, &exchange, Some(("dex-mock-app", "mock-secret"))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(running, tokens["id_token"].as_str().unwrap(), "dex-mock-app").await;
    assert_eq!(claims["sub"], encode_subject("0-385-28089-0", "api-mock"));

    // Once Dex's rotation time comes, tessera rotates as usual and keeps publishing Dex's key.
    clock.advance(time::Duration::seconds(3 * 3600 + 1));
    assert_eq!(
        bearer_userinfo(running, &dex_token).await.0,
        StatusCode::FORBIDDEN,
        "Dex's token has expired (403, as Dex)"
    );
    running.state.signer.rotate_and_load().await.unwrap();
    let rotated: Keys = storage.get_keys().await.unwrap();
    assert_ne!(rotated.signing_key_pub.as_ref().unwrap()["kid"], dex_signing_key()["kid"], "a new key signs");
    assert!(rotated.verification_keys.iter().any(|k| k.public_key["kid"] == dex_signing_key()["kid"]));

    // What did not decode, or has no tessera counterpart, was left out; the rest is there.
    assert!(storage.get::<Client>("broken-app").await.is_err());
    assert!(storage.get::<Connector>("corp-saml").await.is_err());
    assert!(storage.get::<AuthCode>("code-1").await.is_err(), "short-lived objects are not imported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_sqlite_keeps_tokens_logins_and_subjects() {
    swap_keeps_everything(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_postgres_keeps_tokens_logins_and_subjects() {
    swap_keeps_everything(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_mariadb_keeps_tokens_logins_and_subjects() {
    swap_keeps_everything(Dialect::Mysql).await;
}

/// The report of an import into `storage` from the seeded Dex database.
async fn import_into(
    db: &DexDb,
    storage: &Storage,
    options: ImportOptions,
) -> tessera_server::dex_import::ImportReport {
    let settings = config(db, 1, &Env::default()).storage;
    let state = tessera_storage::dex::read(&settings).await.unwrap();
    import(storage, state, options, now()).await.unwrap()
}

pub fn counts(report: &tessera_server::dex_import::ImportReport, kind: &str) -> (usize, usize, usize, usize, usize) {
    let k = report.kinds.iter().find(|k| k.kind == kind).unwrap_or_else(|| panic!("no {kind}"));
    (k.found, k.imported, k.already_present, k.differs, k.skipped)
}

#[tokio::test]
async fn import_counts_skips_bad_rows_and_a_second_run_changes_nothing() {
    let Some(db) = DexDb::empty(Dialect::Sqlite).await else { return };
    db.create_schema().await;
    seed(&db).await;
    let storage = Storage::new(Arc::new(tessera_storage::memory::MemoryBackend::new()));

    // A dry run reports what it would do and writes nothing.
    let dry = import_into(&db, &storage, ImportOptions { dry_run: true, overwrite: false }).await;
    assert_eq!(counts(&dry, "clients"), (3, 2, 0, 0, 1));
    assert!(storage.list::<Client>().await.unwrap().is_empty());
    assert!(storage.get_keys().await.is_err());
    assert!(dry.lines()[0].starts_with("dry run: would import Dex's state from sqlite3 "), "{:?}", dry.lines());

    let first = import_into(&db, &storage, ImportOptions::default()).await;
    assert_eq!(counts(&first, "keys"), (1, 1, 0, 0, 0));
    assert_eq!(counts(&first, "clients"), (3, 2, 0, 0, 1));
    assert_eq!(counts(&first, "passwords"), (1, 1, 0, 0, 0));
    assert_eq!(counts(&first, "connectors"), (2, 1, 0, 0, 1));
    assert_eq!(counts(&first, "refresh tokens"), (1, 1, 0, 0, 0));
    assert_eq!(counts(&first, "offline sessions"), (1, 1, 0, 0, 0));
    assert_eq!(counts(&first, "auth codes").0, 1);
    // A Dex from before its session tables: nothing of them to read, nothing missing.
    assert_eq!(counts(&first, "user identities"), (0, 0, 0, 0, 0));
    assert_eq!(counts(&first, "browser sessions"), (0, 0, 0, 0, 0));
    assert_eq!(first.left_out(), 2);
    let lines = first.lines().join("\n");
    assert!(lines.contains("skipped client \"broken-app\": column redirect_uris: invalid JSON"), "{lines}");
    assert!(lines.contains("skipped connector \"corp-saml\": connector type \"saml\" is not implemented"), "{lines}");
    assert!(lines.contains("auth codes") && lines.contains("not imported (short-lived"), "{lines}");

    // Imported as Dex had them, under Dex's keys.
    let password: Password = storage.get_password("JANE@example.com").await.unwrap();
    assert_eq!((password.hash.as_str(), password.user_id.as_str()), (JANE_HASH, JANE_ID));
    assert_eq!((password.groups.clone(), password.email_verified), (vec!["admins".to_owned()], None));
    let token: RefreshToken = storage.get(REFRESH_ID).await.unwrap();
    assert_eq!((token.token.as_str(), token.claims.preferred_username.as_str()), (REFRESH_SECRET, "jd"));
    assert_eq!(token.created_at, now() - time::Duration::hours(1));
    let client: Client = storage.get("dex-mock-app").await.unwrap();
    assert_eq!(
        (client.allowed_connectors.clone(), client.sso_shared_with.clone()),
        (vec!["api-mock".to_owned()], None)
    );
    let sessions: OfflineSessions = storage.get_offline_sessions(JANE_ID, "local").await.unwrap();
    assert_eq!(sessions.refresh["dex-api-app"].last_used, now() - time::Duration::hours(1));

    // A second run writes nothing: everything is already present.
    let before = storage.get_versioned::<RefreshToken>(REFRESH_ID).await.unwrap();
    let second = import_into(&db, &storage, ImportOptions::default()).await;
    assert_eq!(second.imported(), 0, "{:?}", second.lines());
    assert_eq!(counts(&second, "clients"), (3, 0, 2, 0, 1));
    assert_eq!(counts(&second, "keys"), (1, 0, 1, 0, 0));
    let after = storage.get_versioned::<RefreshToken>(REFRESH_ID).await.unwrap();
    assert_eq!(format!("{before:?}"), format!("{after:?}"), "not even the version moved");

    // An object tessera changed since is kept unless overwriting is asked for.
    storage
        .update::<Client, _, tessera_storage::StorageError>("dex-api-app", |mut c| {
            c.name = "Renamed in tessera".into();
            Ok(c)
        })
        .await
        .unwrap();
    let kept = import_into(&db, &storage, ImportOptions::default()).await;
    assert_eq!(counts(&kept, "clients"), (3, 0, 1, 1, 1));
    assert!(kept.lines().join("\n").contains("kept tessera's clients \"dex-api-app\""));
    assert_eq!(storage.get::<Client>("dex-api-app").await.unwrap().name, "Renamed in tessera");
    let replaced = import_into(&db, &storage, ImportOptions { dry_run: false, overwrite: true }).await;
    assert_eq!(counts(&replaced, "clients"), (3, 1, 1, 0, 1));
    assert_eq!(storage.get::<Client>("dex-api-app").await.unwrap().name, "Dex API App");
    db.drop().await;
}

#[tokio::test]
async fn an_unknown_schema_version_is_refused_and_nothing_imported() {
    let Some(db) = DexDb::empty(Dialect::Sqlite).await else { return };
    db.create_schema().await;
    seed(&db).await;
    db.set_migrations(31).await;
    let settings = config(&db, 1, &Env::default()).storage;
    let err = tessera_storage::dex::read(&settings).await.unwrap_err();
    assert!(matches!(err, DexReadError::UnknownSchema { found: 31, min: 11, max: 23, .. }), "{err}");
    assert!(
        err.to_string().contains("at version 31, which tessera cannot read (it reads versions 11 to 23 on sqlite3")
    );
    // serve refuses too, naming the way to start without the import; the storage keeps no keys.
    let port = free_port();
    let failed = try_start(config(&db, port, &Env::default()), Arc::new(TestClock::new(now()))).await.err().unwrap();
    assert!(failed.contains("version 31") && failed.contains("TESSERA_IMPORT_DEX=false"), "{failed}");
    let off = Env::from_pairs([("TESSERA_IMPORT_DEX", "false")]);
    let running = start(config(&db, port, &off), Arc::new(TestClock::new(now()))).await;
    let keys = running.state.storage.get_keys().await.unwrap();
    assert_ne!(keys.signing_key_pub.unwrap()["kid"], dex_signing_key()["kid"], "started fresh, without Dex's keys");
    running.shutdown().await;
    db.drop().await;
}

#[tokio::test]
async fn a_database_without_dex_tables_starts_fresh() {
    let Some(db) = DexDb::empty(Dialect::Sqlite).await else { return };
    let port = free_port();
    let running = start(config(&db, port, &Env::default()), Arc::new(TestClock::new(now()))).await;
    assert!(running.state.storage.get_keys().await.is_ok());
    running.shutdown().await;
    let settings = config(&db, 1, &Env::default()).storage;
    assert!(matches!(tessera_storage::dex::read(&settings).await, Err(DexReadError::NoDexTables { .. })));
    // Another program's `migrations` table, even one with a `num` column, is not Dex's.
    db.execute("CREATE TABLE migrations (num integer not null, at timestamp not null);\nINSERT INTO migrations VALUES (99, '2026-01-01 00:00:00');\n").await;
    assert!(matches!(tessera_storage::dex::read(&settings).await, Err(DexReadError::NoDexTables { .. })));
    db.drop().await;
}

/// Replicas starting together on Dex's database each run the import: every object is written once,
/// and none of them makes a key over Dex's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_import_once_and_keep_dexs_key() {
    let Some(db) = DexDb::empty(Dialect::Postgres).await else { return };
    db.create_schema().await;
    seed(&db).await;
    let clock = Arc::new(TestClock::new(now()));
    let mut starting = Vec::new();
    for _ in 0..3 {
        let config = config(&db, free_port(), &Env::default());
        let clock = clock.clone();
        starting.push(tokio::spawn(async move { start(config, clock).await }));
    }
    let mut replicas = Vec::new();
    for replica in starting {
        replicas.push(replica.await.unwrap());
    }
    for replica in &replicas {
        let keys = replica.state.storage.get_keys().await.unwrap();
        assert_eq!(keys.signing_key_pub.unwrap()["kid"], dex_signing_key()["kid"]);
    }
    let storage = &replicas[0].state.storage;
    let stored: Vec<Client> = storage.list().await.unwrap();
    assert_eq!(stored.iter().filter(|c| c.id.starts_with("dex-")).count(), 2);
    let token = storage.get_versioned::<RefreshToken>(REFRESH_ID).await.unwrap();
    assert!(format!("{token:?}").contains("version: 1"), "written once: {token:?}");
    for replica in replicas {
        replica.shutdown().await;
    }
    db.drop().await;
}

/// The etcd a test script started, or `None` (loudly); a failure under CI.
pub fn etcd_url() -> Option<String> {
    match std::env::var("TESSERA_TEST_ETCD_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but TESSERA_TEST_ETCD_URL is not"),
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_ETCD_URL is not set; the etcd swap test did not run");
            None
        }
    }
}

/// Writes one key through etcd's JSON gateway.
pub async fn etcd_put(url: &str, key: &str, value: &[u8]) {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let body = json!({ "key": b64(key.as_bytes()), "value": b64(value) });
    let response = reqwest::Client::new().post(format!("{url}/v3/kv/put")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
}

/// The same state as `seed`, as Dex's etcd storage keeps it: its key prefixes, Dex's storage types for
/// clients, passwords and connectors (a hash and a connector config in base64, the config under `email`),
/// its etcd types for the rest.
async fn seed_etcd(url: &str, namespace: &str) {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let issued = rfc3339(now() - time::Duration::hours(1));
    let claims = json!({
        "userID": JANE_ID, "username": "jane", "preferredUsername": "jd", "email": "jane@example.com",
        "emailVerified": true, "groups": ["admins"]
    });
    let client = |id: &str, secret: &str, name: &str, allowed: Value| {
        json!({
            "id": id, "idEnv": "", "secret": secret, "secretEnv": "", "redirectURIs": [REDIRECT],
            "postLogoutRedirectURIs": null, "backchannelLogoutURI": "", "refreshTokenLifetime": "",
            "trustedPeers": null, "public": false, "name": name, "logoURL": "", "allowedConnectors": allowed,
            "mfaChain": null, "ssoSharedWith": null
        })
    };
    let values: Vec<(String, Vec<u8>)> = vec![
        ("openid-connect-keys".into(), json!({
            "signing_key": dex_signing_key(),
            "signing_key_pub": public_half(&dex_signing_key()),
            "verification_keys": [{ "publicKey": public_half(&dex_old_key()), "expiry": rfc3339(now() + time::Duration::hours(1)) }],
            "next_rotation": rfc3339(now() + time::Duration::hours(3)),
        }).to_string().into_bytes()),
        ("client/dex-api-app".into(), client("dex-api-app", "dex-secret", "Dex API App", Value::Null).to_string().into_bytes()),
        ("client/dex-mock-app".into(), client("dex-mock-app", "mock-secret", "Dex Mock App", json!(["api-mock"])).to_string().into_bytes()),
        ("client/broken-app".into(), br#"{"id": "broken-app", "redirectURIs": "#.to_vec()),
        ("password/jane@example.com".into(), json!({
            "email": "jane@example.com", "hash": b64(JANE_HASH.as_bytes()), "hashFromEnv": "", "username": "jane",
            "name": "Jane Doe", "preferredUsername": "jd", "userID": JANE_ID, "groups": ["admins"]
        }).to_string().into_bytes()),
        ("connector/api-mock".into(), json!({
            "id": "api-mock", "type": "mockPassword", "name": "API Mock", "resourceVersion": "1",
            "email": b64(br#"{"username":"kilgore","password":"secret"}"#)
        }).to_string().into_bytes()),
        ("connector/corp-saml".into(), json!({
            "id": "corp-saml", "type": "saml", "name": "Corporate SAML", "resourceVersion": "1",
            "email": b64(br#"{"ssoURL":"https://idp.example/sso"}"#)
        }).to_string().into_bytes()),
        (format!("refresh_token/{REFRESH_ID}"), json!({
            "id": REFRESH_ID, "token": REFRESH_SECRET, "obsolete_token": "", "created_at": issued, "last_used": issued,
            "client_id": "dex-api-app", "connector_id": "local", "connector_data": null, "claims": claims,
            "scopes": ["openid", "email", "offline_access"], "nonce": ""
        }).to_string().into_bytes()),
        (format!("offline_session/{}|local", JANE_ID.to_lowercase()), json!({
            "user_id": JANE_ID, "conn_id": "local",
            "refresh": { "dex-api-app": { "ID": REFRESH_ID, "ClientID": "dex-api-app", "CreatedAt": issued, "LastUsed": issued, "SessionID": "" } }
        }).to_string().into_bytes()),
        ("auth_code/code-1".into(), json!({
            "ID": "code-1", "clientID": "dex-api-app", "redirectURI": REDIRECT, "scopes": ["openid"],
            "connectorID": "local", "claims": claims, "expiry": rfc3339(now() + time::Duration::minutes(5)),
            "auth_time": "0001-01-01T00:00:00Z"
        }).to_string().into_bytes()),
    ];
    for (key, value) in values {
        etcd_put(url, &format!("{namespace}{key}"), &value).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_on_etcd_keeps_tokens_logins_and_subjects() {
    let Some(url) = etcd_url() else { return };
    let namespace = format!("dex-{}/", tessera_core::id::new_id());
    seed_etcd(&url, &namespace).await;
    let storage_yaml = format!("  type: etcd\n  config:\n    endpoints: [{url}]\n    namespace: {namespace}\n");
    let clock = Arc::new(TestClock::new(now()));
    let running = start(config_for(&storage_yaml, free_port(), &Env::default()), clock.clone()).await;
    check_swap(&running, &clock).await;
    running.shutdown().await;
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut end = namespace.clone().into_bytes();
    *end.last_mut().unwrap() += 1;
    let body = json!({ "key": b64(namespace.as_bytes()), "range_end": b64(&end) });
    reqwest::Client::new().post(format!("{url}/v3/kv/deleterange")).json(&body).send().await.unwrap();
}

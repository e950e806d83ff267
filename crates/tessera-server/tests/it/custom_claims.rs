//! Custom claims end to end against a real PostgreSQL: the seed's multi-tenant example through the
//! login pages (ID token, access token, `/userinfo`, introspection), fresh claims at refresh, the
//! chain's order and destinations, and a claims database that goes away and comes back.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use tessera_server::config::Env;

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, code_query, redeem, redeem_code, server_with_env, verify};
use crate::serve::{Running, postgres_url};

pub const ADMIN_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
pub const SEED_QUERY: &str = "SELECT role, org, plan FROM users WHERE user_id = $1 AND email = $2 LIMIT 1";

/// A fresh database holding the seed's `users` table, with a row for the password database's admin.
pub struct ClaimsDb {
    pub admin: PgConnectOptions,
    pub name: String,
    pub uri: String,
    pub conn: PgConnection,
}

impl ClaimsDb {
    pub async fn new() -> Option<Self> {
        let url = postgres_url()?;
        let admin: PgConnectOptions = url.parse().unwrap();
        let name = format!("claims_e2e_{}", tessera_core::id::new_id());
        let mut control = admin.connect().await.unwrap();
        control.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        control.close().await.unwrap();
        let mut conn = admin.clone().database(&name).connect().await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE users (user_id text PRIMARY KEY, email text NOT NULL, role text, org text, plan text);
             INSERT INTO users VALUES ('{ADMIN_ID}', 'admin@example.com', 'owner', 'acme', 'enterprise');"
        )))
        .await
        .unwrap();
        let uri = format!("{}/{name}?sslmode=disable", url.rsplit_once('/').unwrap().0);
        Some(Self { admin, name, uri, conn })
    }

    pub fn env(&self, query: &str, args: &str, static_claims: Option<&str>) -> Env {
        let mut pairs = vec![
            ("DEX_CUSTOM_CLAIMS_POSTGRES_URI", self.uri.as_str()),
            ("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY", query),
            ("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS", args),
        ];
        if let Some(claims) = static_claims {
            pairs.push(("DEX_CUSTOM_CLAIMS_STATIC", claims));
        }
        Env::from_pairs(pairs)
    }

    pub async fn set_available(&self, available: bool) {
        let mut control = self.admin.connect().await.unwrap();
        control
            .execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {} ALLOW_CONNECTIONS {available}", self.name)))
            .await
            .unwrap();
        if !available {
            control
                .execute(sqlx::AssertSqlSafe(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    self.name
                )))
                .await
                .unwrap();
        }
    }
}

/// The admin logs in through the password form (consent skipped) and the app gets a code.
pub async fn admin_code(running: &Running, scope: &str) -> String {
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/local?{}", running.base, code_query(scope));
    let form = browser.follow(browser.get(&url).await).await;
    let back = browser.submit(&form, &[("login", "admin@example.com"), ("password", "password")], None).await;
    params(back.location.as_ref().expect("back at the app"), false)["code"].clone()
}

pub const SKIP_CONSENT: &str = "oauth2:\n  skipApprovalScreen: true\n";

#[tokio::test]
async fn the_seed_example_end_to_end() {
    let Some(db) = ClaimsDb::new().await else { return };
    let env = db.env(SEED_QUERY, r#"["{{.UserID}}","{{.Email}}"]"#, Some(r#"{"policy": {"pgrole": "authn"}}"#));
    let (running, _) = server_with_env(SKIP_CONSENT, "", "", &env).await.unwrap();
    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid email offline_access").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let expected = json!({"role": "owner", "org": "acme", "plan": "enterprise", "policy": {"pgrole": "authn"}});
    for token in ["id_token", "access_token"] {
        let claims = verify(&running, tokens[token].as_str().unwrap(), "example-app").await;
        for (name, value) in expected.as_object().unwrap() {
            assert_eq!(&claims[name], value, "{token} carries {name}");
        }
        assert_eq!(claims["email"], "admin@example.com", "standard claims stay");
    }
    let userinfo: Value = reqwest::Client::new()
        .get(format!("{}/dex/userinfo", running.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (userinfo["role"].clone(), userinfo["org"].clone(), userinfo["plan"].clone()),
        (json!("owner"), json!("acme"), json!("enterprise"))
    );
    let introspection: Value = reqwest::Client::new()
        .post(format!("{}/dex/token/introspect", running.base))
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspection["ext"]["plan"], "enterprise");

    // A changed row shows up at the next refresh.
    db.conn.close().await.unwrap();
    let mut conn = db.admin.clone().database(&db.name).connect().await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET plan = 'free', role = NULL WHERE user_id = '{ADMIN_ID}'"
    )))
    .await
    .unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let claims = verify(&running, refreshed["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["plan"], "free");
    assert!(claims.get("role").is_none(), "a NULL column leaves the claim out");
    running.shutdown().await;
}

#[tokio::test]
async fn chain_order_destinations_and_allowed_overrides() {
    let Some(db) = ClaimsDb::new().await else { return };
    let config = format!(
        "{SKIP_CONSENT}customClaims:\n  enrichers:\n  - name: defaults\n    type: static\n    claims:\n      plan: trial\n      tier: {{level: 1, features: [sso]}}\n  - name: internal\n    type: static\n    destinations: [accessToken]\n    claims:\n      billing_id: b-42\n  - name: directory\n    type: postgres\n    uri: {}\n    query: SELECT 'Admin@Example.COM' AS email FROM users WHERE user_id = $1\n    args: ['{{{{.UserID}}}}']\n    allowOverride: [email]\n",
        db.uri
    );
    let env = db.env(SEED_QUERY, r#"["{{.UserID}}","{{.Email}}"]"#, None);
    let (running, _) = server_with_env(&config, "", "", &env).await.unwrap();
    let (_, tokens) = redeem_code(&running, &admin_code(&running, "openid email").await).await;
    let id = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    let access = verify(&running, tokens["access_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(id["plan"], "enterprise", "the environment's Postgres enricher runs last and wins");
    assert_eq!(id["tier"], json!({"level": 1, "features": ["sso"]}), "nested static JSON");
    assert!(id.get("billing_id").is_none(), "limited to the access token");
    assert_eq!(access["billing_id"], "b-42");
    assert_eq!(id["email"], "Admin@Example.COM", "an identity claim replaced where the operator allowed it");
    assert_eq!(id["sub"], tessera_core::subject::encode_subject(ADMIN_ID, "local"), "sub is untouchable");
    running.shutdown().await;
}

#[tokio::test]
async fn a_reserved_column_stops_start_up() {
    let Some(db) = ClaimsDb::new().await else { return };
    let env = db.env("SELECT 'admin' AS sub, org FROM users WHERE user_id = $1", r#"["{{.UserID}}"]"#, None);
    let err = server_with_env(SKIP_CONSENT, "", "", &env).await.err().expect("refused");
    assert_eq!(
        err,
        "custom claims enricher \"env-postgres\": DEX_CUSTOM_CLAIMS_POSTGRES_QUERY: column \"sub\": claim \"sub\" is reserved and can never be set by custom claims"
    );
}

#[tokio::test]
async fn errors_of_the_forks_variables_name_the_variable() {
    let Some(db) = ClaimsDb::new().await else { return };
    let env = db.env("SELECT org FROM users WHERE user_id = $1 AND email = $2", r#"["{{.UserID}}"]"#, None);
    let err = server_with_env(SKIP_CONSENT, "", "", &env).await.err().expect("refused");
    assert_eq!(
        err,
        "custom claims enricher \"env-postgres\": DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS: the query has 2 parameter(s) but 1 argument template(s) are given"
    );
    let env = db.env("SELECT nope FROM users WHERE user_id = $1", r#"["{{.UserID}}"]"#, None);
    let err = server_with_env(SKIP_CONSENT, "", "", &env).await.err().expect("refused");
    assert!(
        err.starts_with(
            "custom claims enricher \"env-postgres\": DEX_CUSTOM_CLAIMS_POSTGRES_QUERY: the query does not prepare: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_claims_database_outage_blocks_tokens_and_loses_nothing() {
    let Some(db) = ClaimsDb::new().await else { return };
    let env = db.env(SEED_QUERY, r#"["{{.UserID}}","{{.Email}}"]"#, None);
    let config = format!("{SKIP_CONSENT}  responseTypes: [code, id_token, token]\n");
    let (running, _) = server_with_env(&config, "", "", &env).await.unwrap();
    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid email offline_access").await).await;
    assert_eq!(status, StatusCode::OK);
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let code = admin_code(&running, "openid email").await;

    db.set_available(false).await;
    let (status, error) = redeem_code(&running, &code).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error")));
    assert!(error.get("error_description").is_none(), "nothing about the database leaks to the client");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
    let (status, error) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error")));
    // In the browser flow the app is told by a redirect.
    let browser = Browser::new(APP);
    let implicit = code_query("openid").replace("response_type=code", "response_type=id_token+token");
    let back = browser.follow(browser.get(&format!("{}/dex/auth/mock?{implicit}", running.base)).await).await;
    let error = params(back.location.as_ref().expect("back at the app"), false);
    assert_eq!((error["error"].as_str(), error["state"].as_str()), ("server_error", "st-123"));
    let health = reqwest::get(format!("{}/dex/healthz", running.base)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server itself keeps serving");

    db.set_available(true).await;
    let (status, tokens) = redeem_code(&running, &code).await;
    assert_eq!(status, StatusCode::OK, "the code survived the outage: {tokens}");
    let (status, refreshed) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "the refresh token survived the outage: {refreshed}");
    let claims = verify(&running, refreshed["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["org"], "acme");
    running.shutdown().await;
}

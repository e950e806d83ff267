//! Logging in through a real directory (slapd from scripts/test.sh) with the browser pages, and custom
//! claims keyed on the user's email giving the LDAP user the same claims as the password database's.

use std::sync::Arc;

use reqwest::StatusCode;
use sqlx::{ConnectOptions, Connection, Executor};
use tessera_core::clock::TestClock;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, code_query, redeem_code, verify};
use crate::serve::{Running, postgres_url, try_start};

fn directory() -> Option<String> {
    match std::env::var("TESSERA_TEST_LDAP_URL") {
        Ok(url) => Some(url.trim_start_matches("ldap://").to_owned()),
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but TESSERA_TEST_LDAP_URL is not"),
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_LDAP_URL is not set; the LDAP login test did not run");
            None
        }
    }
}

async fn server(ldap_host: &str, env: &Env) -> Running {
    let port = crate::serve::free_port();
    let text = format!(
        r#"issuer: http://127.0.0.1:{port}/dex
storage:
  type: memory
web:
  http: 127.0.0.1:{port}
oauth2:
  skipApprovalScreen: true
enablePasswordDB: true
staticPasswords:
- email: jane@example.org
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  username: jane
  userID: jane-local
connectors:
- type: ldap
  id: ldap
  name: Corporate LDAP
  config:
    host: {ldap_host}
    insecureNoSSL: true
    userSearch:
      baseDN: ou=people,dc=example,dc=org
      username: uid
      idAttr: uid
      emailAttr: mail
      nameAttr: cn
    groupSearch:
      baseDN: ou=groups,dc=example,dc=org
      userMatchers:
      - userAttr: DN
        groupAttr: member
      nameAttr: cn
staticClients:
- id: example-app
  secret: {APP_SECRET}
  name: Example App
  redirectURIs: ['http://127.0.0.1:5555/callback']
"#
    );
    let config = parse(&text, "ldap.yaml", env).unwrap().config;
    try_start(config, Arc::new(TestClock::at_test_epoch())).await.unwrap()
}

async fn login(running: &Running, connector: &str, username: &str, password: &str) -> crate::browser::Landing {
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/{connector}?{}", running.base, code_query("openid email groups"));
    let form = browser.follow(browser.get(&url).await).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    browser.submit(&form, &[("login", username), ("password", password)], None).await
}

#[tokio::test]
async fn ldap_users_log_in_through_the_pages_with_the_same_custom_claims() {
    let Some(host) = directory() else { return };
    let Some(url) = postgres_url() else { return };
    let admin: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let name = format!("ldap_claims_{}", tessera_core::id::new_id());
    let mut control = admin.connect().await.unwrap();
    control.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let mut db = admin.clone().database(&name).connect().await.unwrap();
    db.execute(
        "CREATE TABLE members (email text PRIMARY KEY, org text, role text);
                INSERT INTO members VALUES ('jane@example.org', 'acme', 'owner');",
    )
    .await
    .unwrap();
    let uri = format!("{}/{name}?sslmode=disable", url.rsplit_once('/').unwrap().0);
    let env = Env::from_pairs([
        ("DEX_CUSTOM_CLAIMS_POSTGRES_URI", uri.as_str()),
        ("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY", "SELECT org, role FROM members WHERE email = $1"),
        ("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS", r#"["{{.Email}}"]"#),
    ]);
    let running = server(&host, &env).await;

    let refused = login(&running, "ldap", "jane", "wrong").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("Invalid Username and password."));

    let mut seen = Vec::new();
    for (connector, username, password) in [("ldap", "jane", "foo"), ("local", "jane@example.org", "password")] {
        let back = login(&running, connector, username, password).await;
        let (status, tokens) = redeem_code(&running, &params(back.location.as_ref().unwrap(), false)["code"]).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
        assert_eq!((claims["org"].as_str(), claims["role"].as_str()), (Some("acme"), Some("owner")), "{connector}");
        seen.push(claims);
    }
    assert_eq!(seen[0]["groups"], serde_json::json!(["admins", "developers"]), "groups from the directory");
    assert_ne!(seen[0]["sub"], seen[1]["sub"], "different connectors, different subjects; the same context");
    running.shutdown().await;
    db.close().await.unwrap();
    control.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
}

#[tokio::test]
async fn a_directory_that_is_down_shows_an_error_page() {
    let running = server("127.0.0.1:1", &Env::default()).await;
    let started = std::time::Instant::now();
    let page = login(&running, "ldap", "jane", "foo").await;
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(page.body.contains("Internal server error."));
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "no hang: {:?}", started.elapsed());
    running.shutdown().await;
}

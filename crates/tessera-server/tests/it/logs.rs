//! What the log never says: a whole login, token, refresh, userinfo and custom-claims flow run with
//! the log at `debug`, and every secret it handled searched for in every line the server wrote.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::clock::TestClock;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, params};
use crate::log_capture::{capture_logs, captured_lines};
use crate::login::urlencode;
use crate::serve::{postgres_url, start};

const APP: &str = "http://127.0.0.1:5555";
const REDIRECT: &str = "http://127.0.0.1:5555/callback";
const PASSWORD: &str = "Tr0ub4dor-kept-out-of-logs";
const PASSWORD_HASH: &str = "$2b$10$f7A/Ht88HEi5h.LfjUgV4Ow2p4cRdBeaCJl9sey5HL.xuoUdUZ5nq";
const WRONG_PASSWORD: &str = "wrong-guess-5d1e7c";
const CLIENT_SECRET: &str = "client-secret-9b7f0c21";
const STATIC_CLAIM: &str = "static-claim-value-3f9a";
const USER_ID: &str = "6b0c3f5e-7a51-4f5e-9a4c-0d7f0f3a9e11";
/// What the database enricher returns: computed in the database from the user ID, so the value is in
/// a row and nowhere in the configuration (the SQL text, logged by sqlx at debug, is not a secret).
fn database_claim() -> String {
    USER_ID.chars().rev().collect()
}

fn config(postgres: Option<&str>) -> tessera_server::config::Config {
    let database_enricher = postgres.map_or_else(String::new, |uri| {
        format!(
            "  - name: directory\n    type: postgres\n    uri: {uri}\n    query: SELECT reverse($1) AS team\n    args: ['{{{{.UserID}}}}']\n"
        )
    });
    let text = format!(
        r#"issuer: http://127.0.0.1:5556/dex
storage:
  type: memory
web:
  http: 127.0.0.1:0
logger:
  level: debug
  format: json
oauth2:
  skipApprovalScreen: true
  passwordConnector: local
enablePasswordDB: true
staticPasswords:
- email: jane@example.com
  hash: "{PASSWORD_HASH}"
  username: jane
  userID: {USER_ID}
staticClients:
- id: app
  secret: {CLIENT_SECRET}
  name: App
  redirectURIs: ['{REDIRECT}']
customClaims:
  enrichers:
  - name: defaults
    type: static
    claims:
      plan: {STATIC_CLAIM}
{database_enricher}"#
    );
    parse(&text, "logs.yaml", &Env::default()).unwrap().config
}

/// The client's side of the flow, on its own thread so that only the server's lines are captured;
/// returns every secret value the flow saw.
async fn client_flow(base: String) -> Vec<String> {
    let auth = format!(
        "{base}/dex/auth/local?client_id=app&redirect_uri={}&response_type=code&scope={}&state=st&nonce=n",
        urlencode(REDIRECT),
        urlencode("openid email offline_access")
    );
    // A wrong password first, then the right one.
    let browser = Browser::new(APP);
    let form = browser.follow(browser.get(&auth).await).await;
    let refused = browser.submit(&form, &[("login", "jane@example.com"), ("password", WRONG_PASSWORD)], None).await;
    assert!(refused.location.is_none(), "a wrong password does not log in");
    let form = browser.follow(browser.get(&auth).await).await;
    let back = browser.submit(&form, &[("login", "jane@example.com"), ("password", PASSWORD)], None).await;
    let code = params(back.location.as_ref().expect("back at the app"), false)["code"].clone();

    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let request = http.post(format!("{base}/dex/token")).basic_auth("app", Some(CLIENT_SECRET)).form(&form);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let issued = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", REDIRECT.into()),
    ])
    .await;
    let refreshed = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", issued["refresh_token"].as_str().unwrap().into()),
    ])
    .await;
    let by_password = token(vec![
        ("grant_type", "password".into()),
        ("username", "jane@example.com".into()),
        ("password", PASSWORD.into()),
        ("scope", "openid".into()),
    ])
    .await;
    let userinfo = http
        .get(format!("{base}/dex/userinfo"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK);

    let id_token = issued["id_token"].as_str().unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id_token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["plan"], STATIC_CLAIM, "the custom-claims chain ran");
    if postgres_url().is_some() {
        assert_eq!(claims["team"], database_claim(), "the database enricher ran");
    }

    let mut secrets = vec![code];
    for response in [&issued, &refreshed, &by_password] {
        for name in ["access_token", "id_token", "refresh_token"] {
            if let Some(value) = response[name].as_str() {
                secrets.push(value.to_owned());
                // A JWT's payload and signature are secrets on their own too.
                secrets.extend(value.split('.').skip(1).map(str::to_owned));
            }
        }
    }
    secrets
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_debug() {
    let postgres = postgres_url();
    let running = start(config(postgres.as_deref()), Arc::new(TestClock::at_test_epoch())).await;
    capture_logs(tracing::Level::DEBUG);

    let base = running.base.clone();
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(client_flow(base))
    });
    // Wait for the client off this thread, which keeps serving it.
    let mut secrets = tokio::task::spawn_blocking(move || client.join().unwrap()).await.unwrap();
    let lines = captured_lines();
    running.shutdown().await;

    secrets.extend([PASSWORD, PASSWORD_HASH, WRONG_PASSWORD, CLIENT_SECRET, STATIC_CLAIM].map(str::to_owned));
    if postgres.is_some() {
        secrets.push(database_claim());
    }
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    // The capture saw the flow: the access lines, the failed and the successful login.
    let has = |needle: &str| text.iter().any(|line| line.contains(needle));
    assert!(has(r#""msg":"request served""#) && has(r#""route":"/dex/token""#), "{text:#?}");
    assert!(has(r#""msg":"failed login attempt""#), "{text:#?}");
    assert!(has(r#""msg":"login successful""#) && has(r#""email":"jane@example.com""#), "{text:#?}");
    for secret in &secrets {
        for line in &text {
            assert!(!line.contains(secret.as_str()), "a secret ({secret}) in the log: {line}");
        }
    }
}

/// The client address each request's lines carry, with `X-Forwarded-For: 198.51.100.7, 203.0.113.9`
/// sent from 127.0.0.1 to a server trusting `trusted_proxies`.
async fn logged_client_address(trusted_proxies: &str) -> String {
    let web = format!("  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: {trusted_proxies}\n");
    let text = format!(
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\n{web}enablePasswordDB: true\n"
    );
    let config = parse(&text, "client-ip.yaml", &Env::default()).unwrap().config;
    let running = start(config, Arc::new(TestClock::at_test_epoch())).await;
    capture_logs(tracing::Level::DEBUG);
    let response = reqwest::Client::new()
        .get(format!("{}/dex/keys", running.base))
        .header("X-Forwarded-For", "198.51.100.7, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let lines = captured_lines();
    running.shutdown().await;
    let served = lines
        .iter()
        .find(|line| line["msg"] == "request served")
        .unwrap_or_else(|| panic!("the access line: {lines:?}"));
    assert_eq!(served["route"], "/dex/keys");
    served["client_remote_addr"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_forwarded_client_address_is_believed_only_from_a_trusted_proxy() {
    // From a trusted proxy: the rightmost untrusted hop (the left one could be forged by the client).
    assert_eq!(logged_client_address("[127.0.0.0/8]").await, "203.0.113.9");
    // From a peer that is not a trusted proxy: its own address, whatever it sends.
    assert_eq!(logged_client_address("[10.0.0.0/8]").await, "127.0.0.1");
}

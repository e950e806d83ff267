//! The `oidc` connector against a real upstream: a second tessera instance on loopback. A browser logs
//! in at the downstream through the upstream's pages; refresh goes to the upstream; an upstream ID
//! token is exchanged; forged tokens and unknown states are refused.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::clock::SystemClock;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, REDIRECT, code_query, redeem, redeem_code, verify};
use crate::serve::{Running, free_port, try_start};

const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

/// The upstream (`/up`) and the downstream (`/dex`, connector `upstream`), both real servers.
async fn pair() -> (Running, Running) {
    let (up, down) = (free_port(), free_port());
    let upstream = format!(
        r#"issuer: http://127.0.0.1:{up}/up
storage:
  type: memory
web:
  http: 127.0.0.1:{up}
oauth2:
  skipApprovalScreen: true
  passwordConnector: local
  grantTypes: [authorization_code, refresh_token, password]
enablePasswordDB: true
staticPasswords:
- email: ann@up.example
  hash: "{HASH}"
  username: ann
  name: Ann Upstream
  userID: ann-1
  groups: [admins, devs]
staticClients:
- id: tessera-down
  secret: down-secret
  name: Downstream tessera
  redirectURIs: ['http://127.0.0.1:{down}/dex/callback']
"#
    );
    let upstream = parse(&upstream, "upstream.yaml", &Env::default()).unwrap().config;
    let Some(upstream) = started(try_start(upstream, Arc::new(SystemClock)).await) else {
        return Box::pin(pair()).await;
    };
    let downstream = format!(
        r#"issuer: http://127.0.0.1:{down}/dex
storage:
  type: memory
web:
  http: 127.0.0.1:{down}
oauth2:
  skipApprovalScreen: true
  grantTypes: [authorization_code, refresh_token, 'urn:ietf:params:oauth:grant-type:token-exchange']
connectors:
- type: oidc
  id: upstream
  name: Upstream IdP
  config:
    issuer: http://127.0.0.1:{up}/up
    clientID: tessera-down
    clientSecret: down-secret
    redirectURI: http://127.0.0.1:{down}/dex/callback
    scopes: [profile, email, groups]
    insecureEnableGroups: true
    getUserInfo: true
    promptType: ""
staticClients:
- id: example-app
  secret: {APP_SECRET}
  name: Example App
  redirectURIs: ['http://127.0.0.1:5555/callback']
"#
    );
    let downstream = parse(&downstream, "downstream.yaml", &Env::default()).unwrap().config;
    let Some(downstream) = started(try_start(downstream, Arc::new(SystemClock)).await) else {
        upstream.shutdown().await;
        return Box::pin(pair()).await;
    };
    (upstream, downstream)
}

/// The server, or `None` when a parallel test took its free port between the probe and the bind.
fn started(result: Result<Running, String>) -> Option<Running> {
    match result {
        Ok(running) => Some(running),
        Err(err) if err.contains("cannot listen on") => None,
        Err(err) => panic!("{err}"),
    }
}

#[tokio::test]
async fn login_through_an_upstream_openid_provider() {
    let (upstream, downstream) = pair().await;
    let browser = Browser::new(APP);
    // One connector: straight to the upstream, whose only connector is its password form.
    let url = format!("{}/dex/auth?{}", downstream.base, code_query("openid email profile groups offline_access"));
    let form = browser.follow(browser.get(&url).await).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.url.starts_with(&upstream.base), "the upstream's own page: {}", form.url);
    let back = browser.submit(&form, &[("login", "ann@up.example"), ("password", "password")], None).await;
    let location = back.location.expect("back at the app");
    let query = params(&location, false);
    assert_eq!(query["state"], "st-123");

    let (status, tokens) = redeem_code(&downstream, &query["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&downstream, tokens["id_token"].as_str().unwrap(), "example-app").await;
    let upstream_sub = tessera_core::subject::encode_subject("ann-1", "local");
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject(&upstream_sub, "upstream"));
    assert_eq!(claims["email"], "ann@up.example");
    assert_eq!(claims["name"], "Ann Upstream");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "devs"]));

    // Refresh goes through the upstream's refresh token.
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = redeem(&downstream, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let claims = verify(&downstream, refreshed["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["email"], "ann@up.example");

    // A made-up state at the callback is refused with a page.
    let bogus = browser.get(&format!("{}/dex/callback?state=nope&code=x", downstream.base)).await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);
    downstream.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn upstream_id_tokens_are_exchanged_and_forgeries_refused() {
    let (upstream, downstream) = pair().await;
    let form = [
        ("grant_type", "password"),
        ("username", "ann@up.example"),
        ("password", "password"),
        ("scope", "openid email profile"),
    ];
    let response = reqwest::Client::new()
        .post(format!("{}/up/token", upstream.base))
        .basic_auth("tessera-down", Some("down-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let upstream_tokens: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{upstream_tokens}");
    let id_token = upstream_tokens["id_token"].as_str().unwrap();

    let exchange = |token: String| {
        let downstream = &downstream;
        async move {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_owned()),
                ("connector_id", "upstream".to_owned()),
                ("subject_token", token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token".to_owned()),
                ("scope", "openid email".to_owned()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            redeem(downstream, &form, Some(("example-app", APP_SECRET))).await
        }
    };
    let (status, answer) = exchange(id_token.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let claims = verify(&downstream, answer["access_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["email"], "ann@up.example");

    // The same token with its payload changed no longer verifies.
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1]).unwrap(),
    )
    .unwrap();
    payload["email"] = "admin@up.example".into();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&payload).unwrap(),
    );
    let (status, answer) = exchange(format!("{}.{forged_payload}.{}", parts[0], parts[2])).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("access_denied")));
    downstream.shutdown().await;
    upstream.shutdown().await;
}

/// oidc-provider (the certified reference OP) started by the test, stopped when dropped.
pub(crate) struct ReferenceProvider {
    process: std::process::Child,
    pub(crate) issuer: String,
}

impl Drop for ReferenceProvider {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn reference_provider(redirect: &str) -> Option<ReferenceProvider> {
    reference_provider_with_logout(redirect, "").await
}

/// As [`reference_provider`], with `post_logout` registered for RP-initiated logout (when not empty).
pub(crate) async fn reference_provider_with_logout(redirect: &str, post_logout: &str) -> Option<ReferenceProvider> {
    let script = match std::env::var("TESSERA_TEST_OIDC_PROVIDER") {
        Ok(script) => script,
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but TESSERA_TEST_OIDC_PROVIDER is not"),
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_OIDC_PROVIDER is not set; the reference-provider test did not run");
            return None;
        }
    };
    let port = free_port();
    let process = std::process::Command::new("node")
        .arg(&script)
        .env("PORT", port.to_string())
        .env("RP_REDIRECT", redirect)
        .env("RP_POST_LOGOUT", post_logout)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node runs the reference provider");
    let provider = ReferenceProvider { process, issuer: format!("http://127.0.0.1:{port}") };
    for _ in 0..100 {
        if reqwest::get(format!("{}/.well-known/openid-configuration", provider.issuer))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Some(provider);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the reference provider did not start");
}

/// tessera on `port` (issuer `/dex`) in front of the reference provider (connector `reference`),
/// with `client_extra` (YAML lines, indented two spaces) added to its `example-app` client.
pub(crate) fn reference_config(port: u16, provider: &ReferenceProvider, client_extra: &str) -> String {
    format!(
        r#"issuer: http://127.0.0.1:{port}/dex
storage:
  type: memory
web:
  http: 127.0.0.1:{port}
oauth2:
  skipApprovalScreen: true
connectors:
- type: oidc
  id: reference
  name: Reference OP
  config:
    issuer: {}
    clientID: tessera
    clientSecret: tessera-secret
    redirectURI: http://127.0.0.1:{port}/dex/callback
    scopes: [profile, email]
    getUserInfo: true
staticClients:
- id: example-app
  secret: {APP_SECRET}
  name: Example App
  redirectURIs: ['{REDIRECT}']
{client_extra}"#,
        provider.issuer
    )
}

/// Logs alice in at `downstream` through the provider's own pages (consenting there when asked) and
/// returns where the browser was sent back to the app.
pub(crate) async fn login_at_provider(
    browser: &Browser,
    downstream: &Running,
    provider: &ReferenceProvider,
    scope: &str,
) -> String {
    let url = format!("{}/dex/auth?{}", downstream.base, code_query(scope));
    let login = browser.follow(browser.get(&url).await).await;
    assert!(login.url.starts_with(&provider.issuer), "the provider's login page: {} {}", login.url, login.body);
    let consent = browser.submit(&login, &[("login", "alice"), ("password", "anything")], None).await;
    let back = if consent.location.is_some() { consent } else { browser.submit(&consent, &[], None).await };
    back.location.unwrap_or_else(|| panic!("back at the app: {}", back.body))
}

#[tokio::test]
async fn login_through_the_reference_provider() {
    let down = free_port();
    let callback = format!("http://127.0.0.1:{down}/dex/callback");
    let Some(provider) = reference_provider(&callback).await else { return };
    // Custom claims keyed on the email work for an upstream identity as for a local one.
    let Some(mut db) = crate::custom_claims::ClaimsDb::new().await else { return };
    sqlx::Executor::execute(
        &mut db.conn,
        "INSERT INTO users VALUES ('alice-row', 'alice@op.example', 'member', 'acme', 'pro')",
    )
    .await
    .unwrap();
    let env = db.env("SELECT org, plan FROM users WHERE email = $1", r#"["{{.Email}}"]"#, None);
    let config = reference_config(down, &provider, "");
    let downstream =
        try_start(parse(&config, "reference.yaml", &env).unwrap().config, Arc::new(SystemClock)).await.unwrap();
    let browser = Browser::new(APP);
    let location = login_at_provider(&browser, &downstream, &provider, "openid email profile").await;
    let (status, tokens) = redeem_code(&downstream, &params(&location, false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&downstream, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("alice", "reference"));
    assert_eq!(claims["email"], "alice@op.example", "from the provider's userinfo");
    assert_eq!(claims["name"], "Alice Reference");
    assert_eq!((claims["org"].as_str(), claims["plan"].as_str()), (Some("acme"), Some("pro")));
    downstream.shutdown().await;
}

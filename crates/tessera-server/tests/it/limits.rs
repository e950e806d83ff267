//! The brute-force limits, attacked as an attacker would: wrong passwords through the form and the
//! password grant, wrong client secrets, wrong user codes, each from an address a trusted proxy names;
//! then the right secret, refused from that address and accepted from another.

use reqwest::StatusCode;
use serde_json::Value;
use tessera_server::config::Env;
use tracing::Level;

use crate::browser::{Browser, Form, Landing, link, resolve};
use crate::log_capture::{capture_logs, captured_lines};
use crate::login::{APP, APP_SECRET, REDIRECT, auth_url, code_query, server_with_env};
use crate::serve::Running;

const GRANTS: &str = "oauth2:
  skipApprovalScreen: true
  passwordConnector: local
  grantTypes: [authorization_code, refresh_token, password, 'urn:ietf:params:oauth:grant-type:device_code']
";

/// The test server trusts itself as a proxy, so each request says which client address it is from.
const FORWARDED: &str = "  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: [127.0.0.0/8]\n";

const ATTACKER: &str = "198.51.100.7";
const USER: &str = "203.0.113.9";

async fn server(extra: &str) -> (Running, std::sync::Arc<tessera_core::clock::TestClock>) {
    let telemetry = "telemetry:\n  http: 127.0.0.1:0\n";
    server_with_env(&format!("{GRANTS}{telemetry}{extra}"), "", FORWARDED, &Env::default()).await.unwrap()
}

fn browser_at(ip: &str) -> Browser {
    Browser::with_headers(APP, &[("X-Forwarded-For", ip)])
}

/// The password database's form, reached from the app's request.
async fn password_form(browser: &Browser, running: &Running) -> Landing {
    let choice = browser.follow(browser.get(&auth_url(running, &code_query("openid email"))).await).await;
    let form = browser.follow(browser.get(&resolve(&choice.url, &link(&choice.body, "connector-local"))).await).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    form
}

/// Posts the form with a password, keeping the raw response (its headers matter here).
async fn try_password(browser: &Browser, form: &Landing, password: &str) -> reqwest::Response {
    let parsed = Form::parse(&form.body).unwrap();
    let fields = [("login", "admin@example.com"), ("password", password)];
    browser.http.post(resolve(&form.url, &parsed.action)).form(&fields).send().await.unwrap()
}

/// Whether a login with the right password from `browser` gets through to the app.
async fn logs_in(browser: &Browser, running: &Running) -> bool {
    let form = password_form(browser, running).await;
    let response = try_password(browser, &form, "password").await;
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let landing = browser.follow(Landing {
        status: response.status(),
        url: form.url.clone(),
        location: location.map(|l| resolve(&form.url, &l)),
        body: String::new(),
        set_cookies: Vec::new(),
    });
    landing.await.location.is_some_and(|l| l.starts_with(REDIRECT))
}

async fn wrong_passwords(browser: &Browser, running: &Running, times: usize) {
    let form = password_form(browser, running).await;
    for _ in 0..times {
        assert_eq!(try_password(browser, &form, "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn metrics(running: &Running) -> String {
    reqwest::get(format!("{}/metrics", running.telemetry)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_from_that_address_only() {
    let (running, clock) = server("").await;
    let attacker = browser_at(ATTACKER);
    wrong_passwords(&attacker, &running, 5).await;

    capture_logs(Level::WARN);
    let form = password_form(&attacker, &running).await;
    let refused = try_password(&attacker, &form, "password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "the right password is refused too");
    assert_eq!(refused.headers()["retry-after"], "900");
    let page = refused.text().await.unwrap();
    assert!(page.contains("Too many failed attempts. Try again in 15 minutes."), "{page}");
    assert!(page.contains("<form"), "the form stays, to try again later");
    let lines = captured_lines();
    let logged = lines.iter().find(|l| l["msg"].as_str().is_some_and(|m| m.contains("too many failed attempts")));
    let logged = logged.unwrap_or_else(|| panic!("no refusal logged: {lines:?}"));
    assert_eq!(logged["client_remote_addr"], ATTACKER);
    assert_eq!(logged["level"], "WARN");
    assert!(!lines.iter().any(|l| l.to_string().contains("admin@example.com")), "no login name in the log");
    assert!(metrics(&running).await.contains("tessera_rate_limited_total{limit=\"password_per_account_and_ip\"} 1"));

    assert!(logs_in(&browser_at(USER), &running).await, "the user logs in from another address");
    assert!(!logs_in(&attacker, &running).await, "refused attempts did not count, but the window still holds");
    clock.advance(time::Duration::minutes(15));
    assert!(logs_in(&attacker, &running).await, "once the window has moved on");
    running.shutdown().await;
}

#[tokio::test]
async fn a_user_who_mistypes_is_not_slowed_and_a_success_starts_afresh() {
    let (running, _) = server("").await;
    let user = browser_at(USER);
    wrong_passwords(&user, &running, 4).await;
    assert!(logs_in(&user, &running).await);
    wrong_passwords(&user, &running, 4).await;
    assert!(logs_in(&user, &running).await, "the success reset this account's count from this address");
    running.shutdown().await;
}

async fn password_grant(running: &Running, ip: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/dex/token", running.base))
        .header("X-Forwarded-For", ip)
        .basic_auth("example-app", Some(APP_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "Admin@Example.com"),
            ("password", password),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_password_grant_shares_the_form_budget_and_answers_json() {
    let (running, _) = server("").await;
    wrong_passwords(&browser_at(ATTACKER), &running, 3).await;
    for _ in 0..2 {
        assert_eq!(password_grant(&running, ATTACKER, "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = password_grant(&running, ATTACKER, "password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "900");
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert_eq!(body["error_description"], "Too many failed attempts. Try again in 15 minutes.");
    assert_eq!(password_grant(&running, USER, "password").await.status(), StatusCode::OK);
    assert!(metrics(&running).await.contains("tessera_token_errors_total{error=\"temporarily_unavailable\"} 1"));
    running.shutdown().await;
}

#[tokio::test]
async fn the_per_address_limit_stops_guessing_across_accounts() {
    let (running, _) = server("rateLimits:\n  passwordFailures:\n    perIP: 3\n").await;
    for account in ["a@example.com", "b@example.com", "c@example.com"] {
        let form = [("grant_type", "password"), ("username", account), ("password", "x"), ("scope", "openid")];
        let response = reqwest::Client::new()
            .post(format!("{}/dex/token", running.base))
            .header("X-Forwarded-For", ATTACKER)
            .basic_auth("example-app", Some(APP_SECRET))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "unknown accounts count too");
    }
    assert_eq!(password_grant(&running, ATTACKER, "password").await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(password_grant(&running, USER, "password").await.status(), StatusCode::OK);
    running.shutdown().await;
}

async fn code_redemption(running: &Running, ip: &str, secret: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/dex/token", running.base))
        .header("X-Forwarded-For", ip)
        .basic_auth("example-app", Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", "no-such-code"), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn twenty_wrong_client_secrets_lock_the_client_from_that_address() {
    let (running, _) = server("").await;
    for _ in 0..20 {
        assert_eq!(code_redemption(&running, ATTACKER, "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = code_redemption(&running, ATTACKER, APP_SECRET).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "300");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // From another address the client authenticates (and only then learns its code is bad).
    let other: Value = code_redemption(&running, USER, APP_SECRET).await.json().await.unwrap();
    assert_eq!(other["error"], "invalid_grant");
    // An unknown client has no secret to guess: its failures are plain 401s, never stored.
    for _ in 0..25 {
        let response = reqwest::Client::new()
            .post(format!("{}/dex/token", running.base))
            .header("X-Forwarded-For", ATTACKER)
            .basic_auth("no-such-client", Some("guess"))
            .form(&[("grant_type", "authorization_code"), ("code", "c")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    running.shutdown().await;
}

async fn enter_code(running: &Running, ip: &str, code: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/dex/device/auth/verify_code", running.base))
        .header("X-Forwarded-For", ip)
        .form(&[("user_code", code)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ten_wrong_user_codes_lock_the_device_page_for_that_address() {
    let (running, clock) = server("").await;
    let start: Value = reqwest::Client::new()
        .post(format!("{}/dex/device/code", running.base))
        .form(&[("client_id", "public-cli")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_code = start["user_code"].as_str().unwrap();
    for _ in 0..10 {
        assert_eq!(enter_code(&running, ATTACKER, "WRONG-CODE").await.status(), StatusCode::BAD_REQUEST);
    }
    let refused = enter_code(&running, ATTACKER, user_code).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "300");
    let page = refused.text().await.unwrap();
    assert!(page.contains("Too many wrong codes. Try again in 5 minutes."), "{page}");
    assert_eq!(enter_code(&running, USER, user_code).await.status(), StatusCode::FOUND, "another address");
    clock.advance(time::Duration::minutes(5));
    assert_eq!(enter_code(&running, ATTACKER, user_code).await.status(), StatusCode::FOUND, "the window moved on");
    running.shutdown().await;
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let (running, _) = server("rateLimits:\n  enabled: false\n").await;
    let attacker = browser_at(ATTACKER);
    wrong_passwords(&attacker, &running, 7).await;
    assert!(logs_in(&attacker, &running).await);
    running.shutdown().await;
}

/// Three replicas on one PostgreSQL count into one budget: five failures spread over them, and the
/// sixth attempt is refused wherever it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_budget() {
    let Some(database) = crate::serve::ScratchDatabase::create("limits").await else { return };
    let storage = &database.storage;
    let clock = std::sync::Arc::new(tessera_core::clock::TestClock::at_test_epoch());
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let port = crate::serve::free_port();
        let text = format!(
            "issuer: http://127.0.0.1:{port}/dex\n{storage}web:\n  http: 127.0.0.1:{port}\n{FORWARDED}{GRANTS}\
             enablePasswordDB: true\nstaticPasswords:\n- email: admin@example.com\n  \
             hash: \"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"\n  username: admin\n  \
             userID: 08a8684b-db88-4b73-90a9-3cd1661f5466\nstaticClients:\n- id: example-app\n  secret: {APP_SECRET}\n  \
             name: Example App\n  redirectURIs: ['{REDIRECT}']\n"
        );
        let config = tessera_server::config::parse(&text, "replica.yaml", &Env::default()).unwrap().config;
        replicas.push(crate::serve::start(config, clock.clone()).await);
    }
    for replica in [&replicas[0], &replicas[1], &replicas[2], &replicas[0], &replicas[1]] {
        assert_eq!(password_grant(replica, ATTACKER, "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    for replica in &replicas {
        assert_eq!(password_grant(replica, ATTACKER, "password").await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(password_grant(&replicas[2], USER, "password").await.status(), StatusCode::OK);
    for replica in replicas {
        replica.shutdown().await;
    }
    database.drop().await;
}

//! The login in a real headless Chromium, driven over the WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`): from the app's authorization request, through the connector choice, the
//! password form and the consent screen, to the code at the app's redirect URI. Screenshots of each
//! page are saved under the test's output folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::params;
use crate::login::{REDIRECT, auth_url, code_query, redeem_code, server, verify};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, stopped when dropped.
struct Driver {
    process: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    async fn start() -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: run the tests through scripts/test.sh");
            }
            eprintln!("SKIPPED: Chromium or chromedriver is not installed; the browser test did not run");
            return None;
        }
        let port = crate::serve::free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self { process, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = driver.http.get(format!("{}/status", driver.base)).send().await
                && status.json::<Value>().await.is_ok_and(|s| s["value"]["ready"] == true)
            {
                return Some(driver);
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(response["value"].get("error").is_none(), "WebDriver {path}: {response}");
        response["value"].clone()
    }

    async fn session(&self, profile: &Path) -> String {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1024,860",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let session = self.call(reqwest::Method::POST, "/session", Some(capabilities)).await;
        session["sessionId"].as_str().unwrap().to_owned()
    }
}

/// One browser tab, driven by CSS selectors.
struct Tab<'a> {
    driver: &'a Driver,
    session: String,
    screenshots: PathBuf,
}

impl Tab<'_> {
    async fn go(&self, url: &str) {
        self.driver
            .call(reqwest::Method::POST, &format!("/session/{}/url", self.session), Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        self.driver
            .call(reqwest::Method::GET, &format!("/session/{}/url", self.session), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.driver
            .call(reqwest::Method::GET, &format!("/session/{}/source", self.session), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let path = format!("/session/{}/element", self.session);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response: Value = self
                .driver
                .http
                .post(format!("{}{path}", self.driver.base))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(element) = response["value"].as_object().and_then(|v| v.values().next()).and_then(Value::as_str)
            {
                return element.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css} on {}:\n{}", self.url().await, self.source().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.driver
            .call(reqwest::Method::POST, &format!("/session/{}/element/{element}/click", self.session), Some(json!({})))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}/element/{element}/value", self.session),
                Some(json!({"text": text})),
            )
            .await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.driver.call(reqwest::Method::GET, &format!("/session/{}/screenshot", self.session), None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(self.screenshots.join(format!("{name}.png")), bytes).unwrap();
    }
}

#[tokio::test]
async fn a_real_browser_logs_in_through_the_pages() {
    let Some(driver) = Driver::start().await else { return };
    let running = server("").await;
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-login");
    std::fs::create_dir_all(&screenshots).unwrap();
    let profile = std::env::temp_dir().join(format!("tessera-chromium-{}", tessera_core::id::new_id()));
    let session = driver.session(&profile).await;
    let tab = Tab { driver: &driver, session: session.clone(), screenshots: screenshots.clone() };

    tab.go(&auth_url(&running, &code_query("openid email profile offline_access"))).await;
    tab.find("a.connector-local").await;
    tab.screenshot("1-choose-connector").await;
    tab.click("a.connector-local").await;

    tab.find("#login").await;
    tab.screenshot("2-password-form").await;
    tab.type_into("#login", "admin@example.com").await;
    tab.type_into("#password", "wrong password").await;
    tab.click("#submit-login").await;
    tab.find("#login-error").await;
    tab.screenshot("3-wrong-password").await;
    tab.type_into("#password", "password").await;
    tab.click("#submit-login").await;

    tab.find("#grant").await;
    tab.screenshot("4-consent").await;
    tab.click("#grant").await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let callback = loop {
        let url = tab.url().await;
        if url.starts_with(REDIRECT) {
            break url;
        }
        assert!(Instant::now() < deadline, "the browser did not reach the app: {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let query = params(&callback, false);
    assert_eq!(query["state"], "st-123");
    let (status, tokens) = redeem_code(&running, &query["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["email"], "admin@example.com");
    for name in ["1-choose-connector", "2-password-form", "3-wrong-password", "4-consent"] {
        let size = std::fs::metadata(screenshots.join(format!("{name}.png"))).unwrap().len();
        assert!(size > 1000, "{name}.png is a real picture ({size} bytes)");
    }
    eprintln!("screenshots: {}", screenshots.display());

    driver.call(reqwest::Method::DELETE, &format!("/session/{session}"), None).await;
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(profile);
}

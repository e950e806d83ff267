//! `/metrics` on a real telemetry listener: the exposition passes `promtool check metrics`, its
//! counters move as logins and token requests are made, the handler label is the route template, and
//! ten thousand requests to made-up paths add no series.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use reqwest::StatusCode;
use sqlx::Executor;
use tessera_core::clock::TestClock;
use tessera_core::id::new_id;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, params};
use crate::custom_claims::ClaimsDb;
use crate::login::{APP, APP_SECRET, code_query, redeem, redeem_code, server_with_env};
use crate::serve::{Running, start};

const TELEMETRY: &str = "telemetry:\n  http: 127.0.0.1:0\n";
const SKIP_CONSENT: &str = "oauth2:\n  skipApprovalScreen: true\n";

/// One line of the exposition.
#[derive(Debug)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    /// The series it belongs to: its name and labels.
    fn series(&self) -> String {
        format!("{}{:?}", self.name, self.labels)
    }
}

/// The samples of a text exposition (Prometheus' text format, without timestamps).
pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter(|line| !line.is_empty() && !line.starts_with('#')).map(parse_line).collect()
}

fn parse_line(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().unwrap_or_else(|| panic!("unterminated labels: {line}"));
            match c {
                '}' => {
                    rest = &inner[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("unterminated value: {line}")).1 {
                            '"' => break,
                            '\\' => match chars.next().unwrap().1 {
                                'n' => value.push('\n'),
                                escaped => value.push(escaped),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
    }
    let value = rest.split_whitespace().next().unwrap_or_else(|| panic!("no value: {line}"));
    let value = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
    Sample { name, labels, value }
}

/// The value of the one series of `name` with these labels (among others); 0 when there is none yet.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} names {} series: {matching:?}", matching.len());
    matching.first().map_or(0.0, |sample| sample.value)
}

fn series(samples: &[Sample]) -> BTreeSet<String> {
    samples.iter().map(Sample::series).collect()
}

pub(crate) async fn scrape_text(running: &Running) -> String {
    assert!(!running.telemetry.is_empty(), "the server has a telemetry listener");
    let response = reqwest::get(format!("{}/metrics", running.telemetry)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    response.text().await.unwrap()
}

async fn scrape(running: &Running) -> Vec<Sample> {
    parse_exposition(&scrape_text(running).await)
}

/// `promtool check metrics` (Debian's `prometheus` package) on the exposition: a failure, not a skip,
/// when it is missing.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is required to check /metrics (Debian package `prometheus`; scripts/test.sh installs it): {e}"
            )
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The admin logs in through the password form (a wrong password first), consent skipped; the code.
async fn admin_code(running: &Running) -> String {
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/local?{}", running.base, code_query("openid email"));
    let form = browser.follow(browser.get(&url).await).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let again = browser.submit(&form, &[("login", "admin@example.com"), ("password", "wrong")], None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    let back = browser.submit(&again, &[("login", "admin@example.com"), ("password", "password")], None).await;
    params(back.location.as_ref().expect("back at the app"), false)["code"].clone()
}

#[tokio::test]
async fn the_exposition_passes_promtool_and_its_counters_move_with_logins_and_tokens() {
    let env = Env::from_pairs([("DEX_CUSTOM_CLAIMS_STATIC", r#"{"org": "acme"}"#)]);
    let (running, _) = server_with_env(&format!("{TELEMETRY}{SKIP_CONSENT}"), "", "", &env).await.unwrap();
    let before = scrape(&running).await;

    // Dex's build and process metrics, and the key made at start-up.
    let build = before.iter().find(|s| s.name == "dex_build_info").expect("dex_build_info");
    assert_eq!(build.value, 1.0);
    assert_eq!(build.labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(build.labels["go_version"].starts_with("rust1."), "{build:?}");
    assert!(build.labels["platform"].starts_with("linux/"), "{build:?}");
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(before.iter().any(|s| s.name == name), "{name} is exposed");
    }
    assert!(value(&before, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&before, "process_open_fds", &[]) > 0.0);
    assert_eq!(value(&before, "tessera_signing_key_rotations_total", &[]), 1.0);
    assert!(
        before
            .iter()
            .any(|s| s.name == "tessera_tokens_issued_total" && s.labels["grant_type"] == "authorization_code"),
        "known grant types are exposed before their first token"
    );

    let code = admin_code(&running).await;
    let (status, tokens) = redeem_code(&running, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, replay) = redeem_code(&running, &code).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, _) = redeem(&running, &[("grant_type", "bogus")], Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = format!("/dex/nowhere-{}", new_id());
    let missing = reqwest::get(format!("{}{unknown}", running.base)).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let text = scrape_text(&running).await;
    promtool_check(&text);
    let after = parse_exposition(&text);
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);

    let token_ok = [("handler", "/token"), ("code", "200"), ("method", "post")];
    assert_eq!(moved("http_requests_total", &token_ok), 1.0, "{text}");
    assert_eq!(moved("request_duration_seconds_count", &token_ok), 1.0);
    assert_eq!(moved("response_size_bytes_count", &token_ok), 1.0);
    assert!(moved("response_size_bytes_sum", &token_ok) > 500.0, "a token response's size");
    assert_eq!(moved("http_requests_total", &[("handler", "/token"), ("code", "400"), ("method", "post")]), 2.0);
    assert!(
        value(&after, "http_requests_total", &[("handler", "/auth/{connector}"), ("code", "302"), ("method", "get")])
            >= 1.0,
        "a parameterised route is named by its template"
    );
    assert_eq!(moved("tessera_tokens_issued_total", &[("grant_type", "authorization_code")]), 1.0);
    assert_eq!(moved("tessera_token_errors_total", &[("error", "invalid_grant")]), 1.0);
    assert_eq!(moved("tessera_token_errors_total", &[("error", "unsupported_grant_type")]), 1.0);
    assert_eq!(moved("tessera_logins_total", &[("connector", "local"), ("outcome", "success")]), 1.0);
    assert_eq!(moved("tessera_logins_total", &[("connector", "local"), ("outcome", "invalid_credentials")]), 1.0);
    assert_eq!(moved("tessera_claims_enrichment_duration_seconds_count", &[("enricher", "env-static")]), 1.0);
    assert_eq!(value(&after, "tessera_claims_reserved_dropped_total", &[("enricher", "env-static")]), 0.0);
    for operation in ["create", "get", "update", "delete"] {
        assert!(
            moved("tessera_storage_operation_duration_seconds_count", &[("operation", operation)]) >= 1.0,
            "storage {operation} is timed"
        );
    }
    // The unknown path is not recorded, and nothing of the user or the tokens is in a label.
    for sample in &after {
        for value in sample.labels.values() {
            for secret in ["nowhere", "admin", "example.com", APP_SECRET, "acme", code.as_str()] {
                assert!(!value.contains(secret), "{secret:?} in a label of {sample:?}");
            }
        }
    }
    running.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_requests_to_made_up_paths_add_no_series() {
    let (running, _) = server_with_env(TELEMETRY, "", "", &Env::default()).await.unwrap();
    let http = reqwest::Client::new();
    // Made-up paths: under the issuer path and outside it, and in parameterised routes (recorded under
    // their templates), with a made-up method too.
    let shapes = |id: &str| {
        [
            (reqwest::Method::GET, format!("/{id}")),
            (reqwest::Method::GET, format!("/dex/{id}")),
            (reqwest::Method::POST, format!("/dex/{id}/{id}")),
            (reqwest::Method::GET, format!("/dex/auth/{id}")),
            (reqwest::Method::GET, format!("/dex/auth/{id}/login")),
            (reqwest::Method::GET, format!("/dex/callback/{id}")),
            (reqwest::Method::GET, format!("/dex/static/{id}.css")),
            (reqwest::Method::from_bytes(format!("X{}", id.to_uppercase()).as_bytes()).unwrap(), "/dex/token".into()),
        ]
    };
    let send = |http: reqwest::Client, base: String, method: reqwest::Method, path: String| async move {
        let response = http.request(method, format!("{base}{path}")).send().await.unwrap();
        response.bytes().await.unwrap();
    };
    // Every shape once, so that the series the made-up paths fall into exist before the count.
    let warm_up = new_id();
    for (method, path) in shapes(&warm_up) {
        send(http.clone(), running.base.clone(), method, path).await;
    }
    let before = scrape(&running).await;

    const REQUESTS: usize = 10_000;
    const WORKERS: usize = 8;
    let per_shape = REQUESTS / shapes("x").len();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (http, base) = (http.clone(), running.base.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                for round in (worker..per_shape).step_by(WORKERS) {
                    for (method, path) in shapes(&format!("r{round}{}", new_id())) {
                        send(http.clone(), base.clone(), method, path).await;
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.unwrap();
    }
    assert_eq!(sent, REQUESTS);

    let after = scrape(&running).await;
    let (before_series, after_series) = (series(&before), series(&after));
    let added: Vec<_> = after_series.difference(&before_series).take(5).collect();
    let lost: Vec<_> = before_series.difference(&after_series).take(5).collect();
    assert!(added.is_empty() && lost.is_empty(), "series added: {added:?}…, lost: {lost:?}…");
    assert_eq!(after_series.len(), before_series.len());
    let templated = value(&after, "http_requests_total", &[("handler", "/auth/{connector}"), ("method", "get")])
        - value(&before, "http_requests_total", &[("handler", "/auth/{connector}"), ("method", "get")]);
    assert_eq!(templated as usize, per_shape, "the made-up connectors were recorded under their template");
    let unknown_method = value(&after, "http_requests_total", &[("handler", "/token"), ("method", "unknown")])
        - value(&before, "http_requests_total", &[("handler", "/token"), ("method", "unknown")]);
    assert_eq!(unknown_method as usize, per_shape, "made-up methods share one label value");
    let labels: BTreeSet<&str> = after.iter().flat_map(|s| s.labels.values().map(String::as_str)).collect();
    assert!(labels.iter().all(|label| !label.to_lowercase().contains(&warm_up)), "{labels:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn the_storage_pool_is_exposed() {
    let dir = std::env::temp_dir().join(format!("tessera-metrics-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: sqlite3\n  config:\n    file: {}\nweb:\n  http: 127.0.0.1:0\n{TELEMETRY}enablePasswordDB: true\n",
        dir.join("metrics.db").display()
    );
    let config = parse(&text, "metrics.yaml", &Env::default()).unwrap().config;
    let running = start(config, Arc::new(TestClock::at_test_epoch())).await;
    let samples = scrape(&running).await;
    let storage = [("pool", "storage")];
    assert_eq!(value(&samples, "tessera_pool_connections_max", &storage), 8.0);
    // The background tasks may hold a connection at the scrape: the one start-up opened is either.
    let idle = value(&samples, "tessera_pool_connections_idle", &storage);
    let in_use = value(&samples, "tessera_pool_connections_in_use", &storage);
    assert!(idle + in_use >= 1.0 && idle + in_use <= 8.0, "idle {idle}, in use {in_use}");
    assert_eq!(value(&samples, "tessera_pool_waiting", &storage), 0.0, "eight connections for three tasks");
    running.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A claims query that finds two rows blocks the token: the failure is counted by enricher and
/// cause, the `/token` error by its code, and the enricher's pool is sampled.
#[tokio::test]
async fn a_failing_enricher_is_counted_by_cause() {
    let Some(mut db) = ClaimsDb::new().await else { return };
    db.conn
        .execute("INSERT INTO users VALUES ('another', 'another@example.com', 'member', 'acme', 'free')")
        .await
        .unwrap();
    let env = db.env("SELECT org FROM users WHERE $1::text IS NOT NULL", r#"["{{.Email}}"]"#, None);
    let (running, _) = server_with_env(&format!("{TELEMETRY}{SKIP_CONSENT}"), "", "", &env).await.unwrap();
    let before = scrape(&running).await;
    let (status, body) = redeem_code(&running, &admin_code(&running).await).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error")));
    let after = scrape(&running).await;
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    let failures = "tessera_claims_enrichment_failures_total";
    assert_eq!(moved(failures, &[("enricher", "env-postgres"), ("cause", "too_many_rows")]), 1.0);
    assert_eq!(moved("tessera_claims_enrichment_duration_seconds_count", &[("enricher", "env-postgres")]), 1.0);
    assert_eq!(moved("tessera_token_errors_total", &[("error", "server_error")]), 1.0);
    assert_eq!(moved("tessera_tokens_issued_total", &[("grant_type", "authorization_code")]), 0.0);
    let pool = [("pool", "enricher:env-postgres")];
    assert!(value(&after, "tessera_pool_connections_max", &pool) >= 1.0);
    assert!(value(&after, "tessera_pool_connections_idle", &pool) >= 1.0);
    running.shutdown().await;
}

#[test]
fn the_parser_reads_labels_with_braces_and_escapes() {
    let sample = parse_line(r#"http_requests_total{code="200",handler="/auth/{connector}",x="a\"b,c"} 3"#);
    assert_eq!(sample.name, "http_requests_total");
    assert_eq!(sample.labels["handler"], "/auth/{connector}");
    assert_eq!(sample.labels["x"], "a\"b,c");
    assert_eq!(sample.value, 3.0);
    assert_eq!(parse_line("process_open_fds 12").value, 12.0);
}

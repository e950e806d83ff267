//! What one request may cost: a 1 MiB body (declared, and chunked without a length), 10,000 form
//! fields, a client that sends its headers or its body too slowly, and a flood of `/token` requests
//! while discovery, `/keys` and the health probe must still answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::clock::TestClock;
use tessera_server::config::{Env, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::login::{APP_SECRET, REDIRECT};
use crate::serve::{Running, start};

/// A server whose read timeouts are a second, so slow clients are seen through quickly.
async fn server() -> Running {
    server_with(|config| {
        config.request_limits.header_read_timeout = Duration::from_secs(1);
        config.request_limits.body_read_timeout = Duration::from_secs(1);
    })
    .await
}

async fn server_with(adjust: impl FnOnce(&mut tessera_server::config::Config)) -> Running {
    let text = format!(
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\n\
         oauth2:\n  passwordConnector: local\n  grantTypes: [authorization_code, password]\n\
         enablePasswordDB: true\nstaticPasswords:\n- email: admin@example.com\n  \
         hash: \"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"\n  username: admin\n  \
         userID: 08a8684b-db88-4b73-90a9-3cd1661f5466\nstaticClients:\n- id: example-app\n  secret: {APP_SECRET}\n  \
         name: Example App\n  redirectURIs: ['{REDIRECT}']\n"
    );
    let mut config = parse(&text, "limits.yaml", &Env::default()).unwrap().config;
    adjust(&mut config);
    start(config, Arc::new(TestClock::at_test_epoch())).await
}

fn address(running: &Running) -> String {
    running.base.trim_start_matches("http://").to_owned()
}

async fn post_token(running: &Running, body: String) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/dex/token", running.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth("example-app", Some(APP_SECRET))
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Writes `request` on a fresh connection and reads the answer until the server closes it.
async fn raw(running: &Running, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address(running)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let running = server().await;
    let big = format!("grant_type=password&username={}", "a".repeat(1024 * 1024));
    let (status, body) = post_token(&running, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "invalid_request", "in Dex's JSON shape: {body}");

    // The login form is a page: a plain answer.
    let form = reqwest::Client::new()
        .post(format!("{}/dex/auth/local/login?state=x", running.base))
        .form(&[("login", "a".repeat(1024 * 1024))])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Chunked, without a length to refuse up front: cut off once it passes the limit.
    let mut request = format!(
        "POST /dex/token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        address(&running)
    )
    .into_bytes();
    for _ in 0..16 {
        request.extend_from_slice(format!("10000\r\n{}\r\n", "a".repeat(0x10000)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&running, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Just under the limit is read and judged as usual.
    let (status, body) = post_token(&running, format!("grant_type=nope&pad={}", "a".repeat(60 * 1024))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    running.shutdown().await;
}

#[tokio::test]
async fn more_than_100_form_fields_are_refused_with_400() {
    let running = server().await;
    let (status, body) = post_token(&running, "x=1&".repeat(10_000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "The form has too many fields.");
    let hundred = format!("grant_type=nope{}", "&x=1".repeat(99));
    let (status, body) = post_token(&running, hundred).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    running.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let running = server().await;
    // Headers that never end: the connection is closed (the test would hang otherwise).
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        raw(&running, b"GET /dex/healthz HTTP/1.1\r\nHost: tessera\r\nX-Slow: 1\r\n"),
    )
    .await
    .expect("the server closed the connection of a client that never finished its headers");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(1), "not before the timeout");

    // A body that never arrives in full: 408.
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        raw(
            &running,
            b"POST /dex/token HTTP/1.1\r\nHost: tessera\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\ngrant_type=",
        ),
    )
    .await
    .expect("the server answered a client that never finished its body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // The server still serves everyone else.
    let health = reqwest::get(format!("{}/dex/healthz", running.base)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    running.shutdown().await;
}

/// A thousand `/token` requests at once, 25 of them password grants with the right client secret (bcrypt: the most expensive
/// thing the server does, here without the brute-force limits to cut it short); while they are still
/// being answered, discovery, `/keys` and `/healthz` answer. (The read timeouts are the defaults: the
/// header timeout also closes idle keep-alive connections, which a pooled client could be reusing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_flood_does_not_stop_keys_discovery_and_health() {
    let running = server_with(|config| config.rate_limits.enabled = false).await;
    let flood_size = 1000;
    let answered = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..flood_size {
        let (client, answered, url) = (client.clone(), answered.clone(), format!("{}/dex/token", running.base));
        flood.spawn(async move {
            let form = [
                ("grant_type", "password"),
                ("username", "admin@example.com"),
                ("password", if i % 80 == 0 { "password" } else { "wrong" }),
                ("scope", "openid"),
            ];
            let secret = if i % 40 == 0 { APP_SECRET } else { "wrong-secret" };
            let response = client.post(url).basic_auth("example-app", Some(secret)).form(&form).send().await;
            answered.fetch_add(1, Ordering::SeqCst);
            response.map(|r| r.status())
        });
    }
    // Once the flood is under way.
    while answered.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probe = reqwest::Client::new();
    for path in ["/dex/.well-known/openid-configuration", "/dex/keys", "/dex/healthz"] {
        let response = probe.get(format!("{}{path}", running.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let when_probed = answered.load(Ordering::SeqCst);
    assert!(when_probed < flood_size, "the probes answered while the flood was still running ({when_probed})");
    while let Some(done) = flood.join_next().await {
        let status = done.unwrap().expect("every flood request was answered");
        assert!(!status.is_server_error(), "{status}");
    }
    running.shutdown().await;
}

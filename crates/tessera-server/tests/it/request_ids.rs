//! Request IDs and the one error path, seen from outside: every response names its request ID, every
//! log line written while serving a failed request carries it, and a 500 shows nothing of its cause.

use std::sync::Arc;

use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use tessera_core::clock::TestClock;
use tessera_core::id::new_id;
use tessera_server::config::{Env, parse};

use crate::log_capture::{capture_logs, captured_lines};
use crate::login::server;
use crate::serve::{postgres_url, start};

#[tokio::test]
async fn a_safe_request_id_is_echoed_and_an_unsafe_one_replaced() {
    let running = server("").await;
    let http = reqwest::Client::new();
    let discovery = format!("{}/dex/.well-known/openid-configuration", running.base);
    let id_of = |response: &reqwest::Response| response.headers()["x-request-id"].to_str().unwrap().to_owned();

    let echoed = http.get(&discovery).header("X-Request-Id", "0f8fad5b-d9cb-469f-a165-70867728950e").send().await;
    assert_eq!(id_of(&echoed.unwrap()), "0f8fad5b-d9cb-469f-a165-70867728950e");

    for unsafe_id in ["two words", "id\"},{\"forged\":true", &"x".repeat(129)] {
        let response = http.get(&discovery).header("X-Request-Id", unsafe_id).send().await.unwrap();
        let given = id_of(&response);
        assert_ne!(given, unsafe_id, "an unsafe ID is not echoed");
        assert!(tessera_server::http::request_id::accepted(&given), "{given:?}");
    }

    // Generated when there is none, different for each request, on errors and unknown paths too.
    let first = id_of(&http.get(&discovery).send().await.unwrap());
    let second = id_of(&http.get(&discovery).send().await.unwrap());
    assert!(!first.is_empty() && first != second);
    let missing = http.get(format!("{}/dex/nowhere", running.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(!id_of(&missing).is_empty());
    let refused = http.post(format!("{}/dex/token", running.base)).form(&[("grant_type", "bogus")]).send().await;
    assert!(!id_of(&refused.unwrap()).is_empty());
    running.shutdown().await;
}

/// A stored client whose document no longer decodes: reading it is a storage failure, not a
/// missing client.
#[tokio::test]
async fn storage_failures_are_server_errors_logged_with_the_request_id() {
    let Some(url) = postgres_url() else { return };
    let admin: PgConnectOptions = url.parse().unwrap();
    let name = format!("tessera_request_ids_{}", new_id());
    let mut control = admin.connect().await.unwrap();
    control.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let text = format!(
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: postgres\n  config:\n    host: {}\n    port: {}\n    database: {name}\n    user: {}\n    ssl:\n      mode: disable\nweb:\n  http: 127.0.0.1:0\nenablePasswordDB: true\noauth2:\n  grantTypes: [client_credentials]\nstaticClients:\n- id: machine\n  secret: machine-secret\n  name: Machine\n",
        admin.get_host(),
        admin.get_port(),
        admin.get_username()
    );
    let config = parse(&text, "request-ids.yaml", &Env::default()).unwrap().config;
    let running = start(config, Arc::new(TestClock::at_test_epoch())).await;
    let mut db = admin.clone().database(&name).connect().await.unwrap();
    db.execute("INSERT INTO tessera_objects (kind, id, version, data) VALUES ('client', 'broken-peer', 1, 'not json')")
        .await
        .unwrap();

    capture_logs(tracing::Level::INFO);

    let response = reqwest::Client::new()
        .post(format!("{}/dex/token", running.base))
        .basic_auth("machine", Some("machine-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "openid audience:server:client_id:broken-peer")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "server_error"}), "nothing of the cause reaches the client");

    let lines = captured_lines();
    assert!(
        lines.iter().any(|line| line["level"] == "ERROR" && line["error"].as_str().unwrap_or("").contains("client")),
        "the cause is logged: {lines:?}"
    );
    // Every line is the request's, naming its ID, or a background task's (which run on this thread too).
    for line in &lines {
        if line.get("task").is_some() {
            continue;
        }
        assert_eq!(line["request_id"], request_id.as_str(), "every line of the request names it: {line}");
        assert_eq!(line["method"], "POST", "{line}");
        assert_eq!(line["route"], "/dex/token", "{line}");
        assert_eq!(line["client_remote_addr"], "127.0.0.1", "{line}");
    }

    // Introspecting a refresh token storage cannot read is a server error, never "inactive".
    db.execute(
        "INSERT INTO tessera_objects (kind, id, version, data) VALUES ('refresh_token', 'broken-token', 1, 'not json')",
    )
    .await
    .unwrap();
    let introspect = |token: &'static str| {
        reqwest::Client::new().post(format!("{}/dex/token/introspect", running.base)).form(&[("token", token)]).send()
    };
    let broken = introspect("broken-token").await.unwrap();
    assert_eq!(broken.status(), 500);
    assert_eq!(broken.json::<Value>().await.unwrap(), serde_json::json!({"error": "server_error"}));
    let unknown = introspect("no-such-token").await.unwrap();
    assert_eq!(unknown.status(), 200);
    assert_eq!(unknown.json::<Value>().await.unwrap(), serde_json::json!({"active": false}));
    running.shutdown().await;
    db.close().await.unwrap();
    control.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
    control.close().await.unwrap();
}

//! The per-enricher cache against a real PostgreSQL: a hit (a changed row is not seen), the TTL, a
//! `NOTIFY channel, '<user id>'` that drops the user's entry at once, an empty payload that drops all,
//! a payload matching nobody, and a lost LISTEN connection that drops the cache.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{ConnectOptions, Executor, PgConnection};

use crate::custom_claims::{ADMIN_ID, ClaimsDb, admin_code};
use crate::login::{APP_SECRET, redeem, redeem_code, server_with_env, verify};
use crate::serve::Running;

fn config(db: &ClaimsDb, ttl: &str, channel: &str) -> String {
    format!(
        "oauth2:
  skipApprovalScreen: true
telemetry:
  http: 127.0.0.1:0
customClaims:
  enrichers:
  - name: tenants
    type: postgres
    uri: {}
    query: SELECT plan FROM users WHERE user_id = $1
    args: ['{{{{.UserID}}}}']
    cache:
      ttl: {ttl}
      maxEntries: 100
{channel}",
        db.uri
    )
}

async fn set_plan(conn: &mut PgConnection, plan: &str) {
    conn.execute(sqlx::AssertSqlSafe(format!("UPDATE users SET plan = '{plan}' WHERE user_id = '{ADMIN_ID}'")))
        .await
        .unwrap();
}

/// The plan claim of a fresh token from the refresh token (rotated: the new one is kept).
async fn plan(running: &Running, refresh_token: &mut String) -> Value {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
    let (status, tokens) = redeem(running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    *refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    verify(running, tokens["id_token"].as_str().unwrap(), "example-app").await["plan"].clone()
}

/// Polls until the plan is `want` (a NOTIFY is delivered asynchronously), for at most 10 s.
async fn eventually(running: &Running, refresh_token: &mut String, want: &str) {
    for _ in 0..100 {
        if plan(running, refresh_token).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the plan never became {want:?}");
}

#[tokio::test]
async fn cached_claims_until_notify_or_a_lost_listen_connection() {
    let Some(db) = ClaimsDb::new().await else { return };
    let channel = "      notifyChannel: claims_changed\n";
    let (running, _) = server_with_env(&config(&db, "1h", channel), "", "", &Default::default()).await.unwrap();
    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid offline_access").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(plan(&running, &mut refresh).await, "enterprise");
    let mut conn = db.admin.clone().database(&db.name).connect().await.unwrap();

    set_plan(&mut conn, "free").await;
    assert_eq!(plan(&running, &mut refresh).await, "enterprise", "a cache hit: the row is not read again");
    conn.execute("NOTIFY claims_changed, 'someone-else'").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plan(&running, &mut refresh).await, "enterprise", "a payload matching nobody drops nothing");
    conn.execute(sqlx::AssertSqlSafe(format!("NOTIFY claims_changed, '{ADMIN_ID}'"))).await.unwrap();
    eventually(&running, &mut refresh, "free").await;

    set_plan(&mut conn, "team").await;
    assert_eq!(plan(&running, &mut refresh).await, "free", "cached again");
    conn.execute("NOTIFY claims_changed, ''").await.unwrap();
    eventually(&running, &mut refresh, "team").await;

    // The LISTEN connection is killed: notifications may be missed, so the cache is dropped.
    set_plan(&mut conn, "business").await;
    assert_eq!(plan(&running, &mut refresh).await, "team");
    let killed: Vec<(bool,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND query ILIKE 'LISTEN%'",
        db.name
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(killed.len(), 1, "one LISTEN connection");
    eventually(&running, &mut refresh, "business").await;
    // ... and it LISTENs again.
    set_plan(&mut conn, "enterprise").await;
    assert_eq!(plan(&running, &mut refresh).await, "business");
    conn.execute(sqlx::AssertSqlSafe(format!("NOTIFY claims_changed, '{ADMIN_ID}'"))).await.unwrap();
    eventually(&running, &mut refresh, "enterprise").await;
    running.shutdown().await;
}

#[tokio::test]
async fn cached_claims_expire_with_the_ttl() {
    let Some(db) = ClaimsDb::new().await else { return };
    let (running, _) = server_with_env(&config(&db, "1s", ""), "", "", &Default::default()).await.unwrap();
    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid offline_access").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut conn = db.admin.clone().database(&db.name).connect().await.unwrap();
    assert_eq!(plan(&running, &mut refresh).await, "enterprise");
    set_plan(&mut conn, "free").await;
    assert_eq!(plan(&running, &mut refresh).await, "enterprise", "within the TTL");
    let samples = crate::metrics::parse_exposition(&crate::metrics::scrape_text(&running).await);
    let lookups = |result| {
        crate::metrics::value(
            &samples,
            "tessera_claims_cache_lookups_total",
            &[("enricher", "tenants"), ("result", result)],
        )
    };
    assert_eq!((lookups("miss"), lookups("hit")), (1.0, 2.0), "the code's token misses, the two refreshes hit");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(plan(&running, &mut refresh).await, "free", "after the TTL");
    running.shutdown().await;
}

#[test]
fn cache_config_mistakes_name_line_and_key() {
    let text = "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:5556
customClaims:
  enrichers:
  - name: defaults
    type: static
    claims: {plan: free}
    cache: {ttl: 5m}
  - name: hook
    type: http
    url: https://hooks.example/claims
    cache:
      ttl: 0s
      notifyChannel: changes
";
    let errors: Vec<String> = tessera_server::config::parse(text, "config.yaml", &Default::default())
        .unwrap_err()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    for line in [
        "config.yaml:11: customClaims.enrichers[0].cache: a static enricher has nothing to cache",
        "config.yaml:16: customClaims.enrichers[1].cache.ttl: must be more than zero",
        "config.yaml:17: customClaims.enrichers[1].cache.notifyChannel: only a postgres enricher can LISTEN",
    ] {
        assert!(errors.iter().any(|e| e == line), "missing {line:?} in {errors:#?}");
    }
}

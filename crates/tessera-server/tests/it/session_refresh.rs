//! Refresh with sessions on (`DEX_SESSIONS_ENABLED=true`), as Dex master: tokens come from the
//! identity stored at the user's last login, not from the connector, and `auth_time` is that login.
//! The password database is the connector here because a stored user can be changed or deleted
//! between the login and the refresh, so "the connector would answer differently now" shows.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::clock::TestClock;
use tessera_core::model::{OfflineSessions, Password};
use tessera_server::config::Env;
use tessera_storage::StorageError;

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, code_query, redeem, redeem_code, server_with_env, verify};
use crate::serve::Running;
use crate::sessions::sessions_on;

const BOB: &str = "bob@example.com";
const BOB_ID: &str = "bob-1";
const SCOPES: &str = "openid email profile groups offline_access";
/// Where the offline session keeps the upstream's data; the local connector has none, so a test
/// puts a stand-in there to see whether a refresh touches it.
const UPSTREAM: &[u8] = b"upstream-refresh-token";

async fn server(env: &Env) -> (Running, Arc<TestClock>) {
    let (running, clock) = server_with_env("oauth2:\n  skipApprovalScreen: true\n", "", "", env).await.unwrap();
    let bob = Password {
        email: BOB.into(),
        // "password"
        hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W".into(),
        username: "bob".into(),
        name: "Bob".into(),
        user_id: BOB_ID.into(),
        groups: vec!["devs".into()],
        ..Password::default()
    };
    running.state.storage.create(&bob).await.unwrap();
    (running, clock)
}

/// Bob logs in through the password form; the tokens for the app, and the ID token's claims.
async fn log_in(running: &Running) -> (Value, Value) {
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/local?{}", running.base, code_query(SCOPES));
    let form = browser.follow(browser.get(&url).await).await;
    let back = browser.submit(&form, &[("login", BOB), ("password", "password")], None).await;
    let code = params(back.location.as_ref().expect("back at the app"), false)["code"].clone();
    let (status, tokens) = redeem_code(running, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    (tokens, claims)
}

/// Past the reuse interval (3s by default), so the use rotates the token and refreshes the identity.
async fn refresh(running: &Running, clock: &TestClock, tokens: &Value) -> (StatusCode, Value) {
    clock.advance(time::Duration::minutes(5));
    let token = tokens["refresh_token"].as_str().expect("a refresh token");
    let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
    redeem(running, &form, Some(("example-app", APP_SECRET))).await
}

async fn id_claims(running: &Running, tokens: &Value) -> Value {
    verify(running, tokens["id_token"].as_str().unwrap(), "example-app").await
}

/// Bob as the password database has him now: renamed, moved to another group.
async fn change_bob(running: &Running) {
    running
        .state
        .storage
        .update::<Password, _, StorageError>(BOB, |mut bob| {
            bob.name = "Robert".into();
            bob.groups = vec!["admins".into()];
            Ok(bob)
        })
        .await
        .unwrap();
}

async fn offline_session(running: &Running) -> OfflineSessions {
    running.state.storage.get_offline_sessions(BOB_ID, "local").await.unwrap()
}

#[tokio::test]
async fn with_sessions_a_refresh_keeps_the_logins_identity_and_auth_time() {
    let (running, clock) = server(&sessions_on()).await;
    let (tokens, login) = log_in(&running).await;
    assert_eq!((login["name"].clone(), login["groups"].clone()), (json!("Bob"), json!(["devs"])));
    let login_time = login["auth_time"].as_i64().expect("a browser login has auth_time");
    running
        .state
        .storage
        .update_offline_sessions::<_, StorageError>(BOB_ID, "local", |mut s| {
            s.connector_data = UPSTREAM.to_vec();
            Ok(s)
        })
        .await
        .unwrap();

    change_bob(&running).await;
    let (status, tokens) = refresh(&running, &clock, &tokens).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = id_claims(&running, &tokens).await;
    assert_eq!(claims["sub"], login["sub"]);
    assert_eq!(
        (claims["name"].clone(), claims["groups"].clone()),
        (json!("Bob"), json!(["devs"])),
        "the identity at the login, not the password database's now"
    );
    assert_eq!(claims["auth_time"].as_i64(), Some(login_time), "the login's time, five minutes ago");
    assert!(claims["iat"].as_i64().unwrap() > login_time);
    assert_eq!(claims["sid"], login["sid"]);

    // Bob deleted: the connector would refuse the refresh; the stored identity still answers.
    running.state.storage.delete::<Password>(BOB).await.unwrap();
    let (status, tokens) = refresh(&running, &clock, &tokens).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = id_claims(&running, &tokens).await;
    assert_eq!((claims["name"].clone(), claims["auth_time"].as_i64()), (json!("Bob"), Some(login_time)));

    // The connector was not asked, so the upstream's data stays; the uses are still recorded.
    let offline = offline_session(&running).await;
    assert_eq!(offline.connector_data, UPSTREAM);
    assert_eq!(offline.refresh["example-app"].last_used, running.state.clock.now());
    running.shutdown().await;
}

#[tokio::test]
async fn without_sessions_the_connector_is_asked_at_every_refresh() {
    let (running, clock) = server(&Env::default()).await;
    let (tokens, login) = log_in(&running).await;
    assert!(login.get("sid").is_none(), "no session: {login}");

    change_bob(&running).await;
    let (status, tokens) = refresh(&running, &clock, &tokens).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = id_claims(&running, &tokens).await;
    assert_eq!((claims["name"].clone(), claims["groups"].clone()), (json!("Robert"), json!(["admins"])));
    assert!(claims.get("auth_time").is_none(), "no login at a refresh, as Dex: {claims}");

    running.state.storage.delete::<Password>(BOB).await.unwrap();
    let (status, error) = refresh(&running, &clock, &tokens).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    running.shutdown().await;
}

/// A token issued before sessions were turned on, or imported from Dex, has no stored identity:
/// Dex answers 500; tessera asks the connector, as without sessions.
#[tokio::test]
async fn with_sessions_but_no_stored_identity_the_connector_is_asked() {
    let (running, clock) = server(&sessions_on()).await;
    let (tokens, _) = log_in(&running).await;
    running.state.storage.delete_user_identity(BOB_ID, "local").await.unwrap();

    change_bob(&running).await;
    let (status, tokens) = refresh(&running, &clock, &tokens).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = id_claims(&running, &tokens).await;
    assert_eq!((claims["name"].clone(), claims["groups"].clone()), (json!("Robert"), json!(["admins"])));
    assert!(claims.get("auth_time").is_none(), "{claims}");

    running.state.storage.delete::<Password>(BOB).await.unwrap();
    let (status, error) = refresh(&running, &clock, &tokens).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    running.shutdown().await;
}

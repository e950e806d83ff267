//! How codes and refresh tokens live and die: expiry, binding, one refresh token per user, connector
//! and client, the reuse interval, absolute and idle expiry, rotation switched off, and users who
//! are gone.

use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::model::Password;

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, REDIRECT, code_query, redeem, redeem_code, server_with_clock};
use crate::serve::Running;

const SKIP_CONSENT: &str = "oauth2:\n  skipApprovalScreen: true\n";

/// A code for Kilgore Trout through the mock upstream.
async fn mock_code(running: &Running, scope: &str) -> String {
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/mock?{}", running.base, code_query(scope));
    let back = browser.follow(browser.get(&url).await).await;
    params(back.location.as_ref().expect("back at the app"), false)["code"].clone()
}

/// A code for a password-database user.
async fn local_code(running: &Running, email: &str, password: &str) -> String {
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/local?{}", running.base, code_query("openid email offline_access"));
    let form = browser.follow(browser.get(&url).await).await;
    let back = browser.submit(&form, &[("login", email), ("password", password)], None).await;
    params(back.location.as_ref().expect("back at the app"), false)["code"].clone()
}

async fn refresh(running: &Running, token: &str) -> (StatusCode, Value) {
    redeem(running, &[("grant_type", "refresh_token"), ("refresh_token", token)], Some(("example-app", APP_SECRET)))
        .await
}

fn refresh_token(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().expect("a refresh token").to_owned()
}

#[tokio::test]
async fn codes_are_bound_to_their_client_and_redirect_uri_and_expire_after_30_minutes() {
    let (running, clock) = server_with_clock(SKIP_CONSENT).await;
    let code = mock_code(&running, "openid").await;
    let form =
        |redirect: &'static str| [("grant_type", "authorization_code"), ("code", "CODE"), ("redirect_uri", redirect)];
    let with = |form: [(&'static str, &'static str); 3], code: &str| -> Vec<(String, String)> {
        form.iter()
            .map(|(k, v)| ((*k).to_owned(), if *v == "CODE" { code.to_owned() } else { (*v).to_owned() }))
            .collect()
    };
    let post = |fields: Vec<(String, String)>, client: (&'static str, &'static str)| {
        let url = format!("{}/dex/token", running.base);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .basic_auth(client.0, Some(client.1))
                .form(&fields)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap()["error"].clone())
        }
    };
    assert_eq!(
        post(with(form(REDIRECT), &code), ("peer-app", "peer-secret")).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    assert_eq!(
        post(with(form("http://127.0.0.1:5555/other"), &code), ("example-app", APP_SECRET)).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let (status, _) = redeem_code(&running, &code).await;
    assert_eq!(status, StatusCode::OK, "refused attempts did not consume the code");

    let late = mock_code(&running, "openid").await;
    clock.advance(time::Duration::minutes(30) + time::Duration::seconds(1));
    let (status, error) = redeem_code(&running, &late).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    running.shutdown().await;
}

#[tokio::test]
async fn a_new_login_replaces_the_users_refresh_token_for_that_client() {
    let (running, _) = server_with_clock(SKIP_CONSENT).await;
    let (_, first) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    let (_, second) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    let (status, error) = refresh(&running, &refresh_token(&first)).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "replaced");
    let (status, _) = refresh(&running, &refresh_token(&second)).await;
    assert_eq!(status, StatusCode::OK);
    running.shutdown().await;
}

/// The rotation is written against the grant's own read of the token: of ten parallel uses of one
/// token (no reuse interval), exactly one rotates it and the others are refused, whatever the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_uses_of_one_refresh_token_rotate_it_once() {
    let (running, _) =
        server_with_clock(&format!("{SKIP_CONSENT}expiry:\n  refreshTokens:\n    reuseInterval: 0s\n")).await;
    let (_, tokens) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    let token = refresh_token(&tokens);
    let uses: Vec<_> = (0..10)
        .map(|_| {
            let (url, token) = (format!("{}/dex/token", running.base), token.clone());
            tokio::spawn(async move {
                let form = [("grant_type", "refresh_token"), ("refresh_token", token.as_str())];
                let response = reqwest::Client::new()
                    .post(url)
                    .basic_auth("example-app", Some(APP_SECRET))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for answer in uses {
        let (status, body) = answer.await.unwrap();
        match status {
            StatusCode::OK => winners.push(body),
            _ => assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request"))),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (status, _) = refresh(&running, &refresh_token(&winners[0])).await;
    assert_eq!(status, StatusCode::OK, "the winner's token is the one that works");
    running.shutdown().await;
}

#[tokio::test]
async fn the_previous_token_is_accepted_within_the_reuse_interval() {
    let (running, clock) =
        server_with_clock(&format!("{SKIP_CONSENT}expiry:\n  refreshTokens:\n    reuseInterval: 30s\n")).await;
    let (_, tokens) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    let first = refresh_token(&tokens);
    // Inside the interval after its last use a token does not rotate (Dex hands it out again).
    let (_, again) = refresh(&running, &first).await;
    assert_eq!(refresh_token(&again), first);
    clock.advance(time::Duration::seconds(31));
    let (_, rotated) = refresh(&running, &first).await;
    let second = refresh_token(&rotated);
    assert_ne!(first, second);
    // A client that lost the answer retries with the old token: it gets the current one back.
    let (status, retried) = refresh(&running, &first).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(refresh_token(&retried), second);
    clock.advance(time::Duration::seconds(31));
    let (status, _) = refresh(&running, &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "outside the interval the old token is spent");
    let (status, _) = refresh(&running, &second).await;
    assert_eq!(status, StatusCode::OK);
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle_or_too_old() {
    let config =
        format!("{SKIP_CONSENT}expiry:\n  refreshTokens:\n    absoluteLifetime: 1h\n    validIfNotUsedFor: 10m\n");
    let (running, clock) = server_with_clock(&config).await;
    let (_, idle) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    clock.advance(time::Duration::minutes(10) + time::Duration::seconds(1));
    let (status, error) = refresh(&running, &refresh_token(&idle)).await;
    assert_eq!(
        (status, error["error_description"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Refresh token expired."))
    );

    let (_, tokens) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    let mut token = refresh_token(&tokens);
    for _ in 0..6 {
        clock.advance(time::Duration::minutes(9));
        let (status, tokens) = refresh(&running, &token).await;
        assert_eq!(status, StatusCode::OK, "used often enough: {tokens}");
        token = refresh_token(&tokens);
    }
    clock.advance(time::Duration::minutes(7));
    let (status, error) = refresh(&running, &token).await;
    assert_eq!(
        (status, error["error_description"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Refresh token expired.")),
        "past 1h"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn with_rotation_disabled_the_token_stays_the_same() {
    let (running, _) =
        server_with_clock(&format!("{SKIP_CONSENT}expiry:\n  refreshTokens:\n    disableRotation: true\n")).await;
    let (_, tokens) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    let token = refresh_token(&tokens);
    for _ in 0..3 {
        let (status, refreshed) = refresh(&running, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refresh_token(&refreshed), token);
    }
    running.shutdown().await;
}

#[tokio::test]
async fn a_deleted_user_can_no_longer_refresh() {
    let (running, _) = server_with_clock(SKIP_CONSENT).await;
    let bob = Password {
        email: "bob@example.com".into(),
        hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W".into(),
        username: "bob".into(),
        user_id: "bob-1".into(),
        ..Password::default()
    };
    running.state.storage.create(&bob).await.unwrap();
    let (status, tokens) = redeem_code(&running, &local_code(&running, "Bob@Example.com", "password").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, refreshed) = refresh(&running, &refresh_token(&tokens)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    running.state.storage.delete::<Password>("bob@example.com").await.unwrap();
    let (status, error) = refresh(&running, &refresh_token(&refreshed)).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_need_offline_access_and_a_connector_that_allows_refresh() {
    let (running, _) = server_with_clock(SKIP_CONSENT).await;
    let (_, tokens) = redeem_code(&running, &mock_code(&running, "openid").await).await;
    assert!(tokens.get("refresh_token").is_none(), "no offline_access, no refresh token");
    running.shutdown().await;

    let (running, _) = crate::login::server_with_connector_grants(SKIP_CONSENT, "[authorization_code]").await;
    let (status, tokens) = redeem_code(&running, &mock_code(&running, "openid offline_access").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens.get("refresh_token").is_none(), "the connector does not allow refresh_token");
    running.shutdown().await;
}

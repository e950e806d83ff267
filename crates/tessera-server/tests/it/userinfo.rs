//! `/userinfo` and `/token/introspect` with tokens from a real login.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, auth_url, code_query, redeem, redeem_code, server_with_clock};
use crate::serve::Running;

/// Tokens for Kilgore Trout (the mock upstream), with every scope.
async fn tokens(running: &Running) -> Value {
    let browser = Browser::new(APP);
    let query = format!("{}&connector_id=mock", code_query("openid email profile groups offline_access"));
    let back = browser.follow(browser.get(&auth_url(running, &query)).await).await;
    let (status, tokens) = redeem_code(running, &params(&back.location.unwrap(), false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn userinfo(running: &Running, authorization: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut request = reqwest::Client::new().get(format!("{}/dex/userinfo", running.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    (response.status(), challenge, response.json().await.unwrap())
}

pub(crate) async fn introspect(running: &Running, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/dex/token/introspect", running.base))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn userinfo_returns_the_access_tokens_claims() {
    let (running, clock) = server_with_clock("oauth2:\n  skipApprovalScreen: true\n").await;
    let tokens = tokens(&running).await;
    let access = tokens["access_token"].as_str().unwrap();

    let (status, _, claims) = userinfo(&running, Some(&format!("Bearer {access}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claims, payload(access), "the token's claim set, verbatim");
    assert_eq!(claims["email"], "kilgore@kilgore.trout");
    let (status, _, _) = userinfo(&running, Some(&format!("bearer {access}"))).await;
    assert_eq!(status, StatusCode::OK, "the scheme is case-insensitive");

    let (status, challenge, error) = userinfo(&running, None).await;
    assert_eq!(
        (status, challenge.as_deref(), error["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"), Some("access_denied"))
    );
    let (status, _, error) = userinfo(&running, Some("Bearer not-a-token")).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::FORBIDDEN, Some("access_denied")));

    clock.advance(time::Duration::hours(25));
    let (status, _, _) = userinfo(&running, Some(&format!("Bearer {access}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an expired token is refused");
    running.shutdown().await;
}

#[tokio::test]
async fn introspection_of_access_and_refresh_tokens() {
    let (running, _clock) = server_with_clock("oauth2:\n  skipApprovalScreen: true\n").await;
    let tokens = tokens(&running).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let sub = tessera_core::subject::encode_subject("0-385-28089-0", "mock");

    let (status, answer) = introspect(&running, access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_use"], "access_token");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["client_id"], "example-app");
    assert_eq!(answer["sub"], json!(sub));
    assert_eq!(answer["iss"], json!(running.state.config.issuer));
    assert_eq!(answer["nbf"], answer["iat"]);
    assert_eq!(answer["username"], "kilgore");
    assert_eq!(answer["ext"]["email"], "kilgore@kilgore.trout");
    assert_eq!(answer["ext"]["groups"], json!(["authors"]));

    let (_, answer) = introspect(&running, refresh).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_use"], "refresh_token");
    assert_eq!(answer["client_id"], "example-app");
    assert_eq!(answer["aud"], "example-app");
    assert_eq!(answer["sub"], json!(sub));
    assert_eq!(answer["exp"], answer["iat"], "an unlimited refresh token reports its creation time");

    // A rotated-out refresh token and garbage are simply inactive.
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, _) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect(&running, refresh).await, (StatusCode::OK, json!({"active": false})));
    assert_eq!(introspect(&running, "garbage").await, (StatusCode::OK, json!({"active": false})));
    assert_eq!(introspect(&running, "a.b.c").await, (StatusCode::OK, json!({"active": false})));
    let (status, error) = introspect(&running, "").await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    running.shutdown().await;
}

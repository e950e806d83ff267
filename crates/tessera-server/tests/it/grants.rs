//! The grants beyond the browser login: the device flow end to end (with the test clock for
//! `slow_down` and expiry), client credentials (with custom claims), the resource-owner password
//! grant, token exchange, and their refusals.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_server::config::Env;

use crate::browser::{Browser, link, resolve};
use crate::login::{APP_SECRET, server_with_env, verify};
use crate::serve::Running;

const ALL_GRANTS: &str = "oauth2:
  skipApprovalScreen: true
  passwordConnector: local
  grantTypes: [authorization_code, refresh_token, password, client_credentials,
    'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange']
customClaims:
  enrichers:
  - name: machines
    type: static
    grantTypes: [client_credentials]
    claims: {kind: machine}
";

async fn post(
    running: &Running,
    path: &str,
    form: &[(&str, &str)],
    client: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/dex{path}", running.base)).form(form);
    if let Some((id, secret)) = client {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn poll(running: &Running, device_code: &str, verifier: &str) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", DEVICE_GRANT), ("device_code", device_code)];
    if !verifier.is_empty() {
        form.push(("code_verifier", verifier));
    }
    post(running, "/token", &form, None).await
}

fn error(answer: &(StatusCode, Value)) -> (StatusCode, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or("none"))
}

#[tokio::test]
async fn the_device_flow_from_code_to_tokens() {
    let (running, clock) = server_with_env(ALL_GRANTS, "", "", &Env::default()).await.unwrap();
    let verifier = "device-verifier-device-verifier-device-verifier";
    let challenge = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, Sha256::digest(verifier));
    let (status, start) = post(
        &running,
        "/device/code",
        &[
            ("client_id", "public-cli"),
            ("scope", "openid email offline_access"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let user_code = start["user_code"].as_str().unwrap().to_owned();
    let device_code = start["device_code"].as_str().unwrap().to_owned();
    assert!(user_code.len() == 9 && &user_code[4..5] == "-", "{user_code}");
    assert_eq!(device_code.len(), 51);
    assert_eq!(start["verification_uri"], json!(format!("{}/device", running.state.config.issuer)));
    assert_eq!(
        start["verification_uri_complete"],
        json!(format!("{}/device?user_code={user_code}", running.state.config.issuer))
    );
    assert_eq!((start["expires_in"].clone(), start["interval"].clone()), (json!(300), json!(5)));

    // Polling too fast slows the device down, 5 s more each time; waiting resets the interval.
    assert_eq!(error(&poll(&running, &device_code, "").await), (StatusCode::BAD_REQUEST, "slow_down"));
    assert_eq!(error(&poll(&running, &device_code, "").await), (StatusCode::BAD_REQUEST, "slow_down"));
    clock.advance(time::Duration::seconds(14));
    assert_eq!(
        error(&poll(&running, &device_code, "").await),
        (StatusCode::BAD_REQUEST, "slow_down"),
        "the interval is now 15 s"
    );
    clock.advance(time::Duration::seconds(21));
    assert_eq!(error(&poll(&running, &device_code, "").await), (StatusCode::BAD_REQUEST, "authorization_pending"));

    // The user, on another device: the code page, then the normal login.
    let browser = Browser::new("http://app.invalid");
    let page = browser
        .get(
            start["verification_uri_complete"]
                .as_str()
                .unwrap()
                .replace(&running.state.config.issuer, &format!("{}/dex", running.base))
                .as_str(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("value=\"{user_code}\"")), "{}", page.body);
    let wrong = browser.submit(&page, &[("user_code", "BCDF-GHJK")], None).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("Invalid or expired code"));
    let choice = browser.submit(&wrong, &[("user_code", &user_code.to_lowercase())], None).await;
    assert_eq!(choice.status, StatusCode::OK, "{}", choice.body);
    let form = browser.follow(browser.get(&resolve(&choice.url, &link(&choice.body, "connector-local"))).await).await;
    let done = browser.submit(&form, &[("login", "admin@example.com"), ("password", "password")], None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Login successful") && done.body.contains("Public CLI"), "{}", done.body);

    clock.advance(time::Duration::seconds(6));
    assert_eq!(
        error(&poll(&running, &device_code, "wrong-verifier").await),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, tokens) = poll(&running, &device_code, verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "public-cli").await;
    assert_eq!(claims["email"], "admin@example.com");
    assert!(tokens["refresh_token"].is_string());
    assert!(claims.get("kind").is_none(), "the machines enricher is limited to client_credentials");
    let (_, again) = poll(&running, &device_code, verifier).await;
    assert_eq!(again, tokens, "re-polling returns the same answer, as in Dex");
    running.shutdown().await;
}

#[tokio::test]
async fn device_codes_expire_and_bind_the_client_secret() {
    let (running, clock) = server_with_env(ALL_GRANTS, "", "", &Env::default()).await.unwrap();
    let (_, start) = post(&running, "/device/code", &[("client_id", "public-cli")], None).await;
    let device_code = start["device_code"].as_str().unwrap().to_owned();
    clock.advance(time::Duration::seconds(301));
    assert_eq!(error(&poll(&running, &device_code, "").await), (StatusCode::BAD_REQUEST, "expired_token"));
    assert_eq!(error(&poll(&running, "no-such-code", "").await), (StatusCode::BAD_REQUEST, "invalid_request"));

    // A device that gave the wrong secret at the start cannot collect the login.
    let (_, start) =
        post(&running, "/device/code", &[("client_id", "public-cli"), ("client_secret", "guess")], None).await;
    let browser = Browser::new("http://app.invalid");
    let page = browser.get(&format!("{}/dex/device", running.base)).await;
    let choice = browser.submit(&page, &[("user_code", start["user_code"].as_str().unwrap())], None).await;
    let form = browser.follow(browser.get(&resolve(&choice.url, &link(&choice.body, "connector-local"))).await).await;
    let refused = browser.submit(&form, &[("login", "admin@example.com"), ("password", "password")], None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    running.shutdown().await;
}

#[tokio::test]
async fn client_credentials_for_confidential_clients() {
    let (running, _) = server_with_env(ALL_GRANTS, "", "", &Env::default()).await.unwrap();
    let form = [("grant_type", "client_credentials"), ("scope", "openid profile groups")];
    let (status, tokens) = post(&running, "/token", &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens.get("refresh_token").is_none());
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("example-app", ""), "the client is the subject");
    assert_eq!(
        (claims["name"].clone(), claims["preferred_username"].clone()),
        (json!("Example App"), json!("Example App"))
    );
    assert_eq!(claims["kind"], "machine", "custom claims run for this grant");
    assert!(claims.get("auth_time").is_none());

    let (status, tokens) =
        post(&running, "/token", &[("grant_type", "client_credentials")], Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tokens.get("id_token").is_none(), "no openid, no ID token");

    let public =
        post(&running, "/token", &[("grant_type", "client_credentials"), ("client_id", "public-cli")], None).await;
    assert_eq!(error(&public), (StatusCode::BAD_REQUEST, "unauthorized_client"));
    let offline = post(
        &running,
        "/token",
        &[("grant_type", "client_credentials"), ("scope", "openid offline_access")],
        Some(("example-app", APP_SECRET)),
    )
    .await;
    assert_eq!(error(&offline), (StatusCode::BAD_REQUEST, "invalid_scope"));
    running.shutdown().await;

    // Off by default, as in Dex, unless the flag says otherwise.
    let (plain, _) = server_with_env("", "", "", &Env::default()).await.unwrap();
    let off = post(&plain, "/token", &[("grant_type", "client_credentials")], Some(("example-app", APP_SECRET))).await;
    assert_eq!(error(&off), (StatusCode::BAD_REQUEST, "unsupported_grant_type"));
    plain.shutdown().await;
    let flag = Env::from_pairs([("DEX_CLIENT_CREDENTIAL_GRANT_ENABLED_BY_DEFAULT", "true")]);
    let (on, _) = server_with_env("", "", "", &flag).await.unwrap();
    let (status, _) =
        post(&on, "/token", &[("grant_type", "client_credentials")], Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    on.shutdown().await;
}

#[tokio::test]
async fn the_password_grant_through_the_password_database() {
    let (running, _) = server_with_env(ALL_GRANTS, "", "", &Env::default()).await.unwrap();
    let grant = |username: &'static str, password: &'static str, scope: &'static str| {
        let running = &running;
        async move {
            let form = [
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", scope),
                ("nonce", "n-9"),
            ];
            post(running, "/token", &form, Some(("example-app", APP_SECRET))).await
        }
    };
    let (status, tokens) = grant("admin@example.com", "password", "openid email offline_access").await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!((claims["email"].clone(), claims["nonce"].clone()), (json!("admin@example.com"), json!("n-9")));

    assert_eq!(
        error(&grant("admin@example.com", "wrong", "openid").await),
        (StatusCode::UNAUTHORIZED, "access_denied")
    );
    assert_eq!(
        error(&grant("admin@example.com", "password", "email").await),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(
        error(&grant("admin@example.com", "password", "openid bogus").await),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn token_exchange_through_the_mock_upstream() {
    let (running, _) = server_with_env(ALL_GRANTS, "", "", &Env::default()).await.unwrap();
    let exchange = |connector: &'static str, subject_type: &'static str, requested: &'static str| {
        let running = &running;
        async move {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("connector_id", connector),
                ("subject_token", "upstream-token"),
                ("subject_token_type", subject_type),
                ("requested_token_type", requested),
                ("scope", "openid email"),
            ];
            post(running, "/token", &form, Some(("example-app", APP_SECRET))).await
        }
    };
    const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
    const ID: &str = "urn:ietf:params:oauth:token-type:id_token";
    let (status, answer) = exchange("mock", ACCESS, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["issued_token_type"].clone(), answer["token_type"].clone()), (json!(ACCESS), json!("bearer")));
    assert!(answer.get("refresh_token").is_none() && answer.get("id_token").is_none());
    let (_, answer) = exchange("mock", ID, ID).await;
    assert_eq!(answer["issued_token_type"], ID);
    let claims = verify(&running, answer["access_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["email"], "kilgore@kilgore.trout");
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("0-385-28089-0", "mock"));

    assert_eq!(
        error(&exchange("mock", "urn:example:saml", "").await),
        (StatusCode::BAD_REQUEST, "request_not_supported")
    );
    assert_eq!(
        error(&exchange("mock", ACCESS, "urn:example:jwt").await),
        (StatusCode::BAD_REQUEST, "request_not_supported")
    );
    assert_eq!(
        error(&exchange("local", ACCESS, "").await),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "local cannot verify tokens"
    );
    assert_eq!(error(&exchange("nowhere", ACCESS, "").await), (StatusCode::BAD_REQUEST, "invalid_request"));
    running.shutdown().await;
}

#[tokio::test]
async fn discovery_lists_exactly_the_grants_offered() {
    let (running, _) = server_with_env(ALL_GRANTS, "", "", &Env::default()).await.unwrap();
    let document: Value = reqwest::get(format!("{}/dex/.well-known/openid-configuration", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        document["grant_types_supported"],
        json!([
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token",
            DEVICE_GRANT,
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    running.shutdown().await;
}

/// An upstream that vouches only for the one token it issued.
struct OneTokenUpstream;

#[async_trait::async_trait]
impl tessera_connectors::TokenIdentityConnector for OneTokenUpstream {
    async fn token_identity(
        &self,
        _: &str,
        token: &str,
    ) -> Result<tessera_connectors::Identity, tessera_connectors::ConnectorError> {
        if token != "genuine-upstream-token" {
            return Err(tessera_connectors::ConnectorError::Failed("signature does not verify".into()));
        }
        let claims = tessera_core::model::Claims {
            user_id: "u-up".into(),
            email: "up@example.org".into(),
            ..Default::default()
        };
        Ok(tessera_connectors::Identity::new(claims, Vec::new()))
    }
}

#[tokio::test]
async fn a_subject_token_that_does_not_verify_is_refused() {
    use std::sync::Arc;
    let text = format!(
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\nenablePasswordDB: true\nstaticClients:\n- id: example-app\n  secret: {APP_SECRET}\n  name: Example App\n  redirectURIs: ['http://127.0.0.1:5555/callback']\n"
    );
    let config = tessera_server::config::parse(&text, "exchange.yaml", &Env::default()).unwrap().config;
    let upstream = tessera_connectors::OpenedConnector {
        id: "upstream".into(),
        kind: "embedded".into(),
        name: "Upstream".into(),
        login: tessera_connectors::Login::Callback(Arc::new(tessera_connectors::mock::MockCallback)),
        refresh: None,
        token_identity: Some(Arc::new(OneTokenUpstream)),
        logout: None,
        grant_types: None,
    };
    let clock = Arc::new(tessera_core::clock::TestClock::at_test_epoch());
    let running = crate::serve::try_start_with(config, clock, vec![upstream]).await.unwrap();
    let exchange = |token: &'static str| {
        let running = &running;
        async move {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("connector_id", "upstream"),
                ("subject_token", token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
            ];
            post(running, "/token", &form, Some(("example-app", APP_SECRET))).await
        }
    };
    assert_eq!(error(&exchange("forged-upstream-token").await), (StatusCode::UNAUTHORIZED, "access_denied"));
    let (status, answer) = exchange("genuine-upstream-token").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let claims = verify(&running, answer["access_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("u-up", "upstream"));
    running.shutdown().await;
}

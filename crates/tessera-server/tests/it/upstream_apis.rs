//! The `github` and `oauth` connectors against a small fake of their APIs (GitHub's API is not
//! something a user runs; the fake stands in for it): the OAuth dance, the user, emails, orgs and
//! teams, the org/team gate, and refresh.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::clock::SystemClock;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, code_query, redeem, redeem_code, verify};
use crate::serve::{Running, try_start};

/// Who the fake upstream logs in next.
type NextUser = Arc<Mutex<String>>;

fn user_of(headers: &HeaderMap) -> String {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    auth.trim_start_matches("Bearer ").trim_start_matches("token-").to_owned()
}

async fn authorize(
    State(next): State<NextUser>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let user = next.lock().unwrap().clone();
    Redirect::to(&format!("{}?code=code-{user}&state={}", q["redirect_uri"], q["state"])).into_response()
}

async fn token(headers: HeaderMap, body: String) -> Response {
    // Basic auth of the configured client only.
    let expected =
        format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "tessera:fake-secret"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (AxumStatus::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let user = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => form["code"].trim_start_matches("code-").to_owned(),
        Some("refresh_token") => form["refresh_token"].trim_start_matches("refresh-").to_owned(),
        _ => return (AxumStatus::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"}))).into_response(),
    };
    Json(json!({"access_token": format!("token-{user}"), "refresh_token": format!("refresh-{user}"), "token_type": "bearer"})).into_response()
}

async fn github_user(headers: HeaderMap) -> Json<Value> {
    Json(match user_of(&headers).as_str() {
        "octocat" => json!({"id": 1, "login": "octocat", "name": "The Octocat", "email": null}),
        _ => json!({"id": 2, "login": "outsider", "name": "", "email": "outsider@example.com"}),
    })
}

async fn github_emails(headers: HeaderMap) -> Json<Value> {
    Json(match user_of(&headers).as_str() {
        "octocat" => json!([
            {"email": "octo@private.example", "primary": false, "verified": true},
            {"email": "octocat@github.example", "primary": true, "verified": true},
            {"email": "unverified@github.example", "primary": false, "verified": false}
        ]),
        _ => json!([{"email": "outsider@example.com", "primary": true, "verified": true}]),
    })
}

async fn github_orgs(headers: HeaderMap) -> Json<Value> {
    Json(if user_of(&headers) == "octocat" { json!([{"login": "acme"}, {"login": "other"}]) } else { json!([]) })
}

async fn github_teams(headers: HeaderMap) -> Json<Value> {
    Json(if user_of(&headers) == "octocat" {
        json!([
            {"name": "Platform Team", "slug": "platform", "organization": {"login": "acme"}},
            {"name": "Ops", "slug": "ops", "organization": {"login": "other"}}
        ])
    } else {
        json!([])
    })
}

async fn oauth_userinfo(headers: HeaderMap) -> Json<Value> {
    Json(
        json!({"id": 42, "user_name": "Mona", "preferred_username": user_of(&headers), "email": "mona@upstream.example",
                "email_verified": true, "groups": ["readers", {"name": "writers"}]}),
    )
}

/// The fake upstream on a free port; its base URL and who logs in next.
async fn fake_upstream() -> (String, NextUser) {
    let next: NextUser = Arc::new(Mutex::new("octocat".into()));
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route("/api/v3/user", get(github_user))
        .route("/api/v3/user/emails", get(github_emails))
        .route("/api/v3/user/orgs", get(github_orgs))
        .route("/api/v3/user/teams", get(github_teams))
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/userinfo", get(oauth_userinfo))
        .with_state(next.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, next)
}

async fn server(connector: &str) -> Running {
    let port = crate::serve::free_port();
    let text = format!(
        "issuer: http://127.0.0.1:{port}/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{port}\noauth2:\n  skipApprovalScreen: true\nconnectors:\n{connector}staticClients:\n- id: example-app\n  secret: {APP_SECRET}\n  name: Example App\n  redirectURIs: ['http://127.0.0.1:5555/callback']\n"
    );
    try_start(parse(&text, "upstream.yaml", &Env::default()).unwrap().config, Arc::new(SystemClock)).await.unwrap()
}

#[tokio::test]
async fn github_users_in_the_right_org_and_team_log_in() {
    let (upstream, next) = fake_upstream().await;
    let running = server(&format!(
        "- type: github\n  id: github\n  name: GitHub\n  config:\n    clientID: tessera\n    clientSecret: fake-secret\n    hostName: {upstream}\n    orgs:\n    - name: acme\n      teams: [Platform Team]\n"
    ))
    .await;
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth?{}", running.base, code_query("openid email profile groups offline_access"));
    let back = browser.follow(browser.get(&url).await).await;
    let (status, tokens) =
        redeem_code(&running, &params(back.location.as_ref().expect("back at the app"), false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("1", "github"), "GitHub's numeric ID");
    assert_eq!(
        (claims["name"].clone(), claims["preferred_username"].clone()),
        (json!("The Octocat"), json!("octocat"))
    );
    assert_eq!(claims["email"], "octocat@github.example", "the primary verified address");
    assert_eq!(claims["groups"], json!(["acme", "acme:Platform Team"]), "only the configured org and team");

    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    // Someone outside the org gets a 403 page.
    *next.lock().unwrap() = "outsider".into();
    let outsider = Browser::new(APP);
    let refused = outsider.follow(outsider.get(&url).await).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    running.shutdown().await;
}

#[tokio::test]
async fn github_options_for_groups_ids_and_emails() {
    let (upstream, _) = fake_upstream().await;
    let running = server(&format!(
        "- type: github\n  id: github\n  name: GitHub\n  config:\n    clientID: tessera\n    clientSecret: fake-secret\n    hostName: {upstream}\n    loadAllGroups: true\n    teamNameField: both\n    useLoginAsID: true\n    preferredEmailDomain: private.example\n"
    ))
    .await;
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth?{}", running.base, code_query("openid email groups"));
    let back = browser.follow(browser.get(&url).await).await;
    let (status, tokens) =
        redeem_code(&running, &params(back.location.as_ref().expect("back at the app"), false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("octocat", "github"), "useLoginAsID");
    assert_eq!(claims["email"], "octo@private.example", "preferredEmailDomain");
    assert_eq!(
        claims["groups"],
        json!(["acme", "acme:Platform Team", "acme:platform", "other", "other:Ops", "other:ops"]),
        "every org and team, by name and slug"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_generic_oauth_connector_reads_userinfo() {
    let (upstream, _) = fake_upstream().await;
    let running = server(&format!(
        "- type: oauth\n  id: oauth\n  name: Upstream OAuth\n  config:\n    clientID: tessera\n    clientSecret: fake-secret\n    authorizationURL: {upstream}/oauth/authorize\n    tokenURL: {upstream}/oauth/token\n    userInfoURL: {upstream}/oauth/userinfo\n    scopes: [profile]\n    claimMapping:\n      userNameKey: user_name\n"
    ))
    .await;
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth?{}", running.base, code_query("openid email profile groups offline_access"));
    let back = browser.follow(browser.get(&url).await).await;
    let (status, tokens) =
        redeem_code(&running, &params(back.location.as_ref().expect("back at the app"), false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("42", "oauth"));
    assert_eq!((claims["name"].clone(), claims["email"].clone()), (json!("Mona"), json!("mona@upstream.example")));
    assert_eq!(claims["groups"], json!(["readers", "writers"]));
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "the upstream refresh token works: {refreshed}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_connector_that_fails_to_open_is_skipped_unless_it_is_the_only_one() {
    let broken = "- type: ldap\n  id: ldap\n  name: Broken LDAP\n  config:\n    host: ldap.example\n";
    let with_local = |flag: &'static str| {
        let port = crate::serve::free_port();
        let text = format!(
            "issuer: http://127.0.0.1:{port}/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{port}\nenablePasswordDB: true\nconnectors:\n{broken}"
        );
        (
            parse(&text, "broken.yaml", &Env::from_pairs([("DEX_CONTINUE_ON_CONNECTOR_FAILURE", flag)]))
                .unwrap()
                .config,
            port,
        )
    };
    let (config, _) = with_local("true");
    let running = try_start(config, Arc::new(SystemClock)).await.expect("starts with the local connector");
    assert!(running.state.connectors.get("ldap").is_none() && running.state.connectors.get("local").is_some());
    running.shutdown().await;

    let (config, _) = with_local("false");
    let err = try_start(config, Arc::new(SystemClock)).await.err().unwrap();
    assert!(err.contains("connector \"ldap\" failed to open"), "{err}");

    let port = crate::serve::free_port();
    let only = format!(
        "issuer: http://127.0.0.1:{port}/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{port}\nconnectors:\n{broken}"
    );
    let err = try_start(parse(&only, "only.yaml", &Env::default()).unwrap().config, Arc::new(SystemClock))
        .await
        .err()
        .unwrap();
    assert!(err.contains("no connector could be opened"), "{err}");
}

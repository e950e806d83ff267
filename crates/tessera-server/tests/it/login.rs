//! The browser login, end to end: a scripted browser follows the real redirects and fills in the real
//! forms; the app redeems codes at `/token` and checks tokens as an app does (signature against
//! `/keys` with an independent JWT library, `iss`, `aud`, `exp`, `nonce`, `at_hash`).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::clock::TestClock;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, Landing, params};
use crate::serve::{Running, free_port, start};

pub const APP: &str = "http://127.0.0.1:5555";
pub const REDIRECT: &str = "http://127.0.0.1:5555/callback";
pub const APP_SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";

/// A server with the password database (admin@example.com / "password"), the mock upstream, a
/// confidential app, a public CLI and a peer that trusts the app.
pub async fn server(extra: &str) -> Running {
    server_with_clock(extra).await.0
}

pub async fn server_with_clock(extra: &str) -> (Running, Arc<TestClock>) {
    server_with_connector_grants(extra, "").await
}

/// The same server, with the mock upstream limited to `grants` (a YAML list; empty: no limit).
pub async fn server_with_connector_grants(extra: &str, grants: &str) -> (Running, Arc<TestClock>) {
    server_with_web(extra, grants, "").await
}

/// The same server, with more `web:` keys (`web_extra`, indented as under `web:`).
pub async fn server_with_web(extra: &str, grants: &str, web_extra: &str) -> (Running, Arc<TestClock>) {
    server_with_env(extra, grants, web_extra, &Env::default()).await.unwrap()
}

/// The same server, read with `env` as its environment; `Err` when it does not start.
pub async fn server_with_env(
    extra: &str,
    grants: &str,
    web_extra: &str,
    env: &Env,
) -> Result<(Running, Arc<TestClock>), String> {
    let mock_grants = if grants.is_empty() { String::new() } else { format!("  grantTypes: {grants}\n") };
    let port = free_port();
    let text = format!(
        r#"issuer: http://127.0.0.1:{port}/dex
storage:
  type: memory
web:
  http: 127.0.0.1:{port}
{web_extra}enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  username: admin
  name: Admin Example
  preferredUsername: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
  groups: [admins, devs]
connectors:
- type: mockCallback
  id: mock
  name: Example
{mock_grants}staticClients:
- id: example-app
  secret: {APP_SECRET}
  name: Example App
  redirectURIs: ['{REDIRECT}', 'urn:ietf:wg:oauth:2.0:oob']
- id: public-cli
  public: true
  name: Public CLI
- id: peer-app
  secret: peer-secret
  name: Peer App
  redirectURIs: ['http://127.0.0.1:5556/peer']
  trustedPeers: [example-app]
{extra}"#
    );
    let config = parse(&text, "login.yaml", env).map_err(|e| e.to_string())?.config;
    let clock = Arc::new(TestClock::at_test_epoch());
    match crate::serve::try_start(config, clock.clone()).await {
        Ok(running) => Ok((running, clock)),
        // The free port was taken by a parallel test between our probe and the server's bind: another.
        Err(err) if err.contains("cannot listen on") => Box::pin(server_with_env(extra, grants, web_extra, env)).await,
        Err(err) => Err(err),
    }
}

pub fn auth_url(running: &Running, query: &str) -> String {
    format!("{}/dex/auth?{query}", running.base)
}

pub fn code_query(scope: &str) -> String {
    format!(
        "client_id=example-app&redirect_uri={}&response_type=code&scope={}&state=st-123&nonce=nonce-456",
        urlencode(REDIRECT),
        urlencode(scope)
    )
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Logs in with the password form, approving consent, and returns where the browser was sent.
async fn password_login(browser: &Browser, running: &Running, query: &str) -> Landing {
    let form = password_form(browser, running, query).await;
    let consent = browser.submit(&form, &[("login", "admin@example.com"), ("password", "password")], None).await;
    if consent.status.is_redirection() {
        return consent;
    }
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent.body.contains("Example App"), "{}", consent.body);
    browser.submit(&consent, &[], Some(("approval", "approve"))).await
}

/// From the app's request through the connector choice to the password database's form.
async fn password_form(browser: &Browser, running: &Running, query: &str) -> Landing {
    let choice = browser.follow(browser.get(&auth_url(running, query)).await).await;
    assert_eq!(choice.status, StatusCode::OK, "{}", choice.body);
    assert!(choice.body.contains("Log in with Email"), "{}", choice.body);
    assert!(choice.body.contains("Log in with Example"), "{}", choice.body);
    let local = link(&choice.body, "connector-local");
    let form = browser.follow(browser.get(&crate::browser::resolve(&choice.url, &local)).await).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("Email Address"));
    form
}

/// The href of the link with `class` among its classes.
pub fn link(html: &str, class: &str) -> String {
    let at = html.find(class).unwrap_or_else(|| panic!("no {class} in:\n{html}"));
    let tag_start = html[..at].rfind("<a ").unwrap();
    let href = html[tag_start..].find("href=\"").unwrap() + tag_start + 6;
    let end = html[href..].find('"').unwrap() + href;
    crate::browser::unescape(&html[href..end])
}

pub async fn redeem(running: &Running, form: &[(&str, &str)], auth: Option<(&str, &str)>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/dex/token", running.base)).form(form);
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    (status, response.json().await.unwrap())
}

pub async fn redeem_code(running: &Running, code: &str) -> (StatusCode, Value) {
    redeem(
        running,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)],
        Some(("example-app", APP_SECRET)),
    )
    .await
}

/// Checks a token as an app does and returns its claims.
pub async fn verify(running: &Running, token: &str, audience: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        reqwest::get(format!("{}/dex/keys", running.base)).await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("signed with a published key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[running.state.config.issuer.as_str()]);
    // The token's times are checked below against the server's (test) clock, never the real one.
    validation.validate_exp = false;
    validation.required_spec_claims.insert("exp".into());
    let claims = jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("token rejected: {e}"))
        .claims;
    let now = running.state.clock.now().unix_timestamp();
    let exp = claims["exp"].as_i64().expect("a numeric exp");
    assert!(exp > now, "token expired at the server's time: exp {exp}, now {now}");
    let iat = claims["iat"].as_i64().expect("a numeric iat");
    assert!(iat <= now, "token issued in the server's future: iat {iat}, now {now}");
    claims
}

pub fn half_sha256(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(value.as_bytes())[..16])
}

#[tokio::test]
async fn code_flow_through_the_password_form_and_consent() {
    let running = server("").await;
    let browser = Browser::new(APP);
    let back = password_login(&browser, &running, &code_query("openid email profile groups offline_access")).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let location = back.location.unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = params(&location, false);
    assert_eq!(query["state"], "st-123");

    let (status, tokens) = redeem_code(&running, &query["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 86400);
    assert!(tokens["refresh_token"].is_string(), "offline_access with a refreshing connector");
    let id_token = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(id_token["sub"], tessera_core::subject::encode_subject("08a8684b-db88-4b73-90a9-3cd1661f5466", "local"));
    assert_eq!(id_token["nonce"], "nonce-456");
    assert_eq!(id_token["email"], "admin@example.com");
    assert_eq!(id_token["email_verified"], true);
    assert_eq!(id_token["groups"], serde_json::json!(["admins", "devs"]));
    assert_eq!(id_token["name"], "Admin Example");
    assert_eq!(id_token["preferred_username"], "admin");
    assert_eq!(id_token["at_hash"], half_sha256(tokens["access_token"].as_str().unwrap()));
    assert!(id_token.get("azp").is_none());
    assert!(id_token["auth_time"].is_i64());
    let access = verify(&running, tokens["access_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(access["sub"], id_token["sub"]);
    assert_eq!(access["email"], "admin@example.com");

    // The code is single-use.
    let (status, replay) = redeem_code(&running, &query["code"]).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    running.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_show_the_form_again() {
    let running = server("").await;
    let browser = Browser::new(APP);
    let form = password_form(&browser, &running, &code_query("openid")).await;
    let again = browser.submit(&form, &[("login", "admin@example.com"), ("password", "wrong")], None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.body.contains("Invalid Email Address and password."), "{}", again.body);
    assert!(again.body.contains("value=\"admin@example.com\""), "the login is kept");
    // The same form still works with the right password.
    let consent = browser.submit(&again, &[("login", "admin@example.com"), ("password", "password")], None).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.body.contains("Grant access"));
    running.shutdown().await;
}

#[tokio::test]
async fn upstream_login_without_consent_and_pkce_for_a_public_client() {
    let running = server("oauth2:\n  skipApprovalScreen: true\n").await;
    let browser = Browser::new("http://127.0.0.1:9999");
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let redirect = "http://127.0.0.1:9999/cb"; // a loopback URI the public client never registered
    let query = format!(
        "client_id=public-cli&redirect_uri={}&response_type=code&scope=openid+groups&connector_id=mock&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(redirect)
    );
    let back = browser.follow(browser.get(&auth_url(&running, &query)).await).await;
    let location = back.location.expect("straight back to the app, no consent screen");
    let code = params(&location, false)["code"].clone();

    let form = |verifier: &'static str| {
        vec![
            ("grant_type", "authorization_code"),
            ("code", "CODE"),
            ("redirect_uri", redirect),
            ("client_id", "public-cli"),
            ("code_verifier", verifier),
        ]
    };
    let with_code = |fields: Vec<(&'static str, &'static str)>, code: &str| -> Vec<(String, String)> {
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), if v == "CODE" { code.to_owned() } else { v.to_owned() }))
            .collect()
    };
    let post = |fields: Vec<(String, String)>| {
        let url = format!("{}/dex/token", running.base);
        async move {
            let response = reqwest::Client::new().post(url).form(&fields).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, error) = post(with_code(form("wrong-verifier-wrong-verifier-wrong-verifier"), &code)).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, tokens) = post(with_code(form(verifier), &code)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "public-cli").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("0-385-28089-0", "mock"));
    assert_eq!(claims["groups"], serde_json::json!(["authors"]));
    running.shutdown().await;
}

#[tokio::test]
async fn twenty_parallel_redemptions_of_one_code_have_one_winner() {
    let running = server("oauth2:\n  skipApprovalScreen: true\n").await;
    let browser = Browser::new(APP);
    let back = browser
        .follow(browser.get(&auth_url(&running, &format!("{}&connector_id=mock", code_query("openid")))).await)
        .await;
    let code = params(&back.location.unwrap(), false)["code"].clone();
    let mut attempts = Vec::new();
    for _ in 0..20 {
        let url = format!("{}/dex/token", running.base);
        let code = code.clone();
        attempts.push(tokio::spawn(async move {
            let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
            let response = reqwest::Client::new()
                .post(url)
                .basic_auth("example-app", Some(APP_SECRET))
                .form(&form)
                .send()
                .await
                .unwrap();
            response.status()
        }));
    }
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn implicit_and_hybrid_responses_carry_tokens_in_the_fragment() {
    let running = server("oauth2:\n  skipApprovalScreen: true\n  responseTypes: [code, token, id_token]\n").await;
    let browser = Browser::new(APP);
    let query = |response_type: &str| {
        format!(
            "client_id=example-app&redirect_uri={}&response_type={}&scope=openid+email&state=s1&nonce=n1&connector_id=mock",
            urlencode(REDIRECT),
            urlencode(response_type)
        )
    };
    let implicit = browser.follow(browser.get(&auth_url(&running, &query("id_token token"))).await).await;
    let fragment = params(implicit.location.as_ref().unwrap(), true);
    assert_eq!(fragment["token_type"], "bearer");
    assert_eq!(fragment["state"], "s1");
    assert_eq!(fragment["expires_in"], "86400");
    let id = verify(&running, &fragment["id_token"], "example-app").await;
    assert_eq!(id["nonce"], "n1");
    assert_eq!(id["at_hash"], half_sha256(&fragment["access_token"]));

    let hybrid = browser.follow(browser.get(&auth_url(&running, &query("code id_token"))).await).await;
    let fragment = params(hybrid.location.as_ref().unwrap(), true);
    assert!(!fragment.contains_key("access_token") && !fragment.contains_key("expires_in"));
    let id = verify(&running, &fragment["id_token"], "example-app").await;
    assert_eq!(id["c_hash"], half_sha256(&fragment["code"]));
    let (status, _) = redeem_code(&running, &fragment["code"]).await;
    assert_eq!(status, StatusCode::OK, "the hybrid flow's code is redeemable");

    // Refused, back at the client with the state: implicit without a nonce, and `token` alone.
    for (response_type, nonce, description) in [
        ("id_token", "", "Response type 'token' requires a 'nonce' value."),
        ("token", "&nonce=n1", "Response type 'token' must be provided with type 'id_token' and/or 'code'"),
    ] {
        let request = query(response_type).replace("&nonce=n1", nonce).replace("&connector_id=mock", "");
        let refused = browser.get(&format!("{}/dex/auth/mock?{request}", running.base)).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER, "{}", refused.body);
        let error = params(refused.location.as_ref().unwrap(), false);
        assert_eq!((error["error"].as_str(), error["error_description"].as_str()), ("invalid_request", description));
        assert_eq!(error["state"], "s1");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_refused() {
    let running = server("oauth2:\n  skipApprovalScreen: true\n").await;
    let browser = Browser::new(APP);
    let query = format!("{}&connector_id=mock", code_query("openid email offline_access"));
    let back = browser.follow(browser.get(&auth_url(&running, &query)).await).await;
    let (_, tokens) = redeem_code(&running, &params(&back.location.unwrap(), false)["code"]).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();

    let refresh = |token: String, scope: &'static str, client: (&'static str, &'static str)| {
        let running = &running;
        async move {
            let mut form = vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", token)];
            if !scope.is_empty() {
                form.push(("scope", scope.to_owned()));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            redeem(running, &form, Some(client)).await
        }
    };
    let (status, refreshed) = refresh(first.clone(), "", ("example-app", APP_SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "rotated");
    let claims = verify(&running, refreshed["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["email"], "kilgore@kilgore.trout");

    let (status, error) = refresh(first, "", ("example-app", APP_SECRET)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "the old token is spent"
    );
    let (status, error) = refresh(second.clone(), "openid groups", ("example-app", APP_SECRET)).await;
    assert_eq!(error["error"], "invalid_request", "{status} {error}");
    assert!(error["error_description"].as_str().unwrap().contains("unauthorized scope"));
    let (status, error) = refresh(second.clone(), "", ("peer-app", "peer-secret")).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "another client's token"
    );
    let (status, narrowed) = refresh(second, "openid", ("example-app", APP_SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    let claims = verify(&running, narrowed["id_token"].as_str().unwrap(), "example-app").await;
    assert!(claims.get("email").is_none(), "narrowed to openid");
    running.shutdown().await;
}

#[tokio::test]
async fn request_errors_are_pages_or_redirects_as_in_dex() {
    let running = server("").await;
    let browser = Browser::new(APP);
    let start = |query: String| {
        let url = format!("{}/dex/auth/local?{query}", running.base);
        let browser = &browser;
        async move { browser.get(&url).await }
    };
    let unknown = start(code_query("openid").replace("example-app", "nobody")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("Invalid client_id (&quot;nobody&quot;)."), "{}", unknown.body);
    let unregistered =
        start(code_query("openid").replace(&urlencode(REDIRECT), &urlencode("https://evil.example/cb"))).await;
    assert_eq!(unregistered.status, StatusCode::BAD_REQUEST);
    assert!(unregistered.location.is_none(), "never redirected to an unregistered URI");

    for (query, code, description) in [
        (code_query("email"), "invalid_scope", r#"Missing required scope(s) ["openid"]."#),
        (code_query("openid bogus"), "invalid_scope", r#"Unrecognized scope(s) ["bogus"]"#),
        (
            code_query("openid audience:server:client_id:public-cli"),
            "invalid_scope",
            r#"Client can't request scope(s) ["audience:server:client_id:public-cli"]"#,
        ),
        (
            code_query("openid").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
            r#"Unsupported response type "token""#,
        ),
        (
            code_query("openid").replace("response_type=code", "response_type=magic"),
            "invalid_request",
            r#"Invalid response type "magic""#,
        ),
        (
            code_query("openid").replace("response_type=code", "response_type=id_token"),
            "unsupported_response_type",
            r#"Unsupported response type "id_token""#,
        ),
        (
            format!("{}&prompt=none+login", code_query("openid")),
            "invalid_request",
            "The prompt value 'none' must be used alone.",
        ),
        (format!("{}&max_age=-5", code_query("openid")), "invalid_request", r#"Invalid max_age value "-5"."#),
        (
            format!("{}&request=eyJ", code_query("openid")),
            "request_not_supported",
            "Server does not support request parameter.",
        ),
        (format!("{}&id_token_hint=not.a.token", code_query("openid")), "invalid_request", "Invalid id_token_hint."),
    ] {
        let refused = start(query.clone()).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER, "{query}: {}", refused.body);
        let location = refused.location.unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        let error = params(&location, false);
        assert_eq!((error["error"].as_str(), error["error_description"].as_str()), (code, description), "{query}");
        assert_eq!(error["state"], "st-123");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn steps_cannot_be_skipped_or_forged() {
    let running = server("").await;
    let browser = Browser::new(APP);
    let form = password_form(&browser, &running, &code_query("openid")).await;
    let login = crate::browser::Form::parse(&form.body).unwrap();
    let fields =
        vec![("login".to_owned(), "admin@example.com".to_owned()), ("password".to_owned(), "password".to_owned())];
    let posted = browser.post(&crate::browser::resolve(&form.url, &login.action), &fields).await;
    let continue_url = posted.location.clone().unwrap();
    let req = params(&continue_url, false)["req"].clone();

    // Skipping consent: a made-up MAC, or the login step's MAC presented as the approval.
    let forged = browser.get(&format!("{}/dex/auth?req={req}&hmac=AAAA", running.base)).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let continue_mac = params(&continue_url, false)["hmac"].clone();
    let approval = browser.get(&format!("{}/dex/approval?req={req}&hmac={continue_mac}", running.base)).await;
    assert_eq!(approval.status, StatusCode::UNAUTHORIZED, "a step's MAC does not open another step");

    // The genuine path, then a rejected consent: Dex shows a page, it does not tell the client.
    let consent = browser.follow(posted).await;
    let rejected = browser.submit(&consent, &[], Some(("approval", "rejected"))).await;
    assert_eq!(rejected.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(rejected.body.contains("Approval rejected."));
    running.shutdown().await;
}

#[tokio::test]
async fn cross_client_tokens_name_the_peer_and_the_requester() {
    let running = server("oauth2:\n  skipApprovalScreen: true\n").await;
    let browser = Browser::new(APP);
    let query = format!("{}&connector_id=mock", code_query("openid audience:server:client_id:peer-app"));
    let back = browser.follow(browser.get(&auth_url(&running, &query)).await).await;
    let (status, tokens) = redeem_code(&running, &params(&back.location.unwrap(), false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "peer-app").await;
    assert_eq!(claims["aud"], serde_json::json!(["peer-app", "example-app"]));
    assert_eq!(claims["azp"], "example-app");
    running.shutdown().await;
}

#[tokio::test]
async fn token_endpoint_refuses_bad_clients_and_grants() {
    let running = server("").await;
    let (status, error) =
        redeem(&running, &[("grant_type", "authorization_code"), ("code", "x")], Some(("example-app", "wrong"))).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, error) =
        redeem(&running, &[("grant_type", "authorization_code"), ("code", "x")], Some(("ghost", "x"))).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    // Form credentials work as well as Basic; an unknown code is invalid_grant.
    let (status, error) = redeem(
        &running,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "example-app"),
            ("client_secret", APP_SECRET),
        ],
        None,
    )
    .await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, error) = redeem(&running, &[("grant_type", "magic")], Some(("example-app", APP_SECRET))).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let get = reqwest::get(format!("{}/dex/token", running.base)).await.unwrap();
    assert_eq!(get.status(), StatusCode::BAD_REQUEST);
    running.shutdown().await;
}

#[tokio::test]
async fn prompt_none_cannot_show_the_consent_screen() {
    let running = server("").await;
    let browser = Browser::new(APP);
    let query = format!("{}&prompt=none", code_query("openid"));
    let back = browser.follow(browser.get(&format!("{}/dex/auth/mock?{query}", running.base)).await).await;
    let error = params(back.location.as_ref().expect("back at the app"), false);
    // OpenID Connect Core §3.1.2.6: consent is the one thing missing (Dex says interaction_required).
    assert_eq!(error["error"], "consent_required");
    assert_eq!(error["state"], "st-123");
    running.shutdown().await;
}

#[tokio::test]
async fn mock_password_connector_logs_in_through_the_form() {
    let extra = "oauth2:\n  skipApprovalScreen: true\nconnectors:\n- type: mockPassword\n  id: mockpw\n  name: Mock Password\n  config:\n    username: kilgore\n    password: secret\n";
    let port = free_port();
    let text = format!(
        "issuer: http://127.0.0.1:{port}/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{port}\nstaticClients:\n- id: example-app\n  secret: {APP_SECRET}\n  name: Example App\n  redirectURIs: ['{REDIRECT}']\n{extra}"
    );
    let config = parse(&text, "mockpw.yaml", &Env::default()).unwrap().config;
    let running = start(config, Arc::new(TestClock::at_test_epoch())).await;
    let browser = Browser::new(APP);
    let form = browser.follow(browser.get(&auth_url(&running, &code_query("openid email"))).await).await;
    assert!(form.body.contains("<label for=\"login\">Username</label>"), "{}", form.body);
    assert!(!form.body.contains("Select another login method"), "only one connector");
    let refused = browser.submit(&form, &[("login", "kilgore"), ("password", "wrong")], None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("Invalid Username and password."));
    let back = browser.submit(&refused, &[("login", "kilgore"), ("password", "secret")], None).await;
    let (status, tokens) = redeem_code(&running, &params(back.location.as_ref().unwrap(), false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["email"], "kilgore@kilgore.trout");
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("0-385-28089-0", "mockpw"));
    running.shutdown().await;
}

//! Logout (`DEX_SESSIONS_ENABLED=true`), through the pages with a cookie jar: RP-initiated logout at
//! `/logout` with its refusals, refresh tokens of `refreshTokenLifetime: session` clients ending with
//! the session, and back-channel logout tokens received by a relying party served by the test,
//! checked against `/keys`, delivered late when that party was down, by either of two replicas.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::clock::TestClock;

use crate::browser::{Browser, Landing, link, params, resolve};
use crate::login::{APP, REDIRECT, redeem, server_with_env, urlencode, verify};
use crate::serve::{Running, free_port};
use crate::sessions::{is_password_form, sessions_on, start_with};

const BYE: &str = "http://127.0.0.1:5555/bye";

fn clients(rp_port: u16) -> String {
    format!(
        "- id: portal
  secret: s1
  name: Portal
  redirectURIs: ['{REDIRECT}']
  postLogoutRedirectURIs: ['{BYE}']
  backchannelLogoutURI: 'http://127.0.0.1:{rp_port}/backchannel'
  refreshTokenLifetime: session
  ssoSharedWith: ['*']
- id: kubectl
  secret: s2
  name: Kubectl
  redirectURIs: ['{REDIRECT}']
  backchannelLogoutURI: 'http://127.0.0.1:{rp_port}/backchannel'
oauth2:
  skipApprovalScreen: true
expiry:
  idTokens: 1m
sessions:
  absoluteLifetime: 3h
  validIfNotUsedFor: 1h
"
    )
}

/// A relying party's back-channel logout endpoint: keeps every `logout_token` it is sent, and answers
/// per its script (the first call gets the first answer, ...; 200 once the script runs out).
#[derive(Clone, Default)]
pub(crate) struct RelyingParty {
    tokens: Arc<Mutex<Vec<String>>>,
    script: Arc<Vec<Answer>>,
}

/// How a scripted relying party answers one delivery.
#[derive(Clone, Copy)]
enum Answer {
    /// Never, as far as the deliverer can tell: it sleeps for a minute.
    Hang,
    Status(StatusCode),
}

impl RelyingParty {
    pub(crate) async fn serve(port: u16) -> (Self, tokio::task::JoinHandle<()>) {
        Self::scripted(port, Vec::new()).await
    }

    async fn scripted(port: u16, script: Vec<Answer>) -> (Self, tokio::task::JoinHandle<()>) {
        let rp = Self { tokens: Arc::default(), script: Arc::new(script) };
        let app = axum::Router::new()
            .route(
                "/backchannel",
                axum::routing::post(
                    |State(rp): State<RelyingParty>, axum::Form(form): axum::Form<Vec<(String, String)>>| async move {
                        let token = form.into_iter().find(|(k, _)| k == "logout_token").map(|(_, v)| v);
                        let call = {
                            let mut tokens = rp.tokens.lock().unwrap();
                            tokens.push(token.unwrap_or_default());
                            tokens.len() - 1
                        };
                        match rp.script.get(call).copied().unwrap_or(Answer::Status(StatusCode::OK)) {
                            Answer::Hang => {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                                StatusCode::OK
                            }
                            Answer::Status(status) => status,
                        }
                    },
                ),
            )
            .with_state(rp.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        (rp, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
    }

    fn calls(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }

    /// The tokens received, once `count` have arrived (at most ten seconds of real time).
    pub(crate) async fn received(&self, count: usize) -> Vec<String> {
        for _ in 0..100 {
            let tokens = self.tokens.lock().unwrap().clone();
            if tokens.len() >= count {
                return tokens;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {count} logout tokens, got {:?}", self.tokens.lock().unwrap());
    }
}

fn code_query(client: &str, scope: &str) -> String {
    format!(
        "client_id={client}&redirect_uri={}&response_type=code&scope={}&state=st&nonce=n",
        urlencode(REDIRECT),
        urlencode(scope)
    )
}

/// Logs `client` in (the password form, or single sign-on) and returns its token response.
async fn tokens_for(browser: &Browser, running: &Running, client: &str, secret: &str) -> Value {
    let page = start_with(browser, running, &code_query(client, "openid email offline_access")).await;
    let back = if is_password_form(&page) {
        browser.submit(&page, &[("login", "admin@example.com"), ("password", "password")], None).await
    } else {
        page
    };
    let location = back.location.as_deref().unwrap_or_else(|| panic!("back at the app: {}", back.body));
    let code = params(location, false)["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = redeem(running, &form, Some((client, secret))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn refresh(running: &Running, client: &str, secret: &str, token: &Value) -> (StatusCode, Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token["refresh_token"].as_str().unwrap())];
    redeem(running, &form, Some((client, secret))).await
}

fn logout_url(running: &Running, query: &str) -> String {
    format!("{}/dex/logout?{query}", running.base)
}

async fn server(rp_port: u16) -> (Running, Arc<TestClock>) {
    server_with_env(&clients(rp_port), "", "telemetry:\n  http: 127.0.0.1:0\n", &sessions_on()).await.unwrap()
}

/// A logout token as a relying party checks it (Back-Channel Logout §2.6): signed with a published
/// key, for it, about the session, with the event and without a nonce.
async fn check_logout_token(running: &Running, token: &str, client: &str, id_token: &Value) -> Value {
    let claims = verify(running, token, client).await;
    assert_eq!(claims["sub"], id_token["sub"]);
    assert_eq!(claims["sid"], id_token["sid"]);
    assert_eq!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"], serde_json::json!({}));
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
    claims
}

#[tokio::test]
async fn logout_with_the_sessions_hint_redirects_with_state_ends_session_tokens_and_tells_every_client() {
    let rp_port = free_port();
    let (rp, rp_task) = RelyingParty::serve(rp_port).await;
    let (running, _clock) = server(rp_port).await;
    let browser = Browser::new(APP);
    let portal = tokens_for(&browser, &running, "portal", "s1").await;
    let kubectl = tokens_for(&browser, &running, "kubectl", "s2").await;
    let id_token = verify(&running, portal["id_token"].as_str().unwrap(), "portal").await;

    let discovery: Value = reqwest::get(format!("{}/dex/.well-known/openid-configuration", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["end_session_endpoint"], format!("{}/dex/logout", running.base));
    assert_eq!(
        (
            discovery["backchannel_logout_supported"].as_bool(),
            discovery["backchannel_logout_session_supported"].as_bool()
        ),
        (Some(true), Some(true))
    );

    let query = format!(
        "id_token_hint={}&post_logout_redirect_uri={}&state=bye-state",
        portal["id_token"].as_str().unwrap(),
        urlencode(BYE)
    );
    let portal_access = portal["access_token"].as_str().unwrap();
    let introspected = introspect(&running, portal_access).await;
    assert_eq!((introspected["active"].as_bool(), &introspected["ext"]["sid"]), (Some(true), &id_token["sid"]));
    let out = browser.get(&logout_url(&running, &query)).await;
    assert_eq!(out.status, StatusCode::FOUND, "{}", out.body);
    assert_eq!(out.location.as_deref(), Some(format!("{BYE}?state=bye-state").as_str()));
    assert!(
        out.set_cookies.iter().any(|c| c.starts_with("dex_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        out.set_cookies
    );

    let mut audiences = Vec::new();
    for token in rp.received(2).await {
        let claims = check_logout_token(&running, &token, token_audience(&token).as_str(), &id_token).await;
        audiences.push(claims["aud"].as_str().unwrap().to_owned());
    }
    audiences.sort();
    assert_eq!(audiences, ["kubectl", "portal"]);

    // The session-bound client's refresh token was revoked with the session (an unknown token, in
    // Dex's words); the standalone one lives on, still naming the session it came from.
    let (status, error) = refresh(&running, "portal", "s1", &portal).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error_description"], "Refresh token is invalid or has already been claimed by another client.");
    let (status, refreshed) = refresh(&running, "kubectl", "s2", &kubectl).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let refreshed = verify(&running, refreshed["id_token"].as_str().unwrap(), "kubectl").await;
    assert_eq!(refreshed["sid"], id_token["sid"]);
    // Introspection agrees (RFC 7662 §4: revoked is inactive): the session-bound client's access
    // token died with the session, the standalone client's lives until it expires.
    assert_eq!(introspect(&running, portal_access).await, serde_json::json!({"active": false}));
    let kubectl_access = introspect(&running, kubectl["access_token"].as_str().unwrap()).await;
    assert_eq!(kubectl_access["active"], true, "{kubectl_access}");

    // Signed out here: the next login asks for the password.
    let page = start_with(&browser, &running, &code_query("kubectl", "openid")).await;
    assert!(is_password_form(&page), "{}", page.body);
    let metrics = reqwest::get(format!("{}/metrics", running.telemetry)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tessera_backchannel_logout_deliveries_total{outcome=\"delivered\"} 2"), "{metrics}");
    running.shutdown().await;
    rp_task.abort();
}

/// `/token/introspect`'s answer (always a 200).
async fn introspect(running: &Running, token: &str) -> Value {
    let (status, answer) = crate::userinfo::introspect(running, token).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// The `aud` of a token, read without checking it (the check follows).
fn token_audience(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["aud"].as_str().unwrap().to_owned()
}

fn is_signed_in(page: &Landing) -> bool {
    !is_password_form(page)
}

#[tokio::test]
async fn refused_logouts_keep_the_session() {
    let (running, clock) = server(free_port()).await;
    let browser = Browser::new(APP);
    let portal = tokens_for(&browser, &running, "portal", "s1").await;
    let hint = portal["id_token"].as_str().unwrap().to_owned();
    let still_signed_in =
        || async { is_signed_in(&start_with(&browser, &running, &code_query("kubectl", "openid")).await) };

    for near_miss in [
        "http://127.0.0.1:5555/bye/",
        "https://127.0.0.1:5555/bye",
        "http://127.0.0.1:5555/byebye",
        "http://evil.example/bye",
    ] {
        let query = format!("id_token_hint={hint}&post_logout_redirect_uri={}&state=s", urlencode(near_miss));
        let refused = browser.get(&logout_url(&running, &query)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{near_miss}");
        assert!(
            refused.location.is_none() && refused.body.contains("Unregistered post_logout_redirect_uri."),
            "{}",
            refused.body
        );
    }
    let refused = browser.get(&logout_url(&running, &format!("post_logout_redirect_uri={}", urlencode(BYE)))).await;
    assert_eq!(refused.status, StatusCode::OK, "no hint on a GET: the user is asked first");
    let refused =
        browser.post(&logout_url(&running, &format!("post_logout_redirect_uri={}", urlencode(BYE))), &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("post_logout_redirect_uri requires id_token_hint."), "{}", refused.body);

    // Signed with another key: refused, whatever else the request says.
    let mut forged = hint.clone();
    forged.truncate(hint.rfind('.').unwrap() + 1);
    forged.push_str("c2lnbmVkIGJ5IHNvbWVvbmUgZWxzZQ");
    let refused = browser.get(&logout_url(&running, &format!("id_token_hint={forged}"))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("Invalid id_token_hint."), "{}", refused.body);

    // A hint for someone else asks the user, even when posted.
    let other = Browser::new(APP);
    let choice =
        other.follow(other.get(&crate::login::auth_url(&running, &code_query("kubectl", "openid"))).await).await;
    let back = other.follow(other.get(&resolve(&choice.url, &link(&choice.body, "connector-mock"))).await).await;
    let code = params(back.location.as_deref().unwrap(), false)["code"].clone();
    let (_, stranger) = redeem(
        &running,
        &[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)],
        Some(("kubectl", "s2")),
    )
    .await;
    let posted = browser
        .post(&logout_url(&running, ""), &[("id_token_hint".into(), stranger["id_token"].as_str().unwrap().into())])
        .await;
    assert_eq!(posted.status, StatusCode::OK);
    assert!(posted.body.contains("confirm-logout"), "{}", posted.body);
    assert!(still_signed_in().await, "nothing ended before the user confirmed");

    // A bare GET asks too; the confirmation's own POST ends the session.
    let asked = browser.get(&logout_url(&running, "")).await;
    assert!(asked.body.contains("confirm-logout"), "{}", asked.body);
    assert!(still_signed_in().await);
    let done = browser.submit(&asked, &[], None).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("You are logged out"), "{}", done.body);
    assert!(!still_signed_in().await, "logged out");

    // An expired hint is still a hint (RP-Initiated Logout §2): a new session, its token expired.
    let fresh = tokens_for(&browser, &running, "portal", "s1").await;
    clock.advance(time::Duration::minutes(5));
    let query =
        format!("id_token_hint={}&post_logout_redirect_uri={}", fresh["id_token"].as_str().unwrap(), urlencode(BYE));
    let out = browser.get(&logout_url(&running, &query)).await;
    assert_eq!((out.status, out.location.as_deref()), (StatusCode::FOUND, Some(BYE)), "{}", out.body);
    running.shutdown().await;
}

#[tokio::test]
async fn a_relying_party_down_during_logout_receives_the_token_once_it_is_back() {
    let rp_port = free_port();
    let (running, clock) = server(rp_port).await;
    let id_token = portal_in_and_out(&running).await;

    // Nobody listens: the attempt fails and is retried later.
    deliveries_reach(&running, "failed", 1).await;

    let (rp, rp_task) = RelyingParty::serve(rp_port).await;
    clock.advance(time::Duration::seconds(2));
    let tokens = rp.received(1).await;
    check_logout_token(&running, &tokens[0], "portal", &id_token).await;
    running.shutdown().await;
    rp_task.abort();
}

/// A session gone by another way than a logout (deleted in storage here): a session-bound refresh
/// token is refused at its next use, and revoked.
#[tokio::test]
async fn a_session_bound_refresh_token_is_refused_once_its_session_is_gone() {
    let (running, _clock) = server(free_port()).await;
    let browser = Browser::new(APP);
    let portal = tokens_for(&browser, &running, "portal", "s1").await;
    let (status, rotated) = refresh(&running, "portal", "s1", &portal).await;
    assert_eq!(status, StatusCode::OK, "alive while its session is");
    let sid =
        verify(&running, portal["id_token"].as_str().unwrap(), "portal").await["sid"].as_str().unwrap().to_owned();
    running.state.storage.delete::<tessera_core::model::AuthSession>(&sid).await.unwrap();
    let (status, error) = refresh(&running, "portal", "s1", &rotated).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{error}");
    assert_eq!(error["error_description"], "The session this refresh token belongs to has ended.");
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_is_ended_and_its_clients_told() {
    let rp_port = free_port();
    let (rp, rp_task) = RelyingParty::serve(rp_port).await;
    let (running, clock) = server(rp_port).await;
    let browser = Browser::new(APP);
    let portal = tokens_for(&browser, &running, "portal", "s1").await;
    let id_token = verify(&running, portal["id_token"].as_str().unwrap(), "portal").await;
    clock.advance(time::Duration::minutes(61));
    tessera_server::tasks::collect_garbage(&running.state).await;
    let tokens = rp.received(1).await;
    check_logout_token(&running, &tokens[0], "portal", &id_token).await;
    let (status, _) = refresh(&running, "portal", "s1", &portal).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a session-bound token ends with an expired session too");
    running.shutdown().await;
    rp_task.abort();
}

/// Two replicas on one PostgreSQL: the session made on one ends on the other, whose deliverer dies
/// with it; the survivor delivers the queued token once the relying party is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn either_replica_delivers_what_the_other_queued() {
    let Some(database) = crate::serve::ScratchDatabase::create("logout").await else { return };
    let storage = &database.storage;
    let rp_port = free_port();
    let clock = Arc::new(TestClock::at_test_epoch());
    let mut replicas = Vec::new();
    // One issuer behind a load balancer (here: the first replica's address).
    let issuer_port = free_port();
    for port in [issuer_port, free_port()] {
        let text = format!(
            "issuer: http://127.0.0.1:{issuer_port}/dex\n{storage}web:\n  http: 127.0.0.1:{port}\nenablePasswordDB: true\n\
             staticPasswords:\n- email: admin@example.com\n  hash: \"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"\n  \
             username: admin\n  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466\nstaticClients:\n{}",
            clients(rp_port)
        );
        let config = tessera_server::config::parse(&text, "replica.yaml", &sessions_on()).unwrap().config;
        replicas.push(crate::serve::start(config, clock.clone()).await);
    }
    let browser = Browser::new(APP);
    let portal = tokens_for(&browser, &replicas[0], "portal", "s1").await;
    let id_token = verify(&replicas[0], portal["id_token"].as_str().unwrap(), "portal").await;
    let ending = replicas.pop().unwrap();
    let query = format!("id_token_hint={}", portal["id_token"].as_str().unwrap());
    let out = browser.get(&logout_url(&ending, &query)).await;
    assert!(out.body.contains("You are logged out"), "the other replica's session ended: {}", out.body);
    ending.shutdown().await;

    let (rp, rp_task) = RelyingParty::serve(rp_port).await;
    clock.advance(time::Duration::seconds(15));
    let tokens = rp.received(1).await;
    check_logout_token(&replicas[0], &tokens[0], "portal", &id_token).await;
    replicas.pop().unwrap().shutdown().await;
    rp_task.abort();
    database.drop().await;
}

#[tokio::test]
async fn the_home_page_shows_who_is_signed_in_and_logs_out() {
    let (running, _clock) = server(free_port()).await;
    let browser = Browser::new(APP);
    let home = browser.get(&format!("{}/dex/", running.base)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let text = crate::browser::unescape(&home.body);
    assert!(text.contains("/dex/.well-known/openid-configuration") && !text.contains("home-logout"), "{text}");

    tokens_for(&browser, &running, "portal", "s1").await;
    let bare = browser.get(&format!("{}/dex", running.base)).await;
    assert!(bare.body.contains("admin@example.com"), "the issuer path itself: {}", bare.body);
    let home = browser.get(&format!("{}/dex/", running.base)).await;
    assert!(home.body.contains("admin@example.com") && home.body.contains("home-logout"), "{}", home.body);
    let done = browser.submit(&home, &[], None).await;
    assert!(done.body.contains("You are logged out"), "{}", done.body);
    let home = browser.get(&format!("{}/dex/", running.base)).await;
    assert!(!home.body.contains("admin@example.com"), "{}", home.body);
    running.shutdown().await;
}

/// A browser logs the portal in, then out with its ID token as the hint; the logged-out page comes at
/// once, whatever the relying parties do. The portal's ID token claims.
async fn portal_in_and_out(running: &Running) -> Value {
    let browser = Browser::new(APP);
    let portal = tokens_for(&browser, running, "portal", "s1").await;
    let id_token = verify(running, portal["id_token"].as_str().unwrap(), "portal").await;
    let query = format!("id_token_hint={}", portal["id_token"].as_str().unwrap());
    let out = browser.get(&logout_url(running, &query)).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("You are logged out"), "the user is not kept waiting: {}", out.body);
    id_token
}

/// Waits until the back-channel counter for `outcome` in `/metrics` reaches `count` (at most 15 s of
/// real time: the first attempt waits out the 5-second delivery timeout).
async fn deliveries_reach(running: &Running, outcome: &str, count: u32) {
    let line = format!("tessera_backchannel_logout_deliveries_total{{outcome=\"{outcome}\"}} {count}");
    for _ in 0..150 {
        let metrics = reqwest::get(format!("{}/metrics", running.telemetry)).await.unwrap().text().await.unwrap();
        if metrics.contains(&line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {line}");
}

#[tokio::test]
async fn a_hanging_then_failing_relying_party_is_cut_off_retried_and_never_delays_the_logout() {
    let rp_port = free_port();
    let script = vec![Answer::Hang, Answer::Status(StatusCode::INTERNAL_SERVER_ERROR)];
    let (rp, rp_task) = RelyingParty::scripted(rp_port, script).await;
    let (running, clock) = server(rp_port).await;
    let id_token = portal_in_and_out(&running).await;

    // The first attempt hangs and is cut off by the delivery timeout; the next, after the backoff,
    // gets a 500; the one after that is delivered.
    deliveries_reach(&running, "failed", 1).await;
    assert_eq!(rp.calls().len(), 1, "nothing retried before the backoff");
    clock.advance(time::Duration::seconds(2));
    deliveries_reach(&running, "failed", 2).await;
    clock.advance(time::Duration::seconds(3));
    let calls = rp.received(3).await;
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|token| token == &calls[0]), "the same token (same jti) at every attempt");
    check_logout_token(&running, &calls[2], "portal", &id_token).await;
    deliveries_reach(&running, "delivered", 1).await;
    running.shutdown().await;
    rp_task.abort();
}

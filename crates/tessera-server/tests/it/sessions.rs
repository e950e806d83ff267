//! Browser sessions and single sign-on (`DEX_SESSIONS_ENABLED=true`), through the pages with a
//! cookie jar: a second client is reached without a password when the first shares its sign-in,
//! and not when it does not, when the cookie was tampered with, or when the session has expired.

use reqwest::StatusCode;
use reqwest::cookie::CookieStore;
use tessera_server::config::Env;

use crate::browser::{Browser, Form, Landing, params, resolve};
use crate::login::{APP, REDIRECT, auth_url, link, redeem, server_with_env, urlencode, verify};
use crate::serve::Running;

pub(crate) const CLIENTS: &str = "- id: shares-all
  secret: s1
  name: Shares All
  redirectURIs: ['http://127.0.0.1:5555/callback']
  ssoSharedWith: ['*']
- id: shares-none
  secret: s2
  name: Shares None
  redirectURIs: ['http://127.0.0.1:5555/callback']
  ssoSharedWith: []
- id: second
  secret: s3
  name: Second App
  redirectURIs: ['http://127.0.0.1:5555/callback']
oauth2:
  skipApprovalScreen: true
sessions:
  absoluteLifetime: 3h
  validIfNotUsedFor: 1h
";

pub(crate) fn sessions_on() -> Env {
    Env::from_pairs([("DEX_SESSIONS_ENABLED", "true")])
}

pub(crate) async fn server(env: &Env) -> (Running, std::sync::Arc<tessera_core::clock::TestClock>) {
    server_with_env(CLIENTS, "", "", env).await.unwrap()
}

pub(crate) fn query(client: &str) -> String {
    format!(
        "client_id={client}&redirect_uri={}&response_type=code&scope=openid%20email&state=st&nonce=n",
        urlencode(REDIRECT)
    )
}

/// From `client`'s request through the connector choice to the password database: the form, or
/// (single sign-on) the redirect back to the app.
pub(crate) async fn start(browser: &Browser, running: &Running, client: &str) -> Landing {
    start_with(browser, running, &query(client)).await
}

/// As [`start`], for any `/auth` query. A live session skips the connector choice (its connector
/// is the choice made), as in Dex.
pub(crate) async fn start_with(browser: &Browser, running: &Running, query: &str) -> Landing {
    let choice = browser.follow(browser.get(&auth_url(running, query)).await).await;
    if choice.status != StatusCode::OK || !choice.body.contains("connector-local") {
        return choice;
    }
    let local = link(&choice.body, "connector-local");
    browser.follow(browser.get(&resolve(&choice.url, &local)).await).await
}

pub(crate) fn is_password_form(page: &Landing) -> bool {
    page.status == StatusCode::OK && page.body.contains("Email Address")
}

/// Submits the password form without following, so the response's cookie is seen; then follows.
pub(crate) async fn log_in(browser: &Browser, running: &Running, client: &str) -> (Vec<String>, Landing) {
    let form_page = start(browser, running, client).await;
    assert!(is_password_form(&form_page), "{}", form_page.body);
    let form = Form::parse(&form_page.body).unwrap();
    let mut fields: Vec<(String, String)> = form.hidden.into_iter().collect();
    fields.push(("login".into(), "admin@example.com".into()));
    fields.push(("password".into(), "password".into()));
    // As a browser: a ticked "remember me" box is sent.
    if form_page.body.contains(r#"name="remember_me" type="checkbox" checked"#) {
        fields.push(("remember_me".into(), "on".into()));
    }
    let posted = browser.post(&resolve(&form_page.url, &form.action), &fields).await;
    let cookies = posted.set_cookies.clone();
    (cookies, browser.follow(posted).await)
}

/// The code the app received, redeemed by `client`: the ID token's claims.
pub(crate) async fn id_token(running: &Running, back: &Landing, client: &str, secret: &str) -> serde_json::Value {
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let location = back.location.clone().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let code = params(&location, false)["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = redeem(running, &form, Some((client, secret))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    verify(running, tokens["id_token"].as_str().unwrap(), client).await
}

pub(crate) fn session_cookie(browser: &Browser, running: &Running) -> String {
    let url = format!("{}/dex/auth", running.base).parse().unwrap();
    let cookies = browser.jar.cookies(&url).map(|c| c.to_str().unwrap().to_owned()).unwrap_or_default();
    cookies.split("; ").find_map(|c| c.strip_prefix("dex_session=")).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_second_client_is_signed_in_without_a_password() {
    let (running, clock) = server(&sessions_on()).await;
    let browser = Browser::new(APP);
    let (cookies, back) = log_in(&browser, &running, "shares-all").await;
    let cookie = cookies.iter().find(|c| c.starts_with("dex_session=")).expect("a session cookie");
    assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Lax") && cookie.contains("; Path=/dex"));
    assert!(!cookie.contains("Secure"), "an http issuer: {cookie}");
    assert!(cookie.contains("; Max-Age=10800"), "remembered by default, for the absolute lifetime: {cookie}");
    assert!(!cookie.contains("admin"), "no identity in the cookie: {cookie}");
    let first = id_token(&running, &back, "shares-all", "s1").await;

    clock.advance(time::Duration::seconds(60));
    let sso = start(&browser, &running, "second").await;
    assert!(!is_password_form(&sso), "no password asked: {}", sso.body);
    let second = id_token(&running, &sso, "second", "s3").await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["email"], "admin@example.com");
    assert_eq!(second["auth_time"], first["auth_time"], "the session's login, not a new one");
    assert_eq!(second["nonce"], "n");

    // The client reached by single sign-on was reached in this session: it comes back without a login.
    let again = start(&browser, &running, "second").await;
    assert!(!is_password_form(&again), "{}", again.body);
    running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_shares_with_nobody_forces_a_login() {
    let (running, _clock) = server(&sessions_on()).await;
    let browser = Browser::new(APP);
    let (_, back) = log_in(&browser, &running, "shares-none").await;
    id_token(&running, &back, "shares-none", "s2").await;
    assert!(is_password_form(&start(&browser, &running, "second").await), "ssoSharedWith: []");
    // A client without ssoSharedWith follows ssoSharedWithDefault, `none` unless set.
    let other = Browser::new(APP);
    let (_, back) = log_in(&other, &running, "second").await;
    id_token(&running, &back, "second", "s3").await;
    assert!(is_password_form(&start(&other, &running, "shares-all").await));
    // Its own sign-in it gets back.
    assert!(!is_password_form(&start(&other, &running, "second").await));
    running.shutdown().await;
}

/// A session cookie as Dex master writes it (`SessionCookie{session_id = 1, secret = 2}` in protobuf,
/// unpadded base64url), encoded here by hand so the test does not share tessera's encoder.
pub(crate) fn dex_cookie(id: &str, secret: &str) -> String {
    use base64::Engine;
    let mut message = vec![0x0a, id.len() as u8];
    message.extend_from_slice(id.as_bytes());
    message.extend_from_slice(&[0x12, secret.len() as u8]);
    message.extend_from_slice(secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message)
}

#[tokio::test]
async fn a_tampered_cookie_is_no_session() {
    crate::log_capture::capture_logs(tracing::Level::WARN);
    let (running, _clock) = server(&sessions_on()).await;
    let browser = Browser::new(APP);
    log_in(&browser, &running, "shares-all").await;
    let genuine = session_cookie(&browser, &running);
    let stored = running.state.storage.list::<tessera_core::model::AuthSession>().await.unwrap();
    let (id, secret) = (stored[0].id.clone(), stored[0].secret.clone());
    assert_eq!(genuine, dex_cookie(&id, &secret), "the cookie is Dex's encoding of the session's ID and secret");
    let url: url::Url = format!("{}/dex", running.base).parse().unwrap();
    let other_id = format!("{}x", &id[..id.len() - 1]);
    let wrong_secret = format!("{}x", &secret[..secret.len() - 1]);
    for forged in [dex_cookie(&id, &wrong_secret), dex_cookie(&other_id, &secret), "garbage".to_owned()] {
        browser.jar.add_cookie_str(&format!("dex_session={forged}; Path=/dex"), &url);
        assert!(is_password_form(&start(&browser, &running, "second").await), "{forged} must not sign in");
    }
    let warnings: Vec<String> =
        crate::log_capture::captured_lines().iter().filter_map(|l| l["msg"].as_str().map(str::to_owned)).collect();
    for expected in ["does not carry its session's secret", "did not issue"] {
        assert!(warnings.iter().any(|w| w.contains(expected)), "no warning with {expected:?} in {warnings:#?}");
    }
    assert!(warnings.iter().all(|w| !w.contains(&secret)), "the cookie's secret is not logged: {warnings:#?}");
    // The genuine cookie still does: the refusals above were the tampering's doing.
    browser.jar.add_cookie_str(&format!("dex_session={genuine}; Path=/dex"), &url);
    assert!(!is_password_form(&start(&browser, &running, "second").await));
    running.shutdown().await;
}

/// A browser signed in at Dex keeps its session when tessera takes over Dex's storage: its cookie,
/// as Dex set it, names a session with that ID and secret (`tessera import-dex` copies them).
#[tokio::test]
async fn a_browser_signed_in_at_dex_stays_signed_in() {
    let (running, clock) = server(&sessions_on()).await;
    let now = tessera_core::clock::Clock::now(clock.as_ref());
    let claims = tessera_core::model::Claims {
        user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
        email: "admin@example.com".into(),
        email_verified: true,
        ..Default::default()
    };
    let state = tessera_core::model::ClientAuthState {
        authenticated_at: now,
        last_activity: now,
        via_sso: false,
        last_token_issued_at: Some(now),
    };
    let imported = tessera_core::model::AuthSession {
        id: "dexsessionid234".into(),
        secret: "dexsecret".into(),
        user_id: claims.user_id.clone(),
        connector_id: "local".into(),
        claims,
        client_states: [("shares-all".to_owned(), state)].into(),
        auth_time: now,
        created_at: now,
        last_activity: now,
        absolute_expiry: now + time::Duration::hours(2),
        idle_expiry: now + time::Duration::hours(1),
        logout_state: None,
        remember_me: true,
        ip_address: String::new(),
        user_agent: String::new(),
    };
    running.state.storage.create(&imported).await.unwrap();
    let browser = Browser::new(APP);
    let url: url::Url = format!("{}/dex", running.base).parse().unwrap();
    browser.jar.add_cookie_str(&format!("dex_session={}; Path=/dex", dex_cookie("dexsessionid234", "dexsecret")), &url);
    let back = start(&browser, &running, "second").await;
    assert!(!is_password_form(&back), "signed in by the session Dex started: {}", back.body);
    let token = id_token(&running, &back, "second", "s3").await;
    assert_eq!((token["email"].as_str(), token["sid"].as_str()), (Some("admin@example.com"), Some("dexsessionid234")));
    running.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_expires_and_use_keeps_it_alive_until_its_absolute_lifetime() {
    let (running, clock) = server(&sessions_on()).await;
    let idle = Browser::new(APP);
    log_in(&idle, &running, "shares-all").await;
    let busy = Browser::new(APP);
    log_in(&busy, &running, "shares-all").await;

    // Used every 50 minutes, the busy session lives on; the idle one dies after an hour.
    for _ in 0..3 {
        clock.advance(time::Duration::seconds(50 * 60));
        assert!(!is_password_form(&start(&busy, &running, "second").await), "used within validIfNotUsedFor");
    }
    assert!(is_password_form(&start(&idle, &running, "second").await), "idle for over an hour");
    // 2h30m now; 3h is the absolute lifetime, however busy.
    clock.advance(time::Duration::seconds(20 * 60));
    assert!(!is_password_form(&start(&busy, &running, "second").await));
    clock.advance(time::Duration::seconds(10 * 60));
    assert!(is_password_form(&start(&busy, &running, "second").await), "past absoluteLifetime");

    // Garbage collection removes what expired.
    clock.advance(time::Duration::HOUR);
    let removed = running.state.storage.garbage_collect(running.state.clock.now()).await.unwrap();
    assert_eq!(removed.auth_sessions, 2);
    running.shutdown().await;
}

#[tokio::test]
async fn without_the_flag_there_is_no_session() {
    let text = CLIENTS.split("sessions:").next().unwrap();
    let (running, _clock) = server_with_env(text, "", "", &Env::default()).await.unwrap();
    let browser = Browser::new(APP);
    let (cookies, _) = log_in(&browser, &running, "shares-all").await;
    assert!(cookies.iter().all(|c| !c.starts_with("dex_session")), "{cookies:?}");
    assert!(is_password_form(&start(&browser, &running, "second").await));
    running.shutdown().await;
}

#[tokio::test]
async fn a_sealed_cookie_hides_the_session_and_still_signs_in() {
    let text = format!("{CLIENTS}  cookieEncryptionKey: 0123456789abcdef0123456789abcdef\n");
    let (running, _clock) = server_with_env(&text, "", "", &sessions_on()).await.unwrap();
    let browser = Browser::new(APP);
    log_in(&browser, &running, "shares-all").await;
    let sealed = session_cookie(&browser, &running);
    let sessions = running.state.storage.list::<tessera_core::model::AuthSession>().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(!sealed.contains(&sessions[0].id) && !sealed.contains('.'), "{sealed}");
    assert!(!is_password_form(&start(&browser, &running, "second").await));
    running.shutdown().await;
}

/// Two replicas on one PostgreSQL: a login on one is a session on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_one_database_share_sessions() {
    let Some(database) = crate::serve::ScratchDatabase::create("sessions").await else { return };
    let storage = &database.storage;
    let clock = std::sync::Arc::new(tessera_core::clock::TestClock::at_test_epoch());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let port = crate::serve::free_port();
        let text = format!(
            "issuer: http://127.0.0.1:{port}/dex\n{storage}web:\n  http: 127.0.0.1:{port}\nenablePasswordDB: true\n\
             staticPasswords:\n- email: admin@example.com\n  hash: \"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"\n  \
             username: admin\n  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466\nconnectors:\n- type: mockCallback\n  id: mock\n  name: Example\n\
             staticClients:\n{CLIENTS}"
        );
        let config = tessera_server::config::parse(&text, "replica.yaml", &sessions_on()).unwrap().config;
        replicas.push(crate::serve::start(config, clock.clone()).await);
    }
    let browser = Browser::new(APP);
    log_in(&browser, &replicas[0], "shares-all").await;
    // Cookies are not kept apart by port, so the browser shows the first replica's cookie to the second.
    assert!(!is_password_form(&start(&browser, &replicas[1], "second").await), "the other replica's session");
    let other = Browser::new(APP);
    assert!(is_password_form(&start(&other, &replicas[1], "second").await), "a browser without the cookie");
    for replica in replicas {
        replica.shutdown().await;
    }
    database.drop().await;
}

pub(crate) fn is_consent(page: &Landing) -> bool {
    page.status == StatusCode::OK && page.body.contains("approval")
}

#[tokio::test]
async fn consent_is_remembered_per_user_and_client() {
    let text = CLIENTS.replace("skipApprovalScreen: true", "skipApprovalScreen: false");
    let (running, _clock) = server_with_env(&text, "", "", &sessions_on()).await.unwrap();
    let browser = Browser::new(APP);
    let (_, consent) = log_in(&browser, &running, "shares-all").await;
    assert!(is_consent(&consent), "{}", consent.body);
    let back = browser.submit(&consent, &[], Some(("approval", "approve"))).await;
    id_token(&running, &back, "shares-all", "s1").await;

    // Single sign-on into another client: that client's consent is its own.
    let sso = start(&browser, &running, "second").await;
    assert!(is_consent(&sso), "second was never approved: {}", sso.body);
    let back = browser.submit(&sso, &[], Some(("approval", "approve"))).await;
    id_token(&running, &back, "second", "s3").await;

    let again = start(&browser, &running, "second").await;
    assert!(!is_consent(&again), "approved before: {}", again.body);
    id_token(&running, &again, "second", "s3").await;

    // A scope never approved asks again; so does a forced prompt.
    let wider = query("second").replace("openid%20email", "openid%20email%20groups");
    let page = start_with(&browser, &running, &wider).await;
    assert!(is_consent(&page), "groups was never approved: {}", page.body);
    let forced = format!("{}&prompt=consent", query("second"));
    let page = start_with(&browser, &running, &forced).await;
    assert!(is_consent(&page), "prompt=consent: {}", page.body);
    running.shutdown().await;
}

/// The browser's session, read from storage.
async fn stored_session(running: &Running, id: &str) -> tessera_core::model::AuthSession {
    running.state.storage.get::<tessera_core::model::AuthSession>(id).await.unwrap()
}

#[tokio::test]
async fn a_session_records_the_address_and_user_agent_of_each_login_into_it() {
    let (running, _clock) = server(&sessions_on()).await;
    let firefox = Browser::with_headers(APP, &[("User-Agent", "Mozilla/5.0 Firefox/140.0")]);
    log_in(&firefox, &running, "shares-all").await;
    let sessions = running.state.storage.list::<tessera_core::model::AuthSession>().await.unwrap();
    assert_eq!(sessions.len(), 1);
    let id = sessions[0].id.clone();
    assert_eq!(
        (sessions[0].ip_address.as_str(), sessions[0].user_agent.as_str()),
        ("127.0.0.1", "Mozilla/5.0 Firefox/140.0")
    );

    // The same browser, upgraded, logs in again into its session: the session takes the new agent.
    let chrome = firefox.same_cookies(&[("User-Agent", "Mozilla/5.0 Chrome/138.0")]);
    let form = start_with(&chrome, &running, &format!("{}&prompt=login", query("shares-all"))).await;
    assert!(is_password_form(&form), "{}", form.body);
    chrome.submit(&form, &[("login", "admin@example.com"), ("password", "password")], None).await;
    let session = stored_session(&running, &id).await;
    assert_eq!(session.user_agent, "Mozilla/5.0 Chrome/138.0", "renewed at the login into the same session");
    assert_eq!(session.ip_address, "127.0.0.1");

    // Single sign-on is no login: it leaves the last login's agent.
    let curl = firefox.same_cookies(&[("User-Agent", "curl/8.0")]);
    assert!(!is_password_form(&start(&curl, &running, "second").await), "signed in by the session");
    let session = stored_session(&running, &id).await;
    assert!(session.client_states.contains_key("second"));
    assert_eq!(session.user_agent, "Mozilla/5.0 Chrome/138.0");

    // A huge User-Agent is cut, so it cannot bloat every write of the session.
    let huge = format!("Mozilla/5.0 {}", "x".repeat(4000));
    let other = Browser::with_headers(APP, &[("User-Agent", huge.as_str())]);
    log_in(&other, &running, "shares-all").await;
    let sessions = running.state.storage.list::<tessera_core::model::AuthSession>().await.unwrap();
    let new = sessions.iter().find(|s| s.id != id).expect("a second browser, a second session");
    assert_eq!(new.user_agent, huge[..tessera_core::session::MAX_USER_AGENT]);
    running.shutdown().await;
}

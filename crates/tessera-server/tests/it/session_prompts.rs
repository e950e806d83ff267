//! The OpenID Connect request parameters against a browser session (`DEX_SESSIONS_ENABLED=true`),
//! through the pages with a cookie jar: `prompt=none` answers silently or with an error and never
//! shows a page, `prompt=login` and `max_age` force a new login, `id_token_hint` names whose session
//! may answer, `login_hint` fills the form, and the tokens carry the session as `sid`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{Browser, Landing, params, resolve};
use crate::login::{APP, REDIRECT, auth_url, link, redeem, server_with_env, urlencode};
use crate::serve::Running;
use crate::sessions::{
    CLIENTS, id_token, is_consent, is_password_form, log_in, query, server, sessions_on, start, start_with,
};

/// The error the app received instead of a code; fails if any page was shown on the way.
fn error_at_app(landing: &Landing) -> std::collections::BTreeMap<String, String> {
    assert_eq!(landing.status, StatusCode::SEE_OTHER, "no page may be shown: {}", landing.body);
    let location = landing.location.as_deref().expect("a redirect");
    assert!(location.starts_with(REDIRECT), "back at the app: {location}");
    let answer = params(location, false);
    assert!(!answer.contains_key("code"), "{location}");
    answer
}

/// The app's token response for the code it received.
async fn tokens(running: &Running, back: &Landing, client: &str, secret: &str) -> Value {
    let location = back.location.as_deref().expect("back at the app");
    let code = params(location, false)["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = redeem(running, &form, Some((client, secret))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

fn with(query: &str, extra: &str) -> String {
    format!("{query}&{extra}")
}

async fn submit_password(browser: &Browser, form: &Landing) -> Landing {
    assert!(is_password_form(form), "{}", form.body);
    browser.submit(form, &[("login", "admin@example.com"), ("password", "password")], None).await
}

#[tokio::test]
async fn prompt_none_answers_login_required_without_a_session_and_a_code_with_one() {
    let (running, _clock) = server(&sessions_on()).await;
    let browser = Browser::new(APP);
    let silent = with(&query("second"), "prompt=none");
    // No session: the connector choice is not shown, nor the connector's form.
    let refused = error_at_app(&browser.follow(browser.get(&auth_url(&running, &silent)).await).await);
    assert_eq!((refused["error"].as_str(), refused["state"].as_str()), ("login_required", "st"));
    let direct = browser.follow(browser.get(&format!("{}/dex/auth/local?{silent}", running.base)).await).await;
    assert_eq!(error_at_app(&direct)["error"], "login_required");

    let (_, back) = log_in(&browser, &running, "shares-all").await;
    let first = id_token(&running, &back, "shares-all", "s1").await;
    let sid = first["sid"].as_str().expect("an ID token issued within a session carries sid").to_owned();

    // A session shared with this client: a code without any page.
    let silent_back = browser.follow(browser.get(&auth_url(&running, &silent)).await).await;
    let second = id_token(&running, &silent_back, "second", "s3").await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["sid"], sid.as_str(), "the same browser session");
    assert_eq!(second["auth_time"], first["auth_time"]);

    // A client the session may not reach (signed in only to a client that shares with nobody):
    // still no page.
    let unshared = Browser::new(APP);
    let (_, back) = log_in(&unshared, &running, "shares-none").await;
    id_token(&running, &back, "shares-none", "s2").await;
    let refused = unshared.follow(unshared.get(&auth_url(&running, &silent)).await).await;
    assert_eq!(error_at_app(&refused)["error"], "login_required");
    running.shutdown().await;
}

#[tokio::test]
async fn prompt_none_without_consent_is_consent_required() {
    let text = CLIENTS.replace("skipApprovalScreen: true", "skipApprovalScreen: false");
    let (running, _clock) = server_with_env(&text, "", "", &sessions_on()).await.unwrap();
    let browser = Browser::new(APP);
    let (_, consent) = log_in(&browser, &running, "shares-all").await;
    assert!(is_consent(&consent), "{}", consent.body);
    browser.submit(&consent, &[], Some(("approval", "approve"))).await;

    let silent = with(&query("second"), "prompt=none");
    let refused = browser.follow(browser.get(&auth_url(&running, &silent)).await).await;
    assert_eq!(error_at_app(&refused)["error"], "consent_required", "signed in, but second was never approved");
    running.shutdown().await;
}

#[tokio::test]
async fn an_id_token_hint_for_someone_else_does_not_use_the_session() {
    let (running, _clock) = server(&sessions_on()).await;
    // Kilgore logs in through the mock connector in another browser: his ID token is the stranger's hint.
    let other = Browser::new(APP);
    let choice = other.follow(other.get(&auth_url(&running, &query("second"))).await).await;
    let back = other.follow(other.get(&resolve(&choice.url, &link(&choice.body, "connector-mock"))).await).await;
    let stranger = tokens(&running, &back, "second", "s3").await["id_token"].as_str().unwrap().to_owned();

    let browser = Browser::new(APP);
    let (_, back) = log_in(&browser, &running, "shares-all").await;
    let own = tokens(&running, &back, "shares-all", "s1").await["id_token"].as_str().unwrap().to_owned();

    let hinted = |hint: &str| with(&query("second"), &format!("prompt=none&id_token_hint={hint}"));
    let silent = browser.follow(browser.get(&auth_url(&running, &hinted(&own))).await).await;
    assert_eq!(id_token(&running, &silent, "second", "s3").await["email"], "admin@example.com");

    let refused = browser.follow(browser.get(&auth_url(&running, &hinted(&stranger))).await).await;
    let error = error_at_app(&refused);
    assert_eq!(error["error"], "login_required");
    assert!(error["error_description"].contains("id_token_hint"), "{error:?}");

    // Without prompt=none, the stranger's hint means a login, not the admin's session.
    let page = start_with(&browser, &running, &with(&query("second"), &format!("id_token_hint={stranger}"))).await;
    assert!(is_password_form(&page), "{}", page.body);

    // A hint this server did not sign is refused outright.
    let forged = format!("{}.{}.AAAA", own.split('.').next().unwrap(), own.split('.').nth(1).unwrap());
    let refused = browser.follow(browser.get(&auth_url(&running, &hinted(&forged))).await).await;
    let error = error_at_app(&refused);
    assert_eq!(
        (error["error"].as_str(), error["error_description"].as_str()),
        ("invalid_request", "Invalid id_token_hint.")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn max_age_and_prompt_login_force_a_new_login_with_a_newer_auth_time() {
    let (running, clock) = server(&sessions_on()).await;
    let browser = Browser::new(APP);
    let (_, back) = log_in(&browser, &running, "shares-all").await;
    let first = id_token(&running, &back, "shares-all", "s1").await;
    let first_login = first["auth_time"].as_i64().unwrap();

    clock.advance(time::Duration::seconds(2));
    let page = start_with(&browser, &running, &with(&query("second"), "max_age=1")).await;
    let back = submit_password(&browser, &page).await;
    let second = id_token(&running, &back, "second", "s3").await;
    let second_login = second["auth_time"].as_i64().expect("auth_time whenever max_age was sent");
    assert_eq!(second_login, first_login + 2, "the new login's time");
    assert_eq!(second["sid"], first["sid"], "the same user on the same browser continues the session");

    // A max_age the login satisfies lets single sign-on answer, with the login's auth_time.
    clock.advance(time::Duration::seconds(2));
    let sso = start_with(&browser, &running, &with(&query("second"), "max_age=3600")).await;
    assert!(!is_password_form(&sso), "{}", sso.body);
    assert_eq!(id_token(&running, &sso, "second", "s3").await["auth_time"], second_login);

    // prompt=select_account: the connector list, and no reuse of the session.
    let list =
        browser.follow(browser.get(&auth_url(&running, &with(&query("second"), "prompt=select_account"))).await).await;
    assert!(list.status == StatusCode::OK && list.body.contains("connector-local"), "{}", list.body);
    let page = browser.follow(browser.get(&resolve(&list.url, &link(&list.body, "connector-local"))).await).await;
    assert!(is_password_form(&page), "{}", page.body);

    // prompt=login: the form again, whatever the session.
    let page = start_with(&browser, &running, &with(&query("shares-all"), "prompt=login")).await;
    assert!(is_password_form(&page), "{}", page.body);
    // And prompt=none with a max_age the session is too old for: login_required, no page.
    clock.advance(time::Duration::seconds(5));
    let refused =
        browser.follow(browser.get(&auth_url(&running, &with(&query("second"), "prompt=none&max_age=1"))).await).await;
    assert_eq!(error_at_app(&refused)["error"], "login_required");
    running.shutdown().await;
}

#[tokio::test]
async fn login_hint_fills_the_form_and_remember_me_is_the_users_choice() {
    let (running, _clock) = server(&sessions_on()).await;
    let browser = Browser::new(APP);
    let hint = r#"jane@example.com"><script>alert(1)</script>"#;
    let page =
        start_with(&browser, &running, &with(&query("second"), &format!("login_hint={}", urlencode(hint)))).await;
    assert!(is_password_form(&page), "{}", page.body);
    assert!(
        page.body.contains(r#"value="jane@example.com&#34;&gt;&lt;script&gt;"#)
            || page.body.contains("value=\"jane@example.com&quot;&gt;&lt;script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"), "escaped");
    assert!(page.body.contains(r#"name="remember_me" type="checkbox" checked"#), "ticked by default: {}", page.body);

    // Unticked: the cookie lasts as long as the browser.
    let posted = browser
        .post(
            &resolve(&page.url, &crate::browser::Form::parse(&page.body).unwrap().action),
            &[("login".into(), "admin@example.com".into()), ("password".into(), "password".into())],
        )
        .await;
    let cookie = posted.set_cookies.iter().find(|c| c.starts_with("dex_session=")).expect("a session cookie");
    assert!(!cookie.contains("Max-Age"), "not remembered: {cookie}");

    // Without sessions there is no checkbox (nothing to remember).
    let without = &CLIENTS[..CLIENTS.find("sessions:").unwrap()];
    let (plain, _clock) = server_with_env(without, "", "", &tessera_server::config::Env::default()).await.unwrap();
    let page = start(&Browser::new(APP), &plain, "second").await;
    assert!(is_password_form(&page) && !page.body.contains("remember_me"), "{}", page.body);
    running.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn the_auth_policy_judges_single_sign_on_as_it_judges_a_login() {
    let text = format!(
        "{CLIENTS}authPolicy:\n- expression: \"request.client_id == 'second'\"\n  message: \"'second is closed to ' + identity.email\"\n"
    );
    let (running, _clock) = server_with_env(&text, "", "", &sessions_on()).await.unwrap();
    let browser = Browser::new(APP);
    let (_, back) = log_in(&browser, &running, "shares-all").await;
    id_token(&running, &back, "shares-all", "s1").await;
    let denied = start(&browser, &running, "second").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    assert!(denied.body.contains("second is closed to admin@example.com"), "{}", denied.body);
    running.shutdown().await;
}

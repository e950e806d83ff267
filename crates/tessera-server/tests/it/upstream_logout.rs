//! Upstream logout (`DEX_SESSIONS_ENABLED=true`): logging out of tessera when the user came through an
//! OIDC upstream with an `end_session_endpoint` first ends the upstream's session, at the reference
//! provider (oidc-provider) and through its own confirmation form, and ends tessera's when the browser
//! comes back to `/logout/callback`.

use std::sync::Arc;

use reqwest::StatusCode;
use tessera_core::clock::SystemClock;
use tessera_server::config::parse;

use crate::browser::{Browser, Landing, params};
use crate::login::{APP, APP_SECRET, redeem, redeem_code, urlencode, verify};
use crate::oidc::{ReferenceProvider, login_at_provider, reference_config, reference_provider_with_logout};
use crate::serve::{Running, free_port, try_start};
use crate::sessions::sessions_on;

const BYE: &str = "http://127.0.0.1:5555/bye";

/// tessera on `port` with sessions, the reference provider as its only connector.
async fn downstream(port: u16, provider: &ReferenceProvider) -> Running {
    let client = format!("  postLogoutRedirectURIs: ['{BYE}']\n  refreshTokenLifetime: session\n");
    let config = parse(&reference_config(port, provider, &client), "upstream-logout.yaml", &sessions_on()).unwrap();
    try_start(config.config, Arc::new(SystemClock)).await.unwrap()
}

/// Whether the provider still has a session for this browser: `prompt=none` answers with a code, or
/// with `login_required` once it has none (OpenID Connect Core §3.1.2.6).
async fn provider_session(browser: &Browser, provider: &ReferenceProvider, callback: &str) -> bool {
    // The same cookies, stopping at tessera's callback instead of following it.
    let at_provider = Browser { http: browser.http.clone(), jar: browser.jar.clone(), app: callback.to_owned() };
    let url = format!(
        "{}/auth?client_id=tessera&response_type=code&scope=openid&prompt=none&redirect_uri={}",
        provider.issuer,
        urlencode(callback)
    );
    let back = at_provider.follow(at_provider.get(&url).await).await;
    let location = back.location.unwrap_or_else(|| panic!("prompt=none answers at the callback: {}", back.body));
    let answer = params(&location, false);
    match answer.get("error").map(String::as_str) {
        None => answer.contains_key("code"),
        Some("login_required") => false,
        Some(other) => panic!("prompt=none answered {other}: {location}"),
    }
}

async fn signed_in(browser: &Browser, running: &Running) -> bool {
    let home: Landing = browser.get(&format!("{}/dex/", running.base)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    home.body.contains("home-logout")
}

#[tokio::test]
async fn logout_ends_the_upstream_session_first_then_tesseras() {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/dex/callback");
    let logout_callback = format!("http://127.0.0.1:{port}/dex/logout/callback");
    let Some(provider) = reference_provider_with_logout(&callback, &logout_callback).await else { return };
    let running = downstream(port, &provider).await;

    let browser = Browser::new(APP);
    let location = login_at_provider(&browser, &running, &provider, "openid email profile offline_access").await;
    let (status, tokens) = redeem_code(&running, &params(&location, false)["code"]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(verify(&running, id_token, "example-app").await["email"], "alice@op.example");
    assert!(signed_in(&browser, &running).await);
    assert!(provider_session(&browser, &provider, &callback).await, "signed in at the provider too");

    // The callback without a logout under way changes nothing.
    let early = browser.get(&logout_callback).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST, "{}", early.body);
    assert!(early.body.contains("No logout in progress."), "{}", early.body);
    assert!(signed_in(&browser, &running).await);

    // The relying party's logout goes to the provider's end-session endpoint first ...
    let query = format!("id_token_hint={id_token}&post_logout_redirect_uri={}&state=st-9", urlencode(BYE));
    let logout = browser.get(&format!("{}/dex/logout?{query}", running.base)).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.body);
    let upstream = logout.location.clone().unwrap();
    assert!(upstream.starts_with(&format!("{}/session/end?", provider.issuer)), "{upstream}");
    let asked = params(&upstream, false);
    assert_eq!(
        (asked["client_id"].as_str(), asked["post_logout_redirect_uri"].as_str()),
        ("tessera", logout_callback.as_str())
    );
    // ... and tessera's session lives until the browser is back: a user who abandons the provider's
    // page is not half logged out.
    assert!(signed_in(&browser, &running).await, "the session ends only at the callback");

    // The provider asks for confirmation, ends its session and sends the browser back to tessera, which
    // ends its own and answers the relying party.
    let confirm = browser.follow(logout).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let done = browser.submit(&confirm, &[], Some(("logout", "yes"))).await;
    let done_at =
        done.location.clone().unwrap_or_else(|| panic!("back at the relying party: {} {}", done.url, done.body));
    assert_eq!(done_at, format!("{BYE}?state=st-9"));
    assert!(!signed_in(&browser, &running).await, "tessera's session ended");
    assert!(!provider_session(&browser, &provider, &callback).await, "the provider's session ended");
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, answer) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error_description"], "Refresh token is invalid or has already been claimed by another client.",
        "revoked with the session (refreshTokenLifetime: session)"
    );

    // The callback again: the cookie is gone.
    let again = browser.get(&logout_callback).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.body.contains("Invalid session cookie."), "{}", again.body);
    running.shutdown().await;
}

//! The pages under attack: an attack string in every parameter a page could reflect never comes back
//! as markup, no parameter turns tessera into an open redirect, and every response refuses framing
//! and sniffing unless `web.headers` says otherwise.

use reqwest::StatusCode;

use crate::browser::{Browser, Landing, link, resolve};
use crate::login::{APP, REDIRECT, auth_url, server, server_with_web, urlencode};
use crate::serve::Running;

/// Breaks out of an attribute, a text node and a URL, then runs script three ways.
const ATTACK: &str = "\"'><script>alert(1)</script><img src=x onerror=alert(1)><a href=javascript:alert(1)>";
/// What must never appear in a page: the attack's markup, unescaped.
const MARKUP: [&str; 3] = ["<script>alert(1)", "<img src=x", "<a href=javascript:"];

const EVIL: &str = "https://evil.example/steal";

/// Every parameter of an authorization request, valid.
fn valid_auth_params() -> Vec<(&'static str, String)> {
    vec![
        ("client_id", "example-app".into()),
        ("redirect_uri", REDIRECT.into()),
        ("response_type", "code".into()),
        ("scope", "openid email".into()),
        ("state", "st-123".into()),
        ("nonce", "n-456".into()),
        ("connector_id", "local".into()),
        ("prompt", "consent".into()),
        ("max_age", "600".into()),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        ("code_challenge_method", "S256".into()),
        ("response_mode", "query".into()),
        ("login_hint", "admin@example.com".into()),
        ("id_token_hint", "eyJhbGciOiJub25lIn0.e30.".into()),
        ("display", "page".into()),
        ("ui_locales", "en".into()),
        ("acr_values", "1".into()),
    ]
}

fn query(params: &[(&str, String)]) -> String {
    params.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&")
}

/// Asserts that no page or redirect of the chain reflects markup or leaves for an unregistered site.
fn assert_safe(chain: &[Landing], what: &str) {
    for landing in chain {
        for markup in MARKUP {
            assert!(!landing.body.contains(markup), "{what}: {markup} reflected at {}:\n{}", landing.url, landing.body);
        }
        if let Some(location) = &landing.location {
            assert!(!location.starts_with("https://evil.example"), "{what}: an open redirect to {location}");
            for markup in MARKUP {
                assert!(!location.contains(markup), "{what}: {markup} in a Location: {location}");
            }
        }
    }
}

/// Follows redirects from `url` (stopping at the app), keeping every hop.
async fn chain(browser: &Browser, url: &str) -> Vec<Landing> {
    let mut hops = vec![browser.get(url).await];
    for _ in 0..20 {
        let last = hops.last().unwrap();
        match &last.location {
            Some(next)
                if last.status.is_redirection() && next.starts_with("http://127.0.0.1") && !next.starts_with(APP) =>
            {
                let next = next.clone();
                hops.push(browser.get(&next).await);
            }
            _ => break,
        }
    }
    hops
}

#[tokio::test]
async fn no_authorization_parameter_comes_back_as_markup_or_an_open_redirect() {
    let running = server("").await;
    for (name, _) in valid_auth_params() {
        for value in [ATTACK.to_owned(), EVIL.to_owned(), format!("{EVIL}?{ATTACK}")] {
            let mut params = valid_auth_params();
            params.iter_mut().filter(|(k, _)| *k == name).for_each(|(_, v)| *v = value.clone());
            let browser = Browser::new(APP);
            let hops = chain(&browser, &auth_url(&running, &query(&params))).await;
            assert_safe(&hops, &format!("/auth with {name}={value}"));
            // Through the password form to the end, where the request gets that far.
            let last = hops.last().unwrap();
            if last.status == StatusCode::OK && last.body.contains("name=\"password\"") {
                let done =
                    browser.submit(last, &[("login", "admin@example.com"), ("password", "password")], None).await;
                assert_safe(&[done], &format!("/auth with {name}={value}, logged in"));
            }
        }
    }
    running.shutdown().await;
}

#[tokio::test]
async fn no_page_parameter_comes_back_as_markup() {
    let running = server("").await;
    let a = urlencode(ATTACK);
    let paths = [
        format!("/auth/local?req={a}&state={a}"),
        format!("/auth/{a}?req={a}"),
        format!("/auth/local/login?state={a}&back={a}"),
        format!("/auth/{a}/login?state={a}"),
        format!("/callback?state={a}&code={a}"),
        format!("/callback/mock?state={a}&code={a}&error={a}&error_description={a}"),
        format!("/callback/{a}?state={a}"),
        format!("/approval?req={a}&hmac={a}"),
        format!("/auth?req={a}&hmac={a}"),
        format!("/device?user_code={a}"),
        format!("/device/callback?state={a}&code={a}"),
        format!("/{a}"),
        format!("/static/{a}"),
    ];
    let browser = Browser::new(APP);
    for path in &paths {
        let hops = chain(&browser, &format!("{}/dex{path}", running.base)).await;
        assert_safe(&hops, path);
    }
    // Reflected from posted forms: the login name on the password form, the code on the device page.
    let form = {
        let choice = browser.follow(browser.get(&auth_url(&running, &crate::login::code_query("openid"))).await).await;
        browser.follow(browser.get(&resolve(&choice.url, &link(&choice.body, "connector-local"))).await).await
    };
    let wrong = browser.submit(&form, &[("login", ATTACK), ("password", "wrong")], None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("&quot;&#x27;&gt;&lt;script&gt;"), "escaped, not dropped: {}", wrong.body);
    assert_safe(&[wrong], "the login name");
    let device = browser.get(&format!("{}/dex/device", running.base)).await;
    let wrong = browser.submit(&device, &[("user_code", ATTACK)], None).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_safe(&[wrong], "the user code");
    running.shutdown().await;
}

#[tokio::test]
async fn the_back_link_stays_on_this_site() {
    let running = server("").await;
    let browser = Browser::new(APP);
    let choice = browser.follow(browser.get(&auth_url(&running, &crate::login::code_query("openid"))).await).await;
    let form = browser.follow(browser.get(&resolve(&choice.url, &link(&choice.body, "connector-local"))).await).await;
    let state = crate::browser::params(&form.url, false)["state"].clone();
    for back in
        ["//evil.example/x", "https://evil.example/x", "/\\evil.example", "javascript:alert(1)", " //evil.example"]
    {
        let url = format!("{}/dex/auth/local/login?state={state}&back={}", running.base, urlencode(back));
        let page = browser.get(&url).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("evil.example") && !page.body.contains("javascript:"), "{back}: {}", page.body);
    }
    running.shutdown().await;
}

async fn headers_of(running: &Running, path: &str) -> reqwest::header::HeaderMap {
    reqwest::get(format!("{}/dex{path}", running.base)).await.unwrap().headers().clone()
}

#[tokio::test]
async fn responses_refuse_framing_and_sniffing_by_default() {
    let running = server("").await;
    for path in ["/auth?client_id=example-app", "/device", "/keys", "/.well-known/openid-configuration", "/nowhere"] {
        let headers = headers_of(&running, path).await;
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["content-security-policy"], "frame-ancestors 'none'", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    running.shutdown().await;

    // web.headers replaces a default of the same name; an empty value removes it.
    let web = "  headers:\n    X-Frame-Options: SAMEORIGIN\n    Content-Security-Policy: \"\"\n";
    let (running, _) = server_with_web("", "", web).await;
    let headers = headers_of(&running, "/device").await;
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert!(headers.get("content-security-policy").is_none());
    assert_eq!(headers["x-content-type-options"], "nosniff");
    running.shutdown().await;
}

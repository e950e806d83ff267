//! The pages and assets: out-of-band codes, themes, static files, robots.txt and `frontend.dir`.

use reqwest::StatusCode;

use crate::browser::Browser;
use crate::login::{APP, APP_SECRET, auth_url, redeem, server, urlencode};

#[tokio::test]
async fn out_of_band_login_shows_the_code() {
    let running = server("oauth2:\n  skipApprovalScreen: true\n").await;
    let browser = Browser::new(APP);
    let oob = "urn:ietf:wg:oauth:2.0:oob";
    let query = format!(
        "client_id=example-app&redirect_uri={}&response_type=code&scope=openid&connector_id=mock",
        urlencode(oob)
    );
    let page = browser.follow(browser.get(&auth_url(&running, &query)).await).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Login successful"), "{}", page.body);
    let start = page.body.find("id=\"code\"").unwrap();
    let value = page.body[start..].find("value=\"").unwrap() + start + 7;
    let code = &page.body[value..value + page.body[value..].find('"').unwrap()];
    let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", oob)];
    let (status, tokens) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    running.shutdown().await;
}

#[tokio::test]
async fn assets_themes_and_robots() {
    let running = server("").await;
    let get = |path: &str| reqwest::get(format!("{}/dex{path}", running.base));
    let css = get("/static/main.css").await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let theme = get("/theme/styles.css").await.unwrap().text().await.unwrap();
    assert!(theme.contains("color-scheme: light"));
    assert_eq!(get("/theme/logo.svg").await.unwrap().headers()["content-type"], "image/svg+xml");
    assert_eq!(get("/robots.txt").await.unwrap().text().await.unwrap(), "User-agent: *\nDisallow: /\n");
    assert_eq!(get("/static/../../Cargo.toml").await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get("/static/missing.css").await.unwrap().status(), StatusCode::NOT_FOUND);
    running.shutdown().await;

    let dark = server("frontend:\n  theme: dark\n  issuer: Acme ID\n").await;
    let theme = reqwest::get(format!("{}/dex/theme/styles.css", dark.base)).await.unwrap().text().await.unwrap();
    assert!(theme.contains("color-scheme: dark"));
    let page =
        reqwest::get(format!("{}/dex/auth?client_id=example-app", dark.base)).await.unwrap().text().await.unwrap();
    assert!(page.contains("Log in to Acme ID"), "{page}");
    dark.shutdown().await;
}

#[tokio::test]
async fn frontend_dir_overrides_templates_and_assets() {
    let dir = std::env::temp_dir().join(format!("tessera-frontend-{}", tessera_core::id::new_id()));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(
        dir.join("templates/login.html"),
        "<h1>Welcome to {{ extra('company') }}</h1>{% for c in connectors %}<a href=\"{{ c.url }}\">{{ c.name }}</a>{% endfor %}",
    )
    .unwrap();
    std::fs::write(dir.join("static/main.css"), "body { color: hotpink; }").unwrap();
    let running = server(&format!("frontend:\n  dir: {}\n  extra:\n    company: Acme\n", dir.display())).await;
    let page =
        reqwest::get(format!("{}/dex/auth?client_id=example-app", running.base)).await.unwrap().text().await.unwrap();
    assert!(page.starts_with("<h1>Welcome to Acme</h1>"), "{page}");
    let css = reqwest::get(format!("{}/dex/static/main.css", running.base)).await.unwrap().text().await.unwrap();
    assert_eq!(css, "body { color: hotpink; }");
    // Templates the directory does not have stay the built-in ones.
    let error = reqwest::get(format!("{}/dex/approval?req=x&hmac=y", running.base)).await.unwrap();
    assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    assert!(error.text().await.unwrap().contains("Login session expired or invalid"));
    running.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn cors_and_security_headers_follow_the_web_section() {
    let web = "  allowedOrigins: ['https://spa.example']\n  headers:\n    X-Frame-Options: DENY\n    Content-Security-Policy: \"default-src 'self'\"\n";
    let (running, _) = crate::login::server_with_web("", "", web).await;
    let http = reqwest::Client::new();
    let discovery = http
        .get(format!("{}/dex/.well-known/openid-configuration", running.base))
        .header("origin", "https://spa.example")
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.headers()["access-control-allow-origin"], "https://spa.example");
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/dex/token", running.base))
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-headers"], "authorization");
    let other =
        http.get(format!("{}/dex/keys", running.base)).header("origin", "https://evil.example").send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none(), "only configured origins");
    let page = http.get(format!("{}/dex/auth?client_id=example-app", running.base)).send().await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["content-security-policy"], "default-src 'self'");
    assert!(page.headers().get("access-control-allow-origin").is_none(), "pages get no CORS");
    running.shutdown().await;
}

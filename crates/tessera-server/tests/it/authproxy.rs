//! The authenticating proxy: identity from the proxy's headers at `/callback/{id}`; the same headers
//! sent to the bare `/callback` are ignored.

use std::sync::Arc;

use reqwest::StatusCode;
use tessera_core::clock::SystemClock;
use tessera_server::config::{Env, parse};

use crate::browser::{Browser, params};
use crate::login::{APP, APP_SECRET, code_query, redeem_code, verify};
use crate::serve::{Running, try_start};

async fn server() -> Running {
    let port = crate::serve::free_port();
    let text = format!(
        "issuer: http://127.0.0.1:{port}/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{port}\noauth2:\n  skipApprovalScreen: true\nconnectors:\n- type: authproxy\n  id: proxy\n  name: Corporate SSO\n  config:\n    groupHeaderSeparator: ';'\n    staticGroups: [employees]\nstaticClients:\n- id: example-app\n  secret: {APP_SECRET}\n  name: Example App\n  redirectURIs: ['http://127.0.0.1:5555/callback']\n"
    );
    try_start(parse(&text, "proxy.yaml", &Env::default()).unwrap().config, Arc::new(SystemClock)).await.unwrap()
}

const PROXY_HEADERS: [(&str, &str); 4] = [
    ("X-Remote-User", "ann"),
    ("X-Remote-User-Id", "ann-42"),
    ("X-Remote-User-Email", "ann@corp.example"),
    ("X-Remote-Group", "admins; devs"),
];

#[tokio::test]
async fn the_proxy_headers_log_the_user_in() {
    let running = server().await;
    let browser = Browser::with_headers(APP, &PROXY_HEADERS);
    let url = format!("{}/dex/auth?{}", running.base, code_query("openid email groups"));
    let back = browser.follow(browser.get(&url).await).await;
    let code = params(back.location.as_ref().expect("back at the app"), false)["code"].clone();
    let (status, tokens) = redeem_code(&running, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["sub"], tessera_core::subject::encode_subject("ann-42", "proxy"));
    assert_eq!(claims["email"], "ann@corp.example");
    assert_eq!(claims["groups"], serde_json::json!(["employees", "admins", "devs"]));
    running.shutdown().await;
}

#[tokio::test]
async fn proxy_headers_at_the_bare_callback_are_not_trusted() {
    let running = server().await;
    // Without the proxy, the login stops at the connector's callback.
    let plain = Browser::new(APP);
    let url = format!("{}/dex/auth/proxy?{}", running.base, code_query("openid"));
    let started = plain.get(&url).await;
    let location = started.location.clone().expect("sent to the proxy callback");
    assert!(location.contains("/dex/callback/proxy?state="), "{location}");
    let state = params(&location, false)["state"].clone();
    let refused = plain.follow(started).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);

    // A client forging the proxy's headers at the bare callback gets nowhere either.
    let forger = Browser::with_headers(APP, &PROXY_HEADERS);
    let forged = forger.get(&format!("{}/dex/callback?state={state}", running.base)).await;
    assert_eq!(forged.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", forged.body);
    assert!(forged.location.is_none(), "no code issued");
    running.shutdown().await;
}

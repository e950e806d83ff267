//! The session and user-identity methods of the gRPC API (`DEX_API_SESSIONS_IDENTITIES_CRUD`),
//! called by the Python client of `grpc.rs` against a server whose sessions a browser made: the
//! operator sees sessions and identities, revokes a consent (the approval screen shows again), ends
//! a user's sessions (the relying party is told over the back channel, the browser must log in
//! again), and erases the user.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::config::Env;

use crate::browser::{Browser, Landing, params};
use crate::grpc::{Driver, python};
use crate::login::{APP, REDIRECT, redeem, server_with_env, urlencode, verify};
use crate::logout::RelyingParty;
use crate::serve::free_port;
use crate::sessions::{is_consent, is_password_form, start_with};

const USER: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";

fn portal_query() -> String {
    format!(
        "client_id=portal&redirect_uri={}&response_type=code&scope={}&state=st&nonce=n",
        urlencode(REDIRECT),
        urlencode("openid email")
    )
}

/// From the portal's request to the app: the password form and the approval screen when shown.
async fn sign_in(browser: &Browser, running: &crate::serve::Running) -> Landing {
    let mut page = start_with(browser, running, &portal_query()).await;
    if is_password_form(&page) {
        page = browser.submit(&page, &[("login", "admin@example.com"), ("password", "password")], None).await;
    }
    if is_consent(&page) {
        page = browser.submit(&page, &[], Some(("approval", "approve"))).await;
    }
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    page
}

async fn id_token(running: &crate::serve::Running, back: &Landing) -> Value {
    let code = params(back.location.as_deref().unwrap(), false)["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = redeem(running, &form, Some(("portal", "portal-secret"))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    verify(running, tokens["id_token"].as_str().unwrap(), "portal").await
}

#[tokio::test]
async fn an_operator_sees_ends_and_erases_sessions_and_identities() {
    let Some(python) = python() else { return };
    let rp_port = free_port();
    let (rp, rp_task) = RelyingParty::serve(rp_port).await;
    let extra = format!(
        "- id: portal
  secret: portal-secret
  name: Portal
  redirectURIs: ['{REDIRECT}']
  backchannelLogoutURI: 'http://127.0.0.1:{rp_port}/backchannel'
grpc:
  addr: 127.0.0.1:0
"
    );
    let env = Env::from_pairs([("DEX_SESSIONS_ENABLED", "true"), ("DEX_API_SESSIONS_IDENTITIES_CRUD", "true")]);
    let (running, _clock) = server_with_env(&extra, "", "", &env).await.unwrap();
    let mut api = Driver::start(&python, &running.grpc, None).await;

    let browser = Browser::with_headers(APP, &[("User-Agent", "Mozilla/5.0 (operator test)")]);
    let back = sign_in(&browser, &running).await;
    let claims = id_token(&running, &back).await;
    let sid = claims["sid"].as_str().unwrap();

    let listed = api.ok("ListAuthSessions", json!({"user_id": USER})).await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    assert_eq!(sessions[0]["id"], sid, "the session's ID is the tokens' sid");
    assert_eq!(sessions[0]["connector_id"], "local");
    assert_eq!(sessions[0]["client_states"][0]["client_id"], "portal");
    let portal = &sessions[0]["client_states"][0];
    assert!(!portal["last_token_issued_at"].is_null(), "the code issued to it is recorded: {portal}");
    assert_eq!(
        portal["last_token_issued_at"], portal["authenticated_at"],
        "issued at the login (the test clock stands)"
    );
    assert_eq!(sessions[0]["ip_address"], "127.0.0.1", "the client's address, no port");
    assert_eq!(sessions[0]["user_agent"], "Mozilla/5.0 (operator test)");
    assert_eq!(api.ok("ListAuthSessions", json!({"connector_id": "mock"})).await.get("sessions"), None);
    assert_eq!(api.ok("GetAuthSession", json!({"id": sid})).await["session"]["user_id"], USER);
    api.fails("GetAuthSession", json!({"id": "no-such-session"}), "NOT_FOUND").await;
    api.fails("GetAuthSession", json!({}), "INVALID_ARGUMENT").await;

    let identity = api.ok("GetUserIdentity", json!({"user_id": USER, "connector_id": "local"})).await;
    assert_eq!(identity["identity"]["email"], "admin@example.com");
    assert_eq!(identity["identity"]["consents"][0]["client_id"], "portal", "{identity}");
    assert_eq!(api.ok("ListUserIdentities", json!({})).await["identities"].as_array().unwrap().len(), 1);

    // Consent revoked: the session still signs the browser in, and the approval screen is back.
    let revoked =
        api.ok("RevokeConsent", json!({"user_id": USER, "connector_id": "local", "client_id": "portal"})).await;
    assert_eq!(revoked.get("not_found"), None, "{revoked}");
    let again = api.ok("RevokeConsent", json!({"user_id": USER, "connector_id": "local", "client_id": "portal"})).await;
    assert_eq!(again["not_found"], true);
    let page = start_with(&browser, &running, &portal_query()).await;
    assert!(is_consent(&page), "asked again after the revocation: {}", page.body);
    browser.submit(&page, &[], Some(("approval", "approve"))).await;

    // Ending the user's sessions tells the relying party and signs the browser out.
    let ended = api.ok("TerminateSessionsByUser", json!({"user_id": USER})).await;
    assert_eq!(ended["sessions_terminated"], "1", "{ended}");
    let token = rp.received(1).await.remove(0);
    let logout = verify(&running, &token, "portal").await;
    assert_eq!((logout["sid"].as_str(), logout["sub"].as_str()), (Some(sid), claims["sub"].as_str()));
    assert!(is_password_form(&start_with(&browser, &running, &portal_query()).await));
    assert_eq!(api.ok("DeleteAuthSession", json!({"id": sid})).await["not_found"], true);

    // Erasing the user: the identity is gone (the configuration's password stays, read-only).
    let erased = api.ok("DeleteUserIdentity", json!({"user_id": USER, "connector_id": "local"})).await;
    assert_eq!(erased.get("not_found"), None, "{erased}");
    api.fails("GetUserIdentity", json!({"user_id": USER, "connector_id": "local"}), "NOT_FOUND").await;
    assert_eq!(
        api.ok("DeleteUserIdentity", json!({"user_id": USER, "connector_id": "local"})).await["not_found"],
        true
    );
    running.shutdown().await;
    rp_task.abort();
}

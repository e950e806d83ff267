//! Dex's CEL policies (`authPolicy`, `tokenPolicy`) and the enrichers' failure policy, end to end: the
//! DEP's examples against real logins, claims derived from a PostgreSQL column, a login and a refresh
//! denied with the policy's message, start-up errors naming line and key, and `onError: omit`.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{ConnectOptions, Executor};
use tessera_server::config::{ConfigError, Env, parse};

use crate::browser::Browser;
use crate::custom_claims::{ADMIN_ID, ClaimsDb, SEED_QUERY, admin_code};
use crate::login::{APP, APP_SECRET, code_query, redeem, redeem_code, server_with_env, verify};
use crate::metrics::{parse_exposition, scrape_text, value};

const MINIMAL: &str = "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:5556\n";

fn errors(text: &str) -> Vec<String> {
    match parse(text, "config.yaml", &Env::default()) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn assert_has(lines: &[String], expected: &str) {
    assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in:\n{}", lines.join("\n"));
}

#[test]
fn every_bad_expression_is_a_start_up_error_with_line_and_key() {
    let text = format!(
        "{MINIMAL}authPolicy:
- expression: identity.emial == 'x'
  message: \"'no'\"
tokenPolicy:
  claims:
  - key: \"'sub'\"
    value: \"'admin'\"
  - key: \"'pairs'\"
    value: identity.groups.all(a, identity.groups.all(b, identity.groups.all(c, a + b + c != '')))
  filter:
    expression: request.scopes
staticClients:
- id: web
  secret: s
  name: Web
  redirectURIs: [http://127.0.0.1:5555/callback]
  authPolicy:
  - expression: \"true\"
    message: \"1\"
  tokenPolicy:
    claims:
    - key: \"'team'\"
      value: idenity.groups
customClaims:
  enrichers:
  - name: plans
    type: static
    claims: {{plan: free}}
    onError: sometimes
"
    );
    let errors = errors(&text);
    assert_has(
        &errors,
        "config.yaml:7: authPolicy[0].expression: identity has no field \"emial\" (its fields are user_id, username, preferred_username, email, email_verified, groups) (column 9)",
    );
    assert_has(
        &errors,
        "config.yaml:11: tokenPolicy.claims[0].key: claim \"sub\" is reserved and can never be set by custom claims",
    );
    assert!(
        errors.iter().any(|e| e.starts_with("config.yaml:14: tokenPolicy.claims[1].value: its estimated cost, ")
            && e.ends_with(", exceeds the budget of 10000000")),
        "{errors:#?}"
    );
    assert_has(
        &errors,
        "config.yaml:16: tokenPolicy.filter.expression: must evaluate to bool, but evaluates to list(string)",
    );
    assert_has(
        &errors,
        "config.yaml:24: staticClients[0].authPolicy[0].message: must evaluate to string, but evaluates to int",
    );
    assert_has(
        &errors,
        "config.yaml:28: staticClients[0].tokenPolicy.claims[0].value: undeclared reference to \"idenity\" (the variables are identity, request, custom) (column 1)",
    );
    assert_has(&errors, "config.yaml:34: customClaims.enrichers[0].onError: \"sometimes\" is not deny or omit");
    let long = format!("{MINIMAL}authPolicy:\n- expression: \"{}\"\n", "true || ".repeat(1300) + "true");
    assert_has(
        &self::errors(&long),
        "config.yaml:7: authPolicy[0].expression: the expression is 10404 characters long; the limit is 10240",
    );
}

/// The DEP's token-policy examples, a claim derived from a PostgreSQL column, and the filter.
#[tokio::test]
async fn token_policy_claims_from_the_dep_and_a_postgres_column() {
    let Some(db) = ClaimsDb::new().await else { return };
    let config = "oauth2:
  skipApprovalScreen: true
tokenPolicy:
  claims:
  - key: \"'role'\"
    value: \"identity.groups.exists(g, g == 'admins') ? 'admin' : 'user'\"
  - key: \"'idp'\"
    value: request.connector_id
  - key: \"'features'\"
    value: \"custom.plan == 'enterprise' ? ['sso', 'audit'] : []\"
  - key: \"'on_call'\"
    value: \"true\"
    condition: \"identity.groups.exists(g, g == 'ops')\"
  - key: \"'grant'\"
    value: request.grant_type
  - key: \"'domain'\"
    value: dex.emailDomain(identity.email)
  filter:
    expression: \"!('profile' in request.scopes)\"
    message: \"'profile is not offered to ' + request.client_id\"
";
    let env = db.env(SEED_QUERY, r#"["{{.UserID}}","{{.Email}}"]"#, None);
    let (running, _) = server_with_env(config, "", "", &env).await.unwrap();
    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid email offline_access").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    for token in ["id_token", "access_token"] {
        let claims = verify(&running, tokens[token].as_str().unwrap(), "example-app").await;
        assert_eq!(claims["role"], "admin", "{token}");
        assert_eq!(claims["idp"], "local");
        assert_eq!(claims["features"], json!(["sso", "audit"]), "derived from the plan column");
        assert_eq!(claims["plan"], "enterprise", "the enricher's claims stay");
        assert_eq!(claims["grant"], "authorization_code");
        assert_eq!(claims["domain"], "example.com");
        assert!(claims.get("on_call").is_none(), "its condition is false");
    }

    // The row changes: the derived claim follows at the next refresh.
    let mut conn = db.admin.clone().database(&db.name).connect().await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!("UPDATE users SET plan = 'free' WHERE user_id = '{ADMIN_ID}'")))
        .await
        .unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = redeem(&running, &form, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let claims = verify(&running, refreshed["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!((claims["features"].clone(), claims["grant"].clone()), (json!([]), json!("refresh_token")));

    // The filter refuses a token for a request it does not accept.
    let (status, error) = redeem_code(&running, &admin_code(&running, "openid profile").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    assert_eq!(error, json!({"error": "access_denied", "error_description": "profile is not offered to example-app"}));
    running.shutdown().await;
}

/// The auth policy: a login denied on the error page, then a tenant suspended in the database loses
/// its refresh, its password grant and its next login, each with the policy's message.
#[tokio::test]
async fn auth_policy_denies_logins_and_refreshes_with_its_message() {
    let Some(db) = ClaimsDb::new().await else { return };
    let config = "oauth2:
  skipApprovalScreen: true
  passwordConnector: local
authPolicy:
- expression: request.connector_id == 'mock'
  message: \"'The mock connector is closed to ' + request.client_id\"
- expression: \"has(custom.org) && custom.org == 'suspended-co'\"
  message: \"'Your organisation is suspended'\"
";
    let env = db.env(SEED_QUERY, r#"["{{.UserID}}","{{.Email}}"]"#, None);
    let (running, _) = server_with_env(config, "", "", &env).await.unwrap();
    let browser = Browser::new(APP);
    let denied =
        browser.follow(browser.get(&format!("{}/dex/auth/mock?{}", running.base, code_query("openid"))).await).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.body.contains("The mock connector is closed to example-app"), "{}", denied.body);
    assert!(denied.location.is_none(), "no code for the app");

    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid email offline_access").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let password =
        [("grant_type", "password"), ("username", "admin@example.com"), ("password", "password"), ("scope", "openid")];
    let (status, body) = redeem(&running, &password, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut conn = db.admin.clone().database(&db.name).connect().await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!("UPDATE users SET org = 'suspended-co' WHERE user_id = '{ADMIN_ID}'")))
        .await
        .unwrap();
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let (status, error) = redeem(&running, &refresh, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error, json!({"error": "invalid_grant", "error_description": "Your organisation is suspended"}));
    let (status, error) = redeem(&running, &password, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error, json!({"error": "access_denied", "error_description": "Your organisation is suspended"}));
    let browser = Browser::new(APP);
    let url = format!("{}/dex/auth/local?{}", running.base, code_query("openid"));
    let form = browser.follow(browser.get(&url).await).await;
    let page = browser.submit(&form, &[("login", "admin@example.com"), ("password", "password")], None).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Your organisation is suspended"), "{}", page.body);

    // Reinstated: the same refresh token works again (a denial does not use it up).
    conn.execute(sqlx::AssertSqlSafe(format!("UPDATE users SET org = 'acme' WHERE user_id = '{ADMIN_ID}'")))
        .await
        .unwrap();
    let (status, body) = redeem(&running, &refresh, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    running.shutdown().await;
}

/// `onError: omit`: with its database gone, the enricher's claims are left out of a token that is
/// still issued; the failure is counted and logged with the enricher's name, no claim value.
#[tokio::test]
async fn omit_issues_tokens_without_a_failed_enrichers_claims() {
    let Some(db) = ClaimsDb::new().await else { return };
    let config = format!(
        "oauth2:
  skipApprovalScreen: true
telemetry:
  http: 127.0.0.1:0
customClaims:
  enrichers:
  - name: tenants
    type: postgres
    uri: {}
    query: SELECT org FROM users WHERE user_id = $1
    args: ['{{{{.UserID}}}}']
    onError: omit
    acquireTimeout: 1s
  - name: defaults
    type: static
    claims: {{tier: basic}}
",
        db.uri
    );
    let (running, _) = server_with_env(&config, "", "", &Env::default()).await.unwrap();
    let (status, tokens) = redeem_code(&running, &admin_code(&running, "openid email").await).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!((claims["org"].clone(), claims["tier"].clone()), (json!("acme"), json!("basic")));

    let code = admin_code(&running, "openid email").await;
    db.set_available(false).await;
    crate::log_capture::capture_logs(tracing::Level::WARN);
    let (status, tokens) = redeem_code(&running, &code).await;
    let lines = crate::log_capture::captured_lines();
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert!(claims.get("org").is_none(), "the failed enricher's claim is left out");
    assert_eq!(claims["tier"], "basic", "the others' stay");
    let omitted = lines
        .iter()
        .find(|l| l["enricher"] == "tenants")
        .unwrap_or_else(|| panic!("no line names the enricher: {lines:?}"));
    assert!(omitted["msg"].as_str().unwrap().contains("onError: omit"), "{omitted}");
    // A pooled connection killed mid-query, or no connection to be had: either way the database is gone.
    assert!(matches!(omitted["cause"].as_str(), Some("unavailable" | "query")), "{omitted}");
    assert!(!lines.iter().any(|l| l.to_string().contains("acme")), "no claim value is logged");
    let samples = parse_exposition(&scrape_text(&running).await);
    assert_eq!(value(&samples, "tessera_claims_enrichment_omitted_total", &[("enricher", "tenants")]), 1.0);
    db.set_available(true).await;
    running.shutdown().await;
}

/// In the implicit flow tokens are minted at the redirect: a filter's refusal goes back to the app as
/// `error=access_denied` with the message, and `state`.
#[tokio::test]
async fn a_filter_refusal_in_the_implicit_flow_is_a_redirect_error() {
    let config = "oauth2:
  skipApprovalScreen: true
  responseTypes: [code, id_token, token]
tokenPolicy:
  filter:
    expression: \"request.grant_type != 'implicit' || request.redirect_uri.startsWith('https://')\"
    message: \"'Tokens in the browser only over https, not to ' + request.redirect_uri\"
";
    let (running, _) = server_with_env(config, "", "", &Env::default()).await.unwrap();
    let browser = Browser::new(APP);
    let implicit = code_query("openid").replace("response_type=code", "response_type=id_token+token");
    let back = browser.follow(browser.get(&format!("{}/dex/auth/mock?{implicit}", running.base)).await).await;
    let error = crate::browser::params(back.location.as_ref().expect("back at the app"), false);
    assert_eq!(error["error"], "access_denied");
    assert_eq!(
        error["error_description"],
        "Tokens in the browser only over https, not to http://127.0.0.1:5555/callback"
    );
    assert_eq!(error["state"], "st-123");
    // The code flow is not concerned.
    let back =
        browser.follow(browser.get(&format!("{}/dex/auth/mock?{}", running.base, code_query("openid"))).await).await;
    let code = crate::browser::params(back.location.as_ref().unwrap(), false)["code"].clone();
    let (status, tokens) = redeem_code(&running, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    running.shutdown().await;
}

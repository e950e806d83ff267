//! Dex's gRPC API, called by a client of another toolchain: Python stubs that grpcio-tools generates
//! from our proto at test time (`scripts/grpc-client/driver.py`), so a wire shape that only our own
//! generated code agrees with would fail here. What the API writes is then used for real: a browser
//! login with a client and a password made through it, a refresh token revoked through it, a
//! connector added through it on the login page.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::config::Env;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::browser::{Browser, link, params};
use crate::https::Authority;
use crate::login::{REDIRECT, auth_url, code_query, redeem, server_with_env, verify};
use crate::serve::Running;

/// Dex's documented example hash, of "password" (cost 10).
const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

/// The Python with grpcio-tools that `scripts/test.sh` installs; `None` (the test skips loudly) in a
/// plain local `cargo test`. In CI a missing Python fails the test.
pub(crate) fn python() -> Option<String> {
    match std::env::var("TESSERA_TEST_GRPC_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but TESSERA_TEST_GRPC_PYTHON is not"),
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_GRPC_PYTHON is not set; the gRPC API tests did not run");
            None
        }
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The client's TLS: the CA it trusts and, for mutual TLS, its certificate and key.
pub(crate) struct ClientTls<'a> {
    ca: &'a Path,
    identity: Option<(&'a Path, &'a Path)>,
}

/// The Python client, one JSON command and answer per line.
pub(crate) struct Driver {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// A failed call: its gRPC status code name and message, and the request ID the server sent back.
#[derive(Debug)]
struct Failure {
    code: String,
    details: String,
    request_id: Option<String>,
}

impl Driver {
    pub(crate) async fn start(python: &str, address: &str, tls: Option<ClientTls<'_>>) -> Self {
        let root = repository();
        let mut command = Command::new(python);
        command
            .arg(root.join("scripts/grpc-client/driver.py"))
            .arg(root.join("crates/tessera-server/proto/api.proto"))
            .arg(address);
        if let Some(tls) = tls {
            command.arg("--ca").arg(tls.ca);
            if let Some((cert, key)) = tls.identity {
                command.arg("--cert").arg(cert).arg("--key").arg(key);
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = stdout.next_line().await.unwrap().expect("the driver generated its stubs and started");
        assert_eq!(serde_json::from_str::<Value>(&ready).unwrap()["ready"], true);
        Self { _child: child, stdin, stdout }
    }

    async fn send(&mut self, command: Value) -> Result<Value, Failure> {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        let line = self.stdout.next_line().await.unwrap().expect("the driver answers every command");
        let answer: Value = serde_json::from_str(&line).unwrap();
        if answer["ok"] == true {
            Ok(answer["response"].clone())
        } else {
            Err(Failure {
                code: answer["code"].as_str().unwrap().to_owned(),
                details: answer["details"].as_str().unwrap_or_default().to_owned(),
                request_id: answer["request_id"].as_str().map(str::to_owned),
            })
        }
    }

    async fn call(&mut self, method: &str, request: Value) -> Result<Value, Failure> {
        self.send(json!({"method": method, "request": request})).await
    }

    /// A call that must succeed.
    pub(crate) async fn ok(&mut self, method: &str, request: Value) -> Value {
        self.call(method, request).await.unwrap_or_else(|f| panic!("{method} failed: {f:?}"))
    }

    /// A call that must fail with `code`; its message.
    pub(crate) async fn fails(&mut self, method: &str, request: Value, code: &str) -> String {
        match self.call(method, request.clone()).await {
            Err(failure) if failure.code == code => failure.details,
            other => panic!("{method} {request} should fail with {code}, got {other:?}"),
        }
    }
}

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

/// The login server of `login.rs` with the API on a free port, reflection on and connector CRUD
/// enabled as Dex's flag does.
async fn api_server() -> Running {
    let grpc = "grpc:\n  addr: 127.0.0.1:0\n  reflection: true\n";
    let env = Env::from_pairs([("DEX_API_CONNECTORS_CRUD", "true")]);
    server_with_env(grpc, "", "", &env).await.unwrap().0
}

/// A code-flow login through the password form as `email`/"password", for `client_id`; the code.
async fn login(running: &Running, client_id: &str, email: &str) -> String {
    let browser = Browser::new(crate::login::APP);
    let query =
        code_query("openid email offline_access").replace("client_id=example-app", &format!("client_id={client_id}"));
    let choice = browser.follow(browser.get(&auth_url(running, &query)).await).await;
    assert_eq!(choice.status, StatusCode::OK, "{}", choice.body);
    let local = link(&choice.body, "connector-local");
    let form = browser.follow(browser.get(&crate::browser::resolve(&choice.url, &local)).await).await;
    let mut landing = browser.submit(&form, &[("login", email), ("password", "password")], None).await;
    if !landing.status.is_redirection() {
        assert!(landing.body.contains("Onboarded App"), "the consent names the API's client: {}", landing.body);
        landing = browser.submit(&landing, &[], Some(("approval", "approve"))).await;
    }
    let location = landing.location.unwrap_or_else(|| panic!("no redirect to the app: {}", landing.body));
    assert!(location.starts_with(REDIRECT), "{location}");
    params(&location, false)["code"].clone()
}

/// The login page's connector choice for the static app.
async fn connector_choice(running: &Running) -> String {
    let browser = Browser::new(crate::login::APP);
    let choice = browser.follow(browser.get(&auth_url(running, &code_query("openid"))).await).await;
    assert_eq!(choice.status, StatusCode::OK, "{}", choice.body);
    choice.body
}

#[tokio::test]
async fn a_python_client_manages_clients_passwords_and_refresh_tokens_that_work_at_once() {
    let Some(python) = python() else { return };
    let running = api_server().await;
    let mut api = Driver::start(&python, &running.grpc, None).await;

    let version = api.ok("GetVersion", json!({})).await;
    assert_eq!(version["api"], 4, "Dex's API version: {version}");
    assert_eq!(version["server"], env!("CARGO_PKG_VERSION"));
    let discovery = api.ok("GetDiscovery", json!({})).await;
    assert_eq!(discovery["issuer"], running.state.config.issuer.as_str());
    let http: Value = reqwest::get(format!("{}/dex/.well-known/openid-configuration", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, value) in discovery.as_object().unwrap() {
        assert_eq!(&http[key], value, "GetDiscovery's {key} is the HTTP document's");
    }

    // Clients.
    let created = api
        .ok(
            "CreateClient",
            json!({"client": {"id": "onboarded", "name": "Onboarded App", "redirect_uris": [REDIRECT]}}),
        )
        .await;
    let secret = created["client"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 50, "a confidential client without a secret gets one: {created}");
    assert_eq!(created.get("already_exists"), None);
    let again = api.ok("CreateClient", json!({"client": {"id": "onboarded", "name": "Again"}})).await;
    assert_eq!(again["already_exists"], true);
    let generated = api.ok("CreateClient", json!({"client": {"name": "Generated", "public": true}})).await;
    assert_eq!(generated["client"]["id"].as_str().unwrap().len(), 25, "an ID is generated: {generated}");
    assert_eq!(generated["client"].get("secret"), None, "a public client gets no secret");
    let details = api
        .fails("CreateClient", json!({"client": {"id": "bad", "redirect_uris": ["not a uri"]}}), "INVALID_ARGUMENT")
        .await;
    assert_eq!(details, "client.redirect_uris[0]: \"not a uri\" is not an absolute URI");
    api.fails("CreateClient", json!({}), "INVALID_ARGUMENT").await;
    let details = api.fails("CreateClient", json!({"client": {"id": "example-app"}}), "FAILED_PRECONDITION").await;
    assert!(details.contains("read-only"), "{details}");
    let missing = api.call("GetClient", json!({"id": "bad"})).await.unwrap_err();
    assert_eq!((missing.code.as_str(), missing.details.as_str()), ("NOT_FOUND", "client \"bad\" not found"));
    assert!(missing.request_id.is_some_and(|id| !id.is_empty()), "each call has a request ID, as HTTP requests do");

    let updated = api.ok("UpdateClient", json!({"id": "onboarded", "logo_url": "https://app.example/logo.png"})).await;
    assert_eq!(updated.get("not_found"), None);
    let got = api.ok("GetClient", json!({"id": "onboarded"})).await["client"].clone();
    assert_eq!(got["logo_url"], "https://app.example/logo.png");
    assert_eq!(
        (&got["name"], &got["redirect_uris"][0], &got["secret"]),
        (&json!("Onboarded App"), &json!(REDIRECT), &json!(secret)),
        "only the given field changed"
    );
    assert_eq!(api.ok("UpdateClient", json!({"id": "nobody", "name": "x"})).await["not_found"], true);
    api.fails("UpdateClient", json!({"id": "example-app", "name": "x"}), "FAILED_PRECONDITION").await;
    let details =
        api.fails("UpdateClient", json!({"id": "onboarded", "redirect_uris": ["/relative"]}), "INVALID_ARGUMENT").await;
    assert!(details.starts_with("redirect_uris[0]: "), "{details}");
    let listed = api.ok("ListClients", json!({})).await;
    let ids: Vec<&str> = listed["clients"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"example-app") && ids.contains(&"onboarded"), "{ids:?}");
    assert!(listed["clients"].as_array().unwrap().iter().all(|c| c.get("secret").is_none()), "no secrets listed");

    // Passwords.
    let user = json!({"email": "new@example.com", "hash": b64(HASH), "username": "newbie", "user_id": "u-new"});
    assert_eq!(api.ok("CreatePassword", json!({"password": user})).await.get("already_exists"), None);
    assert_eq!(api.ok("CreatePassword", json!({"password": user})).await["already_exists"], true);
    let weak =
        json!({"email": "weak@example.com", "hash": b64(&HASH.replacen("$10$", "$04$", 1)), "user_id": "u-weak"});
    let details = api.fails("CreatePassword", json!({"password": weak}), "INVALID_ARGUMENT").await;
    assert_eq!(details, "password.hash: bcrypt cost 4 is below the minimum of 10");
    let plain = json!({"email": "plain@example.com", "hash": b64("password"), "user_id": "u-plain"});
    let details = api.fails("CreatePassword", json!({"password": plain}), "INVALID_ARGUMENT").await;
    assert!(details.starts_with("password.hash: not a bcrypt hash"), "{details}");
    let anonymous = json!({"email": "anon@example.com", "hash": b64(HASH)});
    assert_eq!(
        api.fails("CreatePassword", json!({"password": anonymous}), "INVALID_ARGUMENT").await,
        "password.user_id: no user ID supplied"
    );
    let verified = api.ok("VerifyPassword", json!({"email": "new@example.com", "password": "password"})).await;
    assert_eq!(verified["verified"], true);
    let wrong = api.ok("VerifyPassword", json!({"email": "NEW@example.com", "password": "guess"})).await;
    assert_eq!((wrong.get("verified"), wrong.get("not_found")), (None, None), "{wrong}");
    assert_eq!(
        api.ok("VerifyPassword", json!({"email": "nobody@example.com", "password": "x"})).await["not_found"],
        true
    );
    assert_eq!(
        api.ok("UpdatePassword", json!({"email": "new@example.com", "new_username": "renamed"})).await.get("not_found"),
        None
    );
    assert_eq!(
        api.ok("UpdatePassword", json!({"email": "nobody@example.com", "new_username": "x"})).await["not_found"],
        true
    );
    api.fails("UpdatePassword", json!({"email": "new@example.com"}), "INVALID_ARGUMENT").await;
    api.fails("UpdatePassword", json!({"email": "admin@example.com", "new_username": "x"}), "FAILED_PRECONDITION")
        .await;
    let passwords = api.ok("ListPasswords", json!({})).await["passwords"].clone();
    let new = passwords.as_array().unwrap().iter().find(|p| p["email"] == "new@example.com").unwrap();
    assert_eq!((&new["username"], &new["user_id"], new.get("hash")), (&json!("renamed"), &json!("u-new"), None));

    // The client and the user made through the API log in at once, and the refresh token shows.
    let code = login(&running, "onboarded", "new@example.com").await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, tokens) = redeem(&running, &form, Some(("onboarded", &secret))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "onboarded").await;
    assert_eq!(claims["email"], "new@example.com");
    let sub = claims["sub"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().expect("offline_access gives a refresh token");

    let listed = api.ok("ListRefresh", json!({"user_id": sub})).await["refresh_tokens"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["client_id"], "onboarded");
    let now = running.state.clock.now().unix_timestamp();
    assert_eq!(listed[0]["created_at"].as_str().unwrap(), now.to_string(), "int64 travels as a JSON string");
    api.fails("ListRefresh", json!({"user_id": "not-a-subject!"}), "INVALID_ARGUMENT").await;
    assert_eq!(api.ok("RevokeRefresh", json!({"user_id": sub, "client_id": "onboarded"})).await.get("not_found"), None);
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    let (status, body) = redeem(&running, &refresh, Some(("onboarded", &secret))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a revoked refresh token stops working: {body}");
    assert_eq!(api.ok("RevokeRefresh", json!({"user_id": sub, "client_id": "onboarded"})).await["not_found"], true);
    assert_eq!(api.ok("ListRefresh", json!({"user_id": sub})).await.get("refresh_tokens"), None);

    // Deleting, and the objects of the configuration file stay.
    assert_eq!(api.ok("DeletePassword", json!({"email": "new@example.com"})).await.get("not_found"), None);
    assert_eq!(api.ok("DeletePassword", json!({"email": "new@example.com"})).await["not_found"], true);
    api.fails("DeletePassword", json!({"email": "admin@example.com"}), "FAILED_PRECONDITION").await;
    assert_eq!(api.ok("DeleteClient", json!({"id": "onboarded"})).await.get("not_found"), None);
    assert_eq!(api.ok("DeleteClient", json!({"id": "onboarded"})).await["not_found"], true);
    api.fails("DeleteClient", json!({"id": "example-app"}), "FAILED_PRECONDITION").await;
    assert_eq!(api.ok("GetClient", json!({"id": "example-app"})).await["client"]["name"], "Example App");

    // Without DEX_API_SESSIONS_IDENTITIES_CRUD the session and identity methods refuse, as in Dex.
    for method in [
        "GetAuthSession",
        "ListAuthSessions",
        "DeleteAuthSession",
        "TerminateSessionsByConnector",
        "TerminateSessionsByUser",
        "GetUserIdentity",
        "ListUserIdentities",
        "DeleteUserIdentity",
        "RevokeConsent",
    ] {
        let message = api.fails(method, json!({}), "FAILED_PRECONDITION").await;
        assert!(message.contains("DEX_API_SESSIONS_IDENTITIES_CRUD"), "{message}");
    }
    // Second factors tessera does not have: said so, not faked.
    for method in ["ResetMFA", "ListMFADevices", "DeleteWebAuthnCredential", "DeleteMFASecret"] {
        api.fails(method, json!({}), "UNIMPLEMENTED").await;
    }

    // A field this proto does not know (number 99, varint 1) is skipped, as proto3 says.
    let version = api.send(json!({"raw": "GetVersion", "hex": "980601"})).await.unwrap();
    assert_eq!(version["api"], 4);
    let services = api.send(json!({"reflect": true})).await.unwrap();
    assert!(services["services"].as_array().unwrap().contains(&json!("api.Dex")), "{services}");

    running.shutdown().await;
}

#[tokio::test]
async fn connectors_created_updated_and_deleted_through_the_api_show_on_the_login_page_at_once() {
    let Some(python) = python() else { return };
    let running = api_server().await;
    let mut api = Driver::start(&python, &running.grpc, None).await;

    let listed = api.ok("ListConnectors", json!({})).await["connectors"].clone();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["local", "mock"]);
    assert!(!connector_choice(&running).await.contains("Extra Login"));

    let config = b64(r#"{"username": "extra", "password": "secret"}"#);
    let extra = json!({"id": "extra", "type": "mockPassword", "name": "Extra Login", "config": config});
    assert_eq!(api.ok("CreateConnector", json!({"connector": extra})).await.get("already_exists"), None);
    assert!(connector_choice(&running).await.contains("Log in with Extra Login"), "added without a restart");
    assert_eq!(api.ok("CreateConnector", json!({"connector": extra})).await["already_exists"], true);

    // Bad connectors get the configuration file's messages and are not written.
    let bad = |changes: Value| {
        let mut connector = json!({"id": "bad", "type": "mockPassword", "name": "Bad", "config": config});
        connector.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        json!({"connector": connector})
    };
    let details = api.fails("CreateConnector", bad(json!({"type": "nosuch"})), "INVALID_ARGUMENT").await;
    assert_eq!(details, "connector.type: unknown connector type \"nosuch\"");
    let details =
        api.fails("CreateConnector", bad(json!({"config": b64(r#"{"username": "x"}"#)})), "INVALID_ARGUMENT").await;
    assert_eq!(details, "connector.config.password: is required for mockPassword");
    let details = api.fails("CreateConnector", bad(json!({"config": b64("{not json")})), "INVALID_ARGUMENT").await;
    assert!(details.starts_with("connector.config: invalid JSON"), "{details}");
    let details = api.fails("CreateConnector", bad(json!({"grant_types": ["bogus"]})), "INVALID_ARGUMENT").await;
    assert!(details.starts_with("connector.grant_types: unknown grant type \"bogus\""), "{details}");
    let details =
        api.fails("CreateConnector", bad(json!({"type": "ldap", "config": b64("{}")})), "INVALID_ARGUMENT").await;
    assert!(details.starts_with("connector.config: "), "the connector's own check of its settings: {details}");
    api.fails("CreateConnector", bad(json!({"id": "mock"})), "FAILED_PRECONDITION").await;
    let ids: Vec<Value> = api.ok("ListConnectors", json!({})).await["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("local"), json!("mock"), json!("extra")], "nothing half-written");

    let renamed = api.ok("UpdateConnector", json!({"id": "extra", "new_name": "Renamed Login"})).await;
    assert_eq!(renamed.get("not_found"), None);
    let page = connector_choice(&running).await;
    assert!(page.contains("Log in with Renamed Login") && !page.contains("Extra Login"), "{page}");
    let listed = api.ok("ListConnectors", json!({})).await["connectors"].clone();
    let stored = listed.as_array().unwrap().iter().find(|c| c["id"] == "extra").unwrap();
    let stored_config: Value =
        serde_json::from_slice(&STANDARD.decode(stored["config"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(stored_config["username"], "extra", "the config is kept when not given");
    assert_eq!(api.ok("UpdateConnector", json!({"id": "nobody", "new_name": "x"})).await["not_found"], true);
    api.fails("UpdateConnector", json!({"id": "extra"}), "INVALID_ARGUMENT").await;
    api.fails("UpdateConnector", json!({"id": "extra", "new_type": "nosuch"}), "INVALID_ARGUMENT").await;
    api.fails("UpdateConnector", json!({"id": "mock", "new_name": "x"}), "FAILED_PRECONDITION").await;

    assert_eq!(api.ok("DeleteConnector", json!({"id": "extra"})).await.get("not_found"), None);
    assert!(!connector_choice(&running).await.contains("Renamed Login"), "removed without a restart");
    assert_eq!(api.ok("DeleteConnector", json!({"id": "extra"})).await["not_found"], true);
    api.fails("DeleteConnector", json!({"id": "local"}), "FAILED_PRECONDITION").await;

    running.shutdown().await;
}

#[tokio::test]
async fn a_connector_written_by_another_replica_shows_on_the_next_login_page() {
    let running = api_server().await;
    // Another replica on the same storage wrote it: this server learns of it only from storage.
    let connector = tessera_core::model::Connector {
        id: "elsewhere".into(),
        kind: "mockCallback".into(),
        name: "From Elsewhere".into(),
        resource_version: "1".into(),
        ..Default::default()
    };
    running.state.storage.create(&connector).await.unwrap();
    // One whose settings its connector refuses is left out; the others are served.
    let broken = tessera_core::model::Connector {
        id: "broken".into(),
        kind: "ldap".into(),
        name: "Broken".into(),
        config: json!({}),
        ..Default::default()
    };
    running.state.storage.create(&broken).await.unwrap();
    let page = connector_choice(&running).await;
    assert!(page.contains("Log in with From Elsewhere") && !page.contains("Broken"), "{page}");
    running.state.storage.delete::<tessera_core::model::Connector>("elsewhere").await.unwrap();
    assert!(!connector_choice(&running).await.contains("From Elsewhere"));
    assert!(running.state.connectors.get("elsewhere").is_none());
    running.shutdown().await;
}

/// Files of a CA, the server's pair and a client's pair, for mutual TLS.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tessera-grpc-{}", tessera_core::id::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let authority = Authority::new();
        let server = authority.leaf();
        let client = authority.leaf();
        let other_authority = Authority::new();
        let stranger = other_authority.leaf();
        for (name, contents) in [
            ("ca.pem", authority.pem()),
            ("server.pem", server.cert_pem),
            ("server.key", server.key_pem),
            ("client.pem", client.cert_pem),
            ("client.key", client.key_pem),
            ("stranger.pem", stranger.cert_pem),
            ("stranger.key", stranger.key_pem),
            ("stranger-ca.pem", other_authority.pem()),
        ] {
            std::fs::write(dir.join(name), contents).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let Some(python) = python() else { return };
    let pki = Pki::new();
    let grpc = format!(
        "grpc:\n  addr: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n  tlsClientCA: {}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display(),
        pki.path("ca.pem").display()
    );
    let running = server_with_env(&grpc, "", "", &Env::default()).await.unwrap().0;
    let ca = pki.path("ca.pem");

    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let mut trusted =
        Driver::start(&python, &running.grpc, Some(ClientTls { ca: &ca, identity: Some((&cert, &key)) })).await;
    assert_eq!(trusted.ok("GetVersion", json!({})).await["api"], 4);
    // Without DEX_API_CONNECTORS_CRUD the connector methods are refused, as in Dex; without
    // grpc.reflection nothing answers reflection.
    let details = trusted.fails("ListConnectors", json!({}), "FAILED_PRECONDITION").await;
    assert!(details.contains("api_connectors_crud"), "{details}");
    assert!(trusted.send(json!({"reflect": true})).await.is_err(), "reflection is off");

    let mut anonymous = Driver::start(&python, &running.grpc, Some(ClientTls { ca: &ca, identity: None })).await;
    anonymous.fails("GetVersion", json!({}), "UNAVAILABLE").await;
    let (cert, key) = (pki.path("stranger.pem"), pki.path("stranger.key"));
    let mut stranger =
        Driver::start(&python, &running.grpc, Some(ClientTls { ca: &ca, identity: Some((&cert, &key)) })).await;
    stranger.fails("GetVersion", json!({}), "UNAVAILABLE").await;
    let mut plaintext = Driver::start(&python, &running.grpc, None).await;
    plaintext.fails("GetVersion", json!({}), "UNAVAILABLE").await;

    assert_eq!(trusted.ok("GetVersion", json!({})).await["api"], 4, "the server kept serving");

    // A CA rotation needs no restart: once the stranger's CA is added to the file, the stranger's new
    // connections are accepted.
    let both = std::fs::read_to_string(&ca).unwrap() + &std::fs::read_to_string(pki.path("stranger-ca.pem")).unwrap();
    let temporary = pki.path("ca.pem.new");
    std::fs::write(&temporary, both).unwrap();
    std::fs::rename(&temporary, &ca).unwrap();
    let mut accepted = false;
    for _ in 0..20 {
        let mut stranger =
            Driver::start(&python, &running.grpc, Some(ClientTls { ca: &ca, identity: Some((&cert, &key)) })).await;
        if stranger.call("GetVersion", json!({})).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(accepted, "the reloaded client CA file is in service");
    running.shutdown().await;
}

#[tokio::test]
async fn no_grpc_listener_without_an_address() {
    let running = crate::login::server("").await;
    assert!(running.grpc.is_empty(), "the API never listens by default");
    running.shutdown().await;
}

#[tokio::test]
async fn a_bad_client_ca_fails_at_start_naming_the_key() {
    let pki = Pki::new();
    std::fs::write(pki.path("bad.pem"), "not a certificate").unwrap();
    let grpc = format!(
        "grpc:\n  addr: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n  tlsClientCA: {}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display(),
        pki.path("bad.pem").display()
    );
    let err = server_with_env(&grpc, "", "", &Env::default()).await.err().expect("refuses to start");
    assert!(err.starts_with("grpc.tlsClientCA: cannot use "), "{err}");
}

#[tokio::test]
async fn tls_without_a_client_ca_starts_with_a_warning() {
    crate::log_capture::capture_logs(tracing::Level::WARN);
    let pki = Pki::new();
    let grpc = format!(
        "grpc:\n  addr: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    );
    let running = server_with_env(&grpc, "", "", &Env::default()).await.unwrap().0;
    let lines = crate::log_capture::captured_lines();
    let warning = lines
        .iter()
        .find(|line| line["msg"].as_str().is_some_and(|msg| msg.contains("grpc.tlsClientCA is unset")))
        .unwrap_or_else(|| panic!("no warning about the missing client CA in {lines:#?}"));
    assert_eq!((&warning["level"], &warning["tls"]), (&json!("WARN"), &json!(true)), "{warning}");
    running.shutdown().await;
}

//! The `tessera` binary as an operator runs it: exit codes, messages, serving and signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// The server suite's Dex database builder, shared rather than copied.
#[allow(dead_code)]
#[path = "../../../tessera-server/tests/it/dex_db.rs"]
mod dex_db;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The dev config, with its SQLite file moved into `dir` so tests leave nothing in the repository.
fn dev_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("examples/config-dev.yaml")).unwrap();
    let text = text.replace("file: examples/dex.db", &format!("file: {}", dir.join("dex.db").display()));
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_the_version() {
    let out = run(&["version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with(&format!("tessera Version: {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn check_config_accepts_the_dev_config_and_opens_its_storage() {
    let dir = temp_dir("check-ok");
    let config = dev_config(&dir);
    let out = run(&["check-config", config.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains("issuer:     http://127.0.0.1:5556/dex (routes under /dex)"), "{stdout}");
    assert!(stdout.contains("sqlite3") && stdout.contains("opened and migrated"), "{stdout}");
    assert!(stdout.contains("clients:    example-app"), "{stdout}");
    assert!(stdout.contains("connectors: local (local), mock (mockCallback)"), "{stdout}");
    assert!(dir.join("dex.db").exists(), "the SQLite file was created");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_config_reports_every_error_with_exit_code_2() {
    let dir = temp_dir("check-bad");
    let path = dir.join("broken.yaml");
    std::fs::write(
        &path,
        "issuer: https://id.example\nstorage:\n  type: cassandra\nweb:\n  http: nowhere\nstaticClients:\n- id: a\n  name: A\n",
    )
    .unwrap();
    let out = run(&["check-config", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let file = path.display();
    for expected in [
        format!(
            "error: {file}:3: storage.type: unknown storage type \"cassandra\" (expected memory, sqlite3, postgres, mysql or etcd)"
        ),
        format!(
            "error: {file}:5: web.http: \"nowhere\" is not a listen address (expected host:port, e.g. 0.0.0.0:5556)"
        ),
        format!("error: {file}:7: staticClients[0].secret: is required unless the client is public (or secretEnv)"),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_file_is_one_clear_line() {
    let out = run(&["serve", "/nonexistent/dex.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: /nonexistent/dex.yaml: cannot read the configuration file:"), "{stderr}");
}

#[test]
fn an_unreachable_database_stops_start_up_with_exit_code_2() {
    let dir = temp_dir("unreachable");
    let path = dir.join("pg.yaml");
    std::fs::write(
        &path,
        "issuer: https://id.example\nstorage:\n  type: postgres\n  config:\n    host: 127.0.0.1\n    port: 1\n    database: dex\n    connectionTimeout: 3\n    ssl:\n      mode: disable\nweb:\n  http: 127.0.0.1:0\n",
    )
    .unwrap();
    for command in ["check-config", "serve"] {
        let out = run(&[command, path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("storage (postgres): postgres storage error: cannot connect to 127.0.0.1:1/dex"),
            "{command}: {stderr}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreachable_etcd_stops_start_up_with_exit_code_2() {
    let dir = temp_dir("etcd-unreachable");
    let path = dir.join("etcd.yaml");
    std::fs::write(
        &path,
        "issuer: https://id.example\nstorage:\n  type: etcd\n  config:\n    endpoints: [127.0.0.1:1]\nweb:\n  http: 127.0.0.1:0\n",
    )
    .unwrap();
    let out = run(&["check-config", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("storage (etcd): etcd storage error: cannot reach etcd: http://127.0.0.1:1"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn import_dex_prints_its_counts_is_idempotent_and_names_what_it_left_out() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(dex_db::DexDb::empty(dex_db::Dialect::Sqlite)) else { return };
    runtime.block_on(db.create_schema());
    let client = |id: &str, redirects: &str| {
        format!(
            "INSERT INTO client (id, secret, redirect_uris, trusted_peers, public, name, logo_url) VALUES ('{id}', 's', {}, {}, 0, 'App', '');\n",
            db.bytes(redirects.as_bytes()),
            db.bytes(b"null")
        )
    };
    runtime.block_on(db.execute(&client("cli-app", r#"["http://127.0.0.1:5555/callback"]"#)));
    let dir = temp_dir("import-cli");
    let config = dir.join("tessera.yaml");
    std::fs::write(
        &config,
        format!("issuer: http://127.0.0.1:5556/dex\nstorage:\n{}web:\n  http: 127.0.0.1:0\n", db.storage_yaml),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let dry = run(&["import-dex", config, "--dry-run"]);
    let stdout = text(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{stdout}{}", text(&dry.stderr));
    assert!(stdout.starts_with("dry run: would import Dex's state from sqlite3 "), "{stdout}");
    assert!(stdout.contains("(schema version 23)"), "{stdout}");
    assert!(stdout.contains("clients           found     1  imported     1  already present     0"), "{stdout}");

    let first = run(&["import-dex", config]);
    assert_eq!(first.status.code(), Some(0));
    assert!(text(&first.stdout).contains("clients           found     1  imported     1"));
    let again = run(&["import-dex", config]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stdout).contains("clients           found     1  imported     0  already present     1"));

    // Browser sessions are judged alive by the real clock of the command: one live a day more, one
    // over an hour ago (rows written relative to this machine's time, the command reads its own).
    runtime.block_on(db.create_session_tables());
    let real_now = time::OffsetDateTime::now_utc();
    let session = |id: &str, expiry: time::OffsetDateTime| {
        format!(
            "INSERT INTO auth_session (id, secret, user_id, connector_id, client_states, created_at, last_activity, absolute_expiry, idle_expiry) VALUES ('{id}', 'x', 'u1', 'local', {}, {t}, {t}, {e}, {e});\n",
            db.bytes(b"{}"),
            t = db.time(real_now - time::Duration::hours(2)),
            e = db.time(expiry),
        )
    };
    runtime.block_on(db.execute(&format!(
        "INSERT INTO user_identity (user_id, connector_id, claims_user_id, claims_username, claims_email, claims_email_verified, claims_groups, consents, created_at, last_login, blocked_until) VALUES ('u1', 'local', 'u1', 'jane', 'jane@example.com', 1, {null}, {null}, {t}, {t}, '0001-01-01 00:00:00+00:00');\n{live}{gone}",
        null = db.bytes(b"null"),
        t = db.time(real_now - time::Duration::hours(2)),
        live = session("live", real_now + time::Duration::days(1)),
        gone = session("gone", real_now - time::Duration::hours(1)),
    )));
    let sessions = run(&["import-dex", config]);
    let stdout = text(&sessions.stdout);
    assert_eq!(sessions.status.code(), Some(0), "{stdout}{}", text(&sessions.stderr));
    assert!(stdout.contains("user identities   found     1  imported     1"), "{stdout}");
    assert!(
        stdout.contains("browser sessions  found     2  imported     1  already present     0  differs     0  skipped     0  expired     1"),
        "{stdout}"
    );

    runtime.block_on(db.execute(&client("bad-app", "[oops")));
    let partial = run(&["import-dex", config]);
    assert_eq!(partial.status.code(), Some(1), "a row left out is not a success");
    assert!(text(&partial.stdout).contains("skipped client \"bad-app\": column redirect_uris: invalid JSON"));
    assert!(text(&partial.stderr).contains("1 of Dex's objects were not imported"));
    runtime.block_on(db.drop());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn import_dex_from_an_unreachable_source_exits_2_and_writes_nothing() {
    let dir = temp_dir("import-unreachable");
    let tessera = dev_config(&dir);
    let dex = dir.join("dex-pg.yaml");
    std::fs::write(
        &dex,
        "issuer: https://id.example\nstorage:\n  type: postgres\n  config:\n    host: 127.0.0.1\n    port: 1\n    database: dex\n    ssl:\n      mode: disable\nweb:\n  http: 127.0.0.1:0\n",
    )
    .unwrap();
    let out = run(&["import-dex", tessera.to_str().unwrap(), "--from", dex.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error: cannot reach Dex's storage at postgres 127.0.0.1:1/dex:"), "{stderr}");
    assert!(!dir.join("dex.db").exists(), "tessera's storage was not even opened");

    let missing = dir.join("missing.yaml");
    std::fs::write(&missing, "issuer: https://id.example\nstorage:\n  type: sqlite3\n  config:\n    file: /nonexistent/dex.db\nweb:\n  http: 127.0.0.1:0\n").unwrap();
    let out = run(&["import-dex", tessera.to_str().unwrap(), "--from", missing.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot reach Dex's storage at sqlite3 /nonexistent/dex.db: no such file"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn import_dex_without_dex_tables_says_so() {
    let dir = temp_dir("import-empty");
    let tessera = dev_config(&dir);
    // The check opens (and so creates) tessera's own storage: a database with no Dex tables in it.
    assert!(run(&["check-config", tessera.to_str().unwrap()]).status.success());
    let out = run(&["import-dex", tessera.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no Dex state in sqlite3 "), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.0 GET, enough for probes (no client library needed).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// `tessera serve CONFIG` on loopback ports, its stderr captured; returns once `/dex/healthz` answers.
fn serve(config: &Path, web: u16, telemetry: u16) -> Child {
    let child = Command::new(BIN)
        .args(["serve", config.to_str().unwrap()])
        .args(["--web-http-addr", &format!("127.0.0.1:{web}")])
        .args(["--telemetry-addr", &format!("127.0.0.1:{telemetry}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(web, "/dex/healthz").is_none() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Sends SIGTERM and waits for the exit; the exit status and everything written to stderr.
fn stop(mut child: Child) -> (ExitStatus, String) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (exit, stderr)
}

#[test]
fn serve_runs_the_dev_config_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let config = dev_config(&dir);
    let (web, telemetry) = (free_port(), free_port());
    let child = serve(&config, web, telemetry);
    assert_eq!(get(web, "/dex/healthz"), Some((200, "Health check passed".to_owned())));
    assert_eq!(get(telemetry, "/healthz/live"), Some((200, "ok".to_owned())));

    let (exit, stderr) = stop(child);
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {stderr:?}");
    assert!(stderr.contains(&format!("web=127.0.0.1:{web}")) && !stderr.contains("Some("), "{stderr}");
    assert!(stderr.lines().all(|line| line.starts_with("time=")), "Dex's text format: {stderr}");
    assert!(get(web, "/dex/healthz").is_none(), "the port is closed after shutdown");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn grpc_addr_on_the_command_line_starts_the_api() {
    let dir = temp_dir("grpc-addr");
    let config = dev_config(&dir);
    let (web, telemetry, grpc) = (free_port(), free_port(), free_port());
    let child = Command::new(BIN)
        .args(["serve", config.to_str().unwrap()])
        .args(["--web-http-addr", &format!("127.0.0.1:{web}")])
        .args(["--telemetry-addr", &format!("127.0.0.1:{telemetry}")])
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(web, "/dex/healthz").is_none() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(TcpStream::connect(("127.0.0.1", grpc)).is_ok(), "the API listens where --grpc-addr says");
    let (exit, stderr) = stop(child);
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    assert!(stderr.contains(&format!("grpc=127.0.0.1:{grpc}")), "{stderr}");
    assert!(
        stderr.contains("grpc.tlsClientCA is unset"),
        "Dex's warning about an API without client certificates: {stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields_and_without_excluded_ones() {
    let dir = temp_dir("json-logs");
    let config = dir.join("json.yaml");
    std::fs::write(
        &config,
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\nlogger:\n  level: debug\n  format: json\n  excludeFields: [client_remote_addr]\nenablePasswordDB: true\n",
    )
    .unwrap();
    let (web, telemetry) = (free_port(), free_port());
    let child = serve(&config, web, telemetry);
    assert_eq!(get(web, "/dex/keys").map(|(status, _)| status), Some(200));
    let (exit, stderr) = stop(child);
    assert!(exit.success(), "exit {exit:?}: {stderr}");

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}")))
        .collect();
    for line in &lines {
        assert!(line["time"].is_string() && line["level"].is_string() && line["msg"].is_string(), "{line}");
        assert!(line.get("client_remote_addr").is_none(), "excluded: {line}");
    }
    let serving = lines.iter().find(|line| line["msg"] == "tessera is serving").expect("the start-up line");
    assert_eq!(serving["web"], format!("127.0.0.1:{web}"));
    let keys = lines
        .iter()
        .find(|line| line["msg"] == "request served" && line["route"] == "/dex/keys")
        .unwrap_or_else(|| panic!("the access line of /dex/keys: {stderr}"));
    assert_eq!((&keys["method"], &keys["status"], &keys["level"]), (&"GET".into(), &200.into(), &"DEBUG".into()));
    assert!(keys["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{keys}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn minimal_config(dir: &Path) -> PathBuf {
    let path = dir.join("claims.yaml");
    std::fs::write(
        &path,
        "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\nenablePasswordDB: true\n",
    )
    .unwrap();
    path
}

#[test]
fn claims_preview_shows_what_a_token_would_carry() {
    let dir = temp_dir("preview");
    let config = minimal_config(&dir);
    let out = Command::new(BIN)
        .args(["claims", "preview", config.to_str().unwrap(), "--user-id", "u-1", "--email", "alice@acme.example"])
        .env("DEX_CUSTOM_CLAIMS_STATIC", r#"{"plan": "pro", "policy": {"pgrole": "authn"}}"#)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id_token"]["plan"], "pro");
    assert_eq!(shown["access_token"]["policy"]["pgrole"], "authn");
    assert_eq!(shown["sources"]["plan"], "enricher \"env-static\"");

    let bad = Command::new(BIN)
        .args(["claims", "preview", config.to_str().unwrap(), "--user-id", "u-1"])
        .env("DEX_CUSTOM_CLAIMS_STATIC", r#"{"sub": "admin"}"#)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("DEX_CUSTOM_CLAIMS_STATIC: claim \"sub\" is reserved"), "{}", text(&bad.stderr));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn claims_preview_shows_which_policy_rule_set_a_claim_or_denies() {
    let dir = temp_dir("preview-cel");
    let path = dir.join("cel.yaml");
    std::fs::write(
        &path,
        "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\nenablePasswordDB: true
authPolicy:
- expression: \"!identity.email.endsWith('@acme.example')\"
  message: \"'Only acme.example accounts'\"
tokenPolicy:
  claims:
  - key: \"'features'\"
    value: \"custom.plan == 'pro' ? ['sso'] : []\"
  - key: \"'plan'\"
    value: \"custom.plan.upperAscii()\"
",
    )
    .unwrap();
    let preview = |email: &str| {
        Command::new(BIN)
            .args(["claims", "preview", path.to_str().unwrap(), "--user-id", "u-1", "--email", email])
            .env("DEX_CUSTOM_CLAIMS_STATIC", r#"{"plan": "pro", "org": "acme"}"#)
            .output()
            .unwrap()
    };
    let out = preview("alice@acme.example");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id_token"], serde_json::json!({"plan": "PRO", "org": "acme", "features": ["sso"]}));
    assert_eq!(
        shown["sources"],
        serde_json::json!({"org": "enricher \"env-static\"", "plan": "tokenPolicy.claims[1]", "features": "tokenPolicy.claims[0]"})
    );
    let out = preview("mallory@evil.example");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "denied: authPolicy[0] refuses this login or token: Only acme.example accounts"
    );
    let out = Command::new(BIN).args(["check-config", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(
            "policies:   1 authPolicy rule(s), 2 tokenPolicy claim(s), 0 filter(s) (0 client(s) with their own); expressions type-checked"
        ),
        "{}",
        text(&out.stdout)
    );
    std::fs::write(&path, "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\nauthPolicy:\n- expression: identity.emial == ''\n").unwrap();
    let out = Command::new(BIN).args(["check-config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(":7: authPolicy[0].expression: identity has no field \"emial\""),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn claims_preview_and_check_config_run_the_postgres_checks() {
    let url = match std::env::var("TESSERA_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but TESSERA_TEST_POSTGRES_URL is not"),
        Err(_) => return eprintln!("SKIPPED: TESSERA_TEST_POSTGRES_URL is not set"),
    };
    let uri = format!("{url}?sslmode=disable");
    let dir = temp_dir("preview-pg");
    let config = minimal_config(&dir);
    let run = |command: &[&str], query: &str| {
        Command::new(BIN)
            .args(command)
            .arg(config.to_str().unwrap())
            .args(if command[0] == "claims" { vec!["--user-id", "u-7", "--email", "' OR 1=1 --"] } else { vec![] })
            .env("DEX_CUSTOM_CLAIMS_POSTGRES_URI", &uri)
            .env("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY", query)
            .env("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS", r#"["{{.UserID}}", "{{.Email}}"]"#)
            .output()
            .unwrap()
    };
    let out = run(&["claims", "preview"], "SELECT $1::text AS tenant_user, length($2::text) AS email_length");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id_token"], serde_json::json!({"tenant_user": "u-7", "email_length": 11}));

    let out = run(&["check-config"], "SELECT $1::text AS sub, $2::text AS e");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "custom claims enricher \"env-postgres\": DEX_CUSTOM_CLAIMS_POSTGRES_QUERY: column \"sub\": claim \"sub\" is reserved"
        ),
        "{stderr}"
    );
    let out = run(&["check-config"], "SELECT $1::text AS tenant_user, $2::text AS e");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("claims:     env-postgres (postgres, query checked)"), "{}", text(&out.stdout));
    std::fs::remove_dir_all(dir).unwrap();
}

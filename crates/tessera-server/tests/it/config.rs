//! Reading Dex configuration files: what is accepted, and how every mistake is reported.

use std::time::Duration;

use tessera_server::config::{Config, ConfigError, Env, Loaded, SigningAlgorithm, parse};
use tessera_storage::StorageSettings;

const MINIMAL: &str = "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:5556\n";
const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

fn ok(text: &str) -> Loaded {
    ok_with(text, &Env::default())
}

fn ok_with(text: &str, env: &Env) -> Loaded {
    parse(text, "config.yaml", env).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &Env::default())
}

fn errors_with(text: &str, env: &Env) -> Vec<String> {
    match parse(text, "config.yaml", env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}

fn assert_has(lines: &[String], expected: &str) {
    assert!(lines.iter().any(|l| l == expected), "missing {expected:?} in:\n{}", lines.join("\n"));
}

#[test]
fn the_dev_config_loads() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/config-dev.yaml")).unwrap();
    let loaded = ok(&text);
    let config: &Config = &loaded.config;
    assert_eq!(config.issuer, "http://127.0.0.1:5556/dex");
    assert_eq!(config.issuer_path(), "/dex");
    assert!(matches!(&config.storage, StorageSettings::Sqlite(s) if s.file.ends_with("examples/dex.db")));
    assert_eq!(config.web.http.as_deref(), Some("0.0.0.0:5556"));
    assert_eq!(config.telemetry.http.as_deref(), Some("0.0.0.0:5558"));
    assert_eq!(config.static_clients.len(), 1);
    assert_eq!(config.static_clients[0].id, "example-app");
    assert_eq!(config.static_clients[0].secret, "ZXhhbXBsZS1hcHAtc2VjcmV0");
    assert_eq!(config.static_passwords[0].email, "admin@example.com");
    assert_eq!(config.static_passwords[0].hash, HASH);
    let connectors: Vec<(&str, &str)> = config.connectors.iter().map(|c| (c.id.as_str(), c.kind.as_str())).collect();
    assert_eq!(connectors, vec![("local", "local"), ("mock", "mockCallback")]);
    assert!(loaded.warnings.is_empty(), "the dev config is fully supported: {:?}", warnings(&loaded));
}

#[test]
fn every_error_names_file_line_and_key_path() {
    let text = "\
issuer: not a url
storage:
  type: sqlite3
  config:
    fil: x.db
web:
  http: 0.0.0.0:5556
staticClients:
- id: app
  redirectURIs: http://app/callback
  name: App
- id: app
  secret: yes
  name: Other
enablePasswordDB: true
staticPasswords:
- email: a@b.c
  hash: \"$2a$04$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"
expiry:
  idTokens: 1d
";
    let errors = errors(text);
    assert_has(&errors, "config.yaml:1: issuer: \"not a url\" is not a valid URL: relative URL without a base");
    assert_has(&errors, "config.yaml:4: storage.config.file: is required");
    assert_has(
        &errors,
        "config.yaml:9: staticClients[0].secret: is required unless the client is public (or secretEnv)",
    );
    assert_has(&errors, "config.yaml:10: staticClients[0].redirectURIs: expected a list, found a string");
    assert_has(&errors, "config.yaml:12: staticClients[1].id: duplicate client id \"app\"");
    assert_has(&errors, "config.yaml:13: staticClients[1].secret: expected a string, found a boolean (quote it)");
    assert_has(&errors, "config.yaml:18: staticPasswords[0].hash: bcrypt cost 4 is below the minimum of 10");
    assert_has(
        &errors,
        "config.yaml:20: expiry.idTokens: invalid duration \"1d\" (expected e.g. \"24h\", \"1h30m\", \"90s\")",
    );
    assert_eq!(errors.len(), 8, "{errors:#?}");
    let mut sorted = errors.clone();
    sorted.sort_by_key(|e| e.split(':').nth(1).and_then(|l| l.parse::<u32>().ok()));
    assert_eq!(errors, sorted, "errors are reported in file order");
}

#[test]
fn keys_match_case_insensitively_like_go_json() {
    let loaded = ok(
        "ISSUER: https://id.example\nStorage:\n  TYPE: memory\nwEB:\n  HTTP: 127.0.0.1:1\nstaticclients:\n- ID: a\n  Secret: s\n  NAME: A\n  redirecturis: [https://a/cb]\n",
    );
    assert_eq!(loaded.config.issuer, "https://id.example");
    assert_eq!(loaded.config.issuer_path(), "");
    assert_eq!(loaded.config.static_clients[0].redirect_uris, vec!["https://a/cb"]);
    assert!(loaded.warnings.is_empty(), "{:?}", warnings(&loaded));
}

#[test]
fn yaml_1_1_booleans_and_merge_keys_work_as_in_dex() {
    let text = format!(
        "{MINIMAL}enablePasswordDB: yes\nclient_defaults: &defaults\n  secret: shared\n  redirectURIs: [https://app/cb]\nstaticClients:\n- <<: *defaults\n  id: one\n  name: One\n- <<: *defaults\n  id: two\n  name: Two\n  public: on\n"
    );
    let loaded = ok(&text);
    assert!(loaded.config.enable_password_db);
    let clients = &loaded.config.static_clients;
    assert_eq!((clients[0].secret.as_str(), clients[1].secret.as_str()), ("shared", "shared"));
    assert_eq!(clients[1].redirect_uris, vec!["https://app/cb"]);
    assert!(clients[1].public);
    // The anchor holder is not a Dex key: it is reported, not fatal.
    assert!(warnings(&loaded).iter().any(|w| w.starts_with("config.yaml:7: client_defaults: unknown key")));
}

#[test]
fn env_vars_expand_only_inside_storage_connector_and_signer_configs() {
    let env = Env::from_pairs([
        ("DB_USER", "tessera"),
        ("DB_PASS", "s3cr$t"),
        ("LDAP_HOST", "ldap.example"),
        ("PERIOD", "2h"),
    ]);
    let text = "\
issuer: https://$LDAP_HOST/dex
storage:
  type: postgres
  config:
    host: db.example:6543
    database: ${DB_USER}_db
    user: $DB_USER
    password: $DB_PASS
    ssl:
      mode: disable
web:
  http: 127.0.0.1:5556
signer:
  type: local
  config:
    keysRotationPeriod: $PERIOD
connectors:
- type: ldap
  id: ldap
  name: $LDAP_HOST
  config:
    host: $LDAP_HOST:636
    bindPW: ${DB_PASS}
";
    let config = ok_with(text, &env).config;
    assert_eq!(config.issuer, "https://$LDAP_HOST/dex", "the issuer is not expanded");
    let StorageSettings::Postgres(pg) = &config.storage else { panic!("postgres expected") };
    assert_eq!((pg.user.as_str(), pg.password.as_str(), pg.database.as_str()), ("tessera", "s3cr$t", "tessera_db"));
    assert_eq!(pg.host, "db.example:6543");
    assert_eq!(pg.ssl.mode.as_deref(), Some("disable"));
    assert_eq!(config.signer.keys_rotation_period, Duration::from_secs(7200));
    assert_eq!(config.connectors[0].name, "$LDAP_HOST", "only config is expanded");
    assert_eq!(config.connectors[0].config["host"], "ldap.example:636");
    assert_eq!(config.connectors[0].config["bindPW"], "s3cr$t");

    let off = Env::from_pairs([("DB_USER", "tessera"), ("DEX_EXPAND_ENV", "false"), ("PERIOD", "2h")]);
    let config = ok_with(&text.replace("$PERIOD", "3h"), &off).config;
    let StorageSettings::Postgres(pg) = &config.storage else { panic!("postgres expected") };
    assert_eq!(pg.user, "$DB_USER", "DEX_EXPAND_ENV=false turns expansion off");
}

#[test]
fn secrets_and_hashes_can_come_from_the_environment() {
    let env = Env::from_pairs([("APP_ID", "env-app"), ("APP_SECRET", "env-secret"), ("ADMIN_HASH", HASH)]);
    let text = format!(
        "{MINIMAL}staticClients:\n- idEnv: APP_ID\n  secretEnv: APP_SECRET\n  name: App\nenablePasswordDB: true\nstaticPasswords:\n- email: Admin@Example.com\n  hashFromEnv: ADMIN_HASH\n  userID: u1\n"
    );
    let config = ok_with(&text, &env).config;
    assert_eq!(config.static_clients[0].id, "env-app");
    assert_eq!(config.static_clients[0].secret, "env-secret");
    assert_eq!(config.static_passwords[0].hash, HASH);

    let errors = errors_with(
        &format!("{MINIMAL}staticClients:\n- id: a\n  idEnv: APP_ID\n  secretEnv: MISSING\n  name: A\n"),
        &env,
    );
    assert_has(&errors, "config.yaml:8: staticClients[0]: id and idEnv are exclusive: set one");
    assert_has(&errors, "config.yaml:9: staticClients[0].secretEnv: environment variable MISSING is not set");
}

#[test]
fn unknown_keys_warn_and_fail_when_dex_says_so() {
    let text = format!("{MINIMAL}staticClients:\n- id: a\n  secret: s\n  name: A\n  redirectURI: https://a/cb\n");
    let loaded = ok(&text);
    assert_has(
        &warnings(&loaded),
        "config.yaml:10: staticClients[0].redirectURI: unknown key (did you mean \"redirectURIs\"?)",
    );
    let strict = Env::from_pairs([("DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS", "true")]);
    assert_has(
        &errors_with(&text, &strict),
        "config.yaml:10: staticClients[0].redirectURI: unknown key (did you mean \"redirectURIs\"?)",
    );
}

#[test]
fn static_passwords_are_checked_as_dex_checks_them() {
    let password = |hash: &str| format!("- email: user@example.com\n  hash: \"{hash}\"\n  userID: u\n");
    let base64_hash = "JDJhJDEwJDJiMmNVOENQaE9UYUdyczFIUlF1QXVlUzdKVFQ1WkhzSFN6WWlGUG0xbGVaY2s3TWM4VDRX";
    let config = ok(&format!("{MINIMAL}enablePasswordDB: true\nstaticPasswords:\n{}", password(base64_hash))).config;
    assert_eq!(config.static_passwords[0].hash, HASH, "a base64-encoded hash is decoded");

    let weak = HASH.replacen("$10$", "$09$", 1);
    let slow = HASH.replacen("$10$", "$17$", 1);
    let text = format!(
        "{MINIMAL}enablePasswordDB: true\nstaticPasswords:\n{}{}{}- email: USER@example.com\n  hash: \"{HASH}\"\n",
        password(&weak),
        password(&slow).replace("user@", "other@"),
        password("plaintext").replace("user@", "third@"),
    );
    let found = errors(&text);
    assert_has(&found, "config.yaml:9: staticPasswords[0].hash: bcrypt cost 9 is below the minimum of 10");
    assert_has(&found, "config.yaml:12: staticPasswords[1].hash: bcrypt cost 17 is above the maximum of 16");
    assert_has(&found, "config.yaml:15: staticPasswords[2].hash: is neither a bcrypt hash nor base64 of one");
    assert_has(
        &found,
        "config.yaml:17: staticPasswords[3].email: duplicate email \"USER@example.com\" (emails are case-insensitive)",
    );

    let without_db = format!("{MINIMAL}staticPasswords:\n{}", password(HASH));
    assert_has(&errors(&without_db), "config.yaml:6: staticPasswords: requires enablePasswordDB: true");
}

#[test]
fn storage_types_and_their_keys() {
    let storage = |body: &str| format!("issuer: https://id.example\nweb:\n  http: 127.0.0.1:1\nstorage:\n{body}");
    let config = ok(&storage("  type: postgres\n  config:\n    host: /var/run/postgresql\n    port: 5433\n    database: dex\n    user: dex\n    connectionTimeout: 5\n    maxOpenConns: 12\n    connMaxLifetime: 60\n    ssl:\n      mode: verify-ca\n      caFile: /ca.pem\n")).config;
    let StorageSettings::Postgres(pg) = config.storage else { panic!("postgres expected") };
    assert_eq!(pg.port, Some(5433));
    assert_eq!(pg.connection_timeout, Some(Duration::from_secs(5)));
    assert_eq!(pg.max_open_conns, Some(12));
    assert_eq!(pg.conn_max_lifetime, Some(Duration::from_secs(60)));
    assert_eq!(pg.ssl.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));

    let config = ok(&storage("  type: mysql\n  config:\n    host: db.example\n    port: 3307\n    database: dex\n    user: dex\n    password: pw\n    maxOpenConns: 7\n    ssl:\n      mode: skip-verify\n")).config;
    let StorageSettings::Mysql(my) = config.storage else { panic!("mysql expected") };
    assert_eq!((my.host.as_str(), my.port, my.database.as_str()), ("db.example", Some(3307), "dex"));
    assert_eq!((my.user.as_str(), my.password.as_str(), my.max_open_conns), ("dex", "pw", Some(7)));
    assert_eq!(my.ssl.mode.as_deref(), Some("skip-verify"));
    assert_has(
        &errors(&storage("  type: mysql\n  config:\n    ssl:\n      mode: verify-full\n")),
        "config.yaml:8: storage.config.ssl.mode: unknown mode \"verify-full\" (expected one of true, false, skip-verify, preferred)",
    );
    let config = ok(&storage("  type: etcd\n  config:\n    endpoints: [http://127.0.0.1:2379, 10.0.0.2:2379]\n    namespace: dex/\n    username: root\n    password: pw\n    ssl:\n      caFile: /ca.pem\n")).config;
    let StorageSettings::Etcd(etcd) = config.storage else { panic!("etcd expected") };
    assert_eq!(etcd.endpoints, ["http://127.0.0.1:2379", "10.0.0.2:2379"]);
    assert_eq!((etcd.namespace.as_str(), etcd.username.as_str(), etcd.password.as_str()), ("dex/", "root", "pw"));
    assert_eq!(etcd.ssl.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
    assert_has(
        &errors(&storage("  type: etcd\n  config:\n    namespace: x\n")),
        "config.yaml:6: storage.config.endpoints: is required (e.g. [http://127.0.0.1:2379])",
    );
    assert_has(
        &errors(&storage("  type: kubernetes\n  config:\n    inCluster: true\n")),
        "config.yaml:5: storage.type: \"kubernetes\" is not supported by tessera (use memory, sqlite3, postgres, mysql or etcd)",
    );
    assert_has(
        &errors(&storage("  type: mongo\n")),
        "config.yaml:5: storage.type: unknown storage type \"mongo\" (expected memory, sqlite3, postgres, mysql or etcd)",
    );
    assert_has(
        &errors(&storage("  type: postgres\n  config:\n    port: 99999\n")),
        "config.yaml:7: storage.config.port: 99999 is out of range (1..=65535)",
    );
    assert_has(
        &errors(&storage("  type: postgres\n  config:\n    ssl:\n      mode: sometimes\n")),
        "config.yaml:8: storage.config.ssl.mode: unknown mode \"sometimes\" (expected one of disable, allow, prefer, require, verify-ca, verify-full)",
    );
    assert_has(
        &errors("issuer: https://id.example\nweb:\n  http: 127.0.0.1:1\n"),
        "config.yaml:1: storage: is required (e.g. type: sqlite3 with config.file)",
    );
}

#[test]
fn signer_expiry_and_oauth2_are_validated_now() {
    let config = ok(&format!("{MINIMAL}expiry:\n  signingKeys: 3h\n  idTokens: 1h\n")).config;
    assert_eq!(
        config.signer.keys_rotation_period,
        Duration::from_secs(3 * 3600),
        "expiry.signingKeys is Dex's fallback"
    );
    assert_eq!(config.expiry.id_tokens, Duration::from_secs(3600));
    let config =
        ok(&format!("{MINIMAL}signer:\n  type: local\n  config:\n    keysRotationPeriod: 30m\n    algorithm: ES256\n"))
            .config;
    assert_eq!(config.signer.algorithm, SigningAlgorithm::ES256);
    assert_eq!(config.signer.keys_rotation_period, Duration::from_secs(1800));

    let errors = errors(&format!(
        "{MINIMAL}signer:\n  type: local\n  config:\n    algorithm: HS256\noauth2:\n  grantTypes: [authorization_code, magic]\n  responseTypes: [code, 'code token', secret]\n  passwordConnector: nowhere\n  pkce:\n    codeChallengeMethodsSupported: [S512]\n"
    ));
    assert_has(&errors, "config.yaml:8: signer.config.keysRotationPeriod: is required for the local signer");
    assert_has(
        &errors,
        "config.yaml:9: signer.config.algorithm: unsupported algorithm \"HS256\" (expected RS256 or ES256)",
    );
    assert!(
        errors.iter().any(|e| e.starts_with("config.yaml:11: oauth2.grantTypes: unknown grant type \"magic\"")),
        "{errors:#?}"
    );
    assert_has(
        &errors,
        "config.yaml:12: oauth2.responseTypes: unknown response type \"secret\" (expected code, token or id_token)",
    );
    assert_has(&errors, "config.yaml:10: oauth2.passwordConnector: no connector has the id \"nowhere\"");
    assert_has(
        &errors,
        "config.yaml:15: oauth2.pkce.codeChallengeMethodsSupported: unknown method \"S512\" (expected S256 or plain)",
    );
    assert_has(
        &errors_with(&format!("{MINIMAL}signer:\n  type: vault\n"), &Env::default()),
        "config.yaml:7: signer.type: the vault signer is not supported by tessera (use local)",
    );
}

#[test]
fn recognised_options_that_are_not_implemented_yet_warn_by_name() {
    let loaded = ok(&format!(
        "{MINIMAL}  clientRemoteIP:\n    header: X-Forwarded-For\noauth2:\n  skipApprovalScreen: true\n  passwordConnector: local\nenablePasswordDB: true\ngrpc:\n  addr: 127.0.0.1:5557\n"
    ));
    let warnings = warnings(&loaded);
    assert_has(
        &warnings,
        "config.yaml:7: web.clientRemoteIP.header: is ignored without trustedProxies: any client could set it",
    );
    assert_eq!(warnings.len(), 1, "supported options (grpc included) do not warn: {warnings:#?}");
}

#[test]
fn client_remote_ip_and_tls_settings_are_checked() {
    let loaded = ok(&format!(
        "{MINIMAL}  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: [10.0.0.0/8, \"fd00::/8\"]\n"
    ));
    assert_eq!(loaded.config.web.client_ip.header.as_deref(), Some("X-Forwarded-For"));
    assert_eq!(loaded.config.web.client_ip.trusted_proxies.len(), 2);
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));

    let errors = errors(&format!(
        "{MINIMAL}  clientRemoteIP:\n    header: X-Real-IP\n    trustedProxies: [10.0.0.0/33]\n  tlsMinVersion: \"1.3\"\n  tlsMaxVersion: \"1.2\"\n  https: 127.0.0.1:5554\n  tlsCert: /nonexistent/tls.crt\n  tlsKey: /nonexistent/tls.key\ngrpc:\n  addr: 127.0.0.1:5557\n  tlsMinVersion: \"1.0\"\n"
    ));
    assert_has(
        &errors,
        "config.yaml:8: web.clientRemoteIP.trustedProxies: \"10.0.0.0/33\" is not an IP network (expected CIDR notation such as 10.0.0.0/8 or fd00::/8)",
    );
    assert_has(&errors, "config.yaml:9: web.tlsMinVersion: 1.3 is above tlsMaxVersion 1.2");
    assert_has(
        &errors,
        "config.yaml:12: web.tlsCert: cannot use /nonexistent/tls.crt: No such file or directory (os error 2)",
    );
    assert_has(&errors, "config.yaml:16: grpc.tlsMinVersion: \"1.0\" is not a TLS version (expected 1.2 or 1.3)");
}

#[test]
fn connectors_are_checked_and_password_db_adds_local() {
    let errors = errors(&format!(
        "{MINIMAL}enablePasswordDB: true\nconnectors:\n- type: local\n  id: local\n  name: Again\n- type: nope\n  id: x\n  name: X\n- type: mockPassword\n  id: mp\n  name: MP\n  config:\n    username: bob\n  grantTypes: [client_credentials]\n- id: noname\n"
    ));
    assert_has(
        &errors,
        "config.yaml:9: connectors[0].id: duplicate connector id \"local\" (enablePasswordDB adds the connector \"local\")",
    );
    assert_has(&errors, "config.yaml:11: connectors[1].type: unknown connector type \"nope\"");
    assert_has(&errors, "config.yaml:17: connectors[2].config.password: is required for mockPassword");
    assert!(
        errors
            .iter()
            .any(|e| e
                .starts_with("config.yaml:19: connectors[2].grantTypes: unknown grant type \"client_credentials\""))
    );
    assert_has(&errors, "config.yaml:20: connectors[3].type: is required");
    assert_has(&errors, "config.yaml:20: connectors[3].name: is required");
}

#[test]
fn sessions_need_dex_feature_flag() {
    let text = format!("{MINIMAL}sessions:\n  cookieName: s\n");
    assert_has(
        &errors(&text),
        "config.yaml:6: sessions: requires DEX_SESSIONS_ENABLED=true (an experimental Dex feature)",
    );
    let loaded = ok_with(&text, &Env::from_pairs([("DEX_SESSIONS_ENABLED", "true")]));
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    assert_eq!(loaded.config.sessions.unwrap().cookie_name, "s");
}

fn sessions_on() -> Env {
    Env::from_pairs([("DEX_SESSIONS_ENABLED", "true")])
}

#[test]
fn sessions_take_dex_defaults_whenever_the_flag_is_on() {
    assert_eq!(ok(MINIMAL).config.sessions, None);
    let sessions = ok_with(MINIMAL, &sessions_on()).config.sessions.unwrap();
    assert_eq!(sessions.cookie_name, "dex_session");
    assert_eq!(sessions.absolute_lifetime, std::time::Duration::from_secs(24 * 3600));
    assert_eq!(sessions.valid_if_not_used_for, std::time::Duration::from_secs(3600));
    assert!(sessions.remember_me_checked_by_default);
    assert_eq!(sessions.cookie_encryption_key, None);
    assert_eq!(sessions.sso_shared_with_default, tessera_server::config::SsoDefault::None);

    let text = format!(
        "{MINIMAL}sessions:\n  absoluteLifetime: 2h\n  validIfNotUsedFor: 30m\n  rememberMeCheckedByDefault: false\n  \
         cookieEncryptionKey: 0123456789abcdef\n  ssoSharedWithDefault: all\n"
    );
    let sessions = ok_with(&text, &sessions_on()).config.sessions.unwrap();
    assert_eq!(sessions.absolute_lifetime, std::time::Duration::from_secs(7200));
    assert_eq!(sessions.valid_if_not_used_for, std::time::Duration::from_secs(1800));
    assert!(!sessions.remember_me_checked_by_default);
    assert_eq!(sessions.cookie_encryption_key.as_deref(), Some(&b"0123456789abcdef"[..]));
    assert_eq!(sessions.sso_shared_with_default, tessera_server::config::SsoDefault::All);
}

#[test]
fn wrong_session_values_fail_with_dex_messages() {
    let error = |body: &str| errors_with(&format!("{MINIMAL}sessions:\n{body}"), &sessions_on());
    assert_has(
        &error("  cookieEncryptionKey: short\n"),
        "config.yaml:7: sessions.cookieEncryptionKey: must be 16, 24, or 32 bytes (AES-128/192/256), got 5",
    );
    assert_has(
        &error("  ssoSharedWithDefault: some\n"),
        "config.yaml:7: sessions.ssoSharedWithDefault: must be \"none\" or \"all\", got \"some\"",
    );
    assert_has(
        &error("  absoluteLifetime: 1h\n  validIfNotUsedFor: 2h\n"),
        "config.yaml:8: sessions.validIfNotUsedFor: validIfNotUsedFor (2h0m0s) must not exceed absoluteLifetime (1h0m0s)",
    );
    assert_has(
        &error("  absoluteLifetime: 0s\n"),
        "config.yaml:7: sessions.absoluteLifetime: absoluteLifetime must be positive, got 0s",
    );
}

#[test]
fn client_session_keys_are_read_with_sessions_on() {
    let text = format!(
        "{MINIMAL}staticClients:\n- id: a\n  secret: s\n  name: A\n  redirectURIs: [http://a/cb]\n  \
         postLogoutRedirectURIs: [http://a/bye]\n  backchannelLogoutURI: http://a/bc\n  refreshTokenLifetime: session\n  \
         ssoSharedWith: []\n- id: b\n  secret: s\n  name: B\n  ssoSharedWith: ['*']\n- id: c\n  secret: s\n  name: C\n"
    );
    let loaded = ok_with(&text, &sessions_on());
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let clients = &loaded.config.static_clients;
    assert_eq!(clients[0].post_logout_redirect_uris, ["http://a/bye"]);
    assert_eq!(clients[0].backchannel_logout_uri, "http://a/bc");
    assert_eq!(clients[0].refresh_token_lifetime, "session");
    assert_eq!(clients[0].sso_shared_with, Some(vec![]));
    assert_eq!(clients[1].sso_shared_with, Some(vec!["*".to_owned()]));
    assert_eq!(clients[2].sso_shared_with, None);
    assert_has(
        &warnings(&ok(&text)),
        "config.yaml:14: staticClients[0].ssoSharedWith: recognised but not implemented yet (sessions and logout need DEX_SESSIONS_ENABLED=true); ignored",
    );
    assert_has(
        &errors(&format!(
            "{MINIMAL}staticClients:\n- id: a\n  secret: s\n  name: A\n  refreshTokenLifetime: forever\n"
        )),
        "config.yaml:10: staticClients[0].refreshTokenLifetime: invalid refresh token lifetime \"forever\": want \"standalone\" or \"session\"",
    );
}

#[test]
fn broken_files_fail_with_one_clear_line() {
    let missing =
        tessera_server::config::load(std::path::Path::new("/nonexistent/config.yaml"), &Env::default()).unwrap_err();
    assert_eq!(missing.errors.len(), 1);
    assert!(missing.errors[0].to_string().starts_with("/nonexistent/config.yaml: cannot read the configuration file:"));

    let malformed = errors("issuer: https://id.example\nstorage:\n  type: [memory\nweb: {}\n");
    assert_eq!(malformed.len(), 1, "{malformed:?}");
    assert!(malformed[0].starts_with("config.yaml:") && malformed[0].contains("invalid YAML"), "{malformed:?}");

    let not_a_map = errors("- just\n- a list\n");
    assert_has(&not_a_map, "config.yaml:1: expected a mapping, found a list");
}

#[test]
fn custom_claims_from_the_environment_are_checked_at_load() {
    let error = |pairs: &[(&str, &str)]| errors_with(MINIMAL, &Env::from_pairs(pairs.iter().copied()));
    assert!(
        error(&[("DEX_CUSTOM_CLAIMS_STATIC", "{not json")])[0]
            .starts_with("config.yaml: DEX_CUSTOM_CLAIMS_STATIC: invalid JSON:")
    );
    assert_has(
        &error(&[("DEX_CUSTOM_CLAIMS_STATIC", "[1, 2]")]),
        "config.yaml: DEX_CUSTOM_CLAIMS_STATIC: expected a JSON object, found an array",
    );
    assert_has(
        &error(&[("DEX_CUSTOM_CLAIMS_STATIC", r#"{"iss": "https://evil.example"}"#)]),
        "config.yaml: DEX_CUSTOM_CLAIMS_STATIC: claim \"iss\" is reserved and can never be set by custom claims",
    );
    assert_has(
        &error(&[("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY", "SELECT 1 AS one")]),
        "config.yaml: DEX_CUSTOM_CLAIMS_POSTGRES_URI: is required when DEX_CUSTOM_CLAIMS_POSTGRES_QUERY is set",
    );
    let uri_and_query = [
        ("DEX_CUSTOM_CLAIMS_POSTGRES_URI", "postgres://db/claims"),
        ("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY", "SELECT 1 AS one"),
    ];
    let with_args = |args: &'static str| {
        let mut pairs = uri_and_query.to_vec();
        pairs.push(("DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS", args));
        error(&pairs)
    };
    assert!(
        with_args(r#"{"a": 1}"#)[0]
            .starts_with("config.yaml: DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS: expected a JSON array of strings")
    );
    assert!(
        with_args(r#"["{{.UserID}}", "{{.Role}}"]"#)[0]
            .starts_with("config.yaml: DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS[1]: unknown field \"Role\"")
    );

    let loaded = ok_with(
        MINIMAL,
        &Env::from_pairs(uri_and_query.iter().copied().chain([("DEX_CUSTOM_CLAIMS_STATIC", "{\"a\": 1}")])),
    );
    let names: Vec<&str> = loaded.config.custom_claims.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["env-static", "env-postgres"], "the fork's order: static, then Postgres");
}

#[test]
fn the_custom_claims_section_is_checked_at_load() {
    let text = format!(
        "{MINIMAL}customClaims:
  enrichers:
  - name: plans
    type: static
    claims:
      sub: forged
  - name: plans
    type: static
    allowOverride: [email, aud]
    destinations: [idToken, userinfo]
    claims: {{plan: free}}
  - name: db
    type: postgres
    uri: postgres://db/claims
    args: ['{{{{.UserID}}}}', '{{{{.Nope}}}}']
    onEmpty: sometimes
    timeout: 0s
  - name: other
    type: ldap
"
    );
    let errors = errors(&text);
    assert_has(
        &errors,
        "config.yaml:10: customClaims.enrichers[0].claims: claim \"sub\" is reserved and can never be set by custom claims",
    );
    assert_has(&errors, "config.yaml:12: customClaims.enrichers[1].name: duplicate enricher name \"plans\"");
    assert_has(
        &errors,
        "config.yaml:14: customClaims.enrichers[1].allowOverride: claim \"aud\" is reserved and can never be set by custom claims",
    );
    assert!(
        errors.iter().any(|e| e
            .starts_with("config.yaml:15: customClaims.enrichers[1].destinations: unknown destination \"userinfo\"")),
        "{errors:#?}"
    );
    assert_has(&errors, "config.yaml:17: customClaims.enrichers[2].query: is required");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("config.yaml:20: customClaims.enrichers[2].args[1]: unknown field \"Nope\"")),
        "{errors:#?}"
    );
    assert_has(&errors, "config.yaml:21: customClaims.enrichers[2].onEmpty: \"sometimes\" is not ignore or error");
    assert_has(&errors, "config.yaml:22: customClaims.enrichers[2].timeout: must be more than zero");
    assert_has(
        &errors,
        "config.yaml:24: customClaims.enrichers[3].type: unknown enricher type \"ldap\" (expected static, postgres or http)",
    );
}

#[test]
fn rate_limits_default_on_and_are_checked_by_key_and_line() {
    let defaults = ok(MINIMAL).config.rate_limits;
    assert!(defaults.enabled);
    assert_eq!(defaults.password_per_account_and_ip.max, 5);
    assert_eq!(defaults.password_per_ip.max, 50);
    assert_eq!(defaults.password_per_account.max, 100);
    assert_eq!(defaults.password_per_account.window, Duration::from_secs(15 * 60));
    assert_eq!(defaults.client_auth_per_client_and_ip.max, 20);
    assert_eq!(defaults.client_auth_per_client_and_ip.window, Duration::from_secs(5 * 60));
    assert_eq!(defaults.user_code_per_ip.max, 10);
    assert_eq!(defaults.user_code_per_ip.window, Duration::from_secs(5 * 60));

    let set = ok(&format!(
        "{MINIMAL}rateLimits:\n  passwordFailures:\n    perAccountAndIP: 3\n    window: 1h\n  userCodeFailures:\n    window: 90s\n"
    ))
    .config
    .rate_limits;
    assert_eq!(set.password_per_account_and_ip.max, 3);
    assert_eq!(set.password_per_ip.window, Duration::from_secs(3600), "a section's window is all of its limits'");
    assert_eq!(set.user_code_per_ip.max, 10);
    assert_eq!(set.user_code_per_ip.window, Duration::from_secs(90));

    let errors = errors(&format!(
        "{MINIMAL}rateLimits:\n  enabled: maybe\n  passwordFailures:\n    perIP: 0\n    window: 15 minutes\n  clientAuthFailures:\n    perClientAndIP: many\n    window: 0s\n"
    ));
    assert_has(&errors, "config.yaml:7: rateLimits.enabled: expected a boolean, found a string");
    assert_has(&errors, "config.yaml:9: rateLimits.passwordFailures.perIP: 0 is out of range (1..=1000000)");
    assert_has(
        &errors,
        "config.yaml:10: rateLimits.passwordFailures.window: invalid duration \"15 minutes\" (expected e.g. \"24h\", \"1h30m\", \"90s\")",
    );
    assert_has(
        &errors,
        "config.yaml:12: rateLimits.clientAuthFailures.perClientAndIP: expected an integer, found a string",
    );
    assert_has(&errors, "config.yaml:13: rateLimits.clientAuthFailures.window: must be positive, got 0s");
}

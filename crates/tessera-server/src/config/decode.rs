//! From the YAML tree to a validated [`Config`]: one function per top-level section, each recording
//! every problem it finds.

use std::path::PathBuf;
use std::time::Duration;

use tessera_core::client_ip::{ClientIpRule, Network};
use tessera_core::grant::ALL_GRANT_TYPES;
use tessera_storage::{EtcdSettings, EtcdSsl, PostgresSettings, PostgresSsl, SqliteSettings, StorageSettings};
use url::Url;

use super::diagnostics::Diagnostics;
use super::env::Env;
use super::model::*;
use super::reader::{Map, map_strings};
use super::statics;
use super::yaml::{Node, Value};

pub fn decode(root: &mut Node, env: &Env, flags: &Flags, d: &mut Diagnostics) -> Option<Config> {
    if flags.expand_env {
        expand_env(root, env);
    }
    let strict = flags.disallow_unknown_fields;
    let mut top = Map::new(root, "", d)?;

    let issuer = issuer(&mut top, d);
    let storage = top.map(d, "storage").and_then(|m| storage(m, d, strict));
    if !top.has("storage") {
        d.error(top.line, "storage", "is required (e.g. type: sqlite3 with config.file)");
    }
    let web = top.map(d, "web").map(|m| web(m, d, strict)).unwrap_or_default();
    if web.http.is_none() && web.https.is_none() {
        d.error(top.line_of("web"), "web", "must set http or https: the address to listen on");
    }
    let telemetry = top.map(d, "telemetry").map(|m| telemetry(m, d, strict)).unwrap_or_default();
    let grpc = top.map(d, "grpc").map(|m| grpc(m, d, strict)).unwrap_or_default();
    let logger = top.map(d, "logger").map(|m| logger(m, d, strict)).unwrap_or_default();
    let mut frontend = top.map(d, "frontend").map(|m| frontend(m, d, strict)).unwrap_or_default();
    if frontend.dir.is_none() {
        frontend.dir = env.get("DEX_FRONTEND_DIR").filter(|v| !v.is_empty()).map(str::to_owned);
    }
    let expiry = top.map(d, "expiry").map(|m| expiry(m, d, strict)).unwrap_or_default();
    let signer = signer(&mut top, d, strict, &expiry);
    let oauth2 = top.map(d, "oauth2").map(|m| oauth2(m, d, strict)).unwrap_or_default();

    let mut policies = super::policy::PolicyReader::new();
    let static_clients = statics::clients(&mut top, d, env, strict, flags.sessions_enabled, &mut policies);
    let enable_password_db = top.bool(d, "enablePasswordDB").unwrap_or(false);
    let static_passwords = statics::passwords(&mut top, d, env, strict);
    if !static_passwords.is_empty() && !enable_password_db {
        d.error(top.line_of("staticPasswords"), "staticPasswords", "requires enablePasswordDB: true");
    }
    let connectors = statics::connectors(&mut top, d, strict, enable_password_db);
    if let Some(name) = &oauth2.password_connector
        && !connectors.iter().any(|c| &c.id == name)
    {
        d.error(top.line_of("oauth2"), "oauth2.passwordConnector", format!("no connector has the id {name:?}"));
    }
    let custom_claims = super::claims::custom_claims(&mut top, d, env, strict);
    policies.top_level(&mut top, d, strict);
    let sessions = super::sessions::sessions(&mut top, d, strict, flags.sessions_enabled);
    let rate_limits = super::rate_limits::rate_limits(&mut top, d, strict);
    if top.node("mfa").is_some() {
        let line = top.line_of("mfa");
        if flags.sessions_enabled {
            d.warn(line, "mfa", "MFA is not supported by tessera; ignored");
        } else {
            d.error(line, "mfa", "requires DEX_SESSIONS_ENABLED=true (an experimental Dex feature)");
        }
    }
    top.finish(d, strict);

    if !d.errors.is_empty() {
        return None;
    }
    let (issuer, issuer_url) = issuer?;
    Some(Config {
        issuer,
        issuer_url,
        storage: storage?,
        web,
        telemetry,
        grpc,
        logger,
        frontend,
        expiry,
        signer,
        oauth2,
        static_clients,
        enable_password_db,
        static_passwords,
        connectors,
        custom_claims,
        policies: policies.finish(),
        sessions,
        rate_limits,
        request_limits: RequestLimits::default(),
        flags: flags.clone(),
    })
}

/// Dex expands `$VAR` only inside `storage.config`, `connectors[].config` and `signer.config`.
fn expand_env(root: &mut Node, env: &Env) {
    let expand = |s: &str| env.expand(s);
    let Value::Map(entries) = &mut root.value else {
        return;
    };
    for (key, value) in entries.iter_mut() {
        let section = key.name.to_ascii_lowercase();
        match (section.as_str(), &mut value.value) {
            ("storage" | "signer", Value::Map(inner)) => {
                for (k, v) in inner.iter_mut() {
                    if k.name.eq_ignore_ascii_case("config") {
                        map_strings(v, &expand);
                    }
                }
            }
            ("connectors", Value::Seq(items)) => {
                for item in items.iter_mut() {
                    if let Value::Map(inner) = &mut item.value {
                        for (k, v) in inner.iter_mut() {
                            if k.name.eq_ignore_ascii_case("config") {
                                map_strings(v, &expand);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn issuer(top: &mut Map, d: &mut Diagnostics) -> Option<(String, Url)> {
    let text = top.required_string(d, "issuer")?;
    let line = top.line_of("issuer");
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() && url.fragment().is_none() => {
            Some((text, url))
        }
        Ok(_) => {
            d.error(line, "issuer", format!("{text:?} must be an http(s) URL without query or fragment"));
            None
        }
        Err(err) => {
            d.error(line, "issuer", format!("{text:?} is not a valid URL: {err}"));
            None
        }
    }
}

fn storage(mut m: Map, d: &mut Diagnostics, strict: bool) -> Option<StorageSettings> {
    let kind = m.required_string(d, "type");
    let line = m.line_of("type");
    let config = m.map(d, "config");
    let settings = match (kind.as_deref(), config) {
        (None, _) => None,
        (Some("memory"), config) => {
            if let Some(config) = config {
                config.finish(d, strict);
            }
            Some(StorageSettings::Memory)
        }
        (Some("sqlite3"), Some(mut config)) => {
            let file = config.required_string(d, "file");
            config.finish(d, strict);
            file.map(|file| StorageSettings::Sqlite(SqliteSettings { file: PathBuf::from(file) }))
        }
        (Some(kind @ ("postgres" | "mysql")), Some(config)) => network_database(kind, config, d, strict),
        (Some("etcd"), Some(config)) => etcd(config, d, strict),
        (Some("sqlite3" | "postgres" | "mysql" | "etcd"), None) => {
            d.error(m.line, "storage.config", "is required for this storage type");
            None
        }
        (Some(other @ "kubernetes"), _) => {
            d.error(
                line,
                "storage.type",
                format!("{other:?} is not supported by tessera (use memory, sqlite3, postgres, mysql or etcd)"),
            );
            None
        }
        (Some(other), _) => {
            d.error(
                line,
                "storage.type",
                format!("unknown storage type {other:?} (expected memory, sqlite3, postgres, mysql or etcd)"),
            );
            None
        }
    };
    m.finish(d, strict);
    settings
}

/// Dex's `postgres` and `mysql` keys, which are the same but for the values `ssl.mode` takes.
fn network_database(kind: &str, mut m: Map, d: &mut Diagnostics, strict: bool) -> Option<StorageSettings> {
    let seconds = |v: Option<i64>| v.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64));
    let mut settings = PostgresSettings {
        database: m.string(d, "database").unwrap_or_default(),
        user: m.string(d, "user").unwrap_or_default(),
        password: m.string(d, "password").unwrap_or_default(),
        host: m.string(d, "host").unwrap_or_default(),
        port: m.integer_in(d, "port", 1..=65535),
        connection_timeout: seconds(m.integer_in(d, "connectionTimeout", 0..=86400)),
        max_open_conns: m.integer_in(d, "maxOpenConns", 0..=10_000),
        max_idle_conns: m.integer_in(d, "maxIdleConns", 0..=10_000),
        conn_max_lifetime: seconds(m.integer_in(d, "connMaxLifetime", 0..=i64::from(u32::MAX))),
        ssl: PostgresSsl::default(),
    };
    if let Some(mut ssl) = m.map(d, "ssl") {
        settings.ssl = PostgresSsl {
            mode: ssl.string(d, "mode"),
            ca_file: ssl.string(d, "caFile").map(PathBuf::from),
            cert_file: ssl.string(d, "certFile").map(PathBuf::from),
            key_file: ssl.string(d, "keyFile").map(PathBuf::from),
        };
        let known: &[&str] = if kind == "mysql" {
            &tessera_storage::mysql::SSL_MODES
        } else {
            &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
        };
        if let Some(mode) = &settings.ssl.mode
            && !known.contains(&mode.as_str())
        {
            d.error(
                ssl.line_of("mode"),
                &ssl.key_path("mode"),
                format!("unknown mode {mode:?} (expected one of {})", known.join(", ")),
            );
        }
        ssl.finish(d, strict);
    }
    m.finish(d, strict);
    Some(if kind == "mysql" {
        StorageSettings::Mysql(Box::new(settings))
    } else {
        StorageSettings::Postgres(Box::new(settings))
    })
}

/// Dex's `etcd` keys.
fn etcd(mut m: Map, d: &mut Diagnostics, strict: bool) -> Option<StorageSettings> {
    let endpoints = m.strings(d, "endpoints");
    if endpoints.is_empty() {
        d.error(m.line, &m.key_path("endpoints"), "is required (e.g. [http://127.0.0.1:2379])");
    }
    let mut settings = EtcdSettings {
        endpoints,
        namespace: m.string(d, "namespace").unwrap_or_default(),
        username: m.string(d, "username").unwrap_or_default(),
        password: m.string(d, "password").unwrap_or_default(),
        ssl: EtcdSsl::default(),
    };
    if let Some(mut ssl) = m.map(d, "ssl") {
        if ssl.string(d, "serverName").is_some_and(|name| !name.is_empty()) {
            d.error(
                ssl.line_of("serverName"),
                &ssl.key_path("serverName"),
                "is not supported by tessera: name the endpoint by the name its certificate carries",
            );
        }
        settings.ssl = EtcdSsl {
            ca_file: ssl.string(d, "caFile").map(PathBuf::from),
            cert_file: ssl.string(d, "certFile").map(PathBuf::from),
            key_file: ssl.string(d, "keyFile").map(PathBuf::from),
        };
        if settings.ssl.cert_file.is_some() != settings.ssl.key_file.is_some() {
            d.error(ssl.line, &ssl.key_path("certFile"), "certFile and keyFile go together");
        }
        ssl.finish(d, strict);
    }
    m.finish(d, strict);
    Some(StorageSettings::Etcd(Box::new(settings)))
}

/// `host:port`, `:port` or `[v6]:port`, as Go's net.Listen takes them.
fn listen_address(m: &mut Map, d: &mut Diagnostics, key: &'static str) -> Option<String> {
    let address = m.string(d, key)?;
    let valid_port = address.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if !valid_port {
        d.error(
            m.line_of(key),
            &m.key_path(key),
            format!("{address:?} is not a listen address (expected host:port, e.g. 0.0.0.0:5556)"),
        );
        return None;
    }
    Some(address)
}

fn tls_version(m: &mut Map, d: &mut Diagnostics, key: &'static str) -> Option<String> {
    let version = m.string(d, key)?;
    if !matches!(version.as_str(), "1.2" | "1.3") {
        d.error(m.line_of(key), &m.key_path(key), format!("{version:?} is not a TLS version (expected 1.2 or 1.3)"));
    }
    Some(version)
}

/// `tlsMinVersion` and `tlsMaxVersion`, the minimum not above the maximum.
fn tls_versions(m: &mut Map, d: &mut Diagnostics) -> (Option<String>, Option<String>) {
    let min = tls_version(m, d, "tlsMinVersion");
    let max = tls_version(m, d, "tlsMaxVersion");
    if let (Some(low), Some(high)) = (&min, &max)
        && low > high
    {
        d.error(
            m.line_of("tlsMinVersion"),
            &m.key_path("tlsMinVersion"),
            format!("{low} is above tlsMaxVersion {high}"),
        );
    }
    (min, max)
}

/// The HTTPS certificate and key are read at load time, so a missing file, a file that is not PEM or a
/// key that is not the certificate's is reported against its line (and by `check-config`).
fn check_tls_pair(m: &Map, d: &mut Diagnostics, web: &Web) {
    let (Some(_), Some(cert), Some(key)) = (&web.https, &web.tls_cert, &web.tls_key) else { return };
    let files = crate::tls::PairFiles { cert: PathBuf::from(cert), key: PathBuf::from(key) };
    if let Err(err) = files.load(&crate::tls::provider()) {
        let key = err.key();
        d.error(m.line_of(key), &m.key_path(key), err.to_string());
    }
}

fn client_remote_ip(mut ip: Map, d: &mut Diagnostics, strict: bool) -> ClientIpRule {
    let header = ip.string(d, "header").filter(|header| !header.is_empty());
    let mut trusted_proxies = Vec::new();
    for network in ip.strings(d, "trustedProxies") {
        match network.parse::<Network>() {
            Ok(network) => trusted_proxies.push(network),
            Err(err) => d.error(ip.line_of("trustedProxies"), &ip.key_path("trustedProxies"), err.to_string()),
        }
    }
    if header.is_some() && trusted_proxies.is_empty() {
        d.warn(
            ip.line_of("header"),
            &ip.key_path("header"),
            "is ignored without trustedProxies: any client could set it",
        );
    }
    ip.finish(d, strict);
    ClientIpRule { header, trusted_proxies }
}

fn web(mut m: Map, d: &mut Diagnostics, strict: bool) -> Web {
    let (tls_min_version, tls_max_version) = tls_versions(&mut m, d);
    let web = Web {
        http: listen_address(&mut m, d, "http"),
        https: listen_address(&mut m, d, "https"),
        tls_cert: m.string(d, "tlsCert"),
        tls_key: m.string(d, "tlsKey"),
        tls_min_version,
        tls_max_version,
        headers: m.string_map(d, "headers"),
        allowed_origins: m.strings(d, "allowedOrigins"),
        allowed_headers: m.strings(d, "allowedHeaders"),
        client_ip: m.map(d, "clientRemoteIP").map(|ip| client_remote_ip(ip, d, strict)).unwrap_or_default(),
    };
    if web.https.is_some() {
        for (key, value) in [("tlsCert", &web.tls_cert), ("tlsKey", &web.tls_key)] {
            if value.is_none() {
                d.error(m.line, &m.key_path(key), "is required when web.https is set");
            }
        }
    }
    check_tls_pair(&m, d, &web);
    let known_headers = [
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "X-XSS-Protection",
        "Strict-Transport-Security",
    ];
    for name in web.headers.keys() {
        if !known_headers.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            d.warn(
                m.line_of("headers"),
                &format!("web.headers.{name}"),
                format!("unknown header (Dex sets only {})", known_headers.join(", ")),
            );
        }
    }
    m.finish(d, strict);
    web
}

fn telemetry(mut m: Map, d: &mut Diagnostics, strict: bool) -> Telemetry {
    let telemetry = Telemetry {
        http: listen_address(&mut m, d, "http"),
        enable_profiling: m.bool(d, "enableProfiling").unwrap_or(false),
    };
    m.not_yet(d, "enableProfiling", "no profiling endpoints yet");
    m.finish(d, strict);
    telemetry
}

fn grpc(mut m: Map, d: &mut Diagnostics, strict: bool) -> Grpc {
    let (tls_min_version, tls_max_version) = tls_versions(&mut m, d);
    let grpc = Grpc {
        addr: listen_address(&mut m, d, "addr"),
        tls_cert: m.string(d, "tlsCert"),
        tls_key: m.string(d, "tlsKey"),
        tls_client_ca: m.string(d, "tlsClientCA"),
        tls_min_version,
        tls_max_version,
        reflection: m.bool(d, "reflection").unwrap_or(false),
    };
    if grpc.addr.is_none() && (grpc.tls_cert.is_some() || grpc.tls_key.is_some()) {
        d.error(m.line, "grpc.addr", "is required when a gRPC TLS certificate or key is set");
    }
    if grpc.tls_cert.is_some() != grpc.tls_key.is_some() {
        d.error(m.line, "grpc", "tlsCert and tlsKey must be set together");
    }
    if grpc.tls_client_ca.is_some() && grpc.tls_cert.is_none() {
        d.error(m.line, "grpc.tlsClientCA", "requires tlsCert and tlsKey");
    }
    m.finish(d, strict);
    grpc
}

fn logger(mut m: Map, d: &mut Diagnostics, strict: bool) -> Logger {
    let level = match m.string(d, "level").map(|l| l.to_ascii_lowercase()).as_deref() {
        None | Some("info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        Some("warn" | "warning") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some(other) => {
            d.error(
                m.line_of("level"),
                "logger.level",
                format!("unknown level {other:?} (expected debug, info, warn or error)"),
            );
            LogLevel::Info
        }
    };
    let format = match m.string(d, "format").as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            d.error(m.line_of("format"), "logger.format", format!("unknown format {other:?} (expected text or json)"));
            LogFormat::Text
        }
    };
    let exclude_fields = m.strings(d, "excludeFields");
    m.finish(d, strict);
    Logger { level, format, exclude_fields }
}

fn frontend(mut m: Map, d: &mut Diagnostics, strict: bool) -> Frontend {
    let defaults = Frontend::default();
    let theme = match m.string(d, "theme") {
        None => defaults.theme,
        Some(theme) if theme.is_empty() => defaults.theme,
        // Dex maps its retired theme names onto light.
        Some(theme) if theme == "coreos" || theme == "tectonic" => "light".into(),
        Some(theme) => theme,
    };
    let frontend = Frontend {
        dir: m.string(d, "dir"),
        logo_url: m.string(d, "logoURL"),
        issuer: m.string(d, "issuer").filter(|s| !s.is_empty()).unwrap_or(defaults.issuer),
        theme,
        extra: m.string_map(d, "extra"),
    };
    m.finish(d, strict);
    frontend
}

fn expiry(mut m: Map, d: &mut Diagnostics, strict: bool) -> Expiry {
    let defaults = Expiry::default();
    let refresh_tokens = m
        .map(d, "refreshTokens")
        .map(|mut r| {
            let value = RefreshTokenExpiry {
                disable_rotation: r.bool(d, "disableRotation").unwrap_or(false),
                reuse_interval: r.duration(d, "reuseInterval").unwrap_or_default(),
                absolute_lifetime: r.duration(d, "absoluteLifetime").unwrap_or_default(),
                valid_if_not_used_for: r.duration(d, "validIfNotUsedFor").unwrap_or_default(),
            };
            r.finish(d, strict);
            value
        })
        .unwrap_or_default();
    let expiry = Expiry {
        signing_keys: m.duration(d, "signingKeys"),
        id_tokens: m.duration(d, "idTokens").unwrap_or(defaults.id_tokens),
        auth_requests: m.duration(d, "authRequests").unwrap_or(defaults.auth_requests),
        device_requests: m.duration(d, "deviceRequests").unwrap_or(defaults.device_requests),
        refresh_tokens,
    };
    m.finish(d, strict);
    expiry
}

fn signer(top: &mut Map, d: &mut Diagnostics, strict: bool, expiry: &Expiry) -> Signer {
    let fallback_period = expiry.signing_keys.unwrap_or(Signer::default().keys_rotation_period);
    let Some(mut m) = top.map(d, "signer") else {
        return Signer { keys_rotation_period: fallback_period, ..Signer::default() };
    };
    let kind = m.string(d, "type");
    let mut signer = Signer { keys_rotation_period: fallback_period, ..Signer::default() };
    match kind.as_deref() {
        None | Some("local") => {
            if let Some(mut config) = m.map(d, "config") {
                match config.duration(d, "keysRotationPeriod") {
                    Some(period) => signer.keys_rotation_period = period,
                    None if kind.is_some() && !config.has("keysRotationPeriod") => {
                        d.error(config.line, "signer.config.keysRotationPeriod", "is required for the local signer");
                    }
                    None => {}
                }
                signer.algorithm = match config.string(d, "algorithm").as_deref() {
                    None | Some("RS256") => SigningAlgorithm::RS256,
                    Some("ES256") => SigningAlgorithm::ES256,
                    Some(other) => {
                        d.error(
                            config.line_of("algorithm"),
                            "signer.config.algorithm",
                            format!("unsupported algorithm {other:?} (expected RS256 or ES256)"),
                        );
                        SigningAlgorithm::RS256
                    }
                };
                config.finish(d, strict);
            } else if kind.is_some() {
                d.error(m.line, "signer.config.keysRotationPeriod", "is required for the local signer");
            }
        }
        Some("vault") => {
            d.error(m.line_of("type"), "signer.type", "the vault signer is not supported by tessera (use local)")
        }
        Some(other) => {
            d.error(m.line_of("type"), "signer.type", format!("unknown signer type {other:?} (expected local)"))
        }
    }
    m.finish(d, strict);
    signer
}

fn oauth2(mut m: Map, d: &mut Diagnostics, strict: bool) -> OAuth2 {
    let defaults = OAuth2::default();
    let grant_types = m.strings(d, "grantTypes");
    for grant in &grant_types {
        if !ALL_GRANT_TYPES.contains(&grant.as_str()) {
            d.error(
                m.line_of("grantTypes"),
                "oauth2.grantTypes",
                format!("unknown grant type {grant:?} (expected one of {})", ALL_GRANT_TYPES.join(", ")),
            );
        }
    }
    let response_types = m.strings(d, "responseTypes");
    for response_type in &response_types {
        if response_type.split_whitespace().any(|word| !matches!(word, "code" | "token" | "id_token"))
            || response_type.trim().is_empty()
        {
            d.error(
                m.line_of("responseTypes"),
                "oauth2.responseTypes",
                format!("unknown response type {response_type:?} (expected code, token or id_token)"),
            );
        }
    }
    let mut oauth2 = OAuth2 {
        grant_types,
        response_types: if response_types.is_empty() { defaults.response_types } else { response_types },
        skip_approval_screen: m.bool(d, "skipApprovalScreen").unwrap_or(false),
        always_show_login_screen: m.bool(d, "alwaysShowLoginScreen").unwrap_or(false),
        password_connector: m.string(d, "passwordConnector").filter(|s| !s.is_empty()),
        ..defaults
    };
    if let Some(mut pkce) = m.map(d, "pkce") {
        oauth2.pkce_enforce = pkce.bool(d, "enforce").unwrap_or(false);
        let methods = pkce.strings(d, "codeChallengeMethodsSupported");
        for method in &methods {
            if method != "S256" && method != "plain" {
                d.error(
                    pkce.line_of("codeChallengeMethodsSupported"),
                    "oauth2.pkce.codeChallengeMethodsSupported",
                    format!("unknown method {method:?} (expected S256 or plain)"),
                );
            }
        }
        if !methods.is_empty() {
            oauth2.code_challenge_methods_supported = methods;
        }
        pkce.finish(d, strict);
    }
    m.finish(d, strict);
    oauth2
}

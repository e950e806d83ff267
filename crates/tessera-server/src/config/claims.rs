//! Custom claims from the configuration: the `customClaims:` section, then the fork's environment
//! variables (`DEX_CUSTOM_CLAIMS_STATIC`, `DEX_CUSTOM_CLAIMS_POSTGRES_*`), which add a static and then
//! a Postgres enricher after the section's, in that order (a later enricher wins a conflict).
//! Everything that can be checked without the database is checked here.

use std::collections::HashSet;
use std::time::Duration;

use tessera_claims::reserved::Guard;
use tessera_claims::template::Template;
use tessera_claims::{
    CacheSettings, Destinations, HttpEnricherSettings, OnEmpty, OnError, PostgresEnricherSettings, StaticEnricher,
    TlsFiles,
};

use super::diagnostics::Diagnostics;
use super::env::Env;
use super::model::{EnricherConfig, EnricherSource};
use super::reader::{Map, to_json};

pub const ENV_STATIC: &str = "DEX_CUSTOM_CLAIMS_STATIC";
pub const ENV_URI: &str = "DEX_CUSTOM_CLAIMS_POSTGRES_URI";
pub const ENV_QUERY: &str = "DEX_CUSTOM_CLAIMS_POSTGRES_QUERY";
pub const ENV_ARGS: &str = "DEX_CUSTOM_CLAIMS_POSTGRES_QUERY_ARGS";
/// The name of the enricher the `DEX_CUSTOM_CLAIMS_POSTGRES_*` variables configure.
pub const ENV_POSTGRES: &str = "env-postgres";

pub fn custom_claims(top: &mut Map, d: &mut Diagnostics, env: &Env, strict: bool) -> Vec<EnricherConfig> {
    let mut enrichers = Vec::new();
    if let Some(mut section) = top.map(d, "customClaims") {
        let mut names = HashSet::new();
        for (path, node) in section.list(d, "enrichers") {
            let Some(mut m) = Map::new(node, &path, d) else { continue };
            if let Some(enricher) = enricher(&mut m, d, env) {
                if !names.insert(enricher.name.clone()) {
                    d.error(
                        m.line_of("name"),
                        &m.key_path("name"),
                        format!("duplicate enricher name {:?}", enricher.name),
                    );
                }
                enrichers.push(enricher);
            }
            m.finish(d, strict);
        }
        section.finish(d, strict);
    }
    enrichers.extend(from_environment(d, env));
    enrichers
}

fn enricher(m: &mut Map, d: &mut Diagnostics, env: &Env) -> Option<EnricherConfig> {
    let name = m.required_string(d, "name");
    let kind = m.required_string(d, "type");
    let allow_override = m.strings(d, "allowOverride");
    let guard = match Guard::new(allow_override) {
        Ok(guard) => guard,
        Err(err) => {
            d.error(m.line_of("allowOverride"), &m.key_path("allowOverride"), err);
            Guard::default()
        }
    };
    let destinations = destinations(m, d);
    let grant_types = m.strings(d, "grantTypes");
    for grant in &grant_types {
        if !tessera_core::grant::ALL_GRANT_TYPES.contains(&grant.as_str()) || grant == tessera_core::grant::IMPLICIT {
            d.error(m.line_of("grantTypes"), &m.key_path("grantTypes"), format!("unknown grant type {grant:?}"));
        }
    }
    let clients = m.strings(d, "clients");
    let on_error = match m.string(d, "onError").as_deref() {
        None | Some("deny") => OnError::Deny,
        Some("omit") => OnError::Omit,
        Some(other) => {
            d.error(m.line_of("onError"), &m.key_path("onError"), format!("{other:?} is not deny or omit"));
            OnError::Deny
        }
    };
    let source = match kind.as_deref()? {
        "static" => {
            let line = m.line_of("claims");
            let claims = m.node("claims").map(to_json);
            let Some(claims) = claims else {
                d.error(m.line, &m.key_path("claims"), "is required for a static enricher");
                return None;
            };
            if let Err(err) = StaticEnricher::new(claims.clone(), &guard) {
                d.error(line, &m.key_path("claims"), err);
            }
            EnricherSource::Static(claims)
        }
        "postgres" => {
            let uri = m.required_string(d, "uri").map(|uri| env.expand(&uri));
            let query = m.required_string(d, "query");
            let args = m.strings(d, "args");
            for (i, arg) in args.iter().enumerate() {
                if let Err(err) = Template::compile(arg) {
                    d.error(m.line_of("args"), &format!("{}[{i}]", m.key_path("args")), err);
                }
            }
            // Every key is read (and checked) before giving up on a missing one.
            let mut settings = PostgresEnricherSettings::new(String::new(), String::new(), args);
            settings.on_empty = match m.string(d, "onEmpty").as_deref() {
                None | Some("ignore") => OnEmpty::Ignore,
                Some("error") => OnEmpty::Error,
                Some(other) => {
                    d.error(m.line_of("onEmpty"), &m.key_path("onEmpty"), format!("{other:?} is not ignore or error"));
                    OnEmpty::Ignore
                }
            };
            let positive =
                |d: &mut Diagnostics, m: &mut Map, key: &'static str, default: Duration| match m.duration(d, key) {
                    Some(Duration::ZERO) => {
                        d.error(m.line_of(key), &m.key_path(key), "must be more than zero");
                        default
                    }
                    Some(value) => value,
                    None => default,
                };
            settings.statement_timeout = positive(d, m, "timeout", settings.statement_timeout);
            settings.acquire_timeout = positive(d, m, "acquireTimeout", settings.acquire_timeout);
            settings.max_connections = m.integer_in(d, "maxConnections", 1..=1000).unwrap_or(settings.max_connections);
            settings.uri = uri?;
            settings.query = query?;
            EnricherSource::Postgres(settings)
        }
        "http" => EnricherSource::Http(http(m, d, env)?),
        other => {
            d.error(
                m.line_of("type"),
                &m.key_path("type"),
                format!("unknown enricher type {other:?} (expected static, postgres or http)"),
            );
            return None;
        }
    };
    let cache = cache(m, d, &source);
    Some(EnricherConfig { name: name?, source, destinations, guard, grant_types, clients, on_error, cache })
}

/// `type: http`: what can be checked without calling the hook is checked here (URL, headers, the TLS
/// files exist); the files are parsed when the enricher is built.
fn http(m: &mut Map, d: &mut Diagnostics, env: &Env) -> Option<HttpEnricherSettings> {
    let url = m.required_string(d, "url");
    let mut settings = HttpEnricherSettings::new(String::new());
    match m.duration(d, "timeout") {
        Some(Duration::ZERO) => d.error(m.line_of("timeout"), &m.key_path("timeout"), "must be more than zero"),
        Some(timeout) => settings.timeout = timeout,
        None => {}
    }
    // `$VAR` expanded, as in a Postgres enricher's `uri`: tokens and secrets stay out of the file.
    settings.headers = m.string_map(d, "headers").into_iter().map(|(k, v)| (k, env.expand(&v))).collect();
    for (name, value) in &settings.headers {
        let valid = axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && axum::http::HeaderValue::from_str(value).is_ok();
        if !valid {
            d.error(m.line_of("headers"), &format!("{}.{name}", m.key_path("headers")), "is not a valid HTTP header");
        }
    }
    settings.hmac_secret = m.string(d, "hmacSecret").map(|s| env.expand(&s)).filter(|s| !s.is_empty());
    if let Some(mut tls) = m.map(d, "tls") {
        let mut file = |key: &'static str| {
            let path = tls.string(d, key)?;
            if let Err(err) = std::fs::metadata(&path) {
                d.error(tls.line_of(key), &tls.key_path(key), format!("{path}: {err}"));
            }
            Some(path)
        };
        settings.tls = TlsFiles { ca_file: file("caFile"), cert_file: file("certFile"), key_file: file("keyFile") };
        if settings.tls.cert_file.is_some() != settings.tls.key_file.is_some() {
            d.error(tls.line, &tls.path, "certFile and keyFile go together (the client certificate and its key)");
        }
        tls.finish(d, false);
    }
    let url = url?;
    match url::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        _ => {
            d.error(m.line_of("url"), &m.key_path("url"), format!("{url:?} is not an http(s) URL"));
            return None;
        }
    }
    settings.url = url;
    Some(settings)
}

/// `cache: {ttl, maxEntries, notifyChannel}`: off unless set; `notifyChannel` for Postgres only.
fn cache(m: &mut Map, d: &mut Diagnostics, source: &EnricherSource) -> Option<CacheSettings> {
    let mut c = m.map(d, "cache")?;
    if matches!(source, EnricherSource::Static(_)) {
        d.error(c.line, &c.path, "a static enricher has nothing to cache");
    }
    let ttl = match c.duration(d, "ttl") {
        Some(ttl) if !ttl.is_zero() => ttl,
        Some(_) => {
            d.error(c.line_of("ttl"), &c.key_path("ttl"), "must be more than zero");
            Duration::from_secs(1)
        }
        None => {
            d.error(c.line, &c.key_path("ttl"), "is required (how long an answer is kept, e.g. 5m)");
            Duration::from_secs(1)
        }
    };
    let max_entries = c.integer_in(d, "maxEntries", 1..=10_000_000).unwrap_or(10_000);
    let notify_channel = c.string(d, "notifyChannel").filter(|n| !n.is_empty());
    if notify_channel.is_some() && !matches!(source, EnricherSource::Postgres(_)) {
        d.error(c.line_of("notifyChannel"), &c.key_path("notifyChannel"), "only a postgres enricher can LISTEN");
    }
    c.finish(d, false);
    Some(CacheSettings { ttl, max_entries, notify_channel })
}

fn destinations(m: &mut Map, d: &mut Diagnostics) -> Destinations {
    if !m.has("destinations") {
        return Destinations::default();
    }
    let listed = m.strings(d, "destinations");
    let mut destinations = Destinations { id_token: false, access_token: false };
    for destination in &listed {
        match destination.as_str() {
            "idToken" => destinations.id_token = true,
            "accessToken" => destinations.access_token = true,
            other => d.error(
                m.line_of("destinations"),
                &m.key_path("destinations"),
                format!("unknown destination {other:?} (expected idToken or accessToken; /userinfo and introspection show the access token's claims)"),
            ),
        }
    }
    if listed.is_empty() {
        d.error(m.line_of("destinations"), &m.key_path("destinations"), "must name at least one destination");
    }
    destinations
}

/// The fork's variables: a static enricher, then a Postgres one.
fn from_environment(d: &mut Diagnostics, env: &Env) -> Vec<EnricherConfig> {
    let mut enrichers = Vec::new();
    let set = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    if let Some(text) = set(ENV_STATIC) {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => match StaticEnricher::new(value.clone(), &Guard::default()) {
                Ok(_) => enrichers.push(EnricherConfig {
                    name: "env-static".into(),
                    source: EnricherSource::Static(value),
                    destinations: Destinations::default(),
                    guard: Guard::default(),
                    grant_types: Vec::new(),
                    clients: Vec::new(),
                    on_error: OnError::Deny,
                    cache: None,
                }),
                Err(err) => d.error(0, ENV_STATIC, err),
            },
            Err(err) => d.error(0, ENV_STATIC, format!("invalid JSON: {err}")),
        }
    }
    match (set(ENV_URI), set(ENV_QUERY)) {
        (None, None) => {
            if set(ENV_ARGS).is_some() {
                d.error(0, ENV_ARGS, format!("is set but {ENV_URI} and {ENV_QUERY} are not"));
            }
        }
        (Some(_), None) => d.error(0, ENV_QUERY, format!("is required when {ENV_URI} is set")),
        (None, Some(_)) => d.error(0, ENV_URI, format!("is required when {ENV_QUERY} is set")),
        (Some(uri), Some(query)) => {
            let args: Vec<String> = match set(ENV_ARGS).map(serde_json::from_str::<Vec<String>>) {
                None => Vec::new(),
                Some(Ok(args)) => args,
                Some(Err(err)) => {
                    d.error(
                        0,
                        ENV_ARGS,
                        format!("expected a JSON array of strings such as [\"{{{{.UserID}}}}\"]: {err}"),
                    );
                    return enrichers;
                }
            };
            for (i, arg) in args.iter().enumerate() {
                if let Err(err) = Template::compile(arg) {
                    d.error(0, &format!("{ENV_ARGS}[{i}]"), err);
                }
            }
            enrichers.push(EnricherConfig {
                name: ENV_POSTGRES.into(),
                source: EnricherSource::Postgres(PostgresEnricherSettings::new(uri, query, args)),
                destinations: Destinations::default(),
                guard: Guard::default(),
                grant_types: Vec::new(),
                clients: Vec::new(),
                on_error: OnError::Deny,
                cache: None,
            });
        }
    }
    enrichers
}

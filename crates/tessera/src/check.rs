//! `tessera check-config`: everything `serve` does before it listens, then a summary.

use std::path::PathBuf;
use std::process::ExitCode;

use tessera_server::config::{Config, Loaded};
use tessera_server::server::open_storage;
use tessera_storage::StorageSettings;

use crate::{EXIT_CONFIG, load_config};

pub async fn check_config(path: PathBuf) -> ExitCode {
    let Some(Loaded { config, warnings }) = load_config(&path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let storage = match open_storage(&config).await {
        Ok(storage) => storage,
        Err(err) => {
            eprintln!("error: {}: {err}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(err) = storage.ping().await {
        eprintln!("error: {}: storage: {err}", path.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    // The same checks serve runs: each Postgres enricher connects and its query is prepared.
    if let Err(err) = tessera_server::custom_claims::build_chain(&config).await {
        eprintln!("error: {}: {err}", path.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    print!("{}", summary(&path, &config, warnings.len()));
    ExitCode::SUCCESS
}

fn summary(path: &std::path::Path, config: &Config, warnings: usize) -> String {
    let storage = match &config.storage {
        StorageSettings::Memory => "memory".to_owned(),
        StorageSettings::Sqlite(sqlite) => format!("sqlite3 ({})", sqlite.file.display()),
        StorageSettings::Postgres(pg) => format!("postgres ({}/{})", pg.host, pg.database),
        StorageSettings::Mysql(my) => format!("mysql ({}/{})", my.host, my.database),
        StorageSettings::Etcd(etcd) => format!("etcd ({})", etcd.endpoints.join(", ")),
    };
    let names = |items: Vec<String>| {
        if items.is_empty() { "none".to_owned() } else { items.join(", ") }
    };
    let clients = names(config.static_clients.iter().map(|c| c.id.clone()).collect());
    let connectors = names(config.connectors.iter().map(|c| format!("{} ({})", c.id, c.kind)).collect());
    let claims = names(
        config
            .custom_claims
            .iter()
            .map(|e| {
                let kind = match e.source {
                    tessera_server::config::EnricherSource::Static(_) => "static",
                    tessera_server::config::EnricherSource::Postgres(_) => "postgres, query checked",
                    tessera_server::config::EnricherSource::Http(_) => "http, not called",
                };
                format!("{} ({kind})", e.name)
            })
            .collect(),
    );
    let path_note = match config.issuer_path() {
        "" => String::new(),
        prefix => format!(" (routes under {prefix})"),
    };
    [
        format!("{}: configuration OK", path.display()),
        format!("  issuer:     {}{path_note}", config.issuer),
        format!("  storage:    {storage}: opened and migrated"),
        format!("  web:        {}", config.web.http.as_deref().or(config.web.https.as_deref()).unwrap_or("-")),
        format!("  telemetry:  {}", config.telemetry.http.as_deref().unwrap_or("-")),
        format!("  clients:    {clients}"),
        format!(
            "  passwords:  {} static, password database {}",
            config.static_passwords.len(),
            if config.enable_password_db { "enabled" } else { "disabled" }
        ),
        format!("  connectors: {connectors}"),
        format!("  claims:     {claims}"),
        format!("  policies:   {}", policies(&config.policies)),
        format!("  warnings:   {warnings}"),
        String::new(),
    ]
    .join("\n")
}

/// The CEL policies, counted: every expression in them compiled and passed its checks.
fn policies(policies: &tessera_claims::policy::Policies) -> String {
    if policies.is_empty() {
        return "none".to_owned();
    }
    let scopes = std::iter::once(&policies.global).chain(policies.clients.values());
    let (mut auth, mut claims, mut filters) = (0, 0, 0);
    for scope in scopes {
        auth += scope.auth.len();
        claims += scope.token.claims.len();
        filters += usize::from(scope.token.filter.is_some());
    }
    format!(
        "{auth} authPolicy rule(s), {claims} tokenPolicy claim(s), {filters} filter(s) ({} client(s) with their own); expressions type-checked",
        policies.clients.len()
    )
}

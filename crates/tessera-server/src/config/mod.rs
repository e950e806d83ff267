//! Dex's `config.yaml`, read as Dex reads it and validated before anything starts.
//!
//! The file becomes a YAML tree that remembers lines ([`yaml`]), then a typed [`Config`]
//! ([`decode`]); every problem on the way is collected, so one run reports them all, each as
//! `file:line: key.path: message`.

mod claims;
mod decode;
mod diagnostics;
mod duration;
pub mod env;
mod model;
mod policy;
mod rate_limits;
mod reader;
mod sessions;
mod statics;
pub mod yaml;

use std::path::Path;

pub use claims::{ENV_ARGS, ENV_POSTGRES, ENV_QUERY, ENV_URI};
pub use diagnostics::Diagnostic;
pub use duration::parse_go_duration;
pub use env::Env;
pub use model::*;
pub use statics::{TypeProblem, check_grant_types, connector_type, missing_mock_password_keys};

use diagnostics::Diagnostics;

/// A configuration that passed validation, and what it warned about.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Every error found (and the warnings seen on the way).
#[derive(Debug)]
pub struct ConfigError {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the file at `path`.
pub fn load(path: &Path, env: &Env) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file, env),
        Err(err) => {
            let mut d = Diagnostics::new(file);
            d.error(0, "", format!("cannot read the configuration file: {err}"));
            Err(ConfigError { errors: d.errors, warnings: d.warnings })
        }
    }
}

/// Validates configuration text; `file` names it in messages.
pub fn parse(text: &str, file: &str, env: &Env) -> Result<Loaded, ConfigError> {
    let mut d = Diagnostics::new(file);
    let flags = flags(env, &mut d);
    let config = match yaml::parse(text) {
        Ok(mut root) => decode::decode(&mut root, env, &flags, &mut d),
        Err((line, message)) => {
            d.error(line, "", format!("invalid YAML: {message}"));
            None
        }
    };
    // Report in file order, whatever order the sections were checked in.
    d.errors.sort_by_key(|e| e.line);
    d.warnings.sort_by_key(|w| w.line);
    match config {
        Some(config) if d.errors.is_empty() => Ok(Loaded { config, warnings: d.warnings }),
        _ => Err(ConfigError { errors: d.errors, warnings: d.warnings }),
    }
}

fn flags(env: &Env, d: &mut Diagnostics) -> Flags {
    let mut flag = |name: &str, default: bool| {
        env.flag(name, default).unwrap_or_else(|bad| {
            d.warn(0, "", format!("{name}={bad:?} is not a boolean; using {default}"));
            default
        })
    };
    Flags {
        expand_env: flag("DEX_EXPAND_ENV", true),
        disallow_unknown_fields: flag("DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS", false),
        client_credential_grant_enabled_by_default: flag("DEX_CLIENT_CREDENTIAL_GRANT_ENABLED_BY_DEFAULT", false),
        continue_on_connector_failure: flag("DEX_CONTINUE_ON_CONNECTOR_FAILURE", true),
        sessions_enabled: flag("DEX_SESSIONS_ENABLED", false),
        api_connectors_crud: flag("DEX_API_CONNECTORS_CRUD", false),
        api_sessions_identities_crud: flag("DEX_API_SESSIONS_IDENTITIES_CRUD", false),
        import_dex: flag("TESSERA_IMPORT_DEX", true),
    }
}

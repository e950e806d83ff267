//! `staticClients`, `staticPasswords` and `connectors`: the objects the file defines, validated as
//! Dex validates them and turned into storage's read-only overlay.

use std::collections::HashSet;

use base64::Engine;
use tessera_core::grant::CONNECTOR_GRANT_TYPES;
use tessera_core::model::{Client, ClientCredentialsClaims, Connector, Password};
use tessera_core::password::check_bcrypt_hash;

use super::diagnostics::Diagnostics;
use super::env::Env;
use super::reader::{Map, to_json};

const NOT_PLANNED: &str = "not planned yet";

/// Connector types Dex knows, and when tessera implements each (`None`: implemented).
const CONNECTOR_TYPES: &[(&str, Option<&str>)] = &[
    ("local", None),
    ("mockCallback", None),
    ("mockPassword", None),
    ("ldap", None),
    ("oidc", None),
    ("oauth", None),
    ("github", None),
    ("authproxy", None),
    ("keystone", Some(NOT_PLANNED)),
    ("gitea", Some(NOT_PLANNED)),
    ("gitlab", Some(NOT_PLANNED)),
    ("google", Some(NOT_PLANNED)),
    ("saml", Some(NOT_PLANNED)),
    ("samlExperimental", Some(NOT_PLANNED)),
    ("linkedin", Some(NOT_PLANNED)),
    ("microsoft", Some(NOT_PLANNED)),
    ("bitbucket-cloud", Some(NOT_PLANNED)),
    ("openshift", Some(NOT_PLANNED)),
    ("atlassian-crowd", Some(NOT_PLANNED)),
];

/// A value given either inline or through an environment variable (`id`/`idEnv`, `secret`/`secretEnv`).
fn value_or_env(
    m: &mut Map,
    d: &mut Diagnostics,
    env: &Env,
    key: &'static str,
    env_key: &'static str,
) -> Option<String> {
    let inline = m.string(d, key);
    let from_env = m.string(d, env_key);
    match (inline, from_env) {
        (Some(_), Some(_)) => {
            d.error(m.line_of(env_key), &m.path, format!("{key} and {env_key} are exclusive: set one"));
            None
        }
        (Some(value), None) => Some(value),
        (None, Some(var)) => match env.get(&var) {
            Some(value) if !value.is_empty() => Some(value.to_owned()),
            _ => {
                d.error(m.line_of(env_key), &m.key_path(env_key), format!("environment variable {var} is not set"));
                None
            }
        },
        (None, None) => None,
    }
}

pub fn clients(
    top: &mut Map,
    d: &mut Diagnostics,
    env: &Env,
    strict: bool,
    sessions: bool,
    policies: &mut super::policy::PolicyReader,
) -> Vec<Client> {
    let mut clients = Vec::new();
    let mut ids = HashSet::new();
    for (path, node) in top.list(d, "staticClients") {
        let Some(mut m) = Map::new(node, &path, d) else {
            continue;
        };
        let id = value_or_env(&mut m, d, env, "id", "idEnv");
        if id.is_none() && !m.has("id") && !m.has("idEnv") {
            d.error(m.line, &m.key_path("id"), "is required (or idEnv)");
        }
        let public = m.bool(d, "public").unwrap_or(false);
        let secret = value_or_env(&mut m, d, env, "secret", "secretEnv");
        if secret.is_none() && !public && !m.has("secret") && !m.has("secretEnv") {
            d.error(m.line, &m.key_path("secret"), "is required unless the client is public (or secretEnv)");
        }
        let name = m.required_string(d, "name");
        let refresh_token_lifetime = m.string(d, "refreshTokenLifetime").unwrap_or_default();
        if !matches!(refresh_token_lifetime.as_str(), "" | "standalone" | "session") {
            d.error(
                m.line_of("refreshTokenLifetime"),
                &m.key_path("refreshTokenLifetime"),
                format!(
                    "invalid refresh token lifetime {refresh_token_lifetime:?}: want \"standalone\" or \"session\""
                ),
            );
        }
        let claims = m.map(d, "clientCredentialsClaims").map(|mut c| {
            let groups = c.strings(d, "groups");
            c.finish(d, strict);
            ClientCredentialsClaims { groups }
        });
        let client = Client {
            id: id.clone().unwrap_or_default(),
            secret: secret.unwrap_or_default(),
            redirect_uris: m.strings(d, "redirectURIs"),
            post_logout_redirect_uris: m.strings(d, "postLogoutRedirectURIs"),
            trusted_peers: m.strings(d, "trustedPeers"),
            public,
            name: name.unwrap_or_default(),
            logo_url: m.string(d, "logoURL").unwrap_or_default(),
            allowed_connectors: m.strings(d, "allowedConnectors"),
            refresh_token_lifetime,
            client_credentials_claims: claims,
            // Read whether sessions are on or not, as Dex does; only their use waits for the flag.
            sso_shared_with: m.has("ssoSharedWith").then(|| m.strings(d, "ssoSharedWith")),
            backchannel_logout_uri: m.string(d, "backchannelLogoutURI").unwrap_or_default(),
        };
        if !sessions {
            for key in ["postLogoutRedirectURIs", "backchannelLogoutURI", "ssoSharedWith"] {
                m.not_yet(d, key, "sessions and logout need DEX_SESSIONS_ENABLED=true");
            }
        }
        m.not_yet(d, "mfaChain", "MFA is not supported");
        policies.client(&mut m, d, strict, id.as_deref());
        if let Some(id) = id
            && !ids.insert(id.clone())
        {
            d.error(m.line_of("id"), &m.key_path("id"), format!("duplicate client id {id:?}"));
        }
        m.finish(d, strict);
        clients.push(client);
    }
    clients
}

pub fn passwords(top: &mut Map, d: &mut Diagnostics, env: &Env, strict: bool) -> Vec<Password> {
    let mut passwords = Vec::new();
    let mut emails = HashSet::new();
    for (path, node) in top.list(d, "staticPasswords") {
        let Some(mut m) = Map::new(node, &path, d) else {
            continue;
        };
        let email = m.required_string(d, "email");
        let hash = value_or_env(&mut m, d, env, "hash", "hashFromEnv");
        if hash.is_none() && !m.has("hash") && !m.has("hashFromEnv") {
            d.error(m.line, &m.key_path("hash"), "is required (a bcrypt hash, or hashFromEnv)");
        }
        let hash = hash.and_then(|hash| match bcrypt_hash(&hash) {
            Ok(hash) => Some(hash),
            Err(message) => {
                let key = if m.has("hash") { "hash" } else { "hashFromEnv" };
                d.error(m.line_of(key), &m.key_path(key), message);
                None
            }
        });
        let user_id = m.string(d, "userID").unwrap_or_default();
        if user_id.is_empty() {
            d.warn(m.line, &m.key_path("userID"), "is empty: this user's tokens would have no stable subject");
        }
        if let Some(email) = &email
            && !emails.insert(email.to_lowercase())
        {
            d.error(
                m.line_of("email"),
                &m.key_path("email"),
                format!("duplicate email {email:?} (emails are case-insensitive)"),
            );
        }
        let password = Password {
            email: email.unwrap_or_default(),
            hash: hash.unwrap_or_default(),
            username: m.string(d, "username").unwrap_or_default(),
            name: m.string(d, "name").unwrap_or_default(),
            preferred_username: m.string(d, "preferredUsername").unwrap_or_default(),
            email_verified: m.bool(d, "emailVerified"),
            user_id,
            groups: m.strings(d, "groups"),
        };
        m.finish(d, strict);
        passwords.push(password);
    }
    passwords
}

/// A bcrypt hash, given as it is or base64-encoded (both are accepted by Dex), with a cost of 10–16.
fn bcrypt_hash(text: &str) -> Result<String, String> {
    let hash = if text.starts_with("$2") {
        text.to_owned()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("is neither a bcrypt hash nor base64 of one")?
    };
    check_bcrypt_hash(&hash).map_err(|err| err.to_string())?;
    Ok(hash)
}

pub fn connectors(top: &mut Map, d: &mut Diagnostics, strict: bool, enable_password_db: bool) -> Vec<Connector> {
    let mut connectors = Vec::new();
    let mut ids = HashSet::new();
    if enable_password_db {
        ids.insert("local".to_owned());
        connectors.push(Connector {
            id: "local".into(),
            kind: "local".into(),
            name: "Email".into(),
            ..Connector::default()
        });
    }
    for (path, node) in top.list(d, "connectors") {
        let Some(mut m) = Map::new(node, &path, d) else {
            continue;
        };
        let kind = m.required_string(d, "type");
        let id = m.required_string(d, "id");
        let name = m.required_string(d, "name");
        let config = m.node("config").map(to_json).unwrap_or(serde_json::Value::Null);
        if !matches!(config, serde_json::Value::Null | serde_json::Value::Object(_)) {
            d.error(m.line_of("config"), &m.key_path("config"), "expected a mapping");
        }
        let grant_types = m.has("grantTypes").then(|| m.strings(d, "grantTypes"));
        if let Err(message) = check_grant_types(grant_types.iter().flatten()) {
            d.error(m.line_of("grantTypes"), &m.key_path("grantTypes"), message);
        }
        if let Some(kind) = &kind {
            match connector_type(kind) {
                Err(TypeProblem::Unknown(message)) => d.error(m.line_of("type"), &m.key_path("type"), message),
                Err(TypeProblem::NotImplemented(message)) => d.warn(m.line_of("type"), &m.key_path("type"), message),
                Ok(()) => {}
            }
            for key in missing_mock_password_keys(kind, &config) {
                d.error(
                    m.line_of("config"),
                    &format!("{}.{key}", m.key_path("config")),
                    "is required for mockPassword",
                );
            }
        }
        if let Some(id) = &id
            && !ids.insert(id.clone())
        {
            d.error(
                m.line_of("id"),
                &m.key_path("id"),
                format!(
                    "duplicate connector id {id:?}{}",
                    if id == "local" && enable_password_db {
                        " (enablePasswordDB adds the connector \"local\")"
                    } else {
                        ""
                    }
                ),
            );
        }
        m.finish(d, strict);
        connectors.push(Connector {
            id: id.unwrap_or_default(),
            kind: kind.unwrap_or_default(),
            name: name.unwrap_or_default(),
            resource_version: String::new(),
            config,
            grant_types,
        });
    }
    connectors
}

/// Why a connector type cannot be used: unknown to Dex (an error in the file), or known but not
/// implemented by tessera (a warning in the file, as the server can run without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeProblem {
    Unknown(String),
    NotImplemented(String),
}

/// The check the file's `connectors[].type` gets, shared with connectors created through the API.
pub fn connector_type(kind: &str) -> Result<(), TypeProblem> {
    match CONNECTOR_TYPES.iter().find(|(k, _)| *k == kind) {
        None => Err(TypeProblem::Unknown(format!("unknown connector type {kind:?}"))),
        Some((_, None)) => Ok(()),
        Some((_, Some(when))) => {
            let when = if *when == NOT_PLANNED { when.to_string() } else { format!("coming with {when}") };
            Err(TypeProblem::NotImplemented(format!(
                "connector type {kind:?} is recognised but not implemented yet ({when}); it cannot be used to log in"
            )))
        }
    }
}

/// The check the file's `connectors[].grantTypes` gets, shared with the API.
pub fn check_grant_types<'a>(grants: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
    match grants.into_iter().find(|grant| !CONNECTOR_GRANT_TYPES.contains(&grant.as_str())) {
        Some(grant) => {
            Err(format!("unknown grant type {grant:?} (expected one of {})", CONNECTOR_GRANT_TYPES.join(", ")))
        }
        None => Ok(()),
    }
}

/// The settings a `mockPassword` connector cannot do without (none for other types).
pub fn missing_mock_password_keys(kind: &str, config: &serde_json::Value) -> Vec<&'static str> {
    if kind != "mockPassword" {
        return Vec::new();
    }
    ["username", "password"]
        .into_iter()
        .filter(|key| config.get(key).is_none_or(|v| v.as_str().is_none_or(str::is_empty)))
        .collect()
}

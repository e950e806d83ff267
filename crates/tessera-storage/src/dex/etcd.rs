//! Dex's etcd storage (`storage/etcd` in Dex): one JSON value per key under Dex's prefixes (`client/`,
//! `password/`, `connector/`, `refresh_token/`, `offline_session/`, `auth_code/`, `device_req/`,
//! `device_token/`, `user_identity/`, `auth_session/`, and `openid-connect-keys`), after the configured namespace. Clients, passwords and
//! connectors are Dex's storage types as `encoding/json` writes them (so a password's hash and a
//! connector's config are base64, the config under the key `email`); the others are etcd's own types.
//! Byte fields are base64 and times RFC 3339, as Go writes them. There is no schema version.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::model::{
    AuthCode, Claims, Client, ClientCredentialsClaims, Connector, DeviceRequest, DeviceToken, OfflineSessions,
    Password, Pkce, RefreshToken, RefreshTokenRef, UserIdentity,
};
use time::OffsetDateTime;

use super::decode::{DexClientState, client_states, consents, set};
use super::{DexAuthSession, DexKeys, DexReadError, DexState, DexVerificationKey, Skipped};
use crate::EtcdSettings;
use crate::etcd::EtcdBackend;

/// Go's `[]byte` in JSON: base64, or `null`.
fn bytes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

/// A slice Go may have written as `null`.
fn list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EtcdClaims {
    #[serde(rename = "userID")]
    user_id: String,
    username: String,
    #[serde(rename = "preferredUsername")]
    preferred_username: String,
    email: String,
    #[serde(rename = "emailVerified")]
    email_verified: bool,
    #[serde(deserialize_with = "list")]
    groups: Vec<String>,
}

impl From<EtcdClaims> for Claims {
    fn from(c: EtcdClaims) -> Self {
        Claims {
            user_id: c.user_id,
            username: c.username,
            preferred_username: c.preferred_username,
            email: c.email,
            email_verified: c.email_verified,
            groups: c.groups,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EtcdClient {
    id: String,
    #[serde(default)]
    secret: String,
    #[serde(default, rename = "redirectURIs", deserialize_with = "list")]
    redirect_uris: Vec<String>,
    #[serde(default, rename = "postLogoutRedirectURIs", deserialize_with = "list")]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default, rename = "backchannelLogoutURI")]
    backchannel_logout_uri: String,
    #[serde(default)]
    refresh_token_lifetime: String,
    #[serde(default, deserialize_with = "list")]
    trusted_peers: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "logoURL")]
    logo_url: String,
    #[serde(default, deserialize_with = "list")]
    allowed_connectors: Vec<String>,
    #[serde(default)]
    sso_shared_with: Option<Vec<String>>,
    #[serde(default)]
    client_credentials_claims: Option<EtcdClientCredentialsClaims>,
}

#[derive(Deserialize)]
struct EtcdClientCredentialsClaims {
    #[serde(default, deserialize_with = "list")]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EtcdPassword {
    email: String,
    #[serde(deserialize_with = "bytes")]
    hash: Vec<u8>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    preferred_username: String,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default, rename = "userID")]
    user_id: String,
    #[serde(default, deserialize_with = "list")]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EtcdConnector {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
    /// Dex's misnamed tag for the connector's config.
    #[serde(default, rename = "email", deserialize_with = "bytes")]
    config: Vec<u8>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct EtcdRefreshToken {
    id: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    obsolete_token: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_used: OffsetDateTime,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    connector_id: String,
    #[serde(default, deserialize_with = "bytes")]
    connector_data: Vec<u8>,
    #[serde(default)]
    claims: EtcdClaims,
    #[serde(default, deserialize_with = "list")]
    scopes: Vec<String>,
    #[serde(default)]
    nonce: String,
}

#[derive(Deserialize)]
struct EtcdRefreshRef {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ClientID")]
    client_id: String,
    #[serde(rename = "CreatedAt", with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(rename = "LastUsed", with = "time::serde::rfc3339")]
    last_used: OffsetDateTime,
    #[serde(rename = "SessionID", default)]
    session_id: String,
}

#[derive(Deserialize)]
struct EtcdOfflineSessions {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    conn_id: String,
    #[serde(default)]
    refresh: Option<BTreeMap<String, Option<EtcdRefreshRef>>>,
    #[serde(default, rename = "connectorData", deserialize_with = "bytes")]
    connector_data: Vec<u8>,
}

#[derive(Deserialize)]
struct EtcdVerificationKey {
    #[serde(rename = "publicKey")]
    public_key: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    expiry: OffsetDateTime,
}

#[derive(Deserialize)]
struct EtcdKeys {
    #[serde(default)]
    signing_key: Option<serde_json::Value>,
    #[serde(default)]
    signing_key_pub: Option<serde_json::Value>,
    #[serde(default)]
    verification_keys: Option<Vec<EtcdVerificationKey>>,
    #[serde(with = "time::serde::rfc3339")]
    next_rotation: OffsetDateTime,
}

#[derive(Deserialize)]
struct EtcdAuthCode {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default, rename = "clientID")]
    client_id: String,
    #[serde(default, rename = "redirectURI")]
    redirect_uri: String,
    #[serde(default)]
    nonce: String,
    #[serde(default, deserialize_with = "list")]
    scopes: Vec<String>,
    #[serde(default, rename = "connectorID")]
    connector_id: String,
    #[serde(default, rename = "connectorData", deserialize_with = "bytes")]
    connector_data: Vec<u8>,
    #[serde(default)]
    claims: EtcdClaims,
    #[serde(with = "time::serde::rfc3339")]
    expiry: OffsetDateTime,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
}

#[derive(Deserialize)]
struct EtcdDeviceRequest {
    user_code: String,
    #[serde(default)]
    device_code: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default, deserialize_with = "list")]
    scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    expiry: OffsetDateTime,
}

#[derive(Deserialize)]
struct EtcdDeviceToken {
    device_code: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    token: String,
    #[serde(with = "time::serde::rfc3339")]
    expiry: OffsetDateTime,
    #[serde(rename = "last_request", with = "time::serde::rfc3339")]
    last_request_time: OffsetDateTime,
    #[serde(default)]
    poll_interval: i32,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
}

#[derive(Deserialize)]
struct EtcdUserIdentity {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    connector_id: String,
    #[serde(default)]
    claims: EtcdClaims,
    #[serde(default)]
    consents: Option<BTreeMap<String, Option<Vec<String>>>>,
    /// Not imported; read to be reported.
    #[serde(default)]
    mfa_secrets: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    webauthn_credentials: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_login: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    blocked_until: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct EtcdAuthSession {
    id: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    connector_id: String,
    #[serde(default)]
    client_states: Option<BTreeMap<String, Option<DexClientState>>>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_activity: OffsetDateTime,
    #[serde(default)]
    ip_address: String,
    #[serde(default)]
    user_agent: String,
    #[serde(with = "time::serde::rfc3339")]
    absolute_expiry: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    idle_expiry: OffsetDateTime,
}

/// Reads Dex's keys from the etcd `settings` names. Never writes.
pub async fn read(settings: &EtcdSettings) -> Result<DexState, DexReadError> {
    let source = format!("etcd {}{}", settings.endpoints.join(","), settings.namespace);
    let etcd = EtcdBackend::open(settings)
        .await
        .map_err(|e| DexReadError::Unreachable { source_name: source.clone(), message: e.to_string() })?;
    let mut state = DexState { source: source.clone(), ..DexState::default() };
    let read = |table: &'static str, e: crate::StorageError| DexReadError::Query {
        source_name: source.clone(),
        table,
        message: e.to_string(),
    };

    let keys = etcd.read_prefix("openid-connect-keys").await.map_err(|e| read("keys", e))?;
    for (key, value) in keys.iter().filter(|(key, _)| key == "openid-connect-keys") {
        match serde_json::from_slice::<EtcdKeys>(value) {
            Ok(k) => {
                state.keys = Some(DexKeys {
                    signing_key: k.signing_key.filter(|v| !v.is_null()),
                    signing_key_pub: k.signing_key_pub.filter(|v| !v.is_null()),
                    verification_keys: k
                        .verification_keys
                        .unwrap_or_default()
                        .into_iter()
                        .map(|v| DexVerificationKey { public_key: v.public_key, expiry: v.expiry })
                        .collect(),
                    next_rotation: k.next_rotation,
                })
            }
            Err(e) => {
                state.skipped.push(Skipped { table: "keys", id: key.clone(), reason: format!("invalid JSON: {e}") })
            }
        }
    }

    /// Every value under a prefix, decoded; one that does not decode is skipped and named.
    async fn each<T: DeserializeOwned>(
        etcd: &EtcdBackend,
        prefix: &str,
        table: &'static str,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<T>, crate::StorageError> {
        let mut values = Vec::new();
        for (key, value) in etcd.read_prefix(prefix).await? {
            match serde_json::from_slice::<T>(&value) {
                Ok(decoded) => values.push(decoded),
                Err(e) => skipped.push(Skipped {
                    table,
                    id: key.trim_start_matches(prefix).to_owned(),
                    reason: format!("invalid JSON: {e}"),
                }),
            }
        }
        Ok(values)
    }

    let clients: Vec<EtcdClient> =
        each(&etcd, "client/", "client", &mut state.skipped).await.map_err(|e| read("client", e))?;
    state.clients = clients
        .into_iter()
        .map(|c| Client {
            id: c.id,
            secret: c.secret,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            trusted_peers: c.trusted_peers,
            public: c.public,
            name: c.name,
            logo_url: c.logo_url,
            allowed_connectors: c.allowed_connectors,
            refresh_token_lifetime: c.refresh_token_lifetime,
            client_credentials_claims: c
                .client_credentials_claims
                .map(|cc| ClientCredentialsClaims { groups: cc.groups }),
            sso_shared_with: c.sso_shared_with,
            backchannel_logout_uri: c.backchannel_logout_uri,
        })
        .collect();

    let passwords: Vec<EtcdPassword> =
        each(&etcd, "password/", "password", &mut state.skipped).await.map_err(|e| read("password", e))?;
    for p in passwords {
        match String::from_utf8(p.hash) {
            Ok(hash) => state.passwords.push(Password {
                email: p.email,
                hash,
                username: p.username,
                name: p.name,
                preferred_username: p.preferred_username,
                email_verified: p.email_verified,
                user_id: p.user_id,
                groups: p.groups,
            }),
            Err(_) => {
                state.skipped.push(Skipped { table: "password", id: p.email, reason: "hash: not a bcrypt hash".into() })
            }
        }
    }

    let connectors: Vec<EtcdConnector> =
        each(&etcd, "connector/", "connector", &mut state.skipped).await.map_err(|e| read("connector", e))?;
    for c in connectors {
        let config = if c.config.is_empty() { Ok(serde_json::Value::Null) } else { serde_json::from_slice(&c.config) };
        match config {
            Ok(config) => state.connectors.push(Connector {
                id: c.id,
                kind: c.kind,
                name: c.name,
                resource_version: c.resource_version,
                config,
                grant_types: c.grant_types,
            }),
            Err(e) => state.skipped.push(Skipped {
                table: "connector",
                id: c.id,
                reason: format!("config: invalid JSON: {e}"),
            }),
        }
    }

    let tokens: Vec<EtcdRefreshToken> = each(&etcd, "refresh_token/", "refresh_token", &mut state.skipped)
        .await
        .map_err(|e| read("refresh_token", e))?;
    state.refresh_tokens = tokens
        .into_iter()
        .map(|t| RefreshToken {
            id: t.id,
            token: t.token,
            obsolete_token: t.obsolete_token,
            created_at: t.created_at,
            last_used: t.last_used,
            client_id: t.client_id,
            connector_id: t.connector_id,
            connector_data: t.connector_data,
            claims: t.claims.into(),
            scopes: t.scopes,
            nonce: t.nonce,
        })
        .collect();

    let sessions: Vec<EtcdOfflineSessions> = each(&etcd, "offline_session/", "offline_session", &mut state.skipped)
        .await
        .map_err(|e| read("offline_session", e))?;
    state.offline_sessions = sessions
        .into_iter()
        .map(|s| OfflineSessions {
            user_id: s.user_id,
            conn_id: s.conn_id,
            refresh: s
                .refresh
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(client, r)| {
                    let r = r?;
                    let reference = RefreshTokenRef {
                        id: r.id,
                        client_id: r.client_id,
                        created_at: r.created_at,
                        last_used: r.last_used,
                        // As from SQL: as Dex has it, unbound by the import only from a session it leaves out.
                        session_id: r.session_id,
                    };
                    Some((client, reference))
                })
                .collect(),
            connector_data: s.connector_data,
        })
        .collect();

    let codes: Vec<EtcdAuthCode> =
        each(&etcd, "auth_code/", "auth_code", &mut state.skipped).await.map_err(|e| read("auth_code", e))?;
    state.auth_codes = codes
        .into_iter()
        .map(|c| AuthCode {
            id: c.id,
            client_id: c.client_id,
            redirect_uri: c.redirect_uri,
            nonce: c.nonce,
            scopes: c.scopes,
            connector_id: c.connector_id,
            connector_data: c.connector_data,
            claims: c.claims.into(),
            expiry: c.expiry,
            auth_time: None,
            pkce: Pkce { code_challenge: c.code_challenge, code_challenge_method: c.code_challenge_method },
            session_id: String::new(),
        })
        .collect();
    let requests: Vec<EtcdDeviceRequest> = each(&etcd, "device_req/", "device_request", &mut state.skipped)
        .await
        .map_err(|e| read("device_request", e))?;
    state.device_requests = requests
        .into_iter()
        .map(|r| DeviceRequest {
            user_code: r.user_code,
            device_code: r.device_code,
            client_id: r.client_id,
            client_secret: r.client_secret,
            scopes: r.scopes,
            expiry: r.expiry,
        })
        .collect();
    let device_tokens: Vec<EtcdDeviceToken> =
        each(&etcd, "device_token/", "device_token", &mut state.skipped).await.map_err(|e| read("device_token", e))?;
    state.device_tokens = device_tokens
        .into_iter()
        .map(|t| DeviceToken {
            device_code: t.device_code,
            status: t.status,
            token: t.token,
            expiry: t.expiry,
            last_request_time: t.last_request_time,
            poll_interval_seconds: t.poll_interval,
            pkce: Pkce { code_challenge: t.code_challenge, code_challenge_method: t.code_challenge_method },
        })
        .collect();
    let identities: Vec<EtcdUserIdentity> = each(&etcd, "user_identity/", "user_identity", &mut state.skipped)
        .await
        .map_err(|e| read("user_identity", e))?;
    for i in identities {
        let has = |m: &Option<serde_json::Map<String, serde_json::Value>>| m.as_ref().is_some_and(|m| !m.is_empty());
        if has(&i.mfa_secrets) || has(&i.webauthn_credentials) {
            state.identities_with_mfa.push(format!("{}|{}", i.user_id, i.connector_id));
        }
        if let Some(until) = i.blocked_until.and_then(set) {
            state.locked_identities.push((format!("{}|{}", i.user_id, i.connector_id), until));
        }
        state.user_identities.push(UserIdentity {
            user_id: i.user_id,
            connector_id: i.connector_id,
            claims: i.claims.into(),
            consents: consents(i.consents.unwrap_or_default()),
            created_at: i.created_at,
            last_login: i.last_login,
        });
    }
    let sessions: Vec<EtcdAuthSession> =
        each(&etcd, "auth_session/", "auth_session", &mut state.skipped).await.map_err(|e| read("auth_session", e))?;
    state.auth_sessions = sessions
        .into_iter()
        .map(|s| DexAuthSession {
            id: s.id,
            secret: s.secret,
            user_id: s.user_id,
            connector_id: s.connector_id,
            client_states: client_states(s.client_states.unwrap_or_default()),
            created_at: s.created_at,
            last_activity: s.last_activity,
            absolute_expiry: s.absolute_expiry,
            idle_expiry: s.idle_expiry,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
        })
        .collect();
    // etcd has no tables: a namespace without a single Dex key holds no Dex.
    let nothing = state.keys.is_none()
        && state.skipped.is_empty()
        && state.clients.is_empty()
        && state.passwords.is_empty()
        && state.connectors.is_empty()
        && state.refresh_tokens.is_empty()
        && state.offline_sessions.is_empty()
        && state.auth_codes.is_empty()
        && state.device_requests.is_empty()
        && state.device_tokens.is_empty()
        && state.user_identities.is_empty()
        && state.auth_sessions.is_empty();
    if nothing {
        return Err(DexReadError::NoDexTables { source_name: source });
    }
    Ok(state)
}

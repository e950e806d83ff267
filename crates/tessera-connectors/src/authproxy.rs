//! The `authproxy` connector: a reverse proxy in front of tessera authenticated the user and says who
//! they are in headers, read at `/callback/{connector id}` (the bare `/callback` drops `X-Remote-*`
//! headers, so nobody can pose as the proxy there). Dex's keys and defaults.

use std::collections::HashMap;
use tessera_core::model::Claims;

use async_trait::async_trait;
use serde::Deserialize;

use crate::{CallbackConnector, CallbackRequest, ConnectorError, Identity, Scopes};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthProxyConfig {
    #[serde(rename = "userIDHeader")]
    pub user_id_header: String,
    #[serde(rename = "userHeader")]
    pub user_header: String,
    #[serde(rename = "userNameHeader")]
    pub user_name_header: String,
    #[serde(rename = "emailHeader")]
    pub email_header: String,
    #[serde(rename = "groupHeader")]
    pub group_header: String,
    #[serde(rename = "groupHeaderSeparator")]
    pub group_header_separator: String,
    #[serde(rename = "staticGroups")]
    pub static_groups: Vec<String>,
}

impl Default for AuthProxyConfig {
    fn default() -> Self {
        Self {
            user_id_header: "X-Remote-User-Id".into(),
            user_header: "X-Remote-User".into(),
            user_name_header: "X-Remote-User-Name".into(),
            email_header: "X-Remote-User-Email".into(),
            group_header: "X-Remote-Group".into(),
            group_header_separator: ",".into(),
            static_groups: Vec::new(),
        }
    }
}

pub struct AuthProxy {
    id: String,
    config: AuthProxyConfig,
}

impl AuthProxy {
    pub fn open(id: &str, raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let config = if raw.is_null() {
            AuthProxyConfig::default()
        } else {
            serde_json::from_value(raw.clone()).map_err(|e| ConnectorError::Config(format!("authproxy config: {e}")))?
        };
        Ok(Self { id: id.to_owned(), config })
    }
}

#[async_trait]
impl CallbackConnector for AuthProxy {
    /// Back to our own callback under the connector's path, where the proxy's headers are read.
    fn login_url(&self, _scopes: Scopes, callback_url: &str, state: &str) -> Result<(String, Vec<u8>), ConnectorError> {
        let mut url = url::Url::parse(&format!("{}/{}", callback_url.trim_end_matches('/'), self.id))
            .map_err(|e| ConnectorError::Failed(e.to_string()))?;
        url.query_pairs_mut().append_pair("state", state);
        Ok((url.into(), Vec::new()))
    }

    async fn handle_callback(
        &self,
        scopes: Scopes,
        _connector_data: &[u8],
        request: &CallbackRequest,
    ) -> Result<Identity, ConnectorError> {
        let config = &self.config;
        let user = request
            .header(&config.user_header)
            .ok_or_else(|| ConnectorError::Failed(format!("required HTTP header {} is not set", config.user_header)))?;
        let mut groups = config.static_groups.clone();
        if let Some(header) = request.header(&config.group_header) {
            let separator = if config.group_header_separator.is_empty() { "," } else { &config.group_header_separator };
            groups.extend(header.split(separator).map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned));
        }
        Ok(Identity {
            claims: Claims {
                user_id: request.header(&config.user_id_header).unwrap_or(user).to_owned(),
                username: user.to_owned(),
                preferred_username: request.header(&config.user_name_header).unwrap_or_default().to_owned(),
                email: request.header(&config.email_header).unwrap_or(user).to_owned(),
                email_verified: true,
                groups: if scopes.groups { groups } else { Vec::new() },
            },
            connector_data: Vec::new(),
        })
    }
}

/// Headers for a callback, lowercased, without `X-Remote-*` unless the proxy's own path was used.
pub fn callback_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    trust_proxy_headers: bool,
) -> HashMap<String, String> {
    headers
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .filter(|(name, _)| trust_proxy_headers || !name.starts_with("x-remote-"))
        .collect()
}

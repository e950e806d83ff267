//! The generic `oauth` connector (Dex's): the OAuth 2.0 code flow, then the user from a userinfo
//! endpoint, read with configurable keys.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::model::Claims;

use crate::oauth2_client::{OAuth2Client, failed, http_client};
use crate::{CallbackConnector, CallbackRequest, ConnectorError, Identity, RefreshConnector, Scopes};

const NAME: &str = "oauth";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthClaimMapping {
    #[serde(rename = "userNameKey")]
    pub user_name_key: String,
    #[serde(rename = "preferredUsernameKey")]
    pub preferred_username_key: String,
    #[serde(rename = "groupsKey")]
    pub groups_key: String,
    #[serde(rename = "emailKey")]
    pub email_key: String,
    #[serde(rename = "emailVerifiedKey")]
    pub email_verified_key: String,
}

impl Default for OAuthClaimMapping {
    fn default() -> Self {
        Self {
            user_name_key: "user_name".into(),
            preferred_username_key: "preferred_username".into(),
            groups_key: "groups".into(),
            email_key: "email".into(),
            email_verified_key: "email_verified".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "clientSecret")]
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: String,
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    #[serde(rename = "authorizationURL")]
    pub authorization_url: String,
    #[serde(rename = "userInfoURL")]
    pub user_info_url: String,
    pub scopes: Vec<String>,
    #[serde(rename = "rootCAs")]
    pub root_cas: Vec<String>,
    #[serde(rename = "insecureSkipVerify")]
    pub insecure_skip_verify: bool,
    #[serde(rename = "userIDKey")]
    pub user_id_key: String,
    #[serde(rename = "claimMapping")]
    pub claim_mapping: OAuthClaimMapping,
}

#[derive(Debug, Serialize, Deserialize)]
struct RefreshData {
    refresh_token: String,
}

pub struct OAuthConnector {
    config: OAuthConfig,
    client: OAuth2Client,
}

/// A claim as text (user IDs are often numbers).
fn text(claims: &Value, key: &str) -> String {
    match claims.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl OAuthConnector {
    pub fn open(raw: &Value) -> Result<Self, ConnectorError> {
        let mut config: OAuthConfig =
            serde_json::from_value(raw.clone()).map_err(|e| ConnectorError::Config(format!("oauth config: {e}")))?;
        for (key, value) in [
            ("clientID", &config.client_id),
            ("tokenURL", &config.token_url),
            ("authorizationURL", &config.authorization_url),
            ("userInfoURL", &config.user_info_url),
        ] {
            if value.is_empty() {
                return Err(ConnectorError::Config(format!("{key} is required")));
            }
        }
        if config.user_id_key.is_empty() {
            config.user_id_key = "id".into();
        }
        let client = OAuth2Client {
            http: http_client(&config.root_cas, config.insecure_skip_verify)?,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            auth_url: config.authorization_url.clone(),
            token_url: config.token_url.clone(),
            redirect_uri: config.redirect_uri.clone(),
        };
        Ok(Self { config, client })
    }

    async fn identity(
        &self,
        access_token: &str,
        refresh_token: &str,
        scopes: Scopes,
    ) -> Result<Identity, ConnectorError> {
        let claims = self.client.get_json(NAME, &self.config.user_info_url, access_token).await?;
        let mapping = &self.config.claim_mapping;
        let user_id = text(&claims, &self.config.user_id_key);
        if user_id.is_empty() {
            return Err(failed(NAME, format!("userinfo has no {:?}", self.config.user_id_key)));
        }
        let groups = match claims.get(&mapping.groups_key) {
            Some(Value::Array(values)) if scopes.groups => values
                .iter()
                .filter_map(|g| {
                    g.as_str().map(str::to_owned).or_else(|| g.get("name").and_then(Value::as_str).map(str::to_owned))
                })
                .collect(),
            _ => Vec::new(),
        };
        let connector_data = if scopes.offline_access && !refresh_token.is_empty() {
            serde_json::to_vec(&RefreshData { refresh_token: refresh_token.to_owned() }).map_err(|e| failed(NAME, e))?
        } else {
            Vec::new()
        };
        Ok(Identity {
            claims: Claims {
                user_id,
                username: text(&claims, &mapping.user_name_key),
                preferred_username: text(&claims, &mapping.preferred_username_key),
                email: text(&claims, &mapping.email_key),
                email_verified: claims.get(&mapping.email_verified_key).and_then(Value::as_bool).unwrap_or(false),
                groups,
            },
            connector_data,
        })
    }
}

#[async_trait]
impl CallbackConnector for OAuthConnector {
    fn login_url(&self, scopes: Scopes, callback_url: &str, state: &str) -> Result<(String, Vec<u8>), ConnectorError> {
        let mut requested = self.config.scopes.clone();
        if scopes.offline_access && !requested.iter().any(|s| s == "offline_access") {
            requested.push("offline_access".into());
        }
        // The redirect URI travels with the login: the code exchange must repeat it.
        Ok((self.client.authorize_url(callback_url, &requested, state)?, callback_url.as_bytes().to_vec()))
    }

    async fn handle_callback(
        &self,
        scopes: Scopes,
        data: &[u8],
        request: &CallbackRequest,
    ) -> Result<Identity, ConnectorError> {
        let answer = self.client.exchange_callback(NAME, data, request).await?;
        self.identity(&answer.access_token, &answer.refresh_token, scopes).await
    }
}

#[async_trait]
impl RefreshConnector for OAuthConnector {
    async fn refresh(&self, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let data: RefreshData = serde_json::from_slice(&identity.connector_data)
            .map_err(|_| ConnectorError::Revoked("no upstream refresh token".into()))?;
        let answer =
            self.client.refresh(NAME, &data.refresh_token).await.map_err(|e| ConnectorError::Revoked(e.to_string()))?;
        let refresh_token = if answer.refresh_token.is_empty() { data.refresh_token } else { answer.refresh_token };
        let refreshed =
            self.identity(&answer.access_token, &refresh_token, Scopes { offline_access: true, ..scopes }).await?;
        if refreshed.claims.user_id != identity.claims.user_id {
            return Err(ConnectorError::Revoked("the upstream returned another user".into()));
        }
        Ok(refreshed)
    }
}

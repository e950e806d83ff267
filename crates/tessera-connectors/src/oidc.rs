//! The `oidc` connector, with Dex's configuration keys: discovery of the upstream, the code flow with
//! a nonce (and PKCE when the upstream offers S256), ID-token verification against the upstream's
//! JWKS, optional userinfo, claim mapping and group rules, upstream refresh tokens kept as connector
//! data for `offline_access`, and token exchange of upstream tokens.

use std::sync::RwLock;
use std::time::Duration;
use tessera_core::model::Claims;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tessera_jose::{JoseError, PublicKey};
use time::OffsetDateTime;

use crate::{
    CallbackConnector, CallbackRequest, ConnectorError, Identity, LogoutConnector, RefreshConnector, Scopes,
    TokenIdentityConnector,
};

/// Every call to the upstream is bounded: a slow upstream gives an error page, not a hung login.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Tolerated clock difference with the upstream when checking `exp`.
const CLOCK_SKEW: i64 = 30;
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimMapping {
    pub preferred_username: String,
    pub email: String,
    pub groups: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryOverrides {
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    #[serde(rename = "authURL")]
    pub auth_url: String,
    #[serde(rename = "jwksURL")]
    pub jwks_url: String,
    #[serde(rename = "userInfoURL")]
    pub user_info_url: String,
    #[serde(rename = "deviceAuthURL")]
    pub device_auth_url: String,
    #[serde(rename = "endSessionURL")]
    pub end_session_url: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    #[serde(rename = "issuerAlias")]
    pub issuer_alias: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "clientSecret")]
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    #[serde(rename = "rootCAs")]
    pub root_cas: Vec<String>,
    #[serde(rename = "insecureSkipVerify")]
    pub insecure_skip_verify: bool,
    #[serde(rename = "insecureSkipEmailVerified")]
    pub insecure_skip_email_verified: bool,
    #[serde(rename = "insecureEnableGroups")]
    pub insecure_enable_groups: bool,
    #[serde(rename = "allowedGroups")]
    pub allowed_groups: Vec<String>,
    #[serde(rename = "acrValues")]
    pub acr_values: Vec<String>,
    #[serde(rename = "getUserInfo")]
    pub get_user_info: bool,
    #[serde(rename = "userIDKey")]
    pub user_id_key: String,
    #[serde(rename = "userNameKey")]
    pub user_name_key: String,
    #[serde(rename = "promptType")]
    pub prompt_type: Option<String>,
    #[serde(rename = "basicAuthUnsupported")]
    pub basic_auth_unsupported: Option<bool>,
    #[serde(rename = "overrideClaimMapping")]
    pub override_claim_mapping: bool,
    #[serde(rename = "claimMapping")]
    pub claim_mapping: ClaimMapping,
    #[serde(rename = "providerDiscoveryOverrides")]
    pub provider_discovery_overrides: DiscoveryOverrides,
    #[serde(rename = "pkceChallenge")]
    pub pkce_challenge: Option<bool>,
    #[serde(rename = "hostedDomains")]
    pub hosted_domains: Vec<String>,
    #[serde(rename = "claimModifications")]
    pub claim_modifications: ClaimModifications,
}

/// Dex's `claimModifications`: rules applied to the upstream's groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimModifications {
    #[serde(rename = "newGroupFromClaims")]
    pub new_group_from_claims: Vec<NewGroupFromClaims>,
    #[serde(rename = "filterGroupClaims")]
    pub filter_group_claims: FilterGroupClaims,
    #[serde(rename = "modifyGroupNames")]
    pub modify_group_names: ModifyGroupNames,
}

/// A group made by joining string claims: `prefix`, then each claim, joined with `delimiter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewGroupFromClaims {
    pub claims: Vec<String>,
    pub delimiter: String,
    #[serde(rename = "clearDelimiter")]
    pub clear_delimiter: bool,
    pub prefix: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterGroupClaims {
    /// Only groups matching this regular expression are kept.
    #[serde(rename = "groupsFilter")]
    pub groups_filter: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModifyGroupNames {
    pub prefix: String,
    pub suffix: String,
}

/// What the login keeps between the redirect and the callback.
#[derive(Debug, Serialize, Deserialize)]
struct LoginState {
    nonce: String,
    verifier: String,
}

/// What refreshes need: the upstream's refresh token.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshData {
    refresh_token: String,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: String,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    end_session_endpoint: String,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    id_token: String,
    #[serde(default)]
    refresh_token: String,
}

pub struct OidcConnector {
    config: OidcConfig,
    issuers: Vec<String>,
    auth_url: String,
    token_url: String,
    jwks_url: String,
    userinfo_url: String,
    /// The upstream's RP-initiated logout endpoint; empty when it has none.
    end_session_url: String,
    pkce: bool,
    http: reqwest::Client,
    keys: RwLock<Vec<PublicKey>>,
}

fn config_error(message: impl Into<String>) -> ConnectorError {
    ConnectorError::Config(message.into())
}

fn failed(message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Failed(format!("oidc: {message}"))
}

/// A nonce or PKCE verifier: two IDs, 256 random bits in base32.
fn random_token() -> String {
    format!("{}{}", tessera_core::id::new_id(), tessera_core::id::new_id())
}

impl OidcConnector {
    /// Reads the configuration and discovers the upstream (its endpoints and PKCE support).
    pub async fn open(raw: &Value) -> Result<Self, ConnectorError> {
        let mut config: OidcConfig =
            serde_json::from_value(raw.clone()).map_err(|e| config_error(format!("oidc config: {e}")))?;
        if config.issuer.is_empty() || config.client_id.is_empty() {
            return Err(config_error("issuer and clientID are required"));
        }
        if !config.hosted_domains.is_empty() {
            return Err(config_error("hostedDomains is no longer supported (as in Dex): use the google connector"));
        }
        if let Err(err) = groups_filter(&config) {
            return Err(config_error(format!("claimModifications.filterGroupClaims.groupsFilter: {err}")));
        }
        if config.user_id_key.is_empty() {
            config.user_id_key = "sub".into();
        }
        if config.user_name_key.is_empty() {
            config.user_name_key = "name".into();
        }
        if config.scopes.is_empty() {
            config.scopes = vec!["profile".into(), "email".into()];
        }
        let mut http = reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none());
        for path in &config.root_cas {
            let pem = std::fs::read(path).map_err(|e| config_error(format!("rootCAs {path}: {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_error(format!("rootCAs {path}: {e}")))?;
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if config.insecure_skip_verify {
            http = http.danger_accept_invalid_certs(true);
        }
        let http = http.build().map_err(|e| config_error(e.to_string()))?;

        let url = format!("{}/.well-known/openid-configuration", config.issuer.trim_end_matches('/'));
        let discovery: Discovery = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(format!("discovery at {url}: {e}")))?
            .json()
            .await
            .map_err(|e| failed(format!("discovery at {url}: {e}")))?;
        let mut issuers = vec![config.issuer.clone()];
        if !config.issuer_alias.is_empty() {
            issuers.push(config.issuer_alias.clone());
        }
        if !issuers.contains(&discovery.issuer) {
            return Err(failed(format!("the upstream calls itself {:?}, not {:?}", discovery.issuer, config.issuer)));
        }
        let overrides = &config.provider_discovery_overrides;
        let or = |over: &str, found: &str| if over.is_empty() { found.to_owned() } else { over.to_owned() };
        let pkce =
            config.pkce_challenge.unwrap_or(discovery.code_challenge_methods_supported.iter().any(|m| m == "S256"));
        let end_session_url = or(&overrides.end_session_url, &discovery.end_session_endpoint);
        check_end_session_url(&end_session_url)?;
        Ok(Self {
            end_session_url,
            auth_url: or(&overrides.auth_url, &discovery.authorization_endpoint),
            token_url: or(&overrides.token_url, &discovery.token_endpoint),
            jwks_url: or(&overrides.jwks_url, &discovery.jwks_uri),
            userinfo_url: or(&overrides.user_info_url, &discovery.userinfo_endpoint),
            pkce,
            issuers,
            http,
            keys: RwLock::new(Vec::new()),
            config,
        })
    }

    /// Whether the upstream offers RP-initiated logout (discovered, or `endSessionURL`).
    pub fn has_logout(&self) -> bool {
        !self.end_session_url.is_empty()
    }

    fn redirect_uri<'a>(&'a self, callback_url: &'a str) -> &'a str {
        if self.config.redirect_uri.is_empty() { callback_url } else { &self.config.redirect_uri }
    }

    async fn fetch_keys(&self) -> Result<Vec<PublicKey>, ConnectorError> {
        let jwks: Value = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(format!("JWKS: {e}")))?
            .json()
            .await
            .map_err(|e| failed(format!("JWKS: {e}")))?;
        let keys: Vec<PublicKey> =
            jwks["keys"].as_array().into_iter().flatten().filter_map(|jwk| PublicKey::from_jwk(jwk).ok()).collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys.clone();
        Ok(keys)
    }

    /// Verifies an ID token from the upstream; the keys are fetched again once for an unknown key
    /// (the upstream rotated).
    async fn verify(&self, token: &str, nonce: Option<&str>) -> Result<Map<String, Value>, ConnectorError> {
        let cached = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        match verify_id_token(token, &cached, &self.issuers, &self.config.client_id, nonce, now) {
            Err(IdTokenError::Signature(JoseError::UnknownKey)) => {
                let fresh = self.fetch_keys().await?;
                verify_id_token(token, &fresh, &self.issuers, &self.config.client_id, nonce, now).map_err(failed)
            }
            other => other.map_err(failed),
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, ConnectorError> {
        let mut request = self.http.post(&self.token_url);
        let mut form: Vec<(&str, &str)> = form.to_vec();
        if self.config.basic_auth_unsupported.unwrap_or(false) {
            form.push(("client_id", &self.config.client_id));
            form.push(("client_secret", &self.config.client_secret));
        } else {
            let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(&self.config.client_id), Some(encode(&self.config.client_secret)));
        }
        let response = request.form(&form).send().await.map_err(|e| failed(format!("token endpoint: {e}")))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(failed(format!("token endpoint answered {status}: {}", body["error"])));
        }
        response.json().await.map_err(|e| failed(format!("token endpoint: {e}")))
    }

    async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>, ConnectorError> {
        if self.userinfo_url.is_empty() {
            return Err(failed("the upstream has no userinfo endpoint"));
        }
        let answer: Value = self
            .http
            .get(&self.userinfo_url)
            .bearer_auth(access_token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(format!("userinfo: {e}")))?
            .json()
            .await
            .map_err(|e| failed(format!("userinfo: {e}")))?;
        match answer {
            Value::Object(claims) => Ok(claims),
            _ => Err(failed("userinfo did not answer a JSON object")),
        }
    }

    /// The identity from verified claims (plus userinfo when configured).
    async fn identity(
        &self,
        mut claims: Map<String, Value>,
        access_token: &str,
        scopes: Scopes,
        refresh_token: &str,
    ) -> Result<Identity, ConnectorError> {
        if self.config.get_user_info && !access_token.is_empty() {
            let info = self.userinfo(access_token).await?;
            if info.get("sub") != claims.get("sub") {
                return Err(failed("userinfo is about another subject"));
            }
            claims.extend(info);
        }
        let mut identity = map_claims(&self.config, &claims, scopes)?;
        if scopes.offline_access && !refresh_token.is_empty() {
            identity.connector_data =
                serde_json::to_vec(&RefreshData { refresh_token: refresh_token.to_owned() }).map_err(failed)?;
        }
        Ok(identity)
    }
}

#[async_trait]
impl LogoutConnector for OidcConnector {
    fn logout_url(&self, callback_url: &str) -> Result<Option<String>, ConnectorError> {
        if self.end_session_url.is_empty() {
            return Ok(None);
        }
        upstream_logout_url(&self.end_session_url, &self.config.client_id, callback_url).map(Some)
    }

    /// An OIDC upstream just redirects back: there is no answer to check.
    async fn handle_logout_callback(&self, _request: &CallbackRequest) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// An end-session endpoint must be an http(s) URL (as Dex): the browser is sent there at logout.
fn check_end_session_url(end_session_url: &str) -> Result<(), ConnectorError> {
    if end_session_url.is_empty() {
        return Ok(());
    }
    let parsed = url::Url::parse(end_session_url)
        .map_err(|e| config_error(format!("oidc: invalid end_session_endpoint: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(config_error(format!("oidc: end_session_endpoint must use http or https scheme, got {other:?}"))),
    }
}

/// The upstream's logout URL for tessera's client (OpenID Connect RP-Initiated Logout §2): where to
/// come back, and `client_id` so the upstream can check that URI without an `id_token_hint`. The
/// endpoint's own query parameters are kept.
pub fn upstream_logout_url(
    end_session_url: &str,
    client_id: &str,
    post_logout_redirect_uri: &str,
) -> Result<String, ConnectorError> {
    let mut url = url::Url::parse(end_session_url).map_err(|e| failed(format!("invalid end_session_endpoint: {e}")))?;
    if !post_logout_redirect_uri.is_empty() {
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
    }
    Ok(url.to_string())
}

/// Why an upstream ID token was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("ID token signature: {0}")]
    Signature(JoseError),
    #[error("ID token issuer {0:?} is not the upstream")]
    Issuer(String),
    #[error("ID token is not for this client")]
    Audience,
    #[error("ID token expired")]
    Expired,
    #[error("ID token nonce does not match the login")]
    Nonce,
}

/// Checks an upstream ID token: signature by one of `keys`, issuer, audience, expiry and, for a
/// login, the nonce that login sent.
pub fn verify_id_token(
    token: &str,
    keys: &[PublicKey],
    issuers: &[String],
    client_id: &str,
    nonce: Option<&str>,
    now: i64,
) -> Result<Map<String, Value>, IdTokenError> {
    let claims = tessera_jose::verify(token, keys).map_err(IdTokenError::Signature)?;
    let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    if !issuers.iter().any(|i| i == issuer) {
        return Err(IdTokenError::Issuer(issuer.to_owned()));
    }
    let for_us = match claims.get("aud") {
        Some(Value::String(one)) => one == client_id,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !for_us {
        return Err(IdTokenError::Audience);
    }
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp + CLOCK_SKEW < now) {
        return Err(IdTokenError::Expired);
    }
    if let Some(expected) = nonce
        && claims.get("nonce").and_then(Value::as_str) != Some(expected)
    {
        return Err(IdTokenError::Nonce);
    }
    Ok(claims)
}

fn groups_filter(config: &OidcConfig) -> Result<Option<regex::Regex>, regex::Error> {
    let pattern = &config.claim_modifications.filter_group_claims.groups_filter;
    if pattern.is_empty() { Ok(None) } else { regex::Regex::new(pattern).map(Some) }
}

/// `claimModifications` on the upstream's groups: filter, rename, then add groups built from claims.
fn modify_groups(config: &OidcConfig, claims: &Map<String, Value>, groups: Vec<String>) -> Vec<String> {
    let rules = &config.claim_modifications;
    let filter = groups_filter(config).ok().flatten();
    let rename = &rules.modify_group_names;
    let mut groups: Vec<String> = groups
        .into_iter()
        .filter(|g| filter.as_ref().is_none_or(|f| f.is_match(g)))
        .map(|g| format!("{}{g}{}", rename.prefix, rename.suffix))
        .collect();
    for rule in &rules.new_group_from_claims {
        // Only string claims join; the operator's delimiter is removed from values when asked, so the
        // group's structure stays theirs.
        let values: Vec<String> = rule
            .claims
            .iter()
            .filter_map(|name| claims.get(name).and_then(Value::as_str))
            .map(|v| {
                if rule.clear_delimiter && !rule.delimiter.is_empty() {
                    v.replace(&rule.delimiter, "")
                } else {
                    v.to_owned()
                }
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut segments = Vec::with_capacity(values.len() + 1);
        if !rule.prefix.is_empty() {
            segments.push(rule.prefix.clone());
        }
        segments.extend(values);
        groups.push(segments.join(&rule.delimiter));
    }
    groups
}

/// Dex's claim rules: `userIDKey`, `userNameKey`, `claimMapping`, the email checks, groups.
pub fn map_claims(
    config: &OidcConfig,
    claims: &Map<String, Value>,
    scopes: Scopes,
) -> Result<Identity, ConnectorError> {
    let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_owned);
    let mapped = |standard: &str, mapping: &str| -> Option<String> {
        let custom = (!mapping.is_empty()).then(|| text(mapping)).flatten();
        if config.override_claim_mapping { custom.or_else(|| text(standard)) } else { text(standard).or(custom) }
    };
    let user_id = text(&config.user_id_key).ok_or_else(|| failed(format!("missing {:?} claim", config.user_id_key)))?;
    let username =
        text(&config.user_name_key).ok_or_else(|| failed(format!("missing {:?} claim", config.user_name_key)))?;
    let wants_email = config.scopes.iter().any(|s| s == "email");
    let email = mapped("email", &config.claim_mapping.email);
    if email.is_none() && wants_email {
        return Err(failed("missing email claim"));
    }
    let email_verified = match claims.get("email_verified").and_then(Value::as_bool) {
        _ if config.insecure_skip_email_verified => true,
        Some(verified) => verified,
        None if wants_email => return Err(failed("missing email_verified claim")),
        None => false,
    };
    let mut groups = Vec::new();
    if config.insecure_enable_groups {
        let key = if config.claim_mapping.groups.is_empty() { "groups" } else { config.claim_mapping.groups.as_str() };
        groups = match claims.get(key) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        groups = modify_groups(config, claims, groups);
        if !config.allowed_groups.is_empty() {
            groups.retain(|g| config.allowed_groups.contains(g));
            if groups.is_empty() {
                return Err(ConnectorError::NotInRequiredGroups);
            }
        }
    }
    Ok(Identity {
        claims: Claims {
            user_id,
            username,
            preferred_username: mapped("preferred_username", &config.claim_mapping.preferred_username)
                .unwrap_or_default(),
            email: email.unwrap_or_default(),
            email_verified,
            groups: if scopes.groups { groups } else { Vec::new() },
        },
        connector_data: Vec::new(),
    })
}

#[async_trait]
impl CallbackConnector for OidcConnector {
    fn login_url(&self, scopes: Scopes, callback_url: &str, state: &str) -> Result<(String, Vec<u8>), ConnectorError> {
        let login =
            LoginState { nonce: random_token(), verifier: if self.pkce { random_token() } else { String::new() } };
        let mut scope = vec!["openid".to_owned()];
        scope.extend(self.config.scopes.iter().filter(|s| *s != "openid").cloned());
        if scopes.offline_access && !scope.iter().any(|s| s == "offline_access") {
            scope.push("offline_access".into());
        }
        if scopes.groups && self.config.insecure_enable_groups && !scope.iter().any(|s| s == "groups") {
            scope.push("groups".into());
        }
        let mut url = url::Url::parse(&self.auth_url).map_err(|e| failed(format!("authorization endpoint: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", self.redirect_uri(callback_url))
                .append_pair("response_type", "code")
                .append_pair("scope", &scope.join(" "))
                .append_pair("state", state)
                .append_pair("nonce", &login.nonce);
            if self.pkce {
                let challenge = tessera_core::pkce::s256_challenge(&login.verifier);
                query.append_pair("code_challenge", &challenge).append_pair("code_challenge_method", "S256");
            }
            // Dex asks for consent when it needs a refresh token, unless configured otherwise.
            let prompt = self
                .config
                .prompt_type
                .clone()
                .unwrap_or_else(|| if scopes.offline_access { "consent".into() } else { String::new() });
            if !prompt.is_empty() {
                query.append_pair("prompt", &prompt);
            }
            if !self.config.acr_values.is_empty() {
                query.append_pair("acr_values", &self.config.acr_values.join(" "));
            }
        }
        let data = serde_json::to_vec(&login).map_err(failed)?;
        Ok((url.into(), data))
    }

    async fn handle_callback(
        &self,
        scopes: Scopes,
        connector_data: &[u8],
        request: &CallbackRequest,
    ) -> Result<Identity, ConnectorError> {
        let query = &request.query;
        if let Some(error) = query.get("error") {
            return Err(failed(format!("the upstream refused the login: {error}")));
        }
        let code = query.get("code").filter(|c| !c.is_empty()).ok_or_else(|| failed("no code in the callback"))?;
        let login: LoginState = serde_json::from_slice(connector_data).map_err(|_| failed("no login in progress"))?;
        let redirect =
            if self.config.redirect_uri.is_empty() { String::new() } else { self.config.redirect_uri.clone() };
        let mut form = vec![("grant_type", "authorization_code"), ("code", code.as_str())];
        if !redirect.is_empty() {
            form.push(("redirect_uri", redirect.as_str()));
        }
        if self.pkce {
            form.push(("code_verifier", login.verifier.as_str()));
        }
        let answer = self.token_request(&form).await?;
        if answer.id_token.is_empty() {
            return Err(failed("the token endpoint returned no ID token"));
        }
        let claims = self.verify(&answer.id_token, Some(&login.nonce)).await?;
        self.identity(claims, &answer.access_token, scopes, &answer.refresh_token).await
    }
}

#[async_trait]
impl RefreshConnector for OidcConnector {
    async fn refresh(&self, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let data: RefreshData = serde_json::from_slice(&identity.connector_data)
            .map_err(|_| ConnectorError::Revoked("no upstream refresh token".into()))?;
        let answer = self
            .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &data.refresh_token)])
            .await
            .map_err(|e| ConnectorError::Revoked(e.to_string()))?;
        let refresh_token = if answer.refresh_token.is_empty() { data.refresh_token } else { answer.refresh_token };
        let claims = if answer.id_token.is_empty() {
            self.userinfo(&answer.access_token).await?
        } else {
            self.verify(&answer.id_token, None).await?
        };
        let refreshed = self
            .identity(claims, &answer.access_token, Scopes { offline_access: true, ..scopes }, &refresh_token)
            .await?;
        if refreshed.claims.user_id != identity.claims.user_id {
            return Err(ConnectorError::Revoked("the upstream returned another user".into()));
        }
        Ok(refreshed)
    }
}

#[async_trait]
impl TokenIdentityConnector for OidcConnector {
    /// An upstream ID token is verified like a login's (without a nonce); an access token is checked by
    /// asking the upstream's userinfo endpoint who it belongs to.
    async fn token_identity(&self, subject_token_type: &str, subject_token: &str) -> Result<Identity, ConnectorError> {
        let scopes = Scopes { offline_access: false, groups: true };
        match subject_token_type {
            ID_TOKEN_TYPE => {
                let claims = self.verify(subject_token, None).await?;
                map_claims(&self.config, &claims, scopes)
            }
            ACCESS_TOKEN_TYPE => {
                let claims = self.userinfo(subject_token).await?;
                map_claims(&self.config, &claims, scopes)
            }
            other => Err(failed(format!("unsupported subject token type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_jose::{Algorithm, PrivateKey};

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_upstream_logout_url_names_the_client_and_where_to_come_back() {
        let back = "https://tessera.example/dex/logout/callback";
        assert_eq!(
            upstream_logout_url("https://up.example/logout", "tessera", back).unwrap(),
            "https://up.example/logout?client_id=tessera&post_logout_redirect_uri=https%3A%2F%2Ftessera.example%2Fdex%2Flogout%2Fcallback"
        );
        assert_eq!(
            upstream_logout_url("https://up.example/logout?tenant=a%20b", "tessera", back).unwrap(),
            "https://up.example/logout?tenant=a%20b&client_id=tessera&post_logout_redirect_uri=https%3A%2F%2Ftessera.example%2Fdex%2Flogout%2Fcallback",
            "the endpoint's own parameters stay"
        );
        assert_eq!(
            upstream_logout_url("https://up.example/logout", "tessera", "").unwrap(),
            "https://up.example/logout"
        );
    }

    #[test]
    fn an_end_session_endpoint_must_be_http_or_https() {
        assert!(check_end_session_url("").is_ok(), "none at all is fine: no upstream logout");
        assert!(check_end_session_url("http://up.example/logout").is_ok());
        assert!(check_end_session_url("https://up.example/logout").is_ok());
        let err = check_end_session_url("javascript:alert(1)").unwrap_err().to_string();
        assert!(err.contains("end_session_endpoint must use http or https scheme, got \"javascript\""), "{err}");
        let err = check_end_session_url("not a url").unwrap_err().to_string();
        assert!(err.contains("invalid end_session_endpoint"), "{err}");
    }

    fn signed(key: &PrivateKey, claims: Value) -> String {
        key.sign_jwt(&claims).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://up.example", "sub": "u1", "aud": "tessera", "exp": NOW + 60, "nonce": "n1",
               "name": "Ann", "email": "ann@up.example", "email_verified": true, "groups": ["a", "b"]})
    }

    fn check(key: &PrivateKey, token: &str, nonce: Option<&str>) -> Result<Map<String, Value>, IdTokenError> {
        let keys = vec![PublicKey::from_jwk(&key.public_jwk()).unwrap()];
        verify_id_token(token, &keys, &["https://up.example".to_owned()], "tessera", nonce, NOW)
    }

    #[test]
    fn upstream_id_tokens_are_checked() {
        let key = PrivateKey::generate(Algorithm::ES256).unwrap();
        assert!(check(&key, &signed(&key, claims()), Some("n1")).is_ok());
        let forger = PrivateKey::generate(Algorithm::ES256).unwrap();
        assert!(
            matches!(check(&key, &signed(&forger, claims()), Some("n1")), Err(IdTokenError::Signature(_))),
            "forged"
        );
        assert!(matches!(check(&key, &signed(&key, claims()), Some("other")), Err(IdTokenError::Nonce)), "replayed");
        let mut expired = claims();
        expired["exp"] = json!(NOW - 3600);
        assert!(matches!(check(&key, &signed(&key, expired), Some("n1")), Err(IdTokenError::Expired)));
        let mut other_client = claims();
        other_client["aud"] = json!(["someone-else"]);
        assert!(matches!(check(&key, &signed(&key, other_client), Some("n1")), Err(IdTokenError::Audience)));
        let mut other_issuer = claims();
        other_issuer["iss"] = json!("https://evil.example");
        assert!(matches!(check(&key, &signed(&key, other_issuer), Some("n1")), Err(IdTokenError::Issuer(_))));
    }

    #[tokio::test]
    async fn a_bad_groups_filter_is_refused_at_start_up() {
        let raw = json!({"issuer": "https://up.example", "clientID": "t", "claimModifications": {"filterGroupClaims": {"groupsFilter": "(unclosed"}}});
        let err = OidcConnector::open(&raw).await.err().unwrap().to_string();
        assert!(err.contains("groupsFilter"), "{err}");
    }

    fn config(extra: Value) -> OidcConfig {
        let mut base = json!({"issuer": "https://up.example", "clientID": "tessera", "scopes": ["profile", "email"],
                              "userIDKey": "sub", "userNameKey": "name"});
        if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
            base.extend(extra);
        }
        serde_json::from_value(base).unwrap()
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn claims_map_as_in_dex() {
        let all = Scopes { offline_access: false, groups: true };
        let identity = map_claims(&config(json!({})), &object(claims()), all).unwrap();
        assert_eq!(
            (identity.claims.user_id.as_str(), identity.claims.username.as_str(), identity.claims.email.as_str()),
            ("u1", "Ann", "ann@up.example")
        );
        assert!(identity.claims.groups.is_empty(), "groups only with insecureEnableGroups");

        let grouped = config(json!({"insecureEnableGroups": true, "allowedGroups": ["b", "c"]}));
        assert_eq!(map_claims(&grouped, &object(claims()), all).unwrap().claims.groups, vec!["b"]);
        let strict = config(json!({"insecureEnableGroups": true, "allowedGroups": ["admins"]}));
        assert!(matches!(map_claims(&strict, &object(claims()), all), Err(ConnectorError::NotInRequiredGroups)));

        let mut unverified = claims();
        unverified.as_object_mut().unwrap().remove("email_verified");
        assert!(map_claims(&config(json!({})), &object(unverified.clone()), all).is_err(), "missing email_verified");
        assert!(
            map_claims(&config(json!({"insecureSkipEmailVerified": true})), &object(unverified), all)
                .unwrap()
                .claims
                .email_verified
        );

        let mapped = config(json!({"userIDKey": "mail", "userNameKey": "login", "claimMapping": {"email": "mail"}}));
        let custom = json!({"sub": "u1", "login": "ann", "mail": "ann@corp", "email_verified": true});
        let identity = map_claims(&mapped, &object(custom), all).unwrap();
        assert_eq!(
            (identity.claims.user_id.as_str(), identity.claims.username.as_str(), identity.claims.email.as_str()),
            ("ann@corp", "ann", "ann@corp")
        );
        let modified = config(json!({"insecureEnableGroups": true, "claimModifications": {
            "filterGroupClaims": {"groupsFilter": "^(a|b)$"},
            "modifyGroupNames": {"prefix": "up-", "suffix": "-team"},
            "newGroupFromClaims": [{"claims": ["sub", "name"], "delimiter": ":", "prefix": "user", "clearDelimiter": true}]
        }}));
        let mut with_colon = claims();
        with_colon["groups"] = json!(["a", "b", "c"]);
        with_colon["name"] = json!("Ann:Admin");
        assert_eq!(
            map_claims(&modified, &object(with_colon), all).unwrap().claims.groups,
            vec!["up-a-team", "up-b-team", "user:u1:AnnAdmin"]
        );
        assert!(OidcConfig::default().claim_modifications.new_group_from_claims.is_empty());
        let missing = config(json!({"userIDKey": "employee_id"}));
        assert!(map_claims(&missing, &object(claims()), all).unwrap_err().to_string().contains("employee_id"));
    }
}

//! The `ldap` connector, with Dex's configuration keys: find the user with a search (as the service
//! account, or anonymously), bind as the user with their password, then find their groups (following
//! nested groups when asked). Filter values are escaped; an empty password never binds; every network
//! step has a timeout. Refresh searches the user again and requires the same DN.

use std::sync::Arc;
use std::time::Duration;
use tessera_core::model::Claims;

use async_trait::async_trait;
use base64::Engine;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope as LdapScope, SearchEntry, ldap_escape};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{ConnectorError, Identity, PasswordConnector, RefreshConnector, Scopes};

/// How long to wait for the directory at each step: a directory that is down gives an error page,
/// never a hanging login.
const TIMEOUT: Duration = Duration::from_secs(10);
/// LDAP result codes that mean "wrong credentials" rather than "the directory failed".
const INVALID_CREDENTIALS: u32 = 49;
const CONSTRAINT_VIOLATION: u32 = 19;

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSearch {
    #[serde(rename = "baseDN")]
    pub base_dn: String,
    pub filter: String,
    /// One attribute, or several (matched with OR).
    #[serde(deserialize_with = "one_or_many")]
    pub username: Vec<String>,
    pub scope: String,
    #[serde(rename = "idAttr")]
    pub id_attr: String,
    #[serde(rename = "emailAttr")]
    pub email_attr: String,
    #[serde(rename = "nameAttr")]
    pub name_attr: String,
    #[serde(rename = "preferredUsernameAttr")]
    pub preferred_username_attr: String,
    #[serde(rename = "emailSuffix")]
    pub email_suffix: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserMatcher {
    #[serde(rename = "userAttr")]
    pub user_attr: String,
    #[serde(rename = "groupAttr")]
    pub group_attr: String,
    #[serde(rename = "recursionGroupAttr")]
    pub recursion_group_attr: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSearch {
    #[serde(rename = "baseDN")]
    pub base_dn: String,
    pub filter: String,
    pub scope: String,
    #[serde(rename = "userMatchers")]
    pub user_matchers: Vec<UserMatcher>,
    #[serde(rename = "nameAttr")]
    pub name_attr: String,
    /// Dex's older single matcher.
    #[serde(rename = "userAttr")]
    pub user_attr: String,
    #[serde(rename = "groupAttr")]
    pub group_attr: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    pub host: String,
    #[serde(rename = "insecureNoSSL")]
    pub insecure_no_ssl: bool,
    #[serde(rename = "insecureSkipVerify")]
    pub insecure_skip_verify: bool,
    #[serde(rename = "startTLS")]
    pub start_tls: bool,
    #[serde(rename = "rootCA")]
    pub root_ca: String,
    /// Base64 of PEM, as Go encodes a byte slice.
    #[serde(rename = "rootCAData")]
    pub root_ca_data: String,
    #[serde(rename = "clientCert")]
    pub client_cert: String,
    #[serde(rename = "clientKey")]
    pub client_key: String,
    #[serde(rename = "bindDN")]
    pub bind_dn: String,
    #[serde(rename = "bindPW")]
    pub bind_pw: String,
    #[serde(rename = "usernamePrompt")]
    pub username_prompt: String,
    #[serde(rename = "userSearch")]
    pub user_search: UserSearch,
    #[serde(rename = "groupSearch")]
    pub group_search: GroupSearch,
    /// Kerberos/SPNEGO: accepted and not supported.
    pub kerberos: serde_json::Value,
}

/// What a refresh needs to find the user again.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshData {
    username: String,
    dn: String,
}

pub struct LdapConnector {
    config: LdapConfig,
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    prompt: String,
}

fn config_error(message: impl Into<String>) -> ConnectorError {
    ConnectorError::Config(message.into())
}

fn failed(message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Failed(format!("ldap: {message}"))
}

fn scope(name: &str, key: &str) -> Result<LdapScope, ConnectorError> {
    match name {
        "" | "sub" => Ok(LdapScope::Subtree),
        "one" => Ok(LdapScope::OneLevel),
        other => Err(config_error(format!("{key}: unknown scope {other:?} (expected sub or one)"))),
    }
}

impl LdapConnector {
    pub fn open(raw: &serde_json::Value) -> Result<Self, ConnectorError> {
        let mut config: LdapConfig =
            serde_json::from_value(raw.clone()).map_err(|e| config_error(format!("ldap config: {e}")))?;
        if config.host.is_empty() {
            return Err(config_error("host is required"));
        }
        if config.user_search.base_dn.is_empty() || config.user_search.username.is_empty() {
            return Err(config_error("userSearch.baseDN and userSearch.username are required"));
        }
        if config.user_search.id_attr.is_empty() {
            config.user_search.id_attr = "uid".into();
        }
        if config.user_search.email_attr.is_empty() && config.user_search.email_suffix.is_empty() {
            config.user_search.email_attr = "mail".into();
        }
        if config.user_search.name_attr.is_empty() {
            config.user_search.name_attr = "cn".into();
        }
        if config.group_search.user_matchers.is_empty() && !config.group_search.user_attr.is_empty() {
            config.group_search.user_matchers.push(UserMatcher {
                user_attr: config.group_search.user_attr.clone(),
                group_attr: config.group_search.group_attr.clone(),
                recursion_group_attr: String::new(),
            });
        }
        if config.group_search.name_attr.is_empty() {
            config.group_search.name_attr = "cn".into();
        }
        scope(&config.user_search.scope, "userSearch.scope")?;
        scope(&config.group_search.scope, "groupSearch.scope")?;
        if config.insecure_no_ssl && config.start_tls {
            return Err(config_error("insecureNoSSL and startTLS cannot both be set"));
        }
        let has_port = config.host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok());
        let default_port = if config.insecure_no_ssl || config.start_tls { 389 } else { 636 };
        let host = if has_port { config.host.clone() } else { format!("{}:{default_port}", config.host) };
        let scheme = if config.insecure_no_ssl || config.start_tls { "ldap" } else { "ldaps" };
        let tls = if config.insecure_no_ssl { None } else { tls_config(&config)? };
        let prompt =
            if config.username_prompt.is_empty() { "Username".to_owned() } else { config.username_prompt.clone() };
        Ok(Self { url: format!("{scheme}://{host}"), tls, prompt, config })
    }

    async fn connect(&self) -> Result<Ldap, ConnectorError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(TIMEOUT)
            .set_starttls(self.config.start_tls)
            .set_no_tls_verify(self.config.insecure_skip_verify);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url).await.map_err(failed)?;
        ldap3::drive!(conn);
        ldap.with_timeout(TIMEOUT);
        Ok(ldap)
    }

    /// As the service account (or anonymously when none is configured).
    async fn bind_service(&self, ldap: &mut Ldap) -> Result<(), ConnectorError> {
        if self.config.bind_dn.is_empty() {
            return Ok(());
        }
        ldap.with_timeout(TIMEOUT);
        ldap.simple_bind(&self.config.bind_dn, &self.config.bind_pw)
            .await
            .map_err(failed)?
            .success()
            .map(|_| ())
            .map_err(|e| failed(format!("service bind: {e}")))
    }

    fn user_attributes(&self) -> Vec<String> {
        let search = &self.config.user_search;
        let mut attrs: Vec<String> =
            [&search.id_attr, &search.email_attr, &search.name_attr, &search.preferred_username_attr]
                .into_iter()
                .filter(|a| !a.is_empty() && !a.eq_ignore_ascii_case("DN"))
                .cloned()
                .collect();
        for matcher in &self.config.group_search.user_matchers {
            if !matcher.user_attr.eq_ignore_ascii_case("DN") {
                attrs.push(matcher.user_attr.clone());
            }
        }
        attrs
    }

    /// The user's entry; `None` when nobody matches. Several matches are a directory problem.
    async fn find_user(&self, ldap: &mut Ldap, username: &str) -> Result<Option<SearchEntry>, ConnectorError> {
        let search = &self.config.user_search;
        let escaped = ldap_escape(username);
        let by_name: Vec<String> = search.username.iter().map(|attr| format!("({attr}={escaped})")).collect();
        let mut filter = if by_name.len() == 1 { by_name[0].clone() } else { format!("(|{})", by_name.join("")) };
        if !search.filter.is_empty() {
            filter = format!("(&{}{filter})", search.filter);
        }
        ldap.with_timeout(TIMEOUT);
        let (entries, _) = ldap
            .search(&search.base_dn, scope(&search.scope, "userSearch.scope")?, &filter, self.user_attributes())
            .await
            .map_err(failed)?
            .success()
            .map_err(|e| failed(format!("user search: {e}")))?;
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.into_iter().next().map(SearchEntry::construct)),
            n => Err(failed(format!("user search returned {n} entries for one username"))),
        }
    }

    fn attribute(entry: &SearchEntry, attr: &str) -> String {
        if attr.eq_ignore_ascii_case("DN") {
            return entry.dn.clone();
        }
        entry
            .attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attr))
            .and_then(|(_, values)| values.first().cloned())
            .unwrap_or_default()
    }

    /// Group names, following `recursionGroupAttr` into groups of groups (each group once).
    async fn groups(&self, ldap: &mut Ldap, user: &SearchEntry) -> Result<Vec<String>, ConnectorError> {
        let search = &self.config.group_search;
        if search.base_dn.is_empty() {
            return Ok(Vec::new());
        }
        let scope = scope(&search.scope, "groupSearch.scope")?;
        let mut names = Vec::new();
        let mut seen_dns = Vec::new();
        for matcher in &search.user_matchers {
            let value = Self::attribute(user, &matcher.user_attr);
            if value.is_empty() {
                continue;
            }
            let mut pending = vec![value];
            while let Some(member) = pending.pop() {
                let mut filter = format!("({}={})", matcher.group_attr, ldap_escape(&member));
                if !search.filter.is_empty() {
                    filter = format!("(&{}{filter})", search.filter);
                }
                let mut attrs = vec![search.name_attr.clone()];
                if !matcher.recursion_group_attr.is_empty() && !matcher.recursion_group_attr.eq_ignore_ascii_case("DN")
                {
                    attrs.push(matcher.recursion_group_attr.clone());
                }
                ldap.with_timeout(TIMEOUT);
                let (entries, _) = ldap
                    .search(&search.base_dn, scope, &filter, attrs)
                    .await
                    .map_err(failed)?
                    .success()
                    .map_err(|e| failed(format!("group search: {e}")))?;
                for group in entries.into_iter().map(SearchEntry::construct) {
                    if seen_dns.contains(&group.dn) {
                        continue;
                    }
                    seen_dns.push(group.dn.clone());
                    let name = Self::attribute(&group, &search.name_attr);
                    if !name.is_empty() && !names.contains(&name) {
                        names.push(name);
                    }
                    if !matcher.recursion_group_attr.is_empty() {
                        pending.push(Self::attribute(&group, &matcher.recursion_group_attr));
                    }
                }
            }
        }
        Ok(names)
    }

    async fn identity(
        &self,
        ldap: &mut Ldap,
        entry: &SearchEntry,
        username: &str,
        scopes: Scopes,
    ) -> Result<Identity, ConnectorError> {
        let search = &self.config.user_search;
        let user_id = Self::attribute(entry, &search.id_attr);
        if user_id.is_empty() {
            return Err(failed(format!("the user entry has no {} attribute", search.id_attr)));
        }
        let email = if search.email_suffix.is_empty() {
            Self::attribute(entry, &search.email_attr)
        } else {
            format!("{}@{}", Self::attribute(entry, &search.name_attr), search.email_suffix)
        };
        let groups = if scopes.groups { self.groups(ldap, entry).await? } else { Vec::new() };
        let connector_data = if scopes.offline_access {
            serde_json::to_vec(&RefreshData { username: username.to_owned(), dn: entry.dn.clone() }).map_err(failed)?
        } else {
            Vec::new()
        };
        Ok(Identity {
            claims: Claims {
                user_id,
                username: Self::attribute(entry, &search.name_attr),
                preferred_username: Self::attribute(entry, &search.preferred_username_attr),
                email,
                email_verified: true,
                groups,
            },
            connector_data,
        })
    }
}

fn tls_config(config: &LdapConfig) -> Result<Option<Arc<rustls::ClientConfig>>, ConnectorError> {
    let pem = if !config.root_ca_data.is_empty() {
        base64::engine::general_purpose::STANDARD
            .decode(config.root_ca_data.trim())
            .map_err(|_| config_error("rootCAData is not base64"))?
    } else if !config.root_ca.is_empty() {
        std::fs::read(&config.root_ca).map_err(|e| config_error(format!("rootCA {}: {e}", config.root_ca)))?
    } else if config.client_cert.is_empty() {
        // The platform's roots, as ldap3 loads them.
        return Ok(None);
    } else {
        Vec::new()
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| config_error(format!("root CA: {e}")))?)
            .map_err(|e| config_error(format!("root CA: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_root_certificates(roots);
    let tls = if config.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = CertificateDer::pem_file_iter(&config.client_cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| config_error(format!("clientCert: {e}")))?;
        let key =
            PrivateKeyDer::from_pem_file(&config.client_key).map_err(|e| config_error(format!("clientKey: {e}")))?;
        builder.with_client_auth_cert(certs, key).map_err(|e| config_error(format!("clientCert/clientKey: {e}")))?
    };
    Ok(Some(Arc::new(tls)))
}

#[async_trait]
impl PasswordConnector for LdapConnector {
    fn prompt(&self) -> &str {
        &self.prompt
    }

    async fn login(&self, scopes: Scopes, username: &str, password: &str) -> Result<Option<Identity>, ConnectorError> {
        // An empty password would be an anonymous ("unauthenticated") bind, which many servers accept.
        if password.is_empty() || username.is_empty() {
            return Ok(None);
        }
        let mut ldap = self.connect().await?;
        self.bind_service(&mut ldap).await?;
        let Some(entry) = self.find_user(&mut ldap, username).await? else { return Ok(None) };
        ldap.with_timeout(TIMEOUT);
        let bound = ldap.simple_bind(&entry.dn, password).await.map_err(failed)?;
        match bound.rc {
            0 => {}
            INVALID_CREDENTIALS | CONSTRAINT_VIOLATION => return Ok(None),
            _ => return Err(failed(format!("user bind: {bound}"))),
        }
        // Look up groups with the service account's rights, as Dex does.
        self.bind_service(&mut ldap).await?;
        let identity = self.identity(&mut ldap, &entry, username, scopes).await;
        let _ = ldap.unbind().await;
        identity.map(Some)
    }
}

#[async_trait]
impl RefreshConnector for LdapConnector {
    async fn refresh(&self, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let data: RefreshData = serde_json::from_slice(&identity.connector_data)
            .map_err(|_| ConnectorError::Revoked("no LDAP refresh data".into()))?;
        let mut ldap = self.connect().await?;
        self.bind_service(&mut ldap).await?;
        let entry = self
            .find_user(&mut ldap, &data.username)
            .await?
            .ok_or_else(|| ConnectorError::Revoked("the user is no longer in the directory".into()))?;
        if entry.dn != data.dn {
            return Err(ConnectorError::Revoked("the user's DN changed".into()));
        }
        let scopes = Scopes { offline_access: true, ..scopes };
        let refreshed = self.identity(&mut ldap, &entry, &data.username, scopes).await;
        let _ = ldap.unbind().await;
        refreshed
    }
}

//! The `github` connector (Dex's): GitHub's OAuth flow, then the user, their verified email and their
//! organisations and teams from the API; `orgs` restricts who may log in. `hostName` points it at
//! GitHub Enterprise (tessera also accepts a full base URL there, `http://host:port`, for test servers).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::model::Claims;

use crate::oauth2_client::{OAuth2Client, failed, http_client};
use crate::{CallbackConnector, CallbackRequest, ConnectorError, Identity, RefreshConnector, Scopes};

const NAME: &str = "github";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Org {
    pub name: String,
    pub teams: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubConfig {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "clientSecret")]
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: String,
    pub orgs: Vec<Org>,
    /// Dex's older single organisation.
    pub org: String,
    #[serde(rename = "hostName")]
    pub host_name: String,
    #[serde(rename = "rootCA")]
    pub root_ca: String,
    #[serde(rename = "teamNameField")]
    pub team_name_field: String,
    #[serde(rename = "loadAllGroups")]
    pub load_all_groups: bool,
    #[serde(rename = "useLoginAsID")]
    pub use_login_as_id: bool,
    #[serde(rename = "preferredEmailDomain")]
    pub preferred_email_domain: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConnectorData {
    access_token: String,
}

pub struct GithubConnector {
    config: GithubConfig,
    client: OAuth2Client,
    api: String,
}

impl GithubConnector {
    pub fn open(raw: &Value) -> Result<Self, ConnectorError> {
        let mut config: GithubConfig =
            serde_json::from_value(raw.clone()).map_err(|e| ConnectorError::Config(format!("github config: {e}")))?;
        if config.client_id.is_empty() {
            return Err(ConnectorError::Config("clientID is required".into()));
        }
        if !config.org.is_empty() {
            if !config.orgs.is_empty() {
                return Err(ConnectorError::Config("org and orgs are exclusive".into()));
            }
            config.orgs.push(Org { name: config.org.clone(), teams: Vec::new() });
        }
        if !matches!(config.team_name_field.as_str(), "" | "name" | "slug" | "both") {
            return Err(ConnectorError::Config("teamNameField must be name, slug or both".into()));
        }
        // github.com, or GitHub Enterprise at `hostName` (its API under /api/v3).
        let (web, api) = match config.host_name.as_str() {
            "" => ("https://github.com".to_owned(), "https://api.github.com".to_owned()),
            host if host.contains("://") => {
                (host.trim_end_matches('/').to_owned(), format!("{}/api/v3", host.trim_end_matches('/')))
            }
            host => (format!("https://{host}"), format!("https://{host}/api/v3")),
        };
        let client = OAuth2Client {
            http: http_client(std::slice::from_ref(&config.root_ca), false)?,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            auth_url: format!("{web}/login/oauth/authorize"),
            token_url: format!("{web}/login/oauth/access_token"),
            redirect_uri: config.redirect_uri.clone(),
        };
        Ok(Self { config, client, api })
    }

    async fn get(&self, path: &str, token: &str) -> Result<Value, ConnectorError> {
        self.client.get_json(NAME, &format!("{}{path}", self.api), token).await
    }

    /// Every page of a list endpoint.
    async fn list(&self, path: &str, token: &str) -> Result<Vec<Value>, ConnectorError> {
        let mut all = Vec::new();
        for page in 1..=50 {
            let separator = if path.contains('?') { '&' } else { '?' };
            let Value::Array(items) = self.get(&format!("{path}{separator}per_page=100&page={page}"), token).await?
            else {
                return Err(failed(NAME, format!("{path} did not answer a list")));
            };
            let done = items.len() < 100;
            all.extend(items);
            if done {
                break;
            }
        }
        Ok(all)
    }

    fn team_names(&self, team: &Value) -> Vec<String> {
        let field = |name: &str| team.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        match self.config.team_name_field.as_str() {
            "slug" => vec![field("slug")],
            "both" => vec![field("name"), field("slug")],
            _ => vec![field("name")],
        }
    }

    /// `org` and `org:team` groups; refuses a user outside the configured organisations or teams.
    async fn groups(&self, token: &str, wanted: bool) -> Result<Vec<String>, ConnectorError> {
        if self.config.orgs.is_empty() && !(self.config.load_all_groups && wanted) {
            return Ok(Vec::new());
        }
        let orgs: Vec<String> = self
            .list("/user/orgs", token)
            .await?
            .iter()
            .filter_map(|o| o.get("login")?.as_str().map(str::to_owned))
            .collect();
        let teams = self.list("/user/teams", token).await?;
        let teams_in = |org: &str| -> Vec<String> {
            teams
                .iter()
                .filter(|t| t.pointer("/organization/login").and_then(Value::as_str) == Some(org))
                .flat_map(|t| self.team_names(t))
                .collect()
        };
        let mut groups = Vec::new();
        if self.config.orgs.is_empty() {
            for org in &orgs {
                groups.push(org.clone());
                groups.extend(teams_in(org).into_iter().map(|t| format!("{org}:{t}")));
            }
            return Ok(groups);
        }
        for org in &self.config.orgs {
            if !orgs.contains(&org.name) {
                continue;
            }
            let member_of = teams_in(&org.name);
            let allowed: Vec<String> = if org.teams.is_empty() {
                member_of
            } else {
                member_of.into_iter().filter(|t| org.teams.contains(t)).collect()
            };
            if org.teams.is_empty() || !allowed.is_empty() {
                groups.push(org.name.clone());
                groups.extend(allowed.into_iter().map(|t| format!("{}:{t}", org.name)));
            }
        }
        if groups.is_empty() {
            return Err(ConnectorError::NotInRequiredGroups);
        }
        Ok(groups)
    }

    /// The primary verified email, or a verified one in `preferredEmailDomain`.
    async fn email(&self, user: &Value, token: &str) -> Result<String, ConnectorError> {
        let emails = self.list("/user/emails", token).await?;
        let verified = |e: &&Value| e.get("verified").and_then(Value::as_bool) == Some(true);
        let address = |e: &Value| e.get("email").and_then(Value::as_str).map(str::to_owned);
        let domain = &self.config.preferred_email_domain;
        if !domain.is_empty()
            && let Some(found) =
                emails.iter().filter(verified).filter_map(address).find(|a| a.ends_with(&format!("@{domain}")))
        {
            return Ok(found);
        }
        if let Some(primary) = emails
            .iter()
            .filter(verified)
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .and_then(address)
        {
            return Ok(primary);
        }
        user.get("email")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| failed(NAME, "the user has no verified email"))
    }

    async fn identity(&self, token: &str, scopes: Scopes) -> Result<Identity, ConnectorError> {
        let user = self.get("/user", token).await?;
        let login = user.get("login").and_then(Value::as_str).unwrap_or_default().to_owned();
        let id = match user.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return Err(failed(NAME, "the user has no id")),
        };
        let name = user.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(&login).to_owned();
        let groups = self.groups(token, scopes.groups).await?;
        Ok(Identity {
            claims: Claims {
                user_id: if self.config.use_login_as_id { login.clone() } else { id },
                username: name,
                preferred_username: login,
                email: self.email(&user, token).await?,
                email_verified: true,
                groups: if scopes.groups { groups } else { Vec::new() },
            },
            connector_data: if scopes.offline_access {
                serde_json::to_vec(&ConnectorData { access_token: token.to_owned() }).map_err(|e| failed(NAME, e))?
            } else {
                Vec::new()
            },
        })
    }
}

#[async_trait]
impl CallbackConnector for GithubConnector {
    fn login_url(&self, scopes: Scopes, callback_url: &str, state: &str) -> Result<(String, Vec<u8>), ConnectorError> {
        let mut requested = vec!["user:email".to_owned()];
        if !self.config.orgs.is_empty() || (self.config.load_all_groups && scopes.groups) {
            requested.push("read:org".into());
        }
        Ok((self.client.authorize_url(callback_url, &requested, state)?, callback_url.as_bytes().to_vec()))
    }

    async fn handle_callback(
        &self,
        scopes: Scopes,
        data: &[u8],
        request: &CallbackRequest,
    ) -> Result<Identity, ConnectorError> {
        let answer = self.client.exchange_callback(NAME, data, request).await?;
        self.identity(&answer.access_token, scopes).await
    }
}

#[async_trait]
impl RefreshConnector for GithubConnector {
    /// GitHub's tokens do not expire: the stored one reads the user and their groups again.
    async fn refresh(&self, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let data: ConnectorData = serde_json::from_slice(&identity.connector_data)
            .map_err(|_| ConnectorError::Revoked("no GitHub token".into()))?;
        let refreshed = self.identity(&data.access_token, Scopes { offline_access: true, ..scopes }).await?;
        if refreshed.claims.user_id != identity.claims.user_id {
            return Err(ConnectorError::Revoked("GitHub returned another user".into()));
        }
        Ok(refreshed)
    }
}

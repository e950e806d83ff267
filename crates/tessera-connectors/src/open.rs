//! Turning a configured connector into a working one.

use std::sync::Arc;

use tessera_core::model::Connector;
use tessera_storage::Storage;

use crate::local::LocalConnector;
use crate::mock::{MockCallback, MockPassword};
use crate::{ConnectorError, Login, LogoutConnector, RefreshConnector, TokenIdentityConnector};

/// A connector ready to log users in.
#[derive(Clone)]
pub struct OpenedConnector {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub login: Login,
    pub refresh: Option<Arc<dyn RefreshConnector>>,
    pub token_identity: Option<Arc<dyn TokenIdentityConnector>>,
    /// Ends the upstream's session at logout, for a connector whose upstream has a logout endpoint.
    pub logout: Option<Arc<dyn LogoutConnector>>,
    /// Grant types it may be used for; `None` means all.
    pub grant_types: Option<Vec<String>>,
}

impl OpenedConnector {
    /// Its `grantTypes` allow `grant` (the rule is tessera-core's).
    pub fn allows_grant(&self, grant: &str) -> bool {
        tessera_core::grant::connector_allows(self.grant_types.as_deref(), grant)
    }
}

/// The connector types [`open`] implements (what an import from Dex can carry over).
pub const IMPLEMENTED_TYPES: &[&str] =
    &["local", "mockCallback", "mockPassword", "oidc", "oauth", "github", "authproxy", "ldap"];

/// Opens a connector of a type tessera implements (discovering an OIDC upstream); `Config` error for
/// other types.
pub async fn open(connector: &Connector, storage: &Storage) -> Result<OpenedConnector, ConnectorError> {
    let opened = |login, refresh, token_identity| OpenedConnector {
        id: connector.id.clone(),
        kind: connector.kind.clone(),
        name: connector.name.clone(),
        login,
        refresh,
        token_identity,
        logout: None,
        grant_types: connector.grant_types.clone(),
    };
    match connector.kind.as_str() {
        "local" => {
            let local = Arc::new(LocalConnector::new(storage.clone(), bcrypt_concurrency()));
            Ok(opened(Login::Password(local.clone()), Some(local as Arc<dyn RefreshConnector>), None))
        }
        "mockCallback" => {
            let mock = Arc::new(MockCallback);
            let token_identity: Arc<dyn TokenIdentityConnector> = mock.clone();
            Ok(opened(Login::Callback(mock.clone()), Some(mock), Some(token_identity)))
        }
        "mockPassword" => {
            let field = |name: &str| {
                connector
                    .config
                    .get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| ConnectorError::Config(format!("mockPassword needs config.{name}")))
            };
            let mock = Arc::new(MockPassword { username: field("username")?, password: field("password")? });
            Ok(opened(Login::Password(mock.clone()), Some(mock), None))
        }
        "oidc" => {
            let oidc = Arc::new(crate::oidc::OidcConnector::open(&connector.config).await?);
            let token_identity: Arc<dyn TokenIdentityConnector> = oidc.clone();
            let logout = oidc.has_logout().then(|| oidc.clone() as Arc<dyn LogoutConnector>);
            Ok(OpenedConnector { logout, ..opened(Login::Callback(oidc.clone()), Some(oidc), Some(token_identity)) })
        }
        "oauth" => {
            let oauth = Arc::new(crate::oauth::OAuthConnector::open(&connector.config)?);
            Ok(opened(Login::Callback(oauth.clone()), Some(oauth), None))
        }
        "github" => {
            let github = Arc::new(crate::github::GithubConnector::open(&connector.config)?);
            Ok(opened(Login::Callback(github.clone()), Some(github), None))
        }
        "authproxy" => {
            let proxy = Arc::new(crate::authproxy::AuthProxy::open(&connector.id, &connector.config)?);
            Ok(opened(Login::Callback(proxy), None, None))
        }
        "ldap" => {
            let ldap = Arc::new(crate::ldap::LdapConnector::open(&connector.config)?);
            Ok(opened(Login::Password(ldap.clone()), Some(ldap), None))
        }
        other => Err(ConnectorError::Config(format!("connector type {other:?} is not implemented yet"))),
    }
}

/// One bcrypt check per core keeps logins from starving everything else.
fn bcrypt_concurrency() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(2)
}

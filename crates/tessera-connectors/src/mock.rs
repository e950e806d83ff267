//! Dex's test connectors: `mockCallback` (a redirect that always comes back as Kilgore Trout) and
//! `mockPassword` (one configured username and password).

use async_trait::async_trait;
use tessera_core::model::Claims;

use crate::{
    CallbackConnector, CallbackRequest, ConnectorError, Identity, PasswordConnector, RefreshConnector, Scopes,
    TokenIdentityConnector,
};

/// The identity Dex's mock connectors vouch for.
pub fn kilgore_trout() -> Identity {
    Identity {
        claims: Claims {
            user_id: "0-385-28089-0".into(),
            username: "Kilgore Trout".into(),
            preferred_username: "kilgore".into(),
            email: "kilgore@kilgore.trout".into(),
            email_verified: true,
            groups: vec!["authors".into()],
        },
        connector_data: b"foobar".to_vec(),
    }
}

pub struct MockCallback;

#[async_trait]
impl CallbackConnector for MockCallback {
    /// Straight back to our own callback, as if the upstream had logged the user in.
    fn login_url(&self, _scopes: Scopes, callback_url: &str, state: &str) -> Result<(String, Vec<u8>), ConnectorError> {
        let mut url = url::Url::parse(callback_url).map_err(|e| ConnectorError::Failed(e.to_string()))?;
        url.query_pairs_mut().append_pair("state", state);
        Ok((url.into(), Vec::new()))
    }

    async fn handle_callback(
        &self,
        scopes: Scopes,
        _connector_data: &[u8],
        _request: &CallbackRequest,
    ) -> Result<Identity, ConnectorError> {
        let mut identity = kilgore_trout();
        if !scopes.groups {
            identity.claims.groups.clear();
        }
        Ok(identity)
    }
}

#[async_trait]
impl RefreshConnector for MockCallback {
    async fn refresh(&self, _scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        Ok(identity)
    }
}

#[async_trait]
impl TokenIdentityConnector for MockCallback {
    async fn token_identity(
        &self,
        _subject_token_type: &str,
        _subject_token: &str,
    ) -> Result<Identity, ConnectorError> {
        Ok(kilgore_trout())
    }
}

pub struct MockPassword {
    pub username: String,
    pub password: String,
}

#[async_trait]
impl PasswordConnector for MockPassword {
    fn prompt(&self) -> &str {
        "Username"
    }

    async fn login(&self, _scopes: Scopes, username: &str, password: &str) -> Result<Option<Identity>, ConnectorError> {
        Ok((username == self.username && password == self.password).then(kilgore_trout))
    }
}

#[async_trait]
impl RefreshConnector for MockPassword {
    async fn refresh(&self, _scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        Ok(identity)
    }
}

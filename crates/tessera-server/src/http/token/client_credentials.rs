//! The `client_credentials` grant: a confidential client gets tokens about itself. The subject is the
//! client (user ID = client ID, no connector); `profile` names it, `groups` gives its
//! `clientCredentialsClaims.groups`; never a refresh token.

use tessera_connectors::OpenedConnector;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::{Claims, Client};
use tessera_core::scope::{self, EMAIL, GROUPS, OPENID, PROFILE};

use super::TokenForm;
use super::pipeline::{Grant, Requested, ScopeRule, Subject};
use crate::AppState;
use crate::http::error::EndpointError;

pub struct ClientCredentialsGrant<'a> {
    form: &'a TokenForm,
}

impl<'a> ClientCredentialsGrant<'a> {
    pub fn new(form: &'a TokenForm) -> Self {
        Self { form }
    }
}

impl Grant for ClientCredentialsGrant<'_> {
    const TYPE: &'static str = grant::CLIENT_CREDENTIALS;

    async fn request(&mut self, _state: &AppState, client: &Client) -> Result<Requested, EndpointError> {
        if client.public {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "Public clients cannot use the client_credentials grant.",
            )
            .into());
        }
        Ok(Requested {
            scopes: scope::parse(self.form.get("scope")),
            scope_rule: ScopeRule::Direct {
                allowed: &[OPENID, EMAIL, PROFILE, GROUPS],
                require_openid: false,
                code: ErrorCode::InvalidScope,
            },
            connector_id: None,
        })
    }

    async fn subject(
        &mut self,
        _state: &AppState,
        client: &Client,
        _connector: Option<&OpenedConnector>,
        scopes: &[String],
    ) -> Result<Subject, EndpointError> {
        let profile = scope::has(scopes, PROFILE);
        let groups = match &client.client_credentials_claims {
            Some(claims) if scope::has(scopes, GROUPS) => claims.groups.clone(),
            _ => Vec::new(),
        };
        let claims = Claims {
            username: if profile { client.name.clone() } else { String::new() },
            preferred_username: if profile { client.name.clone() } else { String::new() },
            user_id: client.id.clone(),
            groups,
            ..Claims::default()
        };
        Ok(Subject {
            claims,
            nonce: String::new(),
            auth_time: None,
            with_id_token: scope::has(scopes, OPENID),
            upstream_data: None,
            session_id: None,
        })
    }
}

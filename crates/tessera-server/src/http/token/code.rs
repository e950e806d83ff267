//! The `authorization_code` grant: the code is checked (client, expiry, PKCE, redirect URI); after
//! minting it is deleted, the single-use gate that only one of many concurrent redemptions passes.

use tessera_connectors::OpenedConnector;
use tessera_core::error::OAuthError;
use tessera_core::grant;
use tessera_core::model::{AuthCode, Client};
use tessera_core::pkce::check_verifier;
use tessera_core::scope;
use tessera_storage::Optional;

use super::pipeline::{Grant, Requested, ScopeRule, Subject};
use crate::AppState;
use crate::http::error::EndpointError;

fn invalid_code() -> OAuthError {
    OAuthError::invalid_grant("Invalid or expired code parameter.")
}

/// A code to redeem, as `/token` or the device flow's callback presents it.
pub struct CodeGrant<'a> {
    code_id: &'a str,
    redirect_uri: &'a str,
    verifier: Option<&'a str>,
    code: Option<AuthCode>,
}

impl<'a> CodeGrant<'a> {
    pub fn new(code_id: &'a str, redirect_uri: &'a str, verifier: Option<&'a str>) -> Self {
        Self { code_id, redirect_uri, verifier, code: None }
    }

    fn code(&self) -> Result<&AuthCode, EndpointError> {
        self.code.as_ref().ok_or_else(|| EndpointError::internal("code grant", "no code was read"))
    }
}

impl Grant for CodeGrant<'_> {
    const TYPE: &'static str = grant::AUTHORIZATION_CODE;

    async fn request(&mut self, state: &AppState, client: &Client) -> Result<Requested, EndpointError> {
        if self.code_id.is_empty() {
            return Err(OAuthError::invalid_request("Required param: code.").into());
        }
        let code = state
            .storage
            .get::<AuthCode>(self.code_id)
            .await
            .optional()?
            .filter(|code| code.client_id == client.id && code.expiry > state.clock.now())
            .ok_or_else(invalid_code)?;
        check_verifier(&code.pkce, self.verifier)?;
        if code.redirect_uri != self.redirect_uri {
            return Err(OAuthError::invalid_request("redirect_uri did not match URI from initial request.").into());
        }
        let requested = Requested {
            scopes: code.scopes.clone(),
            scope_rule: ScopeRule::AlreadyDecided,
            connector_id: Some(code.connector_id.clone()),
        };
        self.code = Some(code);
        Ok(requested)
    }

    async fn subject(
        &mut self,
        _state: &AppState,
        _client: &Client,
        _connector: Option<&OpenedConnector>,
        scopes: &[String],
    ) -> Result<Subject, EndpointError> {
        let code = self.code()?;
        Ok(Subject {
            claims: code.claims.clone(),
            nonce: code.nonce.clone(),
            auth_time: code.auth_time,
            with_id_token: scope::has(scopes, scope::OPENID),
            upstream_data: None,
            session_id: Some(code.session_id.clone()).filter(|sid| !sid.is_empty()),
        })
    }

    async fn commit(&mut self, state: &AppState) -> Result<Option<String>, EndpointError> {
        let code = self.code()?;
        state.storage.delete::<AuthCode>(&code.id).await.optional()?.ok_or_else(invalid_code)?;
        Ok(None)
    }
}

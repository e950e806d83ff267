//! Token exchange (RFC 8693): a token an upstream issued, verified by a connector that can
//! (`TokenIdentityConnector`), is exchanged for one of ours: an access token or an ID token.

use serde_json::json;
use tessera_connectors::OpenedConnector;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::Client;
use tessera_core::scope;

use super::TokenForm;
use super::pipeline::{Answer, Grant, Requested, ScopeRule, Subject};
use crate::AppState;
use crate::http::error::EndpointError;
use crate::token_issuer::Minted;

pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

pub struct TokenExchangeGrant<'a> {
    form: &'a TokenForm,
    requested_type: &'static str,
}

impl<'a> TokenExchangeGrant<'a> {
    pub fn new(form: &'a TokenForm) -> Self {
        Self { form, requested_type: ACCESS_TOKEN_TYPE }
    }
}

impl Grant for TokenExchangeGrant<'_> {
    const TYPE: &'static str = grant::TOKEN_EXCHANGE;

    async fn request(&mut self, _state: &AppState, _client: &Client) -> Result<Requested, EndpointError> {
        let subject_type = self.form.get("subject_token_type");
        if subject_type != ACCESS_TOKEN_TYPE && subject_type != ID_TOKEN_TYPE {
            return Err(OAuthError::new(ErrorCode::RequestNotSupported, "Invalid subject_token_type.").into());
        }
        self.requested_type = match self.form.get("requested_token_type") {
            "" | ACCESS_TOKEN_TYPE => ACCESS_TOKEN_TYPE,
            ID_TOKEN_TYPE => ID_TOKEN_TYPE,
            _ => return Err(OAuthError::new(ErrorCode::RequestNotSupported, "Invalid requested_token_type.").into()),
        };
        if self.form.get("subject_token").is_empty() {
            return Err(OAuthError::invalid_request("Missing subject_token.").into());
        }
        Ok(Requested {
            // Dex does not validate the scopes of an exchange: they only shape the claims.
            scopes: scope::parse(self.form.get("scope")),
            scope_rule: ScopeRule::AlreadyDecided,
            connector_id: Some(self.form.get("connector_id").to_owned()),
        })
    }

    async fn subject(
        &mut self,
        _state: &AppState,
        _client: &Client,
        connector: Option<&OpenedConnector>,
        _scopes: &[String],
    ) -> Result<Subject, EndpointError> {
        let Some(exchanger) = connector.and_then(|c| c.token_identity.as_ref()) else {
            return Err(OAuthError::invalid_request("Requested connector does not support token exchange.").into());
        };
        let (subject_type, subject_token) = (self.form.get("subject_token_type"), self.form.get("subject_token"));
        let identity = exchanger.token_identity(subject_type, subject_token).await.map_err(|err| {
            tracing::info!(connector = %self.form.get("connector_id"), error = %err, "subject token refused");
            OAuthError::new(ErrorCode::AccessDenied, "Unable to verify the subject token.").with_status(401)
        })?;
        Ok(Subject {
            claims: identity.claims.clone(),
            nonce: String::new(),
            auth_time: None,
            with_id_token: self.requested_type == ID_TOKEN_TYPE,
            upstream_data: None,
            session_id: None,
        })
    }

    fn respond(&self, minted: Minted, _refresh_token: Option<String>) -> Answer {
        let token = if self.requested_type == ID_TOKEN_TYPE {
            minted.id_token.unwrap_or_default()
        } else {
            minted.access_token
        };
        Answer::Other(json!({
            "access_token": token,
            "issued_token_type": self.requested_type,
            "token_type": "bearer",
            "expires_in": minted.expires_in,
        }))
    }
}

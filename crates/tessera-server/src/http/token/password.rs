//! The resource-owner `password` grant, through `oauth2.passwordConnector`, with Dex's scope rules:
//! `openid` required; `openid offline_access email profile groups federated:id` and trusted
//! cross-client scopes only.

use tessera_connectors::{Login, OpenedConnector, Scopes};
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::grant;
use tessera_core::model::Client;
use tessera_core::scope::{self, EMAIL, FEDERATED_ID, GROUPS, OFFLINE_ACCESS, OPENID, PROFILE};

use super::TokenForm;
use super::pipeline::{Grant, Requested, ScopeRule, Subject};
use crate::AppState;
use crate::http::brute_force::{self, Ip};
use crate::http::error::EndpointError;
use crate::metrics::LoginOutcome;

pub struct PasswordGrant<'a> {
    form: &'a TokenForm,
    /// The client address, whose failures the brute-force limits count.
    ip: Ip,
}

impl<'a> PasswordGrant<'a> {
    pub fn new(form: &'a TokenForm, ip: Ip) -> Self {
        Self { form, ip }
    }
}

impl Grant for PasswordGrant<'_> {
    const TYPE: &'static str = grant::PASSWORD;

    async fn request(&mut self, state: &AppState, _client: &Client) -> Result<Requested, EndpointError> {
        Ok(Requested {
            scopes: scope::parse(self.form.get("scope")),
            scope_rule: ScopeRule::Direct {
                allowed: &[OPENID, OFFLINE_ACCESS, EMAIL, PROFILE, GROUPS, FEDERATED_ID],
                require_openid: true,
                code: ErrorCode::InvalidRequest,
            },
            connector_id: Some(state.config.oauth2.password_connector.clone().unwrap_or_default()),
        })
    }

    async fn subject(
        &mut self,
        state: &AppState,
        _client: &Client,
        connector: Option<&OpenedConnector>,
        scopes: &[String],
    ) -> Result<Subject, EndpointError> {
        let Some(connector) = connector else {
            return Err(EndpointError::internal("password grant", "no password connector"));
        };
        let Login::Password(login) = &connector.login else {
            let cause = format!("oauth2.passwordConnector {:?} is not a password connector", connector.id);
            return Err(EndpointError::internal("password grant", cause));
        };
        let username = self.form.get("username");
        let limits = brute_force::limits(state);
        let attempt = limits.password_attempt(&connector.id, username, self.ip).await?;
        let identity = match login.login(Scopes::from_requested(scopes), username, self.form.get("password")).await {
            Ok(Some(identity)) => {
                attempt.succeeded().await;
                state.metrics.login(&connector.id, LoginOutcome::Success);
                identity
            }
            Ok(None) => {
                attempt.failed();
                state.metrics.login(&connector.id, LoginOutcome::InvalidCredentials);
                return Err(OAuthError::new(ErrorCode::AccessDenied, "Invalid username or password")
                    .with_status(401)
                    .into());
            }
            Err(err) => {
                attempt.abandoned().await;
                state.metrics.login(&connector.id, LoginOutcome::Error);
                // The connector's failure is the client's answer (as in Dex), and the operator's log line.
                tracing::error!(connector = %connector.id, error = %err, "password connector failed");
                return Err(OAuthError::invalid_request("The password connector failed.").into());
            }
        };
        Ok(Subject {
            claims: identity.claims.clone(),
            nonce: self.form.get("nonce").to_owned(),
            auth_time: None,
            with_id_token: true,
            upstream_data: Some(identity.connector_data),
            session_id: None,
        })
    }
}

//! The `refresh_token` grant: the token is found and checked (client, secret, expiry, scopes), the
//! identity refreshed when the use rotates the token — from the identity stored at the user's last
//! login with sessions on, else through the connector — and the use written by the refresh-token
//! service against its read, so two uses of one token cannot both rotate it.

use tessera_connectors::{ConnectorError, Identity, OpenedConnector, Scopes};
use tessera_core::error::OAuthError;
use tessera_core::grant;
use tessera_core::id::new_id;
use tessera_core::model::{Claims, Client, UserIdentity};
use tessera_core::refresh::{IdentitySource, PlannedUse, Use, decide, expired, identity_source, secret_accepted};
use tessera_core::scope::{self, go_quoted};
use tessera_core::session::refresh_bound_to_session;
use tessera_core::subject::{decode_refresh_token, encode_refresh_token};
use time::OffsetDateTime;

use super::TokenForm;
use super::pipeline::{Grant, Requested, ScopeRule, Subject};
use crate::AppState;
use crate::http::error::EndpointError;
use crate::refresh_tokens::{StoredRefresh, UseError};

fn claimed() -> OAuthError {
    OAuthError::invalid_request("Refresh token is invalid or has already been claimed by another client.")
}

pub struct RefreshGrant<'a> {
    form: &'a TokenForm,
    /// Read in `request`, written in `commit`.
    read: Option<Read>,
}

struct Read {
    stored: StoredRefresh,
    secret: String,
    now: OffsetDateTime,
    planned: Use,
    /// The refreshed identity (from the connector or the stored one), when the use refreshes it.
    refreshed: Option<Identity>,
    claims: Claims,
    /// The browser session the token was first issued under, carried into every refresh.
    session_id: Option<String>,
}

impl<'a> RefreshGrant<'a> {
    pub fn new(form: &'a TokenForm) -> Self {
        Self { form, read: None }
    }

    fn read(&mut self) -> Result<&mut Read, EndpointError> {
        self.read.as_mut().ok_or_else(|| EndpointError::internal("refresh grant", "no refresh token was read"))
    }
}

impl Read {
    fn refresh_with(&mut self, identity: Identity) {
        // Dex overwrites every claim but the user ID on refresh.
        self.claims = Claims { user_id: self.claims.user_id.clone(), ..identity.claims.clone() };
        self.refreshed = Some(identity);
    }
}

impl Grant for RefreshGrant<'_> {
    const TYPE: &'static str = grant::REFRESH_TOKEN;

    async fn request(&mut self, state: &AppState, client: &Client) -> Result<Requested, EndpointError> {
        let presented = self.form.get("refresh_token");
        if presented.is_empty() {
            return Err(OAuthError::invalid_request("Required param: refresh_token.").into());
        }
        let (id, secret) = decode_refresh_token(presented);
        let stored = state.refresh_tokens.read(&id).await?.ok_or_else(claimed)?;
        let token = stored.token();
        if token.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "Refresh token is invalid or has already been claimed by another client.",
            )
            .into());
        }
        let now = state.clock.now();
        let policy = state.refresh_tokens.policy();
        if !secret_accepted(token, &secret, now, policy) {
            return Err(claimed().into());
        }
        if expired(token, now, policy) {
            return Err(OAuthError::invalid_request("Refresh token expired.").into());
        }
        let session_id = session_of(state, client, &stored).await?;
        let token = stored.token();
        let requested = Requested {
            scopes: narrowed_scopes(&token.scopes, self.form.get("scope"))?,
            scope_rule: ScopeRule::AlreadyDecided,
            connector_id: Some(token.connector_id.clone()),
        };
        let planned = decide(token, now, policy);
        let claims = token.claims.clone();
        self.read = Some(Read { stored, secret, now, planned, refreshed: None, claims, session_id });
        Ok(requested)
    }

    async fn subject(
        &mut self,
        state: &AppState,
        _client: &Client,
        connector: Option<&OpenedConnector>,
        _scopes: &[String],
    ) -> Result<Subject, EndpointError> {
        let read = self.read()?;
        let stored = stored_identity(state, &read.stored).await?;
        match identity_source(read.planned, stored.as_ref()) {
            IdentitySource::Token => {}
            // No upstream data with it: the connector was not asked, so the upstream's refresh token
            // kept for it stays as it was (an empty value leaves it and only records the use).
            IdentitySource::Stored(identity) => read.refresh_with(Identity::new(identity.claims.clone(), Vec::new())),
            IdentitySource::Connector => {
                let connector = connector.ok_or_else(claimed)?;
                read.refresh_with(refresh_identity(connector, &read.stored).await?);
            }
        }
        let token = read.stored.token();
        Ok(Subject {
            claims: read.claims.clone(),
            nonce: token.nonce.clone(),
            // As Dex: the stored identity's last login whenever there is one (sessions on), whether
            // or not this use refreshed from it; without one, no `auth_time` (nobody logged in now).
            auth_time: stored.as_ref().map(|identity| identity.last_login),
            // Dex always returns an ID token on refresh, `openid` or not.
            with_id_token: true,
            upstream_data: None,
            session_id: read.session_id.clone(),
        })
    }

    async fn commit(&mut self, state: &AppState) -> Result<Option<String>, EndpointError> {
        let Some(read) = self.read.take() else {
            return Err(EndpointError::internal("refresh grant", "no refresh token was read"));
        };
        let new_secret = new_id();
        let planned = PlannedUse {
            presented: &read.secret,
            planned: read.planned,
            new_secret: &new_secret,
            claims: &read.claims,
            now: read.now,
        };
        let upstream_data = read.refreshed.as_ref().map(|identity| identity.connector_data.as_slice());
        // Boxed, as the pipeline's refresh-token creation: a large storage future kept out of the
        // handler's future.
        match Box::pin(state.refresh_tokens.record_use(read.stored, &planned, upstream_data)).await {
            Ok(stored) => Ok(Some(encode_refresh_token(&stored.id, &stored.token))),
            Err(UseError::Claimed) => Err(claimed().into()),
            Err(UseError::Storage(err)) => Err(err.into()),
        }
    }
}

/// The session the token belongs to (sessions on), or the refusal when it has ended and the client
/// registered `refreshTokenLifetime: session`: the token is revoked then, as at logout. A token
/// issued outside a browser flow belongs to no session and is never refused for one.
async fn session_of(
    state: &AppState,
    client: &Client,
    stored: &StoredRefresh,
) -> Result<Option<String>, EndpointError> {
    let Some(sessions) = &state.sessions else {
        return Ok(None);
    };
    let session_id = stored.session_id();
    if session_id.is_empty() {
        return Ok(None);
    }
    if refresh_bound_to_session(client) && !sessions.alive(session_id).await? {
        let token = stored.token();
        state.refresh_tokens.revoke(&token.claims.user_id, &token.connector_id, &token.client_id).await?;
        tracing::info!(client_id = %client.id, user_id = %token.claims.user_id, "refresh refused: its session has ended");
        return Err(OAuthError::invalid_grant("The session this refresh token belongs to has ended.").into());
    }
    Ok(Some(session_id.to_owned()))
}

/// A refresh may narrow the scopes it was granted, never widen them.
fn narrowed_scopes(granted: &[String], requested: &str) -> Result<Vec<String>, OAuthError> {
    let requested = scope::parse(requested);
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    let unauthorized: Vec<&str> = requested.iter().filter(|s| !granted.contains(s)).map(String::as_str).collect();
    if !unauthorized.is_empty() {
        return Err(OAuthError::invalid_request(format!(
            "Requested scopes contain unauthorized scope(s): {}.",
            go_quoted(&unauthorized)
        )));
    }
    Ok(requested)
}

/// With sessions on, the identity recorded at the token's user's last login through its connector;
/// `None` with sessions off (not read then, as in Dex) or when none was recorded.
async fn stored_identity(state: &AppState, stored: &StoredRefresh) -> Result<Option<UserIdentity>, EndpointError> {
    let Some(sessions) = &state.sessions else {
        return Ok(None);
    };
    let token = stored.token();
    let identity = sessions.last_identity(&token.claims.user_id, &token.connector_id).await?;
    if identity.is_none() {
        tracing::debug!(connector = %token.connector_id, "no stored identity for the refresh: asking the connector");
    }
    Ok(identity)
}

/// The user's current identity from the connector (as stored, for a connector that does not
/// refresh), given the upstream data kept for it.
async fn refresh_identity(connector: &OpenedConnector, stored: &StoredRefresh) -> Result<Identity, EndpointError> {
    let token = stored.token();
    let data = stored.upstream_data().to_vec();
    let Some(refresher) = &connector.refresh else {
        return Ok(Identity::new(token.claims.clone(), data));
    };
    let scopes = Scopes::from_requested(&token.scopes);
    match refresher.refresh(scopes, Identity::new(token.claims.clone(), data)).await {
        Ok(identity) => Ok(identity),
        Err(ConnectorError::Revoked(reason)) => {
            tracing::info!(connector = %token.connector_id, %reason, "refresh refused by the connector");
            Err(OAuthError::invalid_grant("The user's identity can no longer be refreshed; log in again.").into())
        }
        Err(err) => Err(EndpointError::internal("refreshing the identity failed", err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_but_never_widen() {
        let granted = scope::parse("openid email offline_access");
        assert_eq!(narrowed_scopes(&granted, "").unwrap(), granted);
        assert_eq!(narrowed_scopes(&granted, "openid").unwrap(), vec!["openid"]);
        let err = narrowed_scopes(&granted, "openid groups profile").unwrap_err();
        assert_eq!(err.description, r#"Requested scopes contain unauthorized scope(s): ["groups" "profile"]."#);
    }
}

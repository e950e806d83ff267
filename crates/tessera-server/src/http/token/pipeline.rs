//! The token pipeline: every grant that mints runs through [`complete`], which owns the shared steps
//! in order — scope validation with cross-client trust, the connector rules (`allowedConnectors`,
//! the connector's `grantTypes`), minting (custom claims included), the refresh-token decision and
//! the answer. A grant supplies only what differs, through [`Grant`], so a new grant cannot skip a
//! shared step. Client authentication and the grant-type policy come before, in `super::token`.

use serde::Serialize;
use serde_json::Value;
use tessera_connectors::OpenedConnector;
use tessera_core::error::ErrorCode;
use tessera_core::grant::{RefreshCapability, RefreshIssue, check_connector, refresh_issue};
use tessera_core::model::{Claims, Client};
use tessera_core::scope;
use time::OffsetDateTime;

use crate::AppState;
use crate::http::error::EndpointError;
use crate::http::trust::PeerTrust;
use crate::refresh_tokens::NewRefreshToken;
use crate::token_issuer::{MintRequest, Minted, TokenResponse};

/// What a grant asks for, read from its request (a code, a refresh token, the form).
pub struct Requested {
    pub scopes: Vec<String>,
    pub scope_rule: ScopeRule,
    /// The connector the identity comes through; `None` for a grant without a user (client credentials).
    pub connector_id: Option<String>,
}

/// How the pipeline validates a grant's scopes.
pub enum ScopeRule {
    /// Scopes asked for at this request (client credentials, password): only `allowed` and trusted
    /// cross-client scopes, `openid` when required; refusals are `code`.
    Direct { allowed: &'static [&'static str], require_openid: bool, code: ErrorCode },
    /// Scopes validated when they were granted (a code, a refresh token), or never validated (token
    /// exchange, as Dex): the issuer checks cross-client trust again when it signs.
    AlreadyDecided,
}

/// Whom the tokens are about, as the grant found them.
pub struct Subject {
    pub claims: Claims,
    pub nonce: String,
    pub auth_time: Option<OffsetDateTime>,
    pub with_id_token: bool,
    /// The upstream's data for later refreshes (a password login), kept with a new refresh token.
    pub upstream_data: Option<Vec<u8>>,
    /// The browser session the grant comes from (a code from a session login, a refresh token
    /// first issued under one): `sid` in the tokens, and kept with a new refresh token.
    pub session_id: Option<String>,
}

/// A `/token` answer: tokens, or (device polling, token exchange) a body of its own shape.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Answer {
    Tokens(TokenResponse),
    Other(Value),
}

/// What a grant does that the others do not. The pipeline calls the methods in this order.
pub(crate) trait Grant {
    /// The grant type: for the connector's `grantTypes`, the enrichers and the refresh decision.
    const TYPE: &'static str;

    /// Reads the request: what it asks for, and its own checks (a code's PKCE, a refresh token's
    /// secret and expiry, a public client refused client credentials).
    async fn request(&mut self, state: &AppState, client: &Client) -> Result<Requested, EndpointError>;

    /// Finds the identity, through the connector the pipeline allowed.
    async fn subject(
        &mut self,
        state: &AppState,
        client: &Client,
        connector: Option<&OpenedConnector>,
        scopes: &[String],
    ) -> Result<Subject, EndpointError>;

    /// After minting, what makes the grant single-use (a code deleted, a refresh token's rotation
    /// written); the refresh token to return when the grant used one. Tokens are minted before, so a
    /// failed mint (a claims database down) leaves the code or refresh token usable for a retry.
    async fn commit(&mut self, _state: &AppState) -> Result<Option<String>, EndpointError> {
        Ok(None)
    }

    /// The answer's body.
    fn respond(&self, minted: Minted, refresh_token: Option<String>) -> Answer {
        Answer::Tokens(TokenResponse::new(minted, refresh_token))
    }
}

/// Runs `grant` for an authenticated `client`, through every shared step.
pub(crate) async fn complete<G: Grant>(
    state: &AppState,
    client: &Client,
    mut grant: G,
) -> Result<Answer, EndpointError> {
    let requested = grant.request(state, client).await?;
    validate_scopes(state, client, &requested).await?;
    let connector = match &requested.connector_id {
        Some(id) => {
            let connector = state.connectors.get(id);
            check_connector(
                &client.allowed_connectors,
                id,
                connector.as_ref().map(|c| c.grant_types.as_deref()),
                G::TYPE,
            )?;
            connector
        }
        None => None,
    };
    let subject = grant.subject(state, client, connector.as_deref(), &requested.scopes).await?;
    let connector_id = requested.connector_id.as_deref().unwrap_or_default();
    let minted = state
        .issuer
        .mint(&MintRequest {
            client_id: &client.id,
            scopes: &requested.scopes,
            claims: &subject.claims,
            connector_id,
            nonce: &subject.nonce,
            auth_time: subject.auth_time,
            code: None,
            with_id_token: subject.with_id_token,
            grant_type: G::TYPE,
            session_id: subject.session_id.as_deref(),
            redirect_uri: "",
        })
        .await?;
    let used_refresh_token = grant.commit(state).await?;
    let capability = connector.map(|c| RefreshCapability {
        refreshes: c.refresh.is_some(),
        allows_refresh_grant: c.allows_grant(tessera_core::grant::REFRESH_TOKEN),
    });
    let refresh_token = match refresh_issue(G::TYPE, &requested.scopes, capability) {
        RefreshIssue::Omit => None,
        RefreshIssue::Rotated => used_refresh_token,
        // Boxed: its storage futures are large, and an inline future is copied whole into every
        // request's handler future, whichever grant it runs (callgrind: ~9k instructions of memcpy).
        RefreshIssue::New => Some(
            Box::pin(state.refresh_tokens.create(NewRefreshToken {
                client_id: &client.id,
                connector_id,
                claims: &subject.claims,
                scopes: &requested.scopes,
                nonce: &subject.nonce,
                upstream_data: subject.upstream_data.as_deref(),
                session_id: subject.session_id.as_deref().unwrap_or_default(),
            }))
            .await?,
        ),
    };
    Ok(grant.respond(minted, refresh_token))
}

async fn validate_scopes(state: &AppState, client: &Client, requested: &Requested) -> Result<(), EndpointError> {
    let ScopeRule::Direct { allowed, require_openid, code } = requested.scope_rule else {
        return Ok(());
    };
    let peers = PeerTrust::load(state, &requested.scopes).await?;
    scope::validate_grant_scopes(
        &requested.scopes,
        &client.id,
        &|peer: &str| peers.trusted_peers_of(peer),
        allowed,
        require_openid,
        code,
    )?;
    Ok(())
}

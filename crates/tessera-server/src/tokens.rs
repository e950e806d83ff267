//! Minting ID and access tokens: the claim set from tessera-core, `at_hash`/`c_hash` for the
//! signing algorithm, signed with the cached key. Every grant that issues tokens comes through here.

use std::sync::Arc;

use serde::Serialize;
use tessera_claims::Enriched;
use tessera_core::error::OAuthError;
use tessera_core::id::new_id;
use tessera_core::model::{Claims, Client};
use tessera_core::scope::{self, cross_client_peer};
use tessera_core::token::{Payload, TokenContext, token_claims};
use tessera_jose::left_half_hash;
use tessera_storage::StorageError;
use time::OffsetDateTime;

use crate::signer::ActiveKeys;
use crate::{AppState, custom_claims};

/// What a token is minted for.
pub struct MintRequest<'a> {
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub claims: &'a Claims,
    pub connector_id: &'a str,
    pub nonce: &'a str,
    pub auth_time: Option<OffsetDateTime>,
    /// The authorization code issued alongside (hybrid flow), for `c_hash`.
    pub code: Option<&'a str>,
    pub with_id_token: bool,
    /// The grant minting the token, for the custom-claims enrichers.
    pub grant_type: &'a str,
}

pub struct Minted {
    pub access_token: String,
    pub id_token: Option<String>,
    pub expires_in: i64,
}

/// The JSON body of a successful `/token` response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl TokenResponse {
    pub fn new(minted: Minted, refresh_token: Option<String>) -> Self {
        Self {
            access_token: minted.access_token,
            token_type: "bearer",
            expires_in: minted.expires_in,
            refresh_token,
            id_token: minted.id_token,
        }
    }
}

fn internal(err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %err, "minting a token failed");
    OAuthError::server_error()
}

/// Dex checks cross-client trust again when signing: a peer that stopped trusting the client (or
/// was deleted) since the login means no token.
async fn check_peers(state: &AppState, client_id: &str, scopes: &[String]) -> Result<(), OAuthError> {
    for peer in scopes.iter().filter_map(|s| cross_client_peer(s)) {
        if peer == client_id {
            continue;
        }
        let trusted = match state.storage.get::<Client>(peer).await {
            Ok(peer) => peer.trusted_peers.iter().any(|t| t == client_id),
            Err(StorageError::NotFound) => false,
            Err(err) => return Err(internal(err)),
        };
        if !trusted {
            return Err(internal(format!("client {client_id:?} is not trusted by peer {peer:?}")));
        }
    }
    Ok(())
}

pub async fn mint(state: &AppState, request: &MintRequest<'_>) -> Result<Minted, OAuthError> {
    check_peers(state, request.client_id, request.scopes).await?;
    // Custom claims first: a failing enricher means no token at all, not a token without them.
    let enriched = if state.claims.is_empty() {
        Enriched::default()
    } else {
        let context = custom_claims::context(
            request.claims,
            request.connector_id,
            request.client_id,
            request.scopes,
            request.grant_type,
        );
        state.claims.run(&context).await.map_err(|err| {
            tracing::error!(client = request.client_id, grant = request.grant_type, "{err}");
            OAuthError::server_error()
        })?
    };
    let keys = state.signer.active().ok_or_else(|| internal("no signing key"))?;
    let alg = keys.signing.alg();
    let now = state.clock.now();
    let lifetime = time::Duration::try_from(state.config.expiry.id_tokens).map_err(internal)?;
    let context = |jti| TokenContext {
        issuer: &state.config.issuer,
        client_id: request.client_id,
        scopes: request.scopes,
        identity: request.claims,
        connector_id: request.connector_id,
        nonce: request.nonce,
        auth_time: request.auth_time,
        issued_at: now,
        lifetime,
        jti,
    };
    // Dex's access tokens carry the ID token's claims, with an at_hash over a throwaway value.
    let mut access = token_claims(&context(new_id()));
    access.at_hash = Some(left_half_hash(alg, &new_id()));
    let access_token = sign(state, &keys, &Payload::new(access, &enriched.access_token)).await?;
    let id_token = if request.with_id_token {
        let mut id = token_claims(&context(new_id()));
        id.at_hash = Some(left_half_hash(alg, &access_token));
        id.c_hash = request.code.map(|code| left_half_hash(alg, code));
        Some(sign(state, &keys, &Payload::new(id, &enriched.id_token)).await?)
    } else {
        None
    };
    Ok(Minted { access_token, id_token, expires_in: lifetime.whole_seconds() })
}

/// Signs a payload with the active key (RSA off the async executor; see [`crate::signer::Signer::sign`]).
async fn sign(state: &AppState, keys: &Arc<ActiveKeys>, payload: &Payload<'_>) -> Result<String, OAuthError> {
    let payload = serde_json::to_vec(payload).map_err(internal)?;
    state.signer.sign(keys, payload).await.map_err(internal)
}

/// Whether a token for these scopes gets an ID token at the token endpoint (only with `openid`).
pub fn wants_id_token(scopes: &[String]) -> bool {
    scope::has(scopes, scope::OPENID)
}

/// Checks a token we issued, as Dex's verifier does for `/userinfo` and introspection: signature
/// against our published keys, our issuer, not expired (any audience). The claims on success.
pub fn verify_issued(state: &AppState, token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let keys = state.signer.active()?;
    let claims = tessera_jose::verify(token, &keys.verification).ok()?;
    let issuer_ok = claims.get("iss").and_then(|v| v.as_str()) == Some(state.config.issuer.as_str());
    let now = state.clock.now().unix_timestamp();
    let unexpired = claims.get("exp").and_then(serde_json::Value::as_i64).is_some_and(|exp| exp > now);
    (issuer_ok && unexpired).then_some(claims)
}

/// The `trustedPeers` of every client a request's cross-client scopes name (a missing client is
/// absent, hence untrusted), for the scope rules of tessera-core.
pub struct PeerTrust(Vec<(String, Vec<String>)>);

impl PeerTrust {
    pub async fn load(state: &AppState, scopes: &[String]) -> Self {
        let mut peers = Vec::new();
        for peer in scopes.iter().filter_map(|s| cross_client_peer(s)) {
            if let Ok(client) = state.storage.get::<Client>(peer).await {
                peers.push((peer.to_owned(), client.trusted_peers));
            }
        }
        Self(peers)
    }

    pub fn trusted_peers_of(&self, peer: &str) -> Option<Vec<String>> {
        self.0.iter().find(|(id, _)| id == peer).map(|(_, trusted)| trusted.clone())
    }
}

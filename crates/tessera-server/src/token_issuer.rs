//! The token issuer: mints ID and access tokens (cross-client trust checked again, the custom-claims
//! chain, the claim set from tessera-core, `at_hash`/`c_hash`, the signature) and verifies the tokens
//! it issued. Every grant and the browser flow mint through it; it needs only the issuer URL, the
//! lifetime, the signer, the claims chain, the clients in storage and the clock.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tessera_claims::{Chain, ChainError, Enriched};
use tessera_core::clock::Clock;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::id::new_id;
use tessera_core::model::{AuthRequest, Claims, Client};
use tessera_core::scope::cross_client_peer;
use tessera_core::token::{Payload, TokenContext, token_claims};
use tessera_jose::left_half_hash;
use tessera_storage::{Optional, Storage, StorageError};
use time::OffsetDateTime;

use crate::custom_claims;
use crate::http::error::EndpointError;
use crate::signer::{ActiveKeys, Signer, SignerError};

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
    /// The browser session behind the login (sessions on): the `sid` claim.
    pub session_id: Option<&'a str>,
    /// The client's redirect URI where the flow has one (`request.redirect_uri` in CEL policies).
    pub redirect_uri: &'a str,
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

    /// The body, as serde would write it, but written directly: every value is a JWT, a refresh
    /// token in base64url, a fixed word or a number, none of which JSON escapes, so serde_json's
    /// per-byte escaping of the tokens (~4,000 instructions per access token) is skipped.
    pub fn to_json(&self) -> String {
        let tokens = [Some(&self.access_token), self.refresh_token.as_ref(), self.id_token.as_ref()];
        let mut out = String::with_capacity(128 + tokens.iter().flatten().map(|t| t.len()).sum::<usize>());
        out.push_str(r#"{"access_token":""#);
        push_verbatim(&mut out, &self.access_token);
        out.push_str(r#"","token_type":""#);
        push_verbatim(&mut out, self.token_type);
        out.push_str(r#"","expires_in":"#);
        out.push_str(&self.expires_in.to_string());
        if let Some(refresh_token) = &self.refresh_token {
            out.push_str(r#","refresh_token":""#);
            push_verbatim(&mut out, refresh_token);
            out.push('"');
        }
        if let Some(id_token) = &self.id_token {
            out.push_str(r#","id_token":""#);
            push_verbatim(&mut out, id_token);
            out.push('"');
        }
        out.push('}');
        out
    }
}

/// A value JSON does not escape, by construction (base64url segments, base32 IDs, fixed words).
fn push_verbatim(out: &mut String, value: &str) {
    debug_assert!(
        value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{value:?} would need JSON escaping"
    );
    out.push_str(value);
}

/// Why no token was minted. Every variant is our side's failure (or a trust withdrawn since the
/// login, which Dex also answers with `server_error`).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("client {client:?} is not trusted by peer {peer:?}")]
    Untrusted { client: String, peer: String },
    #[error("loading a peer client: {0}")]
    Storage(#[from] StorageError),
    #[error("client {client:?}, grant {grant}: {source}")]
    Claims {
        client: String,
        grant: String,
        #[source]
        source: ChainError,
    },
    /// A CEL policy refused: the message is the operator's, for the user.
    #[error("client {client:?}, grant {grant}: denied by {origin}")]
    Denied { client: String, grant: String, origin: String, message: String },
    #[error("no signing key")]
    NoKey,
    #[error("{0}")]
    Signer(#[from] SignerError),
    #[error("encoding the claims: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<IssueError> for EndpointError {
    fn from(err: IssueError) -> Self {
        match err {
            IssueError::Denied { grant, message, .. } => policy_denial(&grant, message),
            err => EndpointError::internal("minting a token failed", err),
        }
    }
}

/// A policy's refusal as the client sees it: a refresh is `invalid_grant` (the grant no longer
/// holds), anything else `access_denied`, with the policy's message.
fn policy_denial(grant: &str, message: String) -> EndpointError {
    let error = if grant == tessera_core::grant::REFRESH_TOKEN {
        OAuthError::invalid_grant(message)
    } else {
        OAuthError::new(ErrorCode::AccessDenied, message).with_status(403)
    };
    EndpointError::Protocol(error)
}

pub struct TokenIssuer {
    issuer: String,
    lifetime: time::Duration,
    signer: Arc<Signer>,
    claims: Arc<Chain>,
    storage: Storage,
    clock: Arc<dyn Clock>,
}

impl TokenIssuer {
    /// `lifetime` is `expiry.idTokens`, for both tokens.
    pub fn new(
        issuer: String,
        lifetime: std::time::Duration,
        signer: Arc<Signer>,
        claims: Arc<Chain>,
        storage: Storage,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let lifetime = tessera_core::lifetimes::as_time(lifetime);
        Self { issuer, lifetime, signer, claims, storage, clock }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub async fn mint(&self, request: &MintRequest<'_>) -> Result<Minted, IssueError> {
        self.check_peers(request.client_id, request.scopes).await?;
        // Custom claims first: a failing enricher means no token at all, not a token without them.
        let enriched = if self.claims.is_empty() {
            Enriched::default()
        } else {
            let context = custom_claims::context(
                request.claims,
                request.connector_id,
                request.client_id,
                request.scopes,
                request.grant_type,
                request.redirect_uri,
            );
            let client = request.client_id.to_owned();
            let grant = request.grant_type.to_owned();
            self.claims.run(&context).await.map_err(|source| match source {
                ChainError::Denied { origin, message } => IssueError::Denied { client, grant, origin, message },
                source => IssueError::Claims { client, grant, source },
            })?
        };
        let keys = self.signer.active().ok_or(IssueError::NoKey)?;
        let alg = keys.signing.alg();
        let now = self.clock.now();
        let context = |jti| TokenContext {
            issuer: &self.issuer,
            client_id: request.client_id,
            scopes: request.scopes,
            identity: request.claims,
            connector_id: request.connector_id,
            nonce: request.nonce,
            auth_time: request.auth_time,
            issued_at: now,
            lifetime: self.lifetime,
            jti,
            session_id: request.session_id,
        };
        // Dex's access tokens carry the ID token's claims, with an at_hash over a throwaway value.
        let mut access = token_claims(&context(new_id()));
        access.at_hash = Some(left_half_hash(alg, &new_id()));
        let access_token = self.sign(&keys, &Payload::new(access, &enriched.access_token)).await?;
        let id_token = if request.with_id_token {
            let mut id = token_claims(&context(new_id()));
            id.at_hash = Some(left_half_hash(alg, &access_token));
            id.c_hash = request.code.map(|code| left_half_hash(alg, code));
            Some(self.sign(&keys, &Payload::new(id, &enriched.id_token)).await?)
        } else {
            None
        };
        Ok(Minted { access_token, id_token, expires_in: self.lifetime.whole_seconds() })
    }

    /// The CEL auth policy for a login the connector just vouched for (the enrichers run first when a
    /// rule reads `custom`): a refusal is `access_denied` with the policy's message, logged.
    pub async fn authorize_login(&self, request: &AuthRequest, claims: &Claims) -> Result<(), EndpointError> {
        let grant = if request.response_types.iter().any(|t| t == "code") {
            tessera_core::grant::AUTHORIZATION_CODE
        } else {
            tessera_core::grant::IMPLICIT
        };
        let context = custom_claims::context(
            claims,
            &request.connector_id,
            &request.client_id,
            &request.scopes,
            grant,
            &request.redirect_uri,
        );
        match self.claims.authorize(&context).await {
            Ok(()) => Ok(()),
            Err(ChainError::Denied { origin, message }) => {
                tracing::info!(client = %request.client_id, connector = %request.connector_id, policy = %origin, "login denied by policy");
                Err(policy_denial(grant, message))
            }
            Err(err) => Err(EndpointError::internal("evaluating the auth policy failed", err)),
        }
    }

    /// Dex checks cross-client trust again when signing: a peer that stopped trusting the client (or
    /// was deleted) since the login means no token.
    async fn check_peers(&self, client_id: &str, scopes: &[String]) -> Result<(), IssueError> {
        for peer in scopes.iter().filter_map(|s| cross_client_peer(s)) {
            if peer == client_id {
                continue;
            }
            let peer_client = self.storage.get::<Client>(peer).await.optional()?;
            if !peer_client.is_some_and(|p| p.trusted_peers.iter().any(|t| t == client_id)) {
                return Err(IssueError::Untrusted { client: client_id.to_owned(), peer: peer.to_owned() });
            }
        }
        Ok(())
    }

    /// Signs a payload with the active key (RSA off the async executor; see [`Signer::sign`]).
    async fn sign(&self, keys: &Arc<ActiveKeys>, payload: &Payload<'_>) -> Result<String, IssueError> {
        let payload = serde_json::to_vec(payload)?;
        Ok(self.signer.sign(keys, payload).await?)
    }

    /// Checks a token we issued, as Dex's verifier does for `/userinfo` and introspection: signature
    /// against our published keys, our issuer, not expired (any audience). The claims on success.
    pub fn verify(&self, token: &str) -> Option<Map<String, Value>> {
        let keys = self.signer.active()?;
        let claims = tessera_jose::verify(token, &keys.verification).ok()?;
        let issuer_ok = claims.get("iss").and_then(Value::as_str) == Some(self.issuer.as_str());
        let now = self.clock.now().unix_timestamp();
        let unexpired = claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp > now);
        (issuer_ok && unexpired).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_body_is_what_serde_writes() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkIn0.c2lnbmF0dXJlLV8";
        let minted = || Minted { access_token: jwt.into(), id_token: None, expires_in: 86400 };
        let bare = TokenResponse::new(minted(), None);
        assert_eq!(bare.to_json(), serde_json::to_string(&bare).unwrap());
        let full = TokenResponse::new(
            Minted { id_token: Some(format!("{jwt}x")), ..minted() },
            Some("ChljZ2xrNXV1dmh6NnV4b3B5cjJnbHoSGXB3M3Jx".into()),
        );
        assert_eq!(full.to_json(), serde_json::to_string(&full).unwrap());
        let parsed: serde_json::Value = serde_json::from_str(&full.to_json()).unwrap();
        assert_eq!(parsed["expires_in"], 86400);
    }
}

//! `id_token_hint`, at `/auth` and `/logout`: an ID token this server signed for this issuer,
//! accepted past its expiry and for any audience (OpenID Connect Core §3.1.2.1, RP-Initiated Logout
//! §2), and what the flows need of it: whose it is, for which client, and from which session.

use serde_json::Value;
use tessera_core::subject::decode_subject;

use crate::signer::Signer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    /// The `sub` as issued.
    pub subject: String,
    pub user_id: String,
    pub connector_id: String,
    /// The client it was issued to: its single audience, else `azp` (as Dex resolves it).
    pub client_id: String,
    /// `sid`, empty for tokens issued outside a session.
    pub session_id: String,
}

/// The hint's claims when this server signed it (with a key it still verifies with) for `issuer`;
/// `None` for anything else.
pub fn verify(signer: &Signer, issuer: &str, raw: &str) -> Option<IdTokenHint> {
    let keys = signer.active()?;
    let claims = tessera_jose::verify(raw, &keys.verification).ok()?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return None;
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let subject = text("sub");
    let (user_id, connector_id) = decode_subject(&subject).unwrap_or_default();
    let client_id = match claims.get("aud") {
        Some(Value::String(aud)) => aud.clone(),
        Some(Value::Array(list)) if list.len() == 1 => list[0].as_str().unwrap_or_default().to_owned(),
        _ => text("azp"),
    };
    Some(IdTokenHint { subject, user_id, connector_id, client_id, session_id: text("sid") })
}

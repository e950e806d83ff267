//! The claim set of ID tokens and access tokens (Dex's `IDTokenClaims`): which claims a grant
//! releases, given the scopes, the identity and the time.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::claim_names::{
    EMAIL_CLAIM, EMAIL_VERIFIED, FEDERATED_CLAIMS, GROUPS_CLAIM, NAME, PREFERRED_USERNAME, Released,
};
use crate::model::Claims;
use crate::scope;
use crate::subject::encode_subject;

/// `aud`: a string when there is one audience, an array otherwise (as Dex serializes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 { Audience::One(list.remove(0)) } else { Audience::Many(list) }
    }

    pub fn contains(&self, client_id: &str) -> bool {
        match self {
            Audience::One(one) => one == client_id,
            Audience::Many(many) => many.iter().any(|a| a == client_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedClaims {
    pub connector_id: String,
    pub user_id: String,
}

/// The claims, in Dex's order; empty optional ones are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_claims: Option<FederatedClaims>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The browser session the token was issued under (OpenID Connect Front/Back-Channel Logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub jti: String,
}

/// Everything a token's claims depend on.
#[derive(Debug, Clone)]
pub struct TokenContext<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub identity: &'a Claims,
    pub connector_id: &'a str,
    pub nonce: &'a str,
    pub auth_time: Option<OffsetDateTime>,
    pub issued_at: OffsetDateTime,
    pub lifetime: time::Duration,
    /// A fresh random ID for this token.
    pub jti: String,
    /// The browser session behind the login, if any: the `sid` claim.
    pub session_id: Option<&'a str>,
}

/// The claim set for a token minted in `context` (hashes are filled in by the signer, which knows
/// the algorithm).
pub fn token_claims(context: &TokenContext) -> TokenClaims {
    let scopes = context.scopes;
    let identity = context.identity;
    let audience = scope::audience(scopes, context.client_id);
    let azp = (audience.len() > 1).then(|| context.client_id.to_owned());
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let released = Released::by(scopes);
    TokenClaims {
        iss: context.issuer.to_owned(),
        sub: encode_subject(&identity.user_id, context.connector_id),
        aud: Audience::from_list(audience),
        exp: (context.issued_at + context.lifetime).unix_timestamp(),
        iat: context.issued_at.unix_timestamp(),
        azp,
        nonce: non_empty(context.nonce),
        at_hash: None,
        c_hash: None,
        email: released.email.then(|| non_empty(&identity.email)).flatten(),
        email_verified: released.email.then_some(identity.email_verified),
        groups: (released.groups && !identity.groups.is_empty()).then(|| identity.groups.clone()),
        name: released.profile.then(|| non_empty(&identity.username)).flatten(),
        preferred_username: released.profile.then(|| non_empty(&identity.preferred_username)).flatten(),
        federated_claims: released.federated_claims.then(|| FederatedClaims {
            connector_id: context.connector_id.to_owned(),
            user_id: identity.user_id.clone(),
        }),
        auth_time: context.auth_time.map(OffsetDateTime::unix_timestamp),
        sid: context.session_id.filter(|sid| !sid.is_empty()).map(str::to_owned),
        jti: context.jti.clone(),
    }
}

/// A token's payload: the standard claims with the custom ones beside them, serialized in one pass
/// (no intermediate JSON map of the standard claims).
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    #[serde(flatten)]
    standard: TokenClaims,
    #[serde(flatten)]
    custom: &'a Map<String, Value>,
}

impl<'a> Payload<'a> {
    /// The custom-claims chain only lets through identity claims the operator allowed to be
    /// replaced (never protocol claims); such a claim is left out of the standard set so the payload
    /// names every claim once, with the custom value.
    pub fn new(mut standard: TokenClaims, custom: &'a Map<String, Value>) -> Self {
        for name in custom.keys() {
            match name.as_str() {
                EMAIL_CLAIM => standard.email = None,
                EMAIL_VERIFIED => standard.email_verified = None,
                GROUPS_CLAIM => standard.groups = None,
                NAME => standard.name = None,
                PREFERRED_USERNAME => standard.preferred_username = None,
                FEDERATED_CLAIMS => standard.federated_claims = None,
                _ => {}
            }
        }
        Self { standard, custom }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn identity() -> Claims {
        Claims {
            user_id: "1234567890".into(),
            username: "Jane Doe".into(),
            preferred_username: "jane".into(),
            email: "jane@example.com".into(),
            email_verified: true,
            groups: vec!["admins".into()],
        }
    }

    fn claims(scopes: &str, client: &str) -> serde_json::Value {
        let scopes = scope::parse(scopes);
        let identity = identity();
        let context = TokenContext {
            issuer: "https://id.example/dex",
            client_id: client,
            scopes: &scopes,
            identity: &identity,
            connector_id: "local",
            nonce: "n-0S6",
            auth_time: Some(datetime!(2026-11-23 11:59 UTC)),
            issued_at: datetime!(2026-11-23 12:00 UTC),
            lifetime: time::Duration::hours(24),
            jti: "jti-1".into(),
            session_id: None,
        };
        serde_json::to_value(token_claims(&context)).unwrap()
    }

    #[test]
    fn openid_alone_releases_only_the_core_claims() {
        assert_eq!(
            claims("openid", "web-app"),
            json!({
                "iss": "https://id.example/dex",
                "sub": "CgoxMjM0NTY3ODkwEgVsb2NhbA",
                "aud": "web-app",
                "exp": 1795435200 + 24 * 3600,
                "iat": 1795435200,
                "nonce": "n-0S6",
                "auth_time": 1795435200 - 60,
                "jti": "jti-1"
            })
        );
    }

    #[test]
    fn scopes_release_their_claims() {
        let all = claims("openid email profile groups federated:id", "web-app");
        assert_eq!(all["email"], "jane@example.com");
        assert_eq!(all["email_verified"], true);
        assert_eq!(all["groups"], json!(["admins"]));
        assert_eq!(all["name"], "Jane Doe");
        assert_eq!(all["preferred_username"], "jane");
        assert_eq!(all["federated_claims"], json!({"connector_id": "local", "user_id": "1234567890"}));
    }

    #[test]
    fn cross_client_tokens_carry_an_array_audience_and_azp() {
        let token = claims("openid audience:server:client_id:cli-app", "web-app");
        assert_eq!(token["aud"], json!(["cli-app", "web-app"]));
        assert_eq!(token["azp"], "web-app");
        assert!(claims("openid", "web-app").get("azp").is_none(), "no azp for a single audience");
    }

    #[test]
    fn a_payload_names_an_overridden_claim_once_with_the_custom_value() {
        let scopes = scope::parse("openid email groups");
        let identity = identity();
        let context = TokenContext {
            issuer: "https://id.example/dex",
            client_id: "web-app",
            scopes: &scopes,
            identity: &identity,
            connector_id: "local",
            nonce: "",
            auth_time: None,
            issued_at: datetime!(2026-11-23 12:00 UTC),
            lifetime: time::Duration::hours(1),
            jti: "jti-1".into(),
            session_id: None,
        };
        let serde_json::Value::Object(custom) = json!({"groups": ["from-db"], "tenant": "acme"}) else {
            unreachable!()
        };
        let text = serde_json::to_string(&Payload::new(token_claims(&context), &custom)).unwrap();
        assert_eq!(text.matches("\"groups\"").count(), 1, "{text}");
        let payload: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(payload["groups"], json!(["from-db"]));
        assert_eq!(payload["tenant"], "acme");
        assert_eq!(payload["email"], "jane@example.com");
        assert_eq!(payload["sub"], "CgoxMjM0NTY3ODkwEgVsb2NhbA");
    }

    #[test]
    fn a_payload_without_custom_claims_is_the_standard_claim_set() {
        let none = Map::new();
        let payload = Payload::new(serde_json::from_value(claims("openid email", "web-app")).unwrap(), &none);
        assert_eq!(serde_json::to_value(&payload).unwrap(), claims("openid email", "web-app"));
    }
}

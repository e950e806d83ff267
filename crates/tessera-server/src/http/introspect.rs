//! `/token/introspect` (RFC 7662) as Dex answers it: a token that parses as a JWT is taken as an
//! access token, anything else as a refresh token; an invalid or expired token is `{"active":false}`,
//! and so is an access token of a client whose tokens end with the session (`refreshTokenLifetime:
//! session`) once the session it names (`sid`) has ended: ending it revoked them (RFC 7662 §4).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tessera_core::claim_names::{self, Released};
use tessera_core::error::OAuthError;
use tessera_core::model::{Client, RefreshToken};
use tessera_core::refresh::{expired, secret_accepted};
use tessera_core::session::refresh_bound_to_session;
use tessera_core::subject::{decode_refresh_token, encode_subject};

use tessera_storage::{Optional, StorageError};

use super::error::{EndpointError, oauth_json};
use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new().route("/token/introspect", any(introspect)).with_state(state)
}

#[derive(Debug, Serialize)]
struct Introspection {
    active: bool,
    client_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    sub: String,
    aud: Value,
    iss: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    jti: String,
    token_type: &'static str,
    token_use: &'static str,
    #[serde(skip_serializing_if = "Map::is_empty")]
    ext: Map<String, Value>,
}

/// Dex repeats the identity claims, `azp` and `sid` under `ext`, besides the custom claims.
fn in_ext(name: &str) -> bool {
    name == claim_names::AZP
        || name == claim_names::SID
        || claim_names::IDENTITY.contains(&name)
        || !claim_names::ISSUED.contains(&name)
}

async fn introspect(State(state): State<AppState>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return oauth_json(&OAuthError::invalid_request("method not allowed"));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str()).unwrap_or("");
    if token.is_empty() {
        return oauth_json(&OAuthError::invalid_request("The POST body must contain a token."));
    }
    let looked_up = if token.split('.').count() == 3 {
        match state.issuer.verify(token).map(access_token) {
            Some(introspection) => session_allows(&state, introspection).await,
            None => Ok(None),
        }
    } else {
        refresh_token(&state, token).await
    };
    let answer = match looked_up {
        Ok(answer) => answer,
        // A token that cannot be looked up is not known to be inactive: a server error, as Dex.
        Err(err) => return EndpointError::from(err).into_json(),
    };
    match answer {
        Some(introspection) => (StatusCode::OK, Json(introspection)).into_response(),
        None => (StatusCode::OK, Json(json!({ "active": false }))).into_response(),
    }
}

/// The access token's introspection, unless its client's tokens end with the session and the
/// session it names has ended (compared by `sid`, so a new login does not revive an old token).
async fn session_allows(state: &AppState, introspection: Introspection) -> Result<Option<Introspection>, StorageError> {
    let session_id = introspection.ext.get("sid").and_then(Value::as_str).unwrap_or_default();
    let Some(sessions) = &state.sessions else { return Ok(Some(introspection)) };
    if session_id.is_empty() {
        return Ok(Some(introspection));
    }
    let Some(client) = state.storage.get::<Client>(&introspection.client_id).await.optional()? else {
        return Ok(Some(introspection));
    };
    if refresh_bound_to_session(&client) && !sessions.alive(session_id).await? {
        return Ok(None);
    }
    Ok(Some(introspection))
}

fn access_token(claims: Map<String, Value>) -> Introspection {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let number = |name: &str| claims.get(name).and_then(Value::as_i64).unwrap_or_default();
    let aud = claims.get("aud").cloned().unwrap_or(Value::Null);
    // One audience is the client; with several, the authorized party is.
    let client_id = match &aud {
        Value::String(one) => one.clone(),
        _ => text("azp"),
    };
    // Dex's identity claims, and the custom claims the access token carries.
    let ext =
        claims.iter().filter(|(name, _)| in_ext(name)).map(|(name, value)| (name.clone(), value.clone())).collect();
    Introspection {
        active: true,
        client_id,
        username: text("preferred_username"),
        exp: number("exp"),
        iat: number("iat"),
        nbf: number("iat"),
        sub: text("sub"),
        aud,
        iss: text("iss"),
        jti: text("jti"),
        token_type: "Bearer",
        token_use: "access_token",
        ext,
    }
}

/// The refresh token's introspection; `None` when it is unknown, revoked, expired or its secret is
/// wrong.
async fn refresh_token(state: &AppState, presented: &str) -> Result<Option<Introspection>, StorageError> {
    let (id, secret) = decode_refresh_token(presented);
    let Some(token) = state.storage.get::<RefreshToken>(&id).await.optional()? else { return Ok(None) };
    let now = state.clock.now();
    let refresh = &state.config.expiry.refresh_tokens;
    let policy = refresh.policy();
    if !secret_accepted(&token, &secret, now, &policy) || expired(&token, now, &policy) {
        return Ok(None);
    }
    let created = token.created_at.unix_timestamp();
    // Dex: the absolute lifetime's end, or the creation time when the lifetime is unlimited.
    let exp = created + i64::try_from(refresh.absolute_lifetime.as_secs()).unwrap_or(i64::MAX - created);
    let claims = &token.claims;
    let mut ext = Map::new();
    let released = Released::by(&token.scopes);
    if released.email {
        ext.insert("email".into(), json!(claims.email));
        ext.insert("email_verified".into(), json!(claims.email_verified));
    }
    if released.groups && !claims.groups.is_empty() {
        ext.insert("groups".into(), json!(claims.groups));
    }
    if released.profile {
        ext.insert("name".into(), json!(claims.username));
        ext.insert("preferred_username".into(), json!(claims.preferred_username));
    }
    Ok(Some(Introspection {
        active: true,
        client_id: token.client_id.clone(),
        username: claims.preferred_username.clone(),
        exp,
        iat: created,
        nbf: created,
        sub: encode_subject(&claims.user_id, &token.connector_id),
        aud: json!(token.client_id),
        iss: state.config.issuer.clone(),
        jti: String::new(),
        token_type: "Bearer",
        token_use: "refresh_token",
        ext,
    }))
}

//! Client authentication at the token endpoint: HTTP Basic (both parts URL-decoded, as RFC 6749 §2.3.1
//! asks) or `client_id`/`client_secret` form fields; secrets compared in constant time; a public
//! client authenticates with its ID alone.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use tessera_core::error::OAuthError;
use tessera_core::model::Client;
use tessera_storage::Optional;

use super::TokenForm;
use crate::AppState;
use crate::http::brute_force::{self, Ip};
use crate::http::error::EndpointError;

fn invalid() -> OAuthError {
    OAuthError::invalid_client("Invalid client credentials.")
}

/// The credentials from an `Authorization: Basic` header, if there is one.
fn basic(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || -> Option<(String, String)> {
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        // Go's url.QueryUnescape, as Dex uses it: %XX sequences and '+' for a space.
        let unescape = |s: &str| -> Option<String> {
            if !s.contains(['%', '+']) {
                return Some(s.to_owned());
            }
            url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
        };
        Some((unescape(id)?, unescape(secret)?))
    };
    Some(decode().ok_or_else(|| OAuthError::invalid_client("client_id or client_secret improperly encoded")))
}

/// The client, once its credentials are checked and its brute-force limit allows the check: a
/// wrong secret for an existing client counts against its client-and-IP budget (an unknown client
/// ID has no secret to guess, so it costs no stored counter).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenForm,
    ip: Ip,
) -> Result<Client, EndpointError> {
    let (id, secret) = match basic(headers) {
        Some(credentials) => credentials?,
        None => (form.get("client_id").to_owned(), form.get("client_secret").to_owned()),
    };
    let limits = brute_force::limits(state);
    // The limit's read beside the client's: no round trip added to the hot path.
    let (client, allowed) = tokio::join!(state.storage.get::<Client>(&id), limits.client_auth_check(&id, ip));
    let client = client.optional()?.ok_or_else(invalid)?;
    allowed?;
    let public_without_secret = client.public && secret.is_empty();
    if !public_without_secret && !bool::from(client.secret.as_bytes().ct_eq(secret.as_bytes())) {
        limits.client_auth_failed(&id, ip).await;
        return Err(invalid().into());
    }
    Ok(client)
}

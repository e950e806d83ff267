//! Validating an authorization request exactly as Dex does (`server/authflow/request.go`): which
//! mistakes are shown to the user as a page (the client or redirect URI cannot be trusted), and which
//! are sent back to the client as `error`, `error_description` and `state` in the redirect's query.

use axum::http::StatusCode;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::model::{Client, Pkce};
use tessera_core::scope;
use tessera_storage::StorageError;

use super::params::Params;
use crate::AppState;

/// Dex's out-of-band redirect URI: the code is shown on a page instead.
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";
pub const DEVICE_CALLBACK_PATH: &str = "/device/callback";

/// A request that passed validation, ready to become an auth request.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub client: Client,
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub nonce: String,
    pub state: String,
    pub force_approval_prompt: bool,
    pub prompt: String,
    pub max_age: i64,
    pub connector_id: String,
    pub pkce: Pkce,
}

impl ValidRequest {
    pub fn is_implicit_or_hybrid(&self) -> bool {
        self.response_types.iter().any(|t| t == "token" || t == "id_token")
    }
}

/// Why a request was refused, and how the user learns it.
#[derive(Debug)]
pub enum RequestError {
    /// Shown as an error page: the client or its redirect URI cannot be trusted with the error.
    Page(StatusCode, String),
    /// Sent back to the client's redirect URI.
    Redirect { redirect_uri: String, state: String, error: OAuthError },
}

/// Public clients without registered redirect URIs may use the out-of-band URI, the device callback
/// or any `http://localhost` or loopback address (any port), as native apps need.
pub fn redirect_uri_allowed(client: &Client, redirect_uri: &str, issuer_path: &str) -> bool {
    if client.redirect_uris.iter().any(|registered| registered == redirect_uri) {
        return true;
    }
    if !client.public || !client.redirect_uris.is_empty() {
        return false;
    }
    // Dex allows the bare device callback; tessera also allows it under the issuer's path, where
    // the device flow actually sends it.
    let device_callback = format!("{issuer_path}{DEVICE_CALLBACK_PATH}");
    if redirect_uri == OOB_REDIRECT_URI || redirect_uri == DEVICE_CALLBACK_PATH || redirect_uri == device_callback {
        return true;
    }
    let Ok(url) = url::Url::parse(redirect_uri) else { return false };
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(domain)) => domain == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

pub async fn parse(state: &AppState, params: &Params) -> Result<ValidRequest, RequestError> {
    let client_id = params.get("client_id");
    let redirect_uri = params.get("redirect_uri").to_owned();
    let client = match state.storage.get::<Client>(client_id).await {
        Ok(client) => client,
        Err(StorageError::NotFound) => {
            return Err(RequestError::Page(StatusCode::NOT_FOUND, format!("Invalid client_id ({client_id:?}).")));
        }
        Err(err) => {
            tracing::error!(error = %err, "loading a client failed");
            return Err(RequestError::Page(StatusCode::INTERNAL_SERVER_ERROR, "Database error.".into()));
        }
    };
    if !redirect_uri_allowed(&client, &redirect_uri, state.config.issuer_path()) {
        return Err(RequestError::Page(
            StatusCode::BAD_REQUEST,
            format!("Unregistered redirect_uri ({redirect_uri:?})."),
        ));
    }

    // From here on the redirect URI is trusted: errors go back to the client.
    let redirect_state = params.get("state").to_owned();
    let fail = |code: ErrorCode, description: String| RequestError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: redirect_state.clone(),
        error: OAuthError::new(code, description),
    };
    let oauth2 = &state.config.oauth2;

    let connector_id = params.get("connector_id").to_owned();
    if !connector_id.is_empty() {
        let allowed = tessera_core::grant::client_may_use(&client.allowed_connectors, &connector_id);
        if state.connectors.get(&connector_id).is_none() || !allowed {
            return Err(fail(ErrorCode::InvalidRequest, "Connector ID does not match a valid Connector".into()));
        }
    }
    if !params.get("request").is_empty() {
        return Err(fail(ErrorCode::RequestNotSupported, "Server does not support request parameter.".into()));
    }

    let code_challenge = params.get("code_challenge").to_owned();
    let method = match params.get("code_challenge_method") {
        "" => "plain".to_owned(),
        method => method.to_owned(),
    };
    if !code_challenge.is_empty() && !oauth2.code_challenge_methods_supported.contains(&method) {
        return Err(fail(ErrorCode::InvalidRequest, format!("Unsupported PKCE challenge method ({method:?}).")));
    }
    if oauth2.pkce_enforce && code_challenge.is_empty() {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "PKCE is required. The code_challenge parameter must be provided.".into(),
        ));
    }

    let scopes = scope::parse(params.get("scope"));
    let peers = match crate::http::trust::PeerTrust::load(state, &scopes).await {
        Ok(peers) => peers,
        Err(err) => {
            let error = crate::http::error::EndpointError::from(err).into_oauth();
            return Err(fail(error.code, error.description));
        }
    };
    if let Err(error) = scope::validate_login_scopes(&scopes, &client.id, &|peer: &str| peers.trusted_peers_of(peer)) {
        return Err(fail(error.code, error.description));
    }

    let response_types: Vec<String> = params.get("response_type").split_whitespace().map(str::to_owned).collect();
    let (mut code, mut id_token, mut token) = (false, false, false);
    for response_type in &response_types {
        match response_type.as_str() {
            "code" => code = true,
            "id_token" => id_token = true,
            "token" => token = true,
            other => return Err(fail(ErrorCode::InvalidRequest, format!("Invalid response type {other:?}"))),
        }
        if !oauth2.response_types.iter().any(|supported| supported == response_type) {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                format!("Unsupported response type {response_type:?}"),
            ));
        }
    }
    if response_types.is_empty() {
        return Err(fail(ErrorCode::InvalidRequest, "No response_type provided".into()));
    }
    if token && !code && !id_token {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "Response type 'token' must be provided with type 'id_token' and/or 'code'".into(),
        ));
    }
    let nonce = params.get("nonce").to_owned();
    if !code && nonce.is_empty() {
        // OpenID Connect: the implicit flow needs a nonce to bind the ID token to the session.
        return Err(fail(ErrorCode::InvalidRequest, "Response type 'token' requires a 'nonce' value.".into()));
    }
    if token && redirect_uri == OOB_REDIRECT_URI {
        return Err(fail(
            ErrorCode::InvalidRequest,
            format!("Cannot use response type 'token' with redirect_uri '{OOB_REDIRECT_URI}'."),
        ));
    }

    let prompt = params.get("prompt").to_owned();
    let prompts: Vec<&str> = prompt.split_whitespace().collect();
    for value in &prompts {
        if !matches!(*value, "none" | "login" | "consent" | "select_account") {
            return Err(fail(ErrorCode::InvalidRequest, format!("Invalid prompt value {value:?}.")));
        }
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Err(fail(ErrorCode::InvalidRequest, "The prompt value 'none' must be used alone.".into()));
    }
    let max_age = match params.get("max_age") {
        "" => -1,
        text => match text.parse::<i64>() {
            Ok(age) if age >= 0 => age,
            _ => return Err(fail(ErrorCode::InvalidRequest, format!("Invalid max_age value {text:?}."))),
        },
    };
    let hint = params.get("id_token_hint");
    if !hint.is_empty() && !id_token_hint_valid(state, hint) {
        return Err(fail(ErrorCode::InvalidRequest, "Invalid id_token_hint.".into()));
    }

    Ok(ValidRequest {
        force_approval_prompt: params.get("approval_prompt") == "force" || prompts.contains(&"consent"),
        client,
        response_types,
        scopes,
        redirect_uri,
        nonce,
        state: redirect_state,
        prompt,
        max_age,
        connector_id,
        pkce: if code_challenge.is_empty() {
            Pkce::default()
        } else {
            Pkce { code_challenge, code_challenge_method: method }
        },
    })
}

/// Dex checks an `id_token_hint`'s signature and issuer only: it may be expired, and for any client.
fn id_token_hint_valid(state: &AppState, hint: &str) -> bool {
    let Some(keys) = state.signer.active() else { return false };
    tessera_jose::verify(hint, &keys.verification)
        .is_ok_and(|claims| claims.get("iss").and_then(|v| v.as_str()) == Some(state.config.issuer.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(public: bool, uris: &[&str]) -> Client {
        Client {
            id: "c".into(),
            public,
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            ..Client::default()
        }
    }

    #[test]
    fn registered_uris_match_exactly() {
        let confidential = client(false, &["https://app.example/cb"]);
        assert!(redirect_uri_allowed(&confidential, "https://app.example/cb", ""));
        assert!(!redirect_uri_allowed(&confidential, "https://app.example/cb/", "/dex"));
        assert!(!redirect_uri_allowed(&confidential, "https://app.example/cb?x=1", "/dex"));
        assert!(
            !redirect_uri_allowed(&confidential, "http://localhost:8080/cb", "/dex"),
            "no loopback for confidential clients"
        );
        assert!(!redirect_uri_allowed(&confidential, OOB_REDIRECT_URI, "/dex"));
    }

    #[test]
    fn public_clients_without_uris_get_native_app_exceptions() {
        let native = client(true, &[]);
        for uri in [
            OOB_REDIRECT_URI,
            DEVICE_CALLBACK_PATH,
            "http://localhost/cb",
            "http://localhost:43117/cb",
            "http://127.0.0.1:9/x",
            "http://[::1]:80/",
        ] {
            assert!(redirect_uri_allowed(&native, uri, "/dex"), "{uri}");
        }
        for uri in
            ["https://localhost/cb", "http://localhost.evil.example/cb", "http://10.0.0.1/cb", "http://example.com/cb"]
        {
            assert!(!redirect_uri_allowed(&native, uri, "/dex"), "{uri}");
        }
        let registered = client(true, &["https://spa.example/cb"]);
        assert!(
            !redirect_uri_allowed(&registered, "http://localhost:8080/cb", "/dex"),
            "registered URIs switch the exceptions off"
        );
    }
}

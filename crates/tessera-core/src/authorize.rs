//! The authorization request's rules (Dex's `server/authflow/request.go`), as pure functions: which
//! redirect URIs a client may use, and, once the redirect URI is trusted, every check of the request
//! in Dex's order — connector, request objects, PKCE, scopes, response types, nonce, prompt,
//! `max_age`, `id_token_hint`. What needs I/O (a connector's existence, a peer's trust, a hint's
//! signature) comes in through [`Lookups`].

use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, Pkce};
use crate::scope;

/// Dex's out-of-band redirect URI: the code is shown on a page instead.
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";
/// Where the device flow's login ends, under the issuer's path.
pub const DEVICE_CALLBACK_PATH: &str = "/device/callback";
/// PKCE's method when a challenge comes without one (RFC 7636 §4.3).
pub const DEFAULT_CHALLENGE_METHOD: &str = "plain";

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

/// The request's parameters, as sent (empty when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<'a> {
    pub redirect_uri: &'a str,
    pub connector_id: &'a str,
    pub request: &'a str,
    pub code_challenge: &'a str,
    pub code_challenge_method: &'a str,
    pub scope: &'a str,
    pub response_type: &'a str,
    pub nonce: &'a str,
    pub prompt: &'a str,
    pub max_age: &'a str,
    pub id_token_hint: &'a str,
    pub approval_prompt: &'a str,
}

/// The server's settings the rules read (`oauth2.*`).
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub response_types: &'a [String],
    pub code_challenge_methods: &'a [String],
    pub pkce_enforce: bool,
}

/// What the rules ask of the world.
pub struct Lookups<'a> {
    pub connector_usable: &'a dyn Fn(&str) -> bool,
    pub trusted_peers_of: &'a dyn Fn(&str) -> Option<Vec<String>>,
    pub hint_valid: &'a dyn Fn(&str) -> bool,
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub nonce: String,
    pub prompt: String,
    /// Seconds; -1 when absent.
    pub max_age: i64,
    pub force_approval_prompt: bool,
    pub connector_id: String,
    pub pkce: Pkce,
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request(description)
}

/// Every check of a request whose client and redirect URI are trusted, in Dex's order; the first
/// failure is the error to send back to the client.
pub fn validate(
    params: &Params,
    client: &Client,
    policy: &Policy,
    lookups: &Lookups,
) -> Result<Authorization, OAuthError> {
    let connector_ok =
        |id: &str| crate::grant::client_may_use(&client.allowed_connectors, id) && (lookups.connector_usable)(id);
    if !params.connector_id.is_empty() && !connector_ok(params.connector_id) {
        return Err(invalid("Connector ID does not match a valid Connector"));
    }
    if !params.request.is_empty() {
        return Err(OAuthError::new(ErrorCode::RequestNotSupported, "Server does not support request parameter."));
    }
    let pkce = pkce(params, policy)?;
    let scopes = scope::parse(params.scope);
    scope::validate_login_scopes(&scopes, &client.id, &lookups.trusted_peers_of)?;
    let response_types = response_types(params.response_type, policy.response_types)?;
    let has = |t: &str| response_types.iter().any(|r| r == t);
    if !has("code") && params.nonce.is_empty() {
        // OpenID Connect: the implicit flow needs a nonce to bind the ID token to the session.
        return Err(invalid("Response type 'token' requires a 'nonce' value."));
    }
    if has("token") && params.redirect_uri == OOB_REDIRECT_URI {
        return Err(invalid(format!("Cannot use response type 'token' with redirect_uri '{OOB_REDIRECT_URI}'.")));
    }
    let prompts = prompts(params.prompt)?;
    let max_age = max_age(params.max_age)?;
    if !params.id_token_hint.is_empty() && !(lookups.hint_valid)(params.id_token_hint) {
        return Err(invalid("Invalid id_token_hint."));
    }
    Ok(Authorization {
        force_approval_prompt: params.approval_prompt == "force" || prompts.contains(&"consent"),
        response_types,
        scopes,
        nonce: params.nonce.to_owned(),
        prompt: params.prompt.to_owned(),
        max_age,
        connector_id: params.connector_id.to_owned(),
        pkce,
    })
}

/// The PKCE challenge: `plain` when the method is left out, a method the server supports, and a
/// challenge at all when `oauth2.pkce.enforce` is on.
pub fn pkce(params: &Params, policy: &Policy) -> Result<Pkce, OAuthError> {
    let method =
        if params.code_challenge_method.is_empty() { DEFAULT_CHALLENGE_METHOD } else { params.code_challenge_method };
    if !params.code_challenge.is_empty() && !policy.code_challenge_methods.iter().any(|m| m == method) {
        return Err(invalid(format!("Unsupported PKCE challenge method ({method:?}).")));
    }
    if policy.pkce_enforce && params.code_challenge.is_empty() {
        return Err(invalid("PKCE is required. The code_challenge parameter must be provided."));
    }
    if params.code_challenge.is_empty() {
        return Ok(Pkce::default());
    }
    Ok(Pkce { code_challenge: params.code_challenge.to_owned(), code_challenge_method: method.to_owned() })
}

/// The response types: known, offered by the server, at least one, and `token` never alone.
pub fn response_types(text: &str, supported: &[String]) -> Result<Vec<String>, OAuthError> {
    let types: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    for response_type in &types {
        if !matches!(response_type.as_str(), "code" | "id_token" | "token") {
            return Err(invalid(format!("Invalid response type {response_type:?}")));
        }
        if !supported.iter().any(|s| s == response_type) {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("Unsupported response type {response_type:?}"),
            ));
        }
    }
    if types.is_empty() {
        return Err(invalid("No response_type provided"));
    }
    let has = |t: &str| types.iter().any(|r| r == t);
    if has("token") && !has("code") && !has("id_token") {
        return Err(invalid("Response type 'token' must be provided with type 'id_token' and/or 'code'"));
    }
    Ok(types)
}

/// The prompt values: OpenID Connect's four, `none` only alone.
pub fn prompts(text: &str) -> Result<Vec<&str>, OAuthError> {
    let prompts: Vec<&str> = text.split_whitespace().collect();
    if let Some(bad) = prompts.iter().find(|p| !matches!(**p, "none" | "login" | "consent" | "select_account")) {
        return Err(invalid(format!("Invalid prompt value {bad:?}.")));
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Err(invalid("The prompt value 'none' must be used alone."));
    }
    Ok(prompts)
}

/// `max_age` in seconds, -1 when absent.
pub fn max_age(text: &str) -> Result<i64, OAuthError> {
    match text {
        "" => Ok(-1),
        text => match text.parse::<i64>() {
            Ok(age) if age >= 0 => Ok(age),
            _ => Err(invalid(format!("Invalid max_age value {text:?}."))),
        },
    }
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

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
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

    fn policy<'a>(types: &'a [String], methods: &'a [String], enforce: bool) -> Policy<'a> {
        Policy { response_types: types, code_challenge_methods: methods, pkce_enforce: enforce }
    }

    #[test]
    fn pkce_defaults_to_plain_and_can_be_enforced() {
        let methods = strings(&["S256", "plain"]);
        let p = policy(&[], &methods, false);
        let plain = pkce(&Params { code_challenge: "abc", ..Params::default() }, &p).unwrap();
        assert_eq!(plain.code_challenge_method, "plain");
        assert_eq!(pkce(&Params::default(), &p).unwrap(), Pkce::default(), "no challenge, no PKCE");
        let s256_only = strings(&["S256"]);
        let err = pkce(&Params { code_challenge: "abc", ..Params::default() }, &policy(&[], &s256_only, false));
        assert_eq!(err.unwrap_err().description, r#"Unsupported PKCE challenge method ("plain")."#);
        let err = pkce(&Params::default(), &policy(&[], &methods, true)).unwrap_err();
        assert_eq!(err.description, "PKCE is required. The code_challenge parameter must be provided.");
    }

    #[test]
    fn response_types_known_offered_and_token_never_alone() {
        let offered = strings(&["code", "id_token", "token"]);
        assert_eq!(response_types("code id_token", &offered).unwrap(), strings(&["code", "id_token"]));
        let err = response_types("code bogus", &offered).unwrap_err();
        assert_eq!(
            (err.code, err.description.as_str()),
            (ErrorCode::InvalidRequest, r#"Invalid response type "bogus""#)
        );
        let err = response_types("token", &strings(&["code"])).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedResponseType);
        assert_eq!(response_types("", &offered).unwrap_err().description, "No response_type provided");
        let err = response_types("token", &offered).unwrap_err();
        assert_eq!(err.description, "Response type 'token' must be provided with type 'id_token' and/or 'code'");
    }

    #[test]
    fn prompt_values_and_max_age() {
        assert_eq!(prompts("login consent").unwrap(), vec!["login", "consent"]);
        assert_eq!(prompts("none login").unwrap_err().description, "The prompt value 'none' must be used alone.");
        assert_eq!(prompts("maybe").unwrap_err().description, r#"Invalid prompt value "maybe"."#);
        assert_eq!(max_age(""), Ok(-1));
        assert_eq!(max_age("0"), Ok(0));
        assert_eq!(max_age("-5").unwrap_err().description, r#"Invalid max_age value "-5"."#);
        assert!(max_age("soon").is_err());
    }

    fn lookups<'a>(connector: &'a dyn Fn(&str) -> bool, hint: &'a dyn Fn(&str) -> bool) -> Lookups<'a> {
        Lookups { connector_usable: connector, trusted_peers_of: &|_| None, hint_valid: hint }
    }

    #[test]
    fn a_valid_request_and_dex_ordering_of_failures() {
        let offered = strings(&["code", "id_token", "token"]);
        let methods = strings(&["S256", "plain"]);
        let p = policy(&offered, &methods, false);
        let yes = |_: &str| true;
        let c = client(false, &["https://app.example/cb"]);
        let params = Params {
            redirect_uri: "https://app.example/cb",
            scope: "openid email",
            response_type: "code",
            prompt: "consent",
            max_age: "60",
            ..Params::default()
        };
        let ok = validate(&params, &c, &p, &lookups(&yes, &yes)).unwrap();
        assert_eq!(ok.scopes, strings(&["openid", "email"]));
        assert!(ok.force_approval_prompt, "prompt=consent forces the approval screen");
        assert_eq!((ok.max_age, ok.nonce.as_str()), (60, ""));

        let implicit = Params { response_type: "id_token token", ..params };
        let err = validate(&implicit, &c, &p, &lookups(&yes, &yes)).unwrap_err();
        assert_eq!(err.description, "Response type 'token' requires a 'nonce' value.");
        let no = |_: &str| false;
        let unknown_connector = Params { connector_id: "gone", scope: "email", ..params };
        let err = validate(&unknown_connector, &c, &p, &lookups(&no, &yes)).unwrap_err();
        assert_eq!(err.description, "Connector ID does not match a valid Connector", "the connector comes first");
        let bad_hint = Params { id_token_hint: "x.y.z", ..params };
        assert_eq!(validate(&bad_hint, &c, &p, &lookups(&yes, &no)).unwrap_err().description, "Invalid id_token_hint.");
        let oob = Params { redirect_uri: OOB_REDIRECT_URI, response_type: "code token", ..params };
        let err = validate(&oob, &c, &p, &lookups(&yes, &yes)).unwrap_err();
        assert_eq!(err.description, "Cannot use response type 'token' with redirect_uri 'urn:ietf:wg:oauth:2.0:oob'.");
    }
}

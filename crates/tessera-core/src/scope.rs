//! Scopes as Dex understands them: which exist, which a login may request, cross-client trust
//! (`audience:server:client_id:<peer>`) and the audience it produces.

use crate::error::OAuthError;

pub const OPENID: &str = "openid";
pub const EMAIL: &str = "email";
pub const PROFILE: &str = "profile";
pub const GROUPS: &str = "groups";
pub const OFFLINE_ACCESS: &str = "offline_access";
pub const FEDERATED_ID: &str = "federated:id";
pub const CROSS_CLIENT_PREFIX: &str = "audience:server:client_id:";

/// Splits a `scope` parameter on whitespace.
pub fn parse(scope: &str) -> Vec<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

pub fn has(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// The peer a cross-client scope names, if it is one.
pub fn cross_client_peer(scope: &str) -> Option<&str> {
    scope.strip_prefix(CROSS_CLIENT_PREFIX).filter(|peer| !peer.is_empty())
}

/// Go's `%q` of a string slice, which Dex uses in its messages: `["a" "b"]`.
pub fn go_quoted(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Whether `client_id` may ask for a token whose audience is `peer`: itself, or a peer that lists it
/// in `trustedPeers`. `trusted_peers_of` returns a peer's `trustedPeers`, or `None` if there is no such
/// client (then it is untrusted).
pub fn trusts(client_id: &str, peer: &str, trusted_peers_of: &impl Fn(&str) -> Option<Vec<String>>) -> bool {
    peer == client_id || trusted_peers_of(peer).is_some_and(|trusted| trusted.iter().any(|t| t == client_id))
}

/// Validates the scopes of a login request as Dex's `/auth` does, in Dex's order: `openid` is
/// required, unknown scopes are refused, and each cross-client scope needs the peer's trust.
pub fn validate_login_scopes(
    scopes: &[String],
    client_id: &str,
    trusted_peers_of: &impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(), OAuthError> {
    let mut unrecognized = Vec::new();
    let mut untrusted = Vec::new();
    for scope in scopes {
        match scope.as_str() {
            OPENID | OFFLINE_ACCESS | EMAIL | PROFILE | GROUPS | FEDERATED_ID => {}
            other => match cross_client_peer(other) {
                None => unrecognized.push(other),
                Some(peer) if !trusts(client_id, peer, trusted_peers_of) => untrusted.push(other),
                Some(_) => {}
            },
        }
    }
    if !has(scopes, OPENID) {
        return Err(OAuthError::invalid_scope(r#"Missing required scope(s) ["openid"]."#));
    }
    if !unrecognized.is_empty() {
        return Err(OAuthError::invalid_scope(format!("Unrecognized scope(s) {}", go_quoted(&unrecognized))));
    }
    if !untrusted.is_empty() {
        return Err(OAuthError::invalid_scope(format!("Client can't request scope(s) {}", go_quoted(&untrusted))));
    }
    Ok(())
}

/// Validates the scopes of a direct grant (client credentials, resource-owner password): only
/// `allowed` and trusted cross-client scopes; `openid` when `require_openid`. Violations are `code`.
pub fn validate_grant_scopes(
    scopes: &[String],
    client_id: &str,
    trusted_peers_of: &impl Fn(&str) -> Option<Vec<String>>,
    allowed: &[&str],
    require_openid: bool,
    code: crate::error::ErrorCode,
) -> Result<(), OAuthError> {
    if require_openid && !has(scopes, OPENID) {
        return Err(OAuthError::new(code, r#"Missing required scope(s) ["openid"]."#));
    }
    let mut refused = Vec::new();
    for scope in scopes {
        let ok = match cross_client_peer(scope) {
            Some(peer) => trusts(client_id, peer, trusted_peers_of),
            None => allowed.contains(&scope.as_str()),
        };
        if !ok {
            refused.push(scope.as_str());
        }
    }
    if !refused.is_empty() {
        return Err(OAuthError::new(code, format!("Invalid scope(s) for this grant: {}", go_quoted(&refused))));
    }
    Ok(())
}

/// The token audience: the peers named by cross-client scopes in request order, then the requesting
/// client if it is not among them (Dex's `GetAudience`).
pub fn audience(scopes: &[String], client_id: &str) -> Vec<String> {
    let mut audience: Vec<String> = Vec::new();
    for peer in scopes.iter().filter_map(|s| cross_client_peer(s)) {
        if !audience.iter().any(|a| a == peer) {
            audience.push(peer.to_owned());
        }
    }
    if !audience.iter().any(|a| a == client_id) {
        audience.push(client_id.to_owned());
    }
    audience
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn scopes(text: &str) -> Vec<String> {
        parse(text)
    }

    /// cli-app trusts web-app; nobody else trusts anyone.
    fn peers(id: &str) -> Option<Vec<String>> {
        match id {
            "cli-app" => Some(vec!["web-app".into()]),
            "web-app" => Some(vec![]),
            _ => None,
        }
    }

    #[test]
    fn openid_is_required_first() {
        let err = validate_login_scopes(&scopes("email bogus"), "web-app", &peers).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        assert_eq!(err.description, r#"Missing required scope(s) ["openid"]."#);
    }

    #[test]
    fn unknown_scopes_are_named_like_dex() {
        let err = validate_login_scopes(&scopes("openid bogus other"), "web-app", &peers).unwrap_err();
        assert_eq!(err.description, r#"Unrecognized scope(s) ["bogus" "other"]"#);
    }

    #[test]
    fn cross_client_needs_the_peers_trust() {
        let ok = "openid email profile groups offline_access federated:id audience:server:client_id:cli-app";
        assert_eq!(validate_login_scopes(&scopes(ok), "web-app", &peers), Ok(()));
        let own = "openid audience:server:client_id:web-app";
        assert_eq!(validate_login_scopes(&scopes(own), "web-app", &peers), Ok(()), "a client trusts itself");
        for peer in ["web-app", "ghost"] {
            let request = format!("openid audience:server:client_id:{peer}");
            let err = validate_login_scopes(&scopes(&request), "cli-app", &peers).unwrap_err();
            assert_eq!(
                err.description,
                format!(r#"Client can't request scope(s) ["audience:server:client_id:{peer}"]"#)
            );
        }
    }

    #[test]
    fn audience_lists_peers_then_the_client() {
        assert_eq!(audience(&scopes("openid"), "web-app"), vec!["web-app"]);
        assert_eq!(
            audience(&scopes("openid audience:server:client_id:cli-app"), "web-app"),
            vec!["cli-app", "web-app"]
        );
        assert_eq!(
            audience(&scopes("openid audience:server:client_id:web-app audience:server:client_id:cli-app"), "web-app"),
            vec!["web-app", "cli-app"],
            "the client is not repeated"
        );
    }
}

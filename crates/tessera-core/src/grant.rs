//! OAuth 2.0 grant types, spelt as Dex spells them in configuration and discovery, and the rules
//! every grant shares: which grants the server offers, which connectors a grant may go through, and
//! when a response carries a refresh token.

use crate::error::OAuthError;

pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const REFRESH_TOKEN: &str = "refresh_token";
/// Not a `/token` grant: Dex's label for the front-channel `token`/`id_token` response types.
pub const IMPLICIT: &str = "implicit";
pub const PASSWORD: &str = "password";
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The grant types a connector can be limited to: every grant in which a user logs in.
pub const CONNECTOR_GRANT_TYPES: [&str; 6] =
    [AUTHORIZATION_CODE, REFRESH_TOKEN, IMPLICIT, PASSWORD, DEVICE_CODE, TOKEN_EXCHANGE];

/// Every grant type `oauth2.grantTypes` may name.
pub const ALL_GRANT_TYPES: [&str; 7] =
    [AUTHORIZATION_CODE, REFRESH_TOKEN, IMPLICIT, PASSWORD, DEVICE_CODE, TOKEN_EXCHANGE, CLIENT_CREDENTIALS];

/// The grant types the server offers (and lists in discovery), sorted, as Dex computes them: the
/// grants it always has, plus `implicit` when a response type includes `token` and `password` when a
/// password connector is set, limited to `oauth2.grantTypes`. An empty `oauth2.grantTypes` means
/// Dex's default list, which has `client_credentials` only when
/// `DEX_CLIENT_CREDENTIAL_GRANT_ENABLED_BY_DEFAULT` is true.
pub fn effective_grant_types(
    configured: &[String],
    response_types: &[String],
    has_password_connector: bool,
    client_credentials_by_default: bool,
) -> Vec<&'static str> {
    let mut offered = vec![AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE, TOKEN_EXCHANGE, CLIENT_CREDENTIALS];
    if response_types.iter().any(|t| t.split_whitespace().any(|word| word == "token")) {
        offered.push(IMPLICIT);
    }
    if has_password_connector {
        offered.push(PASSWORD);
    }
    let allowed: Vec<&str> = if configured.is_empty() {
        let mut defaults = vec![AUTHORIZATION_CODE, IMPLICIT, PASSWORD, REFRESH_TOKEN, DEVICE_CODE, TOKEN_EXCHANGE];
        if client_credentials_by_default {
            defaults.push(CLIENT_CREDENTIALS);
        }
        defaults
    } else {
        configured.iter().map(String::as_str).collect()
    };
    offered.retain(|grant| allowed.contains(grant));
    offered.sort_unstable();
    offered
}

/// Whether a client may send its users through a connector: its `allowedConnectors` name it, or are
/// empty (any connector).
pub fn client_may_use(allowed_connectors: &[String], connector_id: &str) -> bool {
    allowed_connectors.is_empty() || allowed_connectors.iter().any(|allowed| allowed == connector_id)
}

/// Whether a connector lets a grant through: its `grantTypes` name it, or are absent (every grant).
pub fn connector_allows(grant_types: Option<&[String]>, grant: &str) -> bool {
    grant_types.is_none_or(|grants| grants.iter().any(|g| g == grant))
}

/// The connector rules of `/token`, in Dex's order and words: the connector exists (`grant_types` is
/// `Some` with its `grantTypes`), the client may use it, and it allows the grant.
pub fn check_connector(
    allowed_connectors: &[String],
    connector_id: &str,
    grant_types: Option<Option<&[String]>>,
    grant: &str,
) -> Result<(), OAuthError> {
    let Some(grant_types) = grant_types else {
        return Err(OAuthError::invalid_request("Requested connector does not exist."));
    };
    if !client_may_use(allowed_connectors, connector_id) {
        return Err(OAuthError::invalid_grant("Connector not allowed for this client."));
    }
    if !connector_allows(grant_types, grant) {
        return Err(OAuthError::invalid_request("Requested connector does not support this grant type."));
    }
    Ok(())
}

/// Whether a connector can renew an identity later, for the refresh-token decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshCapability {
    /// The connector implements refreshing (Dex's `RefreshConnector`).
    pub refreshes: bool,
    /// Its `grantTypes` allow `refresh_token`.
    pub allows_refresh_grant: bool,
}

/// What a token response carries besides the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshIssue {
    /// No refresh token.
    Omit,
    /// A new refresh token (and offline session) for this login.
    New,
    /// The refresh token the grant just used, as its rotation left it.
    Rotated,
}

/// The refresh-token rule of every grant, in one place: a refresh returns the rotated token; a login
/// (code, password) gets a new one when it asked for `offline_access` through a connector that can
/// refresh and allows it; client credentials and token exchange never get one.
pub fn refresh_issue(grant: &str, scopes: &[String], connector: Option<RefreshCapability>) -> RefreshIssue {
    match grant {
        REFRESH_TOKEN => RefreshIssue::Rotated,
        AUTHORIZATION_CODE | PASSWORD => {
            let capable = connector.is_some_and(|c| c.refreshes && c.allows_refresh_grant);
            if capable && crate::scope::has(scopes, crate::scope::OFFLINE_ACCESS) {
                RefreshIssue::New
            } else {
                RefreshIssue::Omit
            }
        }
        _ => RefreshIssue::Omit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_match_dex() {
        let grants = effective_grant_types(&[], &strings(&["code"]), false, false);
        assert_eq!(grants, vec![AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE, TOKEN_EXCHANGE]);
        let grants = effective_grant_types(&[], &strings(&["code"]), false, true);
        assert_eq!(grants, vec![AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN, DEVICE_CODE, TOKEN_EXCHANGE]);
    }

    #[test]
    fn implicit_and_password_follow_their_switches() {
        let grants = effective_grant_types(&[], &strings(&["code", "id_token token"]), true, false);
        assert_eq!(grants, vec![AUTHORIZATION_CODE, IMPLICIT, PASSWORD, REFRESH_TOKEN, DEVICE_CODE, TOKEN_EXCHANGE]);
        let grants = effective_grant_types(&[], &strings(&["id_token"]), false, false);
        assert!(!grants.contains(&IMPLICIT), "id_token alone is not the implicit grant label");
    }

    #[test]
    fn configured_list_limits_the_offer() {
        let configured = strings(&[CLIENT_CREDENTIALS, AUTHORIZATION_CODE, PASSWORD]);
        let grants = effective_grant_types(&configured, &strings(&["code"]), false, false);
        assert_eq!(grants, vec![AUTHORIZATION_CODE, CLIENT_CREDENTIALS], "password needs a password connector");
    }
    #[test]
    fn a_client_uses_its_allowed_connectors_or_any() {
        assert!(client_may_use(&[], "github"));
        assert!(client_may_use(&strings(&["local", "github"]), "github"));
        assert!(!client_may_use(&strings(&["local"]), "github"));
    }

    #[test]
    fn connector_rules_in_dex_order_and_words() {
        let password_only = strings(&[PASSWORD]);
        let check =
            |allowed: &[&str], grant_types, grant| check_connector(&strings(allowed), "ldap", grant_types, grant);
        assert_eq!(check(&[], Some(None), REFRESH_TOKEN), Ok(()));
        assert_eq!(check(&["ldap"], Some(Some(password_only.as_slice())), PASSWORD), Ok(()));
        let missing = check(&[], None, PASSWORD).unwrap_err();
        assert_eq!(
            (missing.code, missing.description.as_str()),
            (ErrorCode::InvalidRequest, "Requested connector does not exist.")
        );
        let refused = check(&["local"], Some(Some(password_only.as_slice())), REFRESH_TOKEN).unwrap_err();
        assert_eq!(
            (refused.code, refused.description.as_str()),
            (ErrorCode::InvalidGrant, "Connector not allowed for this client."),
            "the client's list is checked before the connector's"
        );
        let limited = check(&[], Some(Some(password_only.as_slice())), REFRESH_TOKEN).unwrap_err();
        assert_eq!(
            (limited.code, limited.description.as_str()),
            (ErrorCode::InvalidRequest, "Requested connector does not support this grant type.")
        );
    }

    #[test]
    fn refresh_tokens_go_to_offline_logins_through_refreshing_connectors() {
        let offline = strings(&["openid", "offline_access"]);
        let online = strings(&["openid"]);
        let able = Some(RefreshCapability { refreshes: true, allows_refresh_grant: true });
        assert_eq!(refresh_issue(AUTHORIZATION_CODE, &offline, able), RefreshIssue::New);
        assert_eq!(refresh_issue(PASSWORD, &offline, able), RefreshIssue::New);
        assert_eq!(refresh_issue(AUTHORIZATION_CODE, &online, able), RefreshIssue::Omit, "no offline_access");
        let cannot = Some(RefreshCapability { refreshes: false, allows_refresh_grant: true });
        assert_eq!(refresh_issue(AUTHORIZATION_CODE, &offline, cannot), RefreshIssue::Omit, "authproxy");
        let forbidden = Some(RefreshCapability { refreshes: true, allows_refresh_grant: false });
        assert_eq!(refresh_issue(PASSWORD, &offline, forbidden), RefreshIssue::Omit, "grantTypes without refresh");
        assert_eq!(refresh_issue(CLIENT_CREDENTIALS, &offline, None), RefreshIssue::Omit);
        assert_eq!(refresh_issue(TOKEN_EXCHANGE, &offline, able), RefreshIssue::Omit);
        assert_eq!(refresh_issue(REFRESH_TOKEN, &online, able), RefreshIssue::Rotated);
    }
}

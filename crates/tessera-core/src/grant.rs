//! OAuth 2.0 grant type names, spelt as Dex spells them in configuration and discovery.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

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
pub const CONNECTOR_GRANT_TYPES: [&str; 6] = [
    AUTHORIZATION_CODE,
    REFRESH_TOKEN,
    IMPLICIT,
    PASSWORD,
    DEVICE_CODE,
    TOKEN_EXCHANGE,
];

/// Every grant type `oauth2.grantTypes` may name.
pub const ALL_GRANT_TYPES: [&str; 7] = [
    AUTHORIZATION_CODE,
    REFRESH_TOKEN,
    IMPLICIT,
    PASSWORD,
    DEVICE_CODE,
    TOKEN_EXCHANGE,
    CLIENT_CREDENTIALS,
];

//! GetVersion and GetDiscovery: what this server is and the discovery document it serves over HTTP.

use tessera_jose::Algorithm;

use super::{API_VERSION, proto};
use crate::config::Config;
use crate::http::discovery::Discovery;

pub(super) fn version() -> proto::VersionResp {
    proto::VersionResp { server: env!("CARGO_PKG_VERSION").to_owned(), api: API_VERSION }
}

/// The same document as `/.well-known/openid-configuration`, built once.
pub(super) fn discovery(config: &Config, algorithm: Algorithm) -> proto::DiscoveryResp {
    let d = Discovery::new(config, algorithm);
    let strings = |items: Vec<&'static str>| items.into_iter().map(str::to_owned).collect();
    proto::DiscoveryResp {
        issuer: d.issuer,
        authorization_endpoint: d.authorization_endpoint,
        token_endpoint: d.token_endpoint,
        jwks_uri: d.jwks_uri,
        userinfo_endpoint: d.userinfo_endpoint,
        device_authorization_endpoint: d.device_authorization_endpoint,
        introspection_endpoint: d.introspection_endpoint,
        grant_types_supported: strings(d.grant_types_supported),
        response_types_supported: d.response_types_supported,
        subject_types_supported: strings(d.subject_types_supported),
        id_token_signing_alg_values_supported: strings(d.id_token_signing_alg_values_supported),
        code_challenge_methods_supported: d.code_challenge_methods_supported,
        scopes_supported: strings(d.scopes_supported),
        token_endpoint_auth_methods_supported: strings(d.token_endpoint_auth_methods_supported),
        claims_supported: strings(d.claims_supported),
    }
}

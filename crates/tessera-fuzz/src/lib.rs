//! Fuzz targets: each takes arbitrary bytes and feeds them to one of tessera's parsers of untrusted
//! input, failing (by panicking) only when tessera breaks a promise: a panic of its own, a 5xx for bad
//! input, a token that verifies without its key. `fuzz/` runs them under libFuzzer (`cargo fuzz`,
//! `scripts/fuzz.sh`); `tests/it` runs each over its committed corpus and random mutations for a few
//! seconds on every `cargo test`.
// A fuzz target reports a broken promise by panicking: that is what libFuzzer detects and keeps.
#![allow(clippy::panic)]

mod http;

use std::sync::OnceLock;

use serde_json::Value;
use tessera_claims::EnrichmentContext;
use tessera_claims::template::Template;
use tessera_core::model::Claims;
use tessera_jose::{PrivateKey, PublicKey};

pub use http::http;

/// A fuzz target: panics when tessera breaks a promise on this input.
pub type Target = fn(&[u8]);

/// The targets, by the name their corpus directory and `cargo fuzz` use.
pub const TARGETS: [(&str, Target); 5] =
    [("config", config), ("http", http), ("jws", jws), ("jwk", jwk), ("claims_template", claims_template)];

/// The configuration loader: any text is a configuration or a list of errors.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = tessera_server::config::Env::default();
    if let Err(errors) = tessera_server::config::parse(text, "fuzz.yaml", &env) {
        assert!(!errors.errors.is_empty(), "a refused configuration says why");
    }
}

/// The key the JWS target verifies against (the corpus holds tokens it signed, so that the fuzzer
/// starts from valid ones), and a key of the other algorithm.
pub fn keys() -> &'static (PrivateKey, Vec<PublicKey>) {
    static KEYS: OnceLock<(PrivateKey, Vec<PublicKey>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let stored: Value = serde_json::from_str(include_str!("../../../fuzz/keys/es256.json")).unwrap_or_default();
        let signing = PrivateKey::from_stored(&stored)
            .or_else(|_| PrivateKey::generate(tessera_jose::Algorithm::ES256))
            .unwrap_or_else(|err| panic!("no signing key for the jws target: {err}"));
        let other = PrivateKey::generate(tessera_jose::Algorithm::RS256)
            .unwrap_or_else(|err| panic!("no second key for the jws target: {err}"));
        let public = [signing.public_jwk(), other.public_jwk()]
            .iter()
            .map(|jwk| PublicKey::from_jwk(jwk).unwrap_or_else(|err| panic!("our own JWK: {err}")))
            .collect();
        (signing, public)
    })
}

/// JWS parsing and verification (ID-token hints, subject tokens): nothing verifies without a key,
/// and what verifies is exactly the token's own payload.
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    assert!(tessera_jose::verify(token, &[]).is_err(), "verified without a key: {token:?}");
    let (_, public) = keys();
    if let Ok(claims) = tessera_jose::verify(token, public) {
        let payload = token.split('.').nth(1).unwrap_or_default();
        let decoded =
            base64_url(payload).unwrap_or_else(|| panic!("verified a payload that is not base64url: {token:?}"));
        let expected: serde_json::Map<String, Value> = serde_json::from_slice(&decoded)
            .unwrap_or_else(|err| panic!("verified a payload that is not a JSON object ({err}): {token:?}"));
        assert_eq!(claims, expected, "the claims are the payload's");
    }
}

fn base64_url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

/// A JSON Web Key from anywhere (a client's `jwks`, an upstream's keys): refused or usable, never a panic.
pub fn jwk(data: &[u8]) {
    let Ok(jwk) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(key) = PublicKey::from_jwk(&jwk) {
        let _ = tessera_jose::verify("e30.e30.AAAA", &[key]);
    }
}

/// The claims-argument templates (`{{.Email}}`): compiled or refused, and a compiled one renders.
pub fn claims_template(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Ok(template) = Template::compile(source) else { return };
    let context = EnrichmentContext {
        identity: Claims {
            user_id: "0-385-28089-0".into(),
            username: "Kilgore Trout".into(),
            preferred_username: "kilgore".into(),
            email: "kilgore@example.com".into(),
            email_verified: true,
            groups: vec!["authors".into(), "{{.Email}}".into()],
        },
        connector_id: "local".into(),
        client_id: "example-app".into(),
        scopes: vec!["openid".into()],
        grant_type: "authorization_code".into(),
        redirect_uri: "http://127.0.0.1:5555/callback".into(),
    };
    let _ = template.render(&context);
    assert_eq!(template.source(), source);
}

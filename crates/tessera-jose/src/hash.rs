//! `at_hash` and `c_hash` (OpenID Connect Core §3.3.2.11): the left half of the hash of the access
//! token or code, with the hash that matches the signing algorithm, base64url-encoded.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Algorithm;

pub fn left_half_hash(alg: Algorithm, value: &str) -> String {
    let algorithm = match alg {
        // Both are 256-bit algorithms, so both hash with SHA-256.
        Algorithm::RS256 | Algorithm::ES256 => &digest::SHA256,
    };
    let digest = digest::digest(algorithm, value.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_computation() {
        // base64url(sha256(token)[..16]) computed with Python's hashlib.
        assert_eq!(left_half_hash(Algorithm::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNuAHg"), "ZQEoa-rk7Pk57DHxTr6SWA");
        assert_eq!(left_half_hash(Algorithm::ES256, "jHkWEdUXMU1BwAsC4vtUsZwnNuAHxW"), "OXXOm_EV8PuSzoOwk8lauw");
    }
}

//! Verifying compact JWS tokens against public keys (our own, from storage, or an upstream's JWKS).

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::{Algorithm, JoseError};

/// A public key from a JWK, parsed once: verifying a token does no key decoding.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    /// The key as the JWK gave it (RSA: PKCS#1 DER; EC: the uncompressed point), for equality.
    bytes: Vec<u8>,
    /// `None` when aws-lc rejects the key: such a key verifies nothing.
    parsed: Option<ParsedPublicKey>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        (&self.kid, self.alg, &self.bytes) == (&other.kid, other.alg, &other.bytes)
    }
}

impl Eq for PublicKey {}

pub(crate) fn b64(jwk: &Value, field: &str) -> Result<Vec<u8>, JoseError> {
    let text =
        jwk.get(field).and_then(Value::as_str).ok_or_else(|| JoseError::InvalidKey(format!("JWK has no {field}")))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| JoseError::InvalidKey(format!("JWK {field} is not base64url")))
}

/// DER of one ASN.1 element: tag, definite length, contents.
pub(crate) fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    match len {
        0..=127 => out.push(len as u8),
        128..=255 => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(contents);
    out
}

/// A big-endian unsigned integer as a DER INTEGER (minimal, non-negative).
pub(crate) fn der_unsigned(big_endian: &[u8]) -> Vec<u8> {
    let digits = match big_endian.iter().position(|b| *b != 0) {
        Some(first) => &big_endian[first..],
        None => &[0u8][..],
    };
    let mut contents = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_some_and(|b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(digits);
    der(0x02, &contents)
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    der(0x30, &[der_unsigned(n), der_unsigned(e)].concat())
}

impl PublicKey {
    pub fn from_jwk(jwk: &Value) -> Result<Self, JoseError> {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let (alg, bytes, algorithm): (_, _, &'static dyn signature::VerificationAlgorithm) =
            match jwk.get("kty").and_then(Value::as_str) {
                Some("RSA") => (
                    Algorithm::RS256,
                    rsa_public_key_der(&b64(jwk, "n")?, &b64(jwk, "e")?),
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                ),
                Some("EC") if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
                    let mut point = vec![4u8];
                    point.extend(b64(jwk, "x")?);
                    point.extend(b64(jwk, "y")?);
                    (Algorithm::ES256, point, &signature::ECDSA_P256_SHA256_FIXED)
                }
                other => return Err(JoseError::InvalidKey(format!("unsupported key type {other:?}"))),
            };
        let parsed = ParsedPublicKey::new(algorithm, &bytes).ok();
        Ok(Self { kid, alg, bytes, parsed })
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        self.parsed.as_ref().is_some_and(|key| key.verify_sig(message, sig).is_ok())
    }
}

/// Checks the signature of a compact JWS with the key its header names (or, without a `kid`, any
/// key of its algorithm) and returns the claims. `alg: none` and unknown algorithms are refused.
/// Expiry, issuer and audience are the caller's to check.
pub fn verify(token: &str, keys: &[PublicKey]) -> Result<Map<String, Value>, JoseError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("expected three dot-separated parts"));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JoseError::Malformed("invalid base64url"));
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| JoseError::Malformed("header"))?;
    let alg = Algorithm::parse(header.get("alg").and_then(Value::as_str).unwrap_or("none"))?;
    let kid = header.get("kid").and_then(Value::as_str);
    let signature = decode(sig)?;
    let signed = &token[..token.len() - sig.len() - 1];
    let mut candidates = keys.iter().filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid)).peekable();
    if candidates.peek().is_none() {
        return Err(JoseError::UnknownKey);
    }
    if !candidates.any(|key| key.verifies(signed.as_bytes(), &signature)) {
        return Err(JoseError::BadSignature);
    }
    match serde_json::from_slice(&decode(payload)?) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(JoseError::Malformed("payload is not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_non_negative_in_der() {
        assert_eq!(der_unsigned(&[1, 0, 1]), [0x02, 3, 1, 0, 1]);
        assert_eq!(der_unsigned(&[0, 0, 0x80]), [0x02, 2, 0, 0x80], "leading zeros go, a high bit gets a zero");
        assert_eq!(der_unsigned(&[]), [0x02, 1, 0]);
    }

    #[test]
    fn long_contents_use_the_long_length_form() {
        let modulus = [0xC5u8; 256];
        let key = rsa_public_key_der(&modulus, &[1, 0, 1]);
        // SEQUENCE, 2-byte length; INTEGER of 257 bytes (a zero, then the modulus); INTEGER 65537.
        assert_eq!(key[..4], [0x30, 0x82, 0x01, 0x0A]);
        assert_eq!(key[4..9], [0x02, 0x82, 0x01, 0x01, 0x00]);
        assert_eq!(key[key.len() - 5..], [0x02, 3, 1, 0, 1]);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
    }
}

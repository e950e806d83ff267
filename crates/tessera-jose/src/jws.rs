//! Verifying compact JWS tokens against public keys (our own, from storage, or an upstream's JWKS).

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::{Algorithm, JoseError};

/// A parsed public key from a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { point: Vec<u8> },
}

fn b64(jwk: &Value, field: &str) -> Result<Vec<u8>, JoseError> {
    let text =
        jwk.get(field).and_then(Value::as_str).ok_or_else(|| JoseError::InvalidKey(format!("JWK has no {field}")))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| JoseError::InvalidKey(format!("JWK {field} is not base64url")))
}

impl PublicKey {
    pub fn from_jwk(jwk: &Value) -> Result<Self, JoseError> {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => Ok(Self {
                kid,
                alg: Algorithm::RS256,
                material: Material::Rsa { n: b64(jwk, "n")?, e: b64(jwk, "e")? },
            }),
            Some("EC") if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
                let mut point = vec![4u8];
                point.extend(b64(jwk, "x")?);
                point.extend(b64(jwk, "y")?);
                Ok(Self { kid, alg: Algorithm::ES256, material: Material::Ec { point } })
            }
            other => Err(JoseError::InvalidKey(format!("unsupported key type {other:?}"))),
        }
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Rsa { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig).is_ok()
            }
            Material::Ec { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig).is_ok()
            }
        }
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

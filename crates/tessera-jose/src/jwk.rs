//! Private keys as Dex stores them: a JSON Web Key with its private parameters (RFC 7518 §6), as
//! go-jose writes it. Read so that tessera keeps signing with the key a Dex it replaces was using.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::Value;

use crate::jws::{b64, der, der_unsigned};
use crate::{Algorithm, JoseError, PrivateKey};

impl PrivateKey {
    /// A private RSA (RS256) or P-256 (ES256) key from its JWK; the `kid` is kept, so tokens signed
    /// with it before still name a key that `/keys` publishes.
    pub fn from_jwk(jwk: &Value) -> Result<Self, JoseError> {
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .filter(|kid| !kid.is_empty())
            .ok_or_else(|| JoseError::InvalidKey("JWK has no kid".into()))?
            .to_owned();
        match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                // PKCS#1 RSAPrivateKey: version 0, then n, e, d, p, q, dp, dq, qi.
                let mut fields = der(0x02, &[0]);
                for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                    fields.extend(der_unsigned(&b64(jwk, name)?));
                }
                let pair = RsaKeyPair::from_der(&der(0x30, &fields))
                    .map_err(|e| JoseError::InvalidKey(format!("RSA JWK: {e}")))?;
                let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().map_err(|_| JoseError::Crypto)?;
                Self::from_pkcs8(kid, Algorithm::RS256, pkcs8.as_ref().to_vec())
            }
            Some("EC") if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
                let mut point = vec![4u8];
                point.extend(b64(jwk, "x")?);
                point.extend(b64(jwk, "y")?);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &b64(jwk, "d")?,
                    &point,
                )
                .map_err(|e| JoseError::InvalidKey(format!("EC JWK: {e}")))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| JoseError::Crypto)?;
                Self::from_pkcs8(kid, Algorithm::ES256, pkcs8.as_ref().to_vec())
            }
            other => Err(JoseError::InvalidKey(format!("unsupported private key type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PublicKey, verify};
    use serde_json::json;

    fn public_half(jwk: &Value) -> Value {
        let mut public = jwk.clone();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            public.as_object_mut().unwrap().remove(private);
        }
        public
    }

    #[test]
    fn a_dex_key_signs_what_its_public_jwk_verifies() {
        for fixture in [include_str!("../testdata/dex-rsa.jwk.json"), include_str!("../testdata/dex-ec.jwk.json")] {
            let jwk: Value = serde_json::from_str(fixture).unwrap();
            let key = PrivateKey::from_jwk(&jwk).unwrap();
            assert_eq!(key.kid(), jwk["kid"]);
            assert_eq!(key.alg().as_str(), jwk["alg"]);
            let published = key.public_jwk();
            for field in ["kty", "kid", "n", "e", "x", "y", "crv"] {
                assert_eq!(published.get(field), jwk.get(field), "{field}");
            }
            let token = key.sign_jwt(&json!({"sub": "x"})).unwrap();
            let verified = verify(&token, &[PublicKey::from_jwk(&public_half(&jwk)).unwrap()]).unwrap();
            assert_eq!(verified["sub"], "x");
            // The stored form round-trips to the same key.
            assert_eq!(PrivateKey::from_stored(&key.to_stored()).unwrap().public_jwk(), published);
        }
    }

    #[test]
    fn broken_keys_are_refused_with_a_reason() {
        let mut jwk: Value = serde_json::from_str(include_str!("../testdata/dex-rsa.jwk.json")).unwrap();
        jwk["d"] = json!("AQAB");
        assert!(PrivateKey::from_jwk(&jwk).unwrap_err().to_string().contains("RSA JWK"));
        jwk.as_object_mut().unwrap().remove("kid");
        assert!(PrivateKey::from_jwk(&jwk).unwrap_err().to_string().contains("kid"));
        assert!(PrivateKey::from_jwk(&json!({"kty": "oct", "kid": "k"})).is_err());
    }
}

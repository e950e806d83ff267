//! Private signing keys: generated, stored (PKCS#8 inside our JSON), parsed once, and used to sign.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::JoseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    RS256,
    ES256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
        }
    }

    pub fn parse(name: &str) -> Result<Self, JoseError> {
        match name {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(JoseError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A parsed private key, ready to sign without further decoding.
pub struct PrivateKey {
    kid: String,
    alg: Algorithm,
    pkcs8: Vec<u8>,
    inner: Inner,
    /// `base64url({"alg","kid"}) + "."`: the start of every token this key signs, encoded once.
    jws_prefix: String,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// 20 random bytes in hex: Dex's key IDs are 40 hex characters.
fn new_kid() -> Result<String, JoseError> {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| JoseError::Crypto)?;
    Ok(tessera_core::bytes::to_hex(&bytes))
}

impl PrivateKey {
    /// A fresh key: RSA-2048 for RS256 (slow, ~100 ms: run it off the async executor), P-256 for ES256.
    pub fn generate(alg: Algorithm) -> Result<Self, JoseError> {
        let pkcs8 = match alg {
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| JoseError::Crypto)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().map_err(|_| JoseError::Crypto)?;
                der.as_ref().to_vec()
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| JoseError::Crypto)?;
                pair.to_pkcs8v1().map_err(|_| JoseError::Crypto)?.as_ref().to_vec()
            }
        };
        Self::from_pkcs8(new_kid()?, alg, pkcs8)
    }

    pub(crate) fn from_pkcs8(kid: String, alg: Algorithm, pkcs8: Vec<u8>) -> Result<Self, JoseError> {
        let inner = match alg {
            Algorithm::RS256 => {
                Inner::Rsa(RsaKeyPair::from_pkcs8(&pkcs8).map_err(|e| JoseError::InvalidKey(e.to_string()))?)
            }
            Algorithm::ES256 => Inner::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map_err(|e| JoseError::InvalidKey(e.to_string()))?,
            ),
        };
        let header = json!({ "alg": alg.as_str(), "kid": kid }).to_string();
        let jws_prefix = format!("{}.", URL_SAFE_NO_PAD.encode(header));
        Ok(Self { kid, alg, pkcs8, inner, jws_prefix })
    }

    /// The form kept in storage (`Keys.signing_key`): `{kid, alg, pkcs8}`.
    pub fn to_stored(&self) -> Value {
        json!({ "kid": self.kid, "alg": self.alg.as_str(), "pkcs8": URL_SAFE_NO_PAD.encode(&self.pkcs8) })
    }

    pub fn from_stored(stored: &Value) -> Result<Self, JoseError> {
        let field = |name: &str| {
            stored
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| JoseError::InvalidKey(format!("stored key has no {name}")))
        };
        let pkcs8 = URL_SAFE_NO_PAD
            .decode(field("pkcs8")?)
            .map_err(|_| JoseError::InvalidKey("stored key is not base64url".into()))?;
        Self::from_pkcs8(field("kid")?.to_owned(), Algorithm::parse(field("alg")?)?, pkcs8)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK, as `/keys` publishes it.
    pub fn public_jwk(&self) -> Value {
        match &self.inner {
            Inner::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Inner::Ec(pair) => {
                // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
                let point = pair.public_key().as_ref();
                let (x, y) = point.get(1..).unwrap_or_default().split_at(point.len().saturating_sub(1) / 2);
                json!({
                    "use": "sig",
                    "kty": "EC",
                    "kid": self.kid,
                    "alg": "ES256",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                })
            }
        }
    }

    /// The raw JWS signature of `message` (RSASSA-PKCS1-v1_5, or ECDSA as r‖s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| JoseError::Crypto)?;
                Ok(signature)
            }
            Inner::Ec(pair) => Ok(pair.sign(&rng, message).map_err(|_| JoseError::Crypto)?.as_ref().to_vec()),
        }
    }

    /// A compact JWS of `claims` with header `{alg, kid}` (what Dex's tokens carry).
    pub fn sign_jwt(&self, claims: &impl Serialize) -> Result<String, JoseError> {
        self.sign_payload(&serde_json::to_vec(claims).map_err(|_| JoseError::Crypto)?)
    }

    /// A compact JWS of an already serialised JSON payload.
    pub fn sign_payload(&self, payload: &[u8]) -> Result<String, JoseError> {
        let mut token = String::with_capacity(self.jws_prefix.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&self.jws_prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

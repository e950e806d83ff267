//! Keys, tokens and rotation, with tokens checked by an independent JWT library (jsonwebtoken).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_core::model::Keys;
use tessera_jose::{Algorithm, JoseError, PrivateKey, PublicKey, RotationError, jwks, needs_rotation, rotate, verify};
use time::macros::datetime;

fn claims() -> Value {
    json!({"iss": "https://id.example/dex", "sub": "CgExEgVsb2NhbA", "aud": "app", "exp": 4102444800_i64, "iat": 1700000000})
}

/// What an app does with a token: fetch the JWK by `kid` and verify with its own library.
fn verify_independently(token: &str, jwk: &Value, alg: jsonwebtoken::Algorithm) -> Value {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&["app"]);
    validation.set_issuer(&["https://id.example/dex"]);
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.kid.as_deref(), jwk.common.key_id.as_deref());
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

#[test]
fn tokens_signed_with_each_algorithm_verify_in_an_independent_library() {
    for (alg, theirs) in
        [(Algorithm::RS256, jsonwebtoken::Algorithm::RS256), (Algorithm::ES256, jsonwebtoken::Algorithm::ES256)]
    {
        let key = PrivateKey::generate(alg).unwrap();
        assert_eq!(key.kid().len(), 40, "Dex-style 40-hex-character kid");
        let token = key.sign_jwt(&claims()).unwrap();
        assert_eq!(verify_independently(&token, &key.public_jwk(), theirs), claims());
        let ours = verify(&token, &[PublicKey::from_jwk(&key.public_jwk()).unwrap()]).unwrap();
        assert_eq!(Value::Object(ours), claims());
    }
}

#[test]
fn stored_keys_parse_back_to_the_same_key() {
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let key = PrivateKey::generate(alg).unwrap();
        let again = PrivateKey::from_stored(&key.to_stored()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_jwk(), key.public_jwk());
        let token = again.sign_jwt(&claims()).unwrap();
        verify(&token, &[PublicKey::from_jwk(&key.public_jwk()).unwrap()]).unwrap();
    }
    assert!(PrivateKey::from_stored(&json!({"kid": "k", "alg": "RS256", "pkcs8": "AAAA"})).is_err());
    assert!(matches!(
        PrivateKey::from_stored(&json!({"kid": "k", "alg": "HS256", "pkcs8": "AAAA"})),
        Err(JoseError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn forged_tampered_and_unsigned_tokens_are_refused() {
    let key = PrivateKey::generate(Algorithm::ES256).unwrap();
    let other = PrivateKey::generate(Algorithm::ES256).unwrap();
    let keys = [PublicKey::from_jwk(&key.public_jwk()).unwrap()];
    let token = key.sign_jwt(&claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://id.example/dex","sub":"admin"}"#);
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(verify(&tampered, &keys), Err(JoseError::BadSignature));

    let unsigned_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let unsigned = format!("{unsigned_header}.{}.", parts[1]);
    assert_eq!(verify(&unsigned, &keys), Err(JoseError::UnsupportedAlgorithm("none".into())));

    let by_stranger = other.sign_jwt(&claims()).unwrap();
    assert_eq!(verify(&by_stranger, &keys), Err(JoseError::UnknownKey), "a kid we never published");
    assert!(matches!(verify("not.a-token", &keys), Err(JoseError::Malformed(_))));
}

#[test]
fn rotation_follows_dex() {
    let t0 = datetime!(2026-11-23 00:00 UTC);
    let period = Duration::from_secs(6 * 3600);
    let id_token_ttl = Duration::from_secs(24 * 3600);
    let first = PrivateKey::generate(Algorithm::ES256).unwrap();
    let second = PrivateKey::generate(Algorithm::ES256).unwrap();
    let third = PrivateKey::generate(Algorithm::ES256).unwrap();

    assert!(needs_rotation(&Keys::default(), t0), "no key yet");
    let keys = rotate(Keys::default(), &first, t0, period, id_token_ttl).unwrap();
    assert_eq!(keys.next_rotation, t0 + period);
    assert!(keys.verification_keys.is_empty());

    let early = t0 + Duration::from_secs(3600);
    assert_eq!(rotate(keys.clone(), &second, early, period, id_token_ttl), Err(RotationError::AlreadyRotated));

    let t1 = t0 + period;
    let keys = rotate(keys, &second, t1, period, id_token_ttl).unwrap();
    assert_eq!(keys.signing_key_pub.as_ref().unwrap()["kid"], second.kid());
    assert_eq!(keys.verification_keys.len(), 1);
    assert_eq!(keys.verification_keys[0].public_key["kid"], first.kid());
    assert_eq!(keys.verification_keys[0].expiry, t1 + id_token_ttl, "kept as long as its tokens live");

    let published: Vec<String> =
        jwks(&keys)["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(published, vec![second.kid().to_owned(), first.kid().to_owned()], "current key first");

    // After the old key's tokens have all expired, it is dropped at the next rotation.
    let late = t1 + id_token_ttl + Duration::from_secs(1);
    let keys = rotate(keys, &third, late, period, id_token_ttl).unwrap();
    let kids: Vec<&Value> = keys.verification_keys.iter().map(|k| &k.public_key["kid"]).collect();
    assert_eq!(kids, vec![&json!(second.kid())]);
}

//! Discovery and `/keys` as an app sees them, and key rotation shared by replicas on one database.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::clock::TestClock;
use tessera_server::config::{Config, Env, parse};
use tessera_server::signer::Signer;
use time::OffsetDateTime;

use crate::serve::start;

fn now() -> OffsetDateTime {
    tessera_core::clock::test_epoch()
}

fn config(extra: &str) -> Config {
    let text = format!(
        "issuer: http://127.0.0.1:5556/dex/\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:0\nenablePasswordDB: true\n{extra}"
    );
    parse(&text, "test.yaml", &Env::default()).unwrap().config
}

#[tokio::test]
async fn discovery_matches_dex() {
    let running = start(config(""), Arc::new(TestClock::new(now()))).await;
    let response = reqwest::get(format!("{}/dex/.well-known/openid-configuration", running.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(
        document,
        json!({
            "issuer": "http://127.0.0.1:5556/dex/",
            "authorization_endpoint": "http://127.0.0.1:5556/dex/auth",
            "token_endpoint": "http://127.0.0.1:5556/dex/token",
            "jwks_uri": "http://127.0.0.1:5556/dex/keys",
            "userinfo_endpoint": "http://127.0.0.1:5556/dex/userinfo",
            "device_authorization_endpoint": "http://127.0.0.1:5556/dex/device/code",
            "introspection_endpoint": "http://127.0.0.1:5556/dex/token/introspect",
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": [
                "iss", "sub", "aud", "iat", "exp", "email", "email_verified", "locale", "name",
                "preferred_username", "at_hash", "groups", "federated_claims"
            ]
        }),
        "the issuer is repeated verbatim; endpoints do not double the slash"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn discovery_follows_the_configuration() {
    let extra = "signer:\n  type: local\n  config:\n    keysRotationPeriod: 1h\n    algorithm: ES256\noauth2:\n  responseTypes: [code, token, id_token]\n  grantTypes: [authorization_code, implicit, client_credentials]\n  pkce:\n    codeChallengeMethodsSupported: [S256]\n";
    let running = start(config(extra), Arc::new(TestClock::new(now()))).await;
    let document: Value = reqwest::get(format!("{}/dex/.well-known/openid-configuration", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(document["grant_types_supported"], json!(["authorization_code", "client_credentials", "implicit"]));
    assert_eq!(document["response_types_supported"], json!(["code", "id_token", "token"]));
    assert_eq!(document["code_challenge_methods_supported"], json!(["S256"]));
    running.shutdown().await;
}

#[tokio::test]
async fn tokens_signed_by_the_server_verify_against_its_jwks() {
    for (extra, alg) in [
        ("", jsonwebtoken::Algorithm::RS256),
        (
            "signer:\n  type: local\n  config:\n    keysRotationPeriod: 6h\n    algorithm: ES256\n",
            jsonwebtoken::Algorithm::ES256,
        ),
    ] {
        let running = start(config(extra), Arc::new(TestClock::new(now()))).await;
        let response = reqwest::get(format!("{}/dex/keys", running.base)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "max-age=600, must-revalidate");
        let jwks: jsonwebtoken::jwk::JwkSet = response.json().await.unwrap();
        assert_eq!(jwks.keys.len(), 1);

        let active = running.state.signer.active().unwrap();
        let claims = json!({"iss": "http://127.0.0.1:5556/dex/", "sub": "x", "aud": "app", "exp": 4102444800_i64});
        let token = active.signing.sign_jwt(&claims).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let jwk = jwks.find(&kid).expect("the token's kid is published");
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&["app"]);
        let decoded =
            jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation)
                .unwrap();
        assert_eq!(decoded.claims, claims);
        running.shutdown().await;
    }
}

fn kids(jwks: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(jwks).unwrap();
    value["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// Three replicas on one Postgres: they agree on one key at start, rotate exactly once when it is
/// due, and keep publishing the old key for verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_one_database_rotate_exactly_once() {
    let Some(database) = crate::serve::ScratchDatabase::create("keys").await else { return };
    let storage = &database.storage;
    let text = format!(
        "issuer: https://id.example/dex\n{storage}web:\n  http: 127.0.0.1:0\nsigner:\n  type: local\n  config:\n    keysRotationPeriod: 6h\n    algorithm: ES256\n"
    );
    let config = parse(&text, "replica.yaml", &Env::default()).unwrap().config;
    let clock = Arc::new(TestClock::new(now()));

    let mut replicas = Vec::new();
    for _ in 0..3 {
        let storage = tessera_server::server::open_storage(&config).await.unwrap();
        replicas.push(Arc::new(Signer::new(storage, clock.clone(), &config)));
    }
    let starts: Vec<_> = replicas
        .iter()
        .map(|r| {
            tokio::spawn({
                let r = r.clone();
                async move { r.rotate_and_load().await.unwrap().jwks.clone() }
            })
        })
        .collect();
    let mut first = Vec::new();
    for start in starts {
        first.push(kids(&start.await.unwrap()));
    }
    assert_eq!(first[0].len(), 1);
    assert!(first.iter().all(|k| *k == first[0]), "every replica uses the one key that was created: {first:?}");

    clock.advance(time::Duration::hours(6));
    let rotations: Vec<_> = replicas
        .iter()
        .map(|r| {
            tokio::spawn({
                let r = r.clone();
                async move { r.rotate_and_load().await.unwrap().jwks.clone() }
            })
        })
        .collect();
    let mut after = Vec::new();
    for rotation in rotations {
        after.push(kids(&rotation.await.unwrap()));
    }
    assert!(after.iter().all(|k| *k == after[0]), "one rotation, seen by all: {after:?}");
    assert_eq!(after[0].len(), 2, "the new key, then the old one kept for verification");
    assert_eq!(after[0][1], first[0][0]);
    assert_ne!(after[0][0], first[0][0]);

    drop(replicas);
    tokio::time::sleep(Duration::from_millis(100)).await;
    database.drop().await;
}

//! The limit for `client_credentials`: the least a token endpoint on tessera's HTTP stack (tokio,
//! hyper, axum) must do — parse the form and the Basic credentials, check the secret, sign a JWT with
//! a key parsed once, answer JSON. Nothing else: no storage, no scopes, no claims logic. bench/run.sh
//! loads it exactly as it loads tessera, so the table can say how close tessera gets.
//!
//! Usage: `minimal-token-server ADDR ES256|RS256`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

// The allocator tessera runs on, so that the comparison is of the request's work alone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret";
const ISSUER: &str = "http://127.0.0.1/minimal";

enum Key {
    Es(EcdsaKeyPair),
    Rs(RsaKeyPair),
}

struct Signer {
    key: Key,
    /// The base64url JWS header, encoded once.
    header: String,
    rng: SystemRandom,
}

impl Signer {
    fn new(alg: &str) -> anyhow::Result<Self> {
        let key = match alg {
            "ES256" => Key::Es(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?),
            "RS256" => Key::Rs(RsaKeyPair::generate(KeySize::Rsa2048)?),
            other => bail!("unknown algorithm {other:?} (ES256 or RS256)"),
        };
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"minimal"}}"#));
        Ok(Self { key, header, rng: SystemRandom::new() })
    }

    fn sign(&self, payload: &[u8]) -> anyhow::Result<String> {
        let mut token = String::with_capacity(512);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = match &self.key {
            Key::Es(pair) => pair.sign(&self.rng, token.as_bytes())?.as_ref().to_vec(),
            Key::Rs(pair) => {
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), &mut out)?;
                out
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

async fn token(State(signer): State<Arc<Signer>>, headers: HeaderMap, body: Bytes) -> Response {
    let grant_is_cc = url::form_urlencoded::parse(&body).any(|(k, v)| k == "grant_type" && v == "client_credentials");
    let authenticated = basic_credentials(&headers)
        .is_some_and(|(id, secret)| id == CLIENT_ID && bool::from(secret.as_bytes().ct_eq(CLIENT_SECRET.as_bytes())));
    if !grant_is_cc || !authenticated {
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#).into_response();
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let mut jti = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut jti).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": CLIENT_ID, "aud": CLIENT_ID, "exp": now + 86_400, "iat": now,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let Ok(access_token) = signer.sign(claims.to_string().as_bytes()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = serde_json::json!({ "access_token": access_token, "token_type": "bearer", "expires_in": 86_400 });
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().context("usage: minimal-token-server ADDR ES256|RS256")?;
    let signer = Arc::new(Signer::new(&args.next().unwrap_or_else(|| "ES256".into()))?);
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(signer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

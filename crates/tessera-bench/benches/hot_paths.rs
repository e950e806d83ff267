//! Micro-benchmarks of what every token costs besides HTTP and storage: one signature with
//! tessera's signer (ES256, RS256) and the assembly of a claim set into a token payload.
//! Run with `cargo bench -p tessera-bench`; bench/run.sh prints the results beside the load table.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tessera_core::model::Claims;
use tessera_core::scope;
use tessera_core::token::{Payload, TokenContext, token_claims};
use tessera_jose::{Algorithm, PrivateKey};
use time::OffsetDateTime;

fn identity() -> Claims {
    Claims {
        user_id: "1234567890".into(),
        username: "Jane Doe".into(),
        preferred_username: "jane".into(),
        email: "jane@example.com".into(),
        email_verified: true,
        groups: vec!["admins".into(), "developers".into()],
    }
}

fn context<'a>(scopes: &'a [String], identity: &'a Claims) -> TokenContext<'a> {
    TokenContext {
        issuer: "https://id.example.com/dex",
        client_id: "web-app",
        scopes,
        identity,
        connector_id: "local",
        nonce: "n-0S6_WzA2Mj",
        auth_time: None,
        issued_at: OffsetDateTime::now_utc(),
        lifetime: time::Duration::hours(24),
        jti: "dGhpcyBpcyBhIGp0aQ".into(),
        session_id: None,
    }
}

fn signatures(c: &mut Criterion) {
    let scopes = scope::parse("openid email profile groups");
    let identity = identity();
    let claims = token_claims(&context(&scopes, &identity));
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let Ok(key) = PrivateKey::generate(alg) else { return };
        c.bench_function(&format!("sign_jwt {}", alg.as_str()), |b| b.iter(|| key.sign_jwt(black_box(&claims))));
    }
}

fn claim_sets(c: &mut Criterion) {
    let scopes = scope::parse("openid email profile groups");
    let identity = identity();
    let none = Map::new();
    let Value::Object(custom) = json!({"tenant": "acme", "roles": ["admin", "billing"], "plan": {"tier": 2}}) else {
        return;
    };
    c.bench_function("claim set: standard claims to JSON", |b| {
        b.iter(|| serde_json::to_vec(&Payload::new(token_claims(&context(black_box(&scopes), &identity)), &none)))
    });
    c.bench_function("claim set: with three custom claims to JSON", |b| {
        b.iter(|| serde_json::to_vec(&Payload::new(token_claims(&context(black_box(&scopes), &identity)), &custom)))
    });
}

criterion_group!(benches, signatures, claim_sets);
criterion_main!(benches);

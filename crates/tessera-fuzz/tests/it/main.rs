//! The fuzz smoke run of every `cargo test`: each target over its committed corpus (`fuzz/corpus/`,
//! regressions included), then random mutations of it for `TESSERA_FUZZ_SECONDS` (default 2) seconds.
//! Not coverage-guided (that is `scripts/fuzz.sh`, under libFuzzer), but the same targets and
//! invariants on every run. A failing input is written to `target/fuzz-failures/` and printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngExt;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for dir in [fuzz_dir().join("corpus").join(target), fuzz_dir().join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        inputs.extend(paths.iter().map(|path| std::fs::read(path).unwrap()));
    }
    assert!(!inputs.is_empty(), "no corpus for {target} in {}", fuzz_dir().display());
    inputs
}

/// One of libFuzzer's simpler mutations: flip, insert, erase, duplicate, or splice in another input.
fn mutate(rng: &mut impl rand::Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = if bytes.is_empty() { 0 } else { rng.random_range(0..bytes.len()) };
        match rng.random_range(0..6) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes.insert(at, rng.random()),
            2 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            3 => {
                let special = [b'"', b'\'', b'<', b'&', b'=', b'%', b'.', b'{', b'}', b'\n', b':', 0, 0xff];
                bytes.insert(at, special[rng.random_range(0..special.len())]);
            }
            4 if !other.is_empty() => {
                let from = rng.random_range(0..other.len());
                let to = rng.random_range(from..=other.len());
                bytes.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let end = rng.random_range(at..=bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

fn run(target: &str, input: &[u8], function: fn(&[u8])) {
    if std::panic::catch_unwind(|| function(input)).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{target}-{}", tessera_core::id::new_id()));
        std::fs::write(&file, input).unwrap();
        panic!("{target} failed on {:?} (saved to {})", String::from_utf8_lossy(input), file.display());
    }
}

fn smoke(target: &str) {
    let function = tessera_fuzz::TARGETS.iter().find(|(name, _)| *name == target).unwrap().1;
    let inputs = corpus(target);
    for input in &inputs {
        run(target, input, function);
    }
    let seconds = std::env::var("TESSERA_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut rng = rand::rng();
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let input = &inputs[rng.random_range(0..inputs.len())];
        let other = &inputs[rng.random_range(0..inputs.len())];
        run(target, &mutate(&mut rng, input, other), function);
        runs += 1;
    }
    eprintln!("{target}: {} corpus inputs, {runs} mutations in {seconds}s", inputs.len());
}

#[test]
fn config() {
    smoke("config");
}

#[test]
fn http() {
    smoke("http");
}

#[test]
fn jws() {
    smoke("jws");
}

#[test]
fn jwk() {
    smoke("jwk");
}

#[test]
fn claims_template() {
    smoke("claims_template");
}

/// Writes the starting corpus and the key the jws target verifies with (run once, by hand:
/// `cargo test -p tessera-fuzz --test it -- --ignored write_seed_corpus`); the files are committed.
#[test]
#[ignore]
fn write_seed_corpus() {
    let key_file = fuzz_dir().join("keys/es256.json");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    let signing = match tessera_jose::PrivateKey::from_stored(&stored) {
        Ok(key) => key,
        Err(_) => {
            let key = tessera_jose::PrivateKey::generate(tessera_jose::Algorithm::ES256).unwrap();
            std::fs::write(&key_file, serde_json::to_string_pretty(&key.to_stored()).unwrap()).unwrap();
            key
        }
    };
    let token = signing
        .sign_jwt(&serde_json::json!({"iss": "http://127.0.0.1:5556/dex", "sub": "CgNib2I", "aud": "example-app"}))
        .unwrap();
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    write("jws", "valid", token.as_bytes());
    write("jws", "none", b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
    write("jws", "hs256", b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
    write("jwk", "es256", signing.public_jwk().to_string().as_bytes());
    write("jwk", "rsa", br#"{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"k"}"#);
    write("jwk", "ec-other-curve", br#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#);
    write("claims_template", "email", b"{{.Email}}");
    write("claims_template", "groups", b"{{.Groups}}");
    write("claims_template", "mixed", b"user:{{ .UserID }}@{{.ConnectorID}}/{{.ClientID}}");
    write("claims_template", "unclosed", b"{{.Email");
    let config = std::fs::read(fuzz_dir().join("../examples/config-dev.yaml")).unwrap();
    write("config", "config-dev", &config);
    write(
        "config",
        "everything",
        b"issuer: https://id.example/dex\nstorage:\n  type: sqlite3\n  config:\n    file: /tmp/x.db\nweb:\n  http: 0.0.0.0:5556\n  headers:\n    X-Frame-Options: DENY\n  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: [10.0.0.0/8]\nexpiry:\n  idTokens: 10m\n  refreshTokens:\n    reuseInterval: 3s\noauth2:\n  responseTypes: [code, token, id_token]\nrateLimits:\n  passwordFailures:\n    perIP: 3\n    window: 1h\nstaticClients:\n- id: a\n  secret: b\n  redirectURIs: [http://x/cb]\n  trustedPeers: [c]\ncustomClaims:\n  enrichers:\n  - name: s\n    type: static\n    claims: {team: x}\n",
    );
    write("config", "anchors", b"a: &x {b: 1}\nc: *x\nd:\n  <<: *x\nissuer: 1\n");
    let http: [(&str, &[u8]); 10] = [
        ("auth-query", b"\x00client_id=example-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback&response_type=code&scope=openid+email&state=s&nonce=n&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"),
        ("auth-form", b"\x01client_id=example-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback&response_type=code+id_token&scope=openid&prompt=none&max_age=0"),
        ("token-code", b"\x02grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback&code_verifier=x"),
        ("token-password", b"\x03Basic ZXhhbXBsZS1hcHA6WlhoaGJYQnNaUzFoY0hBdGMyVmpjbVYw\ngrant_type=password&username=admin%40example.com&password=wrong&scope=openid"),
        ("token-exchange", b"\x02grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&connector_id=mock"),
        ("token-refresh", b"\x02grant_type=refresh_token&refresh_token=Cg1hYmMSBWVmZ2hp&scope=openid"),
        ("device-code", b"\x04client_id=public-cli&scope=openid+profile&code_challenge=abc&code_challenge_method=S256"),
        ("verify-code", b"\x05user_code=ABCD-EFGH"),
        ("introspect", b"\x07token=a.b.c&token_type_hint=access_token"),
        ("userinfo", b"\x08eyJhbGciOiJSUzI1NiJ9.e30.AAAA"),
    ];
    for (name, data) in http {
        write("http", name, data);
    }
}

//! The HTTP claims hook (`type: http`) against a real HTTP server started here: the signed body
//! verified on the hook's side, the operator's headers, claims added to the token; then each failure
//! (timeout, 500, invalid JSON, a non-object, a reserved claim) under `onError: deny` (no token) and
//! `onError: omit` (a token without the hook's claims), each logged with the enricher's name.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as HookStatus};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::config::Env;

use crate::login::{APP_SECRET, redeem, server_with_env, verify};

const SECRET: &str = "hook-shared-secret";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Claims,
    Nothing,
    Slow,
    Error,
    NotJson,
    Array,
    Reserved,
}

#[derive(Default)]
struct Seen {
    bodies: Vec<Value>,
    signatures_valid: Vec<bool>,
    authorization: Vec<String>,
}

struct Hook {
    url: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

async fn start_hook() -> Hook {
    let mode = Arc::new(Mutex::new(Mode::Claims));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (m, s) = (mode.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/claims",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (mode, seen) = (m.clone(), s.clone());
            async move {
                let current = *mode.lock().unwrap();
                answer(current, &seen, &headers, &body).await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/claims", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hook { url, mode, seen }
}

/// What a hook does: checks the signature as a hook author would (HMAC over the raw body), then
/// answers as the test asks.
async fn answer(mode: Mode, seen: &Mutex<Seen>, headers: &HeaderMap, body: &[u8]) -> Response {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
    let given = headers.get("x-tessera-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let tag = given.strip_prefix("sha256=").and_then(|hex| {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()
    });
    let valid = tag.is_some_and(|tag| aws_lc_rs::hmac::verify(&key, body, &tag).is_ok());
    {
        let mut seen = seen.lock().unwrap();
        seen.bodies.push(serde_json::from_slice(body).unwrap());
        seen.signatures_valid.push(valid);
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        seen.authorization.push(auth.to_owned());
    }
    match mode {
        Mode::Claims => axum::Json(json!({"team": "blue", "seats": 12})).into_response(),
        Mode::Nothing => HookStatus::NO_CONTENT.into_response(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            axum::Json(json!({"team": "late"})).into_response()
        }
        Mode::Error => (HookStatus::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::NotJson => (HookStatus::OK, "team=blue").into_response(),
        Mode::Array => axum::Json(json!(["team"])).into_response(),
        Mode::Reserved => axum::Json(json!({"sub": "admin", "team": "crimson-tide"})).into_response(),
    }
}

fn config(hook: &Hook, on_error: &str) -> String {
    format!(
        "oauth2:
  passwordConnector: local
customClaims:
  enrichers:
  - name: directory-hook
    type: http
    url: {}
    timeout: 300ms
    hmacSecret: {SECRET}
    headers:
      Authorization: Bearer hook-token
    onError: {on_error}
  - name: defaults
    type: static
    claims: {{tier: basic}}
",
        hook.url
    )
}

const PASSWORD: [(&str, &str); 4] =
    [("grant_type", "password"), ("username", "admin@example.com"), ("password", "password"), ("scope", "openid")];

#[tokio::test]
async fn the_hook_adds_claims_and_its_failures_follow_on_error() {
    let hook = start_hook().await;
    let (deny, _) = server_with_env(&config(&hook, "deny"), "", "", &Env::default()).await.unwrap();
    let (omit, _) = server_with_env(&config(&hook, "omit"), "", "", &Env::default()).await.unwrap();

    let (status, tokens) = redeem(&deny, &PASSWORD, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&deny, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!((claims["team"].clone(), claims["seats"].clone()), (json!("blue"), json!(12)));
    {
        let seen = hook.seen.lock().unwrap();
        assert_eq!(seen.signatures_valid, [true], "the hook verified tessera's signature");
        assert_eq!(seen.authorization, ["Bearer hook-token"]);
        let body = &seen.bodies[0];
        assert_eq!(body["user_id"], "08a8684b-db88-4b73-90a9-3cd1661f5466");
        assert_eq!((body["email"].clone(), body["email_verified"].clone()), (json!("admin@example.com"), json!(true)));
        assert_eq!((body["groups"].clone(), body["scopes"].clone()), (json!(["admins", "devs"]), json!(["openid"])));
        assert_eq!((body["client_id"].clone(), body["connector_id"].clone()), (json!("example-app"), json!("local")));
        assert_eq!(body["grant_type"], "password");
    }
    *hook.mode.lock().unwrap() = Mode::Nothing;
    let (status, tokens) = redeem(&deny, &PASSWORD, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "204 adds nothing: {tokens}");
    assert!(verify(&deny, tokens["id_token"].as_str().unwrap(), "example-app").await.get("team").is_none());

    let failures = [
        (Mode::Slow, "timeout"),
        (Mode::Error, "failed"),
        (Mode::NotJson, "invalid"),
        (Mode::Array, "invalid"),
        (Mode::Reserved, "invalid"),
    ];
    for (mode, cause) in failures {
        *hook.mode.lock().unwrap() = mode;
        crate::log_capture::capture_logs(tracing::Level::WARN);
        let (status, error) = redeem(&deny, &PASSWORD, Some(("example-app", APP_SECRET))).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error")),
            "{mode:?}"
        );
        assert!(error.get("error_description").is_none(), "nothing about the hook leaks to the client");
        let (status, tokens) = redeem(&omit, &PASSWORD, Some(("example-app", APP_SECRET))).await;
        let lines = crate::log_capture::captured_lines();
        assert_eq!(status, StatusCode::OK, "{mode:?}: {tokens}");
        let claims = verify(&omit, tokens["id_token"].as_str().unwrap(), "example-app").await;
        assert!(claims.get("team").is_none(), "{mode:?}: the hook's claims are left out");
        assert_eq!(claims["tier"], "basic");
        assert_eq!(
            claims["sub"],
            tessera_core::subject::encode_subject("08a8684b-db88-4b73-90a9-3cd1661f5466", "local")
        );
        let omitted = lines
            .iter()
            .find(|l| l["enricher"] == "directory-hook" && l["msg"].as_str().is_some_and(|m| m.contains("omit")))
            .unwrap_or_else(|| panic!("{mode:?}: no line names the enricher: {lines:?}"));
        assert_eq!(omitted["cause"], cause, "{mode:?}");
        assert!(!lines.iter().any(|l| l.to_string().contains("crimson")), "no claim value is logged");
    }
    deny.shutdown().await;
    omit.shutdown().await;
}

#[test]
fn http_enricher_config_mistakes_name_line_and_key() {
    let text = "issuer: https://id.example/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:5556
customClaims:
  enrichers:
  - name: hook
    type: http
    url: ftp://hooks.example/claims
    timeout: 0s
    headers:
      Bad Header: x
    tls:
      caFile: /nonexistent/ca.pem
      certFile: /nonexistent/cert.pem
";
    let errors: Vec<String> = match tessera_server::config::parse(text, "config.yaml", &Env::default()) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    };
    let expected = [
        "config.yaml:10: customClaims.enrichers[0].url: \"ftp://hooks.example/claims\" is not an http(s) URL",
        "config.yaml:11: customClaims.enrichers[0].timeout: must be more than zero",
        "config.yaml:12: customClaims.enrichers[0].headers.Bad Header: is not a valid HTTP header",
        "config.yaml:14: customClaims.enrichers[0].tls: certFile and keyFile go together (the client certificate and its key)",
        "config.yaml:15: customClaims.enrichers[0].tls.caFile: /nonexistent/ca.pem: No such file or directory (os error 2)",
        "config.yaml:16: customClaims.enrichers[0].tls.certFile: /nonexistent/cert.pem: No such file or directory (os error 2)",
    ];
    for line in expected {
        assert!(errors.iter().any(|e| e == line), "missing {line:?} in {errors:#?}");
    }
}

/// A hook that requires a client certificate signed by `clients` (mutual TLS), serving one answer.
async fn start_mtls_hook(server: &crate::https::Leaf, clients: &crate::https::Authority) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = tessera_server::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(clients.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server.cert_pem.as_bytes()).map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client without a certificate fails the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(|_request| async {
                    let body = axum::body::Body::from(r#"{"clearance": "mtls-verified"}"#);
                    Ok::<_, std::convert::Infallible>(
                        axum::http::Response::builder().header("content-type", "application/json").body(body).unwrap(),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://localhost:{port}/claims")
}

#[tokio::test]
async fn mutual_tls_to_the_hook() {
    let hooks_ca = crate::https::Authority::new();
    let clients_ca = crate::https::Authority::new();
    let hook_url = start_mtls_hook(&hooks_ca.leaf(), &clients_ca).await;
    let dir = std::env::temp_dir().join(format!("tessera-mtls-{}", tessera_core::id::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client = clients_ca.leaf();
    let (ca, cert, key) = (dir.join("hooks-ca.pem"), dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&ca, hooks_ca.pem()).unwrap();
    std::fs::write(&cert, &client.cert_pem).unwrap();
    std::fs::write(&key, &client.key_pem).unwrap();
    let config = |tls: &str, on_error: &str| {
        format!(
            "oauth2:\n  passwordConnector: local\ncustomClaims:\n  enrichers:\n  - name: secure-hook\n    type: http\n    url: {hook_url}\n    onError: {on_error}\n    tls:\n{tls}"
        )
    };
    let with_identity = format!(
        "      caFile: {}\n      certFile: {}\n      keyFile: {}\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    let (running, _) = server_with_env(&config(&with_identity, "deny"), "", "", &Env::default()).await.unwrap();
    let (status, tokens) = redeem(&running, &PASSWORD, Some(("example-app", APP_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = verify(&running, tokens["id_token"].as_str().unwrap(), "example-app").await;
    assert_eq!(claims["clearance"], "mtls-verified", "the hook accepted tessera's client certificate");
    running.shutdown().await;

    // Trusting the hook but presenting no certificate: the hook refuses the handshake.
    let without = format!("      caFile: {}\n", ca.display());
    let (running, _) = server_with_env(&config(&without, "deny"), "", "", &Env::default()).await.unwrap();
    let (status, error) = redeem(&running, &PASSWORD, Some(("example-app", APP_SECRET))).await;
    assert_eq!((status, error["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error")));
    running.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

//! The HTTP enricher (`type: http`): POSTs what tessera knows about the token as JSON to the
//! operator's hook; a 200 with a JSON object adds its members as claims, a 204 adds nothing, anything
//! else is an error (and the enricher's `onError` decides). The body can be signed
//! (`X-Tessera-Signature: sha256=<hex HMAC-SHA256 of the body>`) so the hook can trust the caller,
//! and the connection can present a client certificate (mutual TLS).
//!
//! What can be checked without calling the hook is checked at start-up: the URL, the headers, the
//! CA, certificate and key files.

use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::reserved::Guard;
use crate::{ClaimsEnricher, EnrichError, EnrichmentContext};

pub const SIGNATURE_HEADER: &str = "X-Tessera-Signature";

/// Files for TLS to the hook: a CA to trust besides the system's, and a client certificate and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HttpEnricherSettings {
    pub url: String,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub hmac_secret: Option<String>,
    pub tls: TlsFiles,
}

impl HttpEnricherSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(2),
            headers: Vec::new(),
            hmac_secret: None,
            tls: TlsFiles::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("url {0:?} is not an http(s) URL")]
    Url(String),
    #[error("header {0:?} is not a valid HTTP header")]
    Header(String),
    #[error("{what} {path}: {problem}")]
    File { what: &'static str, path: String, problem: String },
    #[error("tls.certFile and tls.keyFile go together")]
    HalfIdentity,
    #[error("the HTTP client: {0}")]
    Client(String),
}

pub struct HttpEnricher {
    http: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    key: Option<hmac::Key>,
    guard: Guard,
}

/// The body the hook receives.
#[derive(Serialize)]
struct Request<'a> {
    user_id: &'a str,
    username: &'a str,
    preferred_username: &'a str,
    email: &'a str,
    email_verified: bool,
    groups: &'a [String],
    connector_id: &'a str,
    client_id: &'a str,
    scopes: &'a [String],
    grant_type: &'a str,
}

fn read(what: &'static str, path: &str) -> Result<Vec<u8>, HttpSetupError> {
    std::fs::read(path).map_err(|e| HttpSetupError::File { what, path: path.to_owned(), problem: e.to_string() })
}

impl HttpEnricher {
    /// Builds the client; no request is sent.
    pub fn new(settings: &HttpEnricherSettings, guard: &Guard) -> Result<Self, HttpSetupError> {
        let url = reqwest::Url::parse(&settings.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| HttpSetupError::Url(settings.url.clone()))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &settings.headers {
            let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes());
            let value_ok = reqwest::header::HeaderValue::from_str(value);
            match (name_ok, value_ok) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => return Err(HttpSetupError::Header(name.clone())),
            }
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .default_headers(headers);
        if let Some(path) = &settings.tls.ca_file {
            let pem = read("tls.caFile", path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpSetupError::File {
                what: "tls.caFile",
                path: path.clone(),
                problem: e.to_string(),
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&settings.tls.cert_file, &settings.tls.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read("tls.certFile", cert)?;
                pem.push(b'\n');
                pem.extend(read("tls.keyFile", key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| HttpSetupError::File {
                    what: "tls.certFile/keyFile",
                    path: cert.clone(),
                    problem: e.to_string(),
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err(HttpSetupError::HalfIdentity),
        }
        let http = builder.build().map_err(|e| HttpSetupError::Client(e.to_string()))?;
        let key = settings.hmac_secret.as_ref().map(|secret| hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()));
        Ok(Self { http, url, timeout: settings.timeout, key, guard: guard.clone() })
    }

    /// The signature header's value for a body.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body);
        format!("sha256={}", hex(tag.as_ref()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The request body for a token.
pub fn request_body(context: &EnrichmentContext) -> Vec<u8> {
    let identity = &context.identity;
    let request = Request {
        user_id: &identity.user_id,
        username: &identity.username,
        preferred_username: &identity.preferred_username,
        email: &identity.email,
        email_verified: identity.email_verified,
        groups: &identity.groups,
        connector_id: &context.connector_id,
        client_id: &context.client_id,
        scopes: &context.scopes,
        grant_type: &context.grant_type,
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

#[async_trait]
impl ClaimsEnricher for HttpEnricher {
    async fn enrich(&self, context: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError> {
        self.call(context, claims).await.map(|_| ())
    }
}

#[async_trait]
impl crate::cache::Cacheable for HttpEnricher {
    /// The request body: the hook's answer can only depend on it.
    fn cache_key(&self, context: &EnrichmentContext) -> String {
        String::from_utf8(request_body(context)).unwrap_or_default()
    }

    async fn enrich_cacheable(
        &self,
        context: &EnrichmentContext,
        claims: &mut Map<String, Value>,
    ) -> Result<Option<Duration>, EnrichError> {
        self.call(context, claims).await
    }
}

/// What `Cache-Control` allows: `no-store`/`no-cache`/`private`? `no-store` and `no-cache` mean not
/// at all, `max-age=N` at most N seconds; anything else, no cap.
fn cache_cap(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut cap = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        for directive in value.to_str().unwrap_or_default().split(',').map(|d| d.trim().to_ascii_lowercase()) {
            if directive == "no-store" || directive == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(seconds) =
                directive.strip_prefix("max-age=").and_then(|s| s.trim_matches('"').parse::<u64>().ok())
            {
                cap = Some(Duration::from_secs(seconds).min(cap.unwrap_or(Duration::MAX)));
            }
        }
    }
    cap
}

impl HttpEnricher {
    /// One call to the hook; the answer's cache cap.
    async fn call(
        &self,
        context: &EnrichmentContext,
        claims: &mut Map<String, Value>,
    ) -> Result<Option<Duration>, EnrichError> {
        let body = request_body(context);
        let mut request = self.http.post(self.url.clone()).header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.key {
            let tag = hmac::sign(key, &body);
            request = request.header(SIGNATURE_HEADER, format!("sha256={}", hex(tag.as_ref())));
        }
        let response = request.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                EnrichError::Timeout(self.timeout)
            } else {
                // The error's text names the URL, not a claim value.
                EnrichError::Unavailable(e.to_string())
            }
        })?;
        let status = response.status();
        let cap = cache_cap(response.headers());
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(cap);
        }
        if status != reqwest::StatusCode::OK {
            return Err(EnrichError::Failed(format!("the hook answered HTTP {}", status.as_u16())));
        }
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() { EnrichError::Timeout(self.timeout) } else { EnrichError::Unavailable(e.to_string()) }
        })?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|_| EnrichError::Invalid("the hook's answer is not JSON".into()))?;
        let Value::Object(answer) = value else {
            return Err(EnrichError::Invalid(format!("the hook answered {}, not a JSON object", kind(&value))));
        };
        // A hook is another party: a reserved claim in its answer is its mistake, not a value to drop.
        if let Some(name) = answer.keys().find(|name| self.guard.check(name).is_err()) {
            return Err(EnrichError::Invalid(format!("the hook answered the reserved claim {name:?}")));
        }
        claims.extend(answer);
        Ok(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_caps_the_ttl() {
        let headers = |value: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert(reqwest::header::CACHE_CONTROL, value.parse().unwrap());
            map
        };
        assert_eq!(cache_cap(&headers("public, max-age=30")), Some(Duration::from_secs(30)));
        assert_eq!(cache_cap(&headers("no-store")), Some(Duration::ZERO));
        assert_eq!(cache_cap(&headers("private")), None);
        assert_eq!(cache_cap(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            HttpEnricher::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn start_up_checks() {
        let guard = Guard::default();
        assert!(matches!(
            HttpEnricher::new(&HttpEnricherSettings::new("ftp://x"), &guard),
            Err(HttpSetupError::Url(_))
        ));
        let mut settings = HttpEnricherSettings::new("https://hook.example/claims");
        settings.headers = vec![("Bad Header".into(), "x".into())];
        assert!(matches!(HttpEnricher::new(&settings, &guard), Err(HttpSetupError::Header(_))));
        settings.headers.clear();
        settings.tls.cert_file = Some("/nonexistent/cert.pem".into());
        assert!(matches!(HttpEnricher::new(&settings, &guard), Err(HttpSetupError::HalfIdentity)));
        settings.tls.key_file = Some("/nonexistent/key.pem".into());
        let err = HttpEnricher::new(&settings, &guard).err().unwrap().to_string();
        assert!(err.starts_with("tls.certFile /nonexistent/cert.pem: "), "{err}");
        assert!(HttpEnricher::new(&HttpEnricherSettings::new("http://127.0.0.1:9/x"), &guard).is_ok());
    }

    #[test]
    fn the_body_has_the_context() {
        let context = EnrichmentContext {
            identity: tessera_core::model::Claims {
                user_id: "u1".into(),
                groups: vec!["a".into()],
                ..Default::default()
            },
            client_id: "web".into(),
            grant_type: "refresh_token".into(),
            ..EnrichmentContext::default()
        };
        let body: Value = serde_json::from_slice(&request_body(&context)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"user_id": "u1", "username": "", "preferred_username": "", "email": "",
                "email_verified": false, "groups": ["a"], "connector_id": "", "client_id": "web",
                "scopes": [], "grant_type": "refresh_token"})
        );
    }
}

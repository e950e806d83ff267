//! The HTTP parsers, through the real router of a real (in-process) server: the `/auth` query and
//! form, the `/token` form and its `Authorization` header, the device endpoints, introspection and
//! `/userinfo`. Bad input is the client's error: never a panic, never a 5xx.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use tower::ServiceExt;

const CONFIG: &str = r#"issuer: http://127.0.0.1:5556/dex
storage:
  type: memory
web:
  http: 127.0.0.1:0
oauth2:
  passwordConnector: local
  grantTypes: [authorization_code, refresh_token, password, client_credentials,
    'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange']
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  username: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
connectors:
- type: mockCallback
  id: mock
  name: Example
staticClients:
- id: example-app
  secret: ZXhhbXBsZS1hcHAtc2VjcmV0
  name: Example App
  redirectURIs: ['http://127.0.0.1:5555/callback']
- id: public-cli
  public: true
  name: Public CLI
"#;

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("no runtime for the http target: {err}"));
        let env = tessera_server::config::Env::default();
        let config = tessera_server::config::parse(CONFIG, "fuzz.yaml", &env)
            .unwrap_or_else(|err| panic!("the http target's configuration: {err}"))
            .config;
        let clock = Arc::new(tessera_core::clock::TestClock::at_test_epoch());
        let bound = runtime
            .block_on(tessera_server::BoundServer::start(config, clock))
            .unwrap_or_else(|err| panic!("the http target's server: {err}"));
        let router = tessera_server::http::router(bound.state.clone());
        Server { runtime, router }
    })
}

/// The first byte picks the endpoint; the rest is its query or body (and, for `/token` with a header,
/// the header up to the first newline).
pub fn http(data: &[u8]) {
    let Some((selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest).into_owned();
    let form = "application/x-www-form-urlencoded";
    let built = match selector % 10 {
        0 => request(Method::GET, &format!("/dex/auth?{text}"), None, None),
        1 => request(Method::POST, "/dex/auth", Some(form), Some(rest.to_vec())),
        2 => request(Method::POST, "/dex/token", Some(form), Some(rest.to_vec()))
            .map(|r| with_header(r, "Basic ZXhhbXBsZS1hcHA6WlhoaGJYQnNaUzFoY0hBdGMyVmpjbVYw")),
        3 => {
            let (authorization, body) = text.split_once('\n').unwrap_or((&text, ""));
            request(Method::POST, "/dex/token", Some(form), Some(body.as_bytes().to_vec()))
                .map(|r| with_header(r, authorization))
        }
        4 => request(Method::POST, "/dex/device/code", Some(form), Some(rest.to_vec())),
        5 => request(Method::POST, "/dex/device/auth/verify_code", Some(form), Some(rest.to_vec())),
        6 => request(Method::GET, &format!("/dex/device?{text}"), None, None),
        7 => request(Method::POST, "/dex/token/introspect", Some(form), Some(rest.to_vec())),
        8 => request(Method::GET, "/dex/userinfo", None, None).map(|r| with_header(r, &format!("Bearer {text}"))),
        _ => request(Method::GET, &format!("/dex/auth/local/login?{text}"), None, None),
    };
    // A URI or header hyper itself would refuse never reaches tessera.
    let Some(request) = built else { return };
    let server = server();
    let response = server.runtime.block_on(server.router.clone().oneshot(request));
    let Ok(response) = response;
    assert!(!response.status().is_server_error(), "{} for {:?}", response.status(), String::from_utf8_lossy(data));
}

fn request(method: Method, uri: &str, content_type: Option<&str>, body: Option<Vec<u8>>) -> Option<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.map_or_else(Body::empty, Body::from)).ok()
}

fn with_header(mut request: Request<Body>, authorization: &str) -> Request<Body> {
    if let Ok(value) = authorization.parse() {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    request
}

//! HTTPS on `web.https`: a real TLS client against certificates made here, rotated on disk while the
//! server runs, with the minimum protocol version enforced and plain HTTP on the TLS port refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tessera_core::clock::TestClock;
use tessera_server::BoundServer;
use tessera_server::config::{Env, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test CA and the leaf certificates it signs for `localhost`.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    der: Vec<u8>,
}

impl Authority {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Names apart from the leaves' (rcgen gives all the same one), or OpenSSL-based clients such as
        // grpcio take a leaf for self-signed.
        params.distinguished_name.push(DnType::CommonName, "tessera test CA");
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    pub fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.issuer.pem().as_bytes()).unwrap()
    }
}

/// Writes a file the way cert-manager and Kubernetes do: a new file renamed over the old one.
fn replace(path: &Path, contents: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

struct Files {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(leaf: &Leaf) -> Self {
        let dir = std::env::temp_dir().join(format!("tessera-https-{}", tessera_core::id::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = Self { cert: dir.join("tls.crt"), key: dir.join("tls.key"), dir };
        files.install(leaf);
        files
    }

    fn install(&self, leaf: &Leaf) {
        replace(&self.key, &leaf.key_pem);
        replace(&self.cert, &leaf.cert_pem);
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn https_config(files: &Files, extra: &str) -> tessera_server::config::Config {
    let text = format!(
        "issuer: https://localhost/dex\nstorage:\n  type: memory\nweb:\n  https: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n{extra}enablePasswordDB: true\n",
        files.cert.display(),
        files.key.display()
    );
    parse(&text, "https.yaml", &Env::default()).unwrap().config
}

struct Running {
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: tessera_server::config::Config) -> Running {
    let server = BoundServer::start(config, Arc::new(TestClock::at_test_epoch())).await.unwrap();
    assert!(server.web_addr().is_none(), "only HTTPS is configured, so nothing listens on plain HTTP");
    let address = server.https_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { address, stop, task }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A client that trusts only the test CA, reaches `localhost` at the server, and reports the
/// certificate each response came with.
fn client(authority: &Authority, address: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([authority.root()])
        .resolve("localhost", address)
        .tls_info(true)
        .build()
        .unwrap()
}

/// Fetches discovery; the certificate the server presented on that connection.
async fn presented(client: &reqwest::Client, address: SocketAddr) -> Vec<u8> {
    let url = format!("https://localhost:{}/dex/.well-known/openid-configuration", address.port());
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap().clone();
    let discovery: serde_json::Value = response.json().await.unwrap();
    assert_eq!(discovery["issuer"], "https://localhost/dex");
    info.peer_certificate().unwrap().to_vec()
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_while_open_ones_keep_working() {
    let authority = Authority::new();
    let (first, second) = (authority.leaf(), authority.leaf());
    let files = Files::new(&first);
    let running = start(https_config(&files, "")).await;

    let open = client(&authority, running.address);
    assert_eq!(presented(&open, running.address).await, first.der);

    files.install(&second);
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = presented(&client(&authority, running.address), running.address).await;
        if seen == second.der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, second.der, "a new connection gets the rotated certificate");
    assert_eq!(
        presented(&open, running.address).await,
        first.der,
        "the connection opened before the rotation is still open and serving"
    );

    // A pair that does not match keeps the current certificate in service.
    replace(&files.key, &authority.leaf().key_pem);
    tokio::time::sleep(tessera_server::tls::certificate::CHECK_INTERVAL * 2).await;
    assert_eq!(presented(&client(&authority, running.address), running.address).await, second.der);

    running.shutdown().await;
}

#[tokio::test]
async fn tls_min_version_refuses_older_clients_and_plain_http_gets_nothing() {
    let authority = Authority::new();
    let leaf = authority.leaf();
    let files = Files::new(&leaf);
    let running = start(https_config(&files, "  tlsMinVersion: \"1.3\"\n")).await;
    let url = format!("https://localhost:{}/dex/healthz", running.address.port());

    let tls12_only = reqwest::Client::builder()
        .tls_certs_only([authority.root()])
        .resolve("localhost", running.address)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let refused = tls12_only.get(&url).send().await;
    assert!(refused.is_err(), "a TLS 1.2 client fails the handshake: {refused:?}");

    // Plain HTTP on the TLS port: no HTTP answer, and the server keeps serving.
    let mut plain = tokio::net::TcpStream::connect(running.address).await.unwrap();
    plain.write_all(b"POST /dex/token HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "{answer:?}");
    assert!(!String::from_utf8_lossy(&answer).contains("access_token"));

    let response = client(&authority, running.address).get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "TLS 1.3 works, after the plain-HTTP attempt too");
    running.shutdown().await;
}

#[tokio::test]
async fn https_serves_next_to_http_when_both_are_set() {
    let authority = Authority::new();
    let files = Files::new(&authority.leaf());
    let server =
        BoundServer::start(https_config(&files, "  http: 127.0.0.1:0\n"), Arc::new(TestClock::at_test_epoch()))
            .await
            .unwrap();
    let (http, https) = (server.web_addr().unwrap(), server.https_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let plain = reqwest::get(format!("http://{http}/dex/.well-known/openid-configuration")).await.unwrap();
    assert_eq!(plain.status(), 200, "an https:// issuer is served over plain HTTP too (behind a proxy)");
    presented(&client(&authority, https), https).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[test]
fn a_certificate_that_cannot_serve_is_a_configuration_error_naming_the_key_and_line() {
    let authority = Authority::new();
    let files = Files::new(&authority.leaf());
    let load = |cert: &Path, key: &Path| {
        let text = format!(
            "issuer: https://localhost/dex\nstorage:\n  type: memory\nweb:\n  https: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n",
            cert.display(),
            key.display()
        );
        parse(&text, "https.yaml", &Env::default())
            .err()
            .map(|failed| failed.errors.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    assert_eq!(load(&files.cert, &files.key), None, "the pair is good");

    let other_key = files.dir.join("other.key");
    std::fs::write(&other_key, authority.leaf().key_pem).unwrap();
    assert_eq!(
        load(&files.cert, &other_key).unwrap(),
        [format!(
            "https.yaml:7: web.tlsKey: {} is not the private key of the certificate in {}",
            other_key.display(),
            files.cert.display()
        )]
    );
    let errors = load(&files.key, &files.key).unwrap();
    assert!(
        errors.len() == 1
            && errors[0].starts_with("https.yaml:6: web.tlsCert: cannot use ")
            && errors[0].contains("PEM"),
        "a key where the certificate should be: {errors:?}"
    );
}

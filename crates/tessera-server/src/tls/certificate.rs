//! The web listener's certificate: loaded from `web.tlsCert` and `web.tlsKey`, and loaded again when
//! the files change (cert-manager and Kubernetes rotate them in place) or on SIGHUP, as Dex does. A
//! pair that fails to load at reload leaves the current one in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use crate::tasks::stopped;

/// How often the files are compared with what is loaded. Reading two small files is cheap; watching
/// the directory instead would miss Kubernetes' symlink swaps of mounted secrets.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Which of the two files is wrong, and why.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("cannot use {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot use {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{key} is not the private key of the certificate in {cert}")]
    Mismatch { cert: String, key: String },
}

impl PairError {
    /// The configuration key at fault (`tlsCert` or `tlsKey`).
    pub fn key(&self) -> &'static str {
        match self {
            Self::Cert { .. } => "tlsCert",
            Self::Key { .. } | Self::Mismatch { .. } => "tlsKey",
        }
    }
}

/// The certificate and key files' contents, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PairBytes {
    cert: Vec<u8>,
    key: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct PairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PairFiles {
    fn read(&self) -> Result<PairBytes, PairError> {
        let cert = std::fs::read(&self.cert).map_err(|err| cert_error(&self.cert, err.to_string()))?;
        let key = std::fs::read(&self.key).map_err(|err| key_error(&self.key, err.to_string()))?;
        Ok(PairBytes { cert, key })
    }

    fn parse(&self, bytes: &PairBytes, provider: &CryptoProvider) -> Result<CertifiedKey, PairError> {
        let chain = CertificateDer::pem_slice_iter(&bytes.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| cert_error(&self.cert, format!("not a PEM certificate ({err})")))?;
        if chain.is_empty() {
            return Err(cert_error(&self.cert, "no PEM certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&bytes.key)
            .map_err(|err| key_error(&self.key, format!("not a PEM private key ({err})")))?;
        CertifiedKey::from_der(chain, key, provider).map_err(|err| match err {
            rustls::Error::InconsistentKeys(_) => {
                PairError::Mismatch { cert: self.cert.display().to_string(), key: self.key.display().to_string() }
            }
            other => key_error(&self.key, other.to_string()),
        })
    }

    /// Reads and checks the pair: both files readable, PEM, and the key the certificate's.
    pub fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, PairError> {
        self.parse(&self.read()?, provider)
    }
}

fn cert_error(path: &Path, reason: String) -> PairError {
    PairError::Cert { path: path.display().to_string(), reason }
}

fn key_error(path: &Path, reason: String) -> PairError {
    PairError::Key { path: path.display().to_string(), reason }
}

/// The certificate every new handshake gets; connections already open keep the one they started with.
#[derive(Debug)]
pub struct ReloadingCertificate {
    files: PairFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<(PairBytes, Arc<CertifiedKey>)>,
}

impl ReloadingCertificate {
    pub fn load(files: PairFiles, provider: Arc<CryptoProvider>) -> Result<Self, PairError> {
        let bytes = files.read()?;
        let certified = files.parse(&bytes, &provider)?;
        Ok(Self { files, provider, current: RwLock::new((bytes, Arc::new(certified))) })
    }

    /// Loads the files again if they changed. Returns whether a new pair is now in service; a pair that
    /// fails to load is logged and the current one kept.
    pub fn reload_if_changed(&self) -> bool {
        let bytes = match self.files.read() {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(key = err.key(), error = %err, "TLS certificate reload failed; keeping the current certificate");
                return false;
            }
        };
        if self.current.read().is_ok_and(|current| current.0 == bytes) {
            return false;
        }
        match self.files.parse(&bytes, &self.provider) {
            Ok(certified) => {
                if let Ok(mut current) = self.current.write() {
                    *current = (bytes, Arc::new(certified));
                }
                tracing::info!(cert = %self.files.cert.display(), "loaded a new TLS certificate");
                true
            }
            Err(err) => {
                // Remember the bad contents, so the same error is logged once, not at every check.
                if let Ok(mut current) = self.current.write() {
                    current.0 = bytes;
                }
                tracing::error!(key = err.key(), error = %err, "TLS certificate reload failed; keeping the current certificate");
                false
            }
        }
    }
}

impl Reloadable for ReloadingCertificate {
    fn reload_if_changed(&self) -> bool {
        ReloadingCertificate::reload_if_changed(self)
    }
}

/// TLS material read from files and used by every new handshake: the certificate pair, a client CA.
pub trait Reloadable: Send + Sync + 'static {
    /// Reads the files again and, if they changed and load, puts them in service.
    fn reload_if_changed(&self) -> bool;
}

/// Checks `material`'s files every [`CHECK_INTERVAL`] and at every SIGHUP, until `stop`.
pub async fn watch(material: Arc<dyn Reloadable>, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = hangups();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = ticker.tick() => {}
            () = next_hangup(&mut hangup) => tracing::info!("SIGHUP: checking the TLS files"),
        }
        let material = material.clone();
        // File reads are blocking; keep them off the request threads.
        let _ = tokio::task::spawn_blocking(move || material.reload_if_changed()).await;
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.1.clone())
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangups() -> Hangups {}

#[cfg(unix)]
async fn next_hangup(hangups: &mut Hangups) {
    match hangups {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) {
    std::future::pending().await
}

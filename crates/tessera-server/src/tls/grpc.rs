//! The gRPC listener's TLS, as Dex sets it up: the `grpc.tlsCert`/`grpc.tlsKey` pair (loaded and
//! reloaded like the web certificate), HTTP/2 only, and with `grpc.tlsClientCA` mutual TLS: a client
//! must present a certificate that CA signed, or the handshake fails. The CA file is reloaded too, as
//! Dex does, so a CA rotation needs no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::{PairFiles, Reloadable, ReloadingCertificate, TlsError, protocol_versions, provider};
use crate::config::Grpc;

/// The gRPC listener's TLS: its rustls configuration and the certificate it reloads.
pub struct GrpcTls {
    pub config: Arc<ServerConfig>,
    pub certificate: Arc<ReloadingCertificate>,
    /// `grpc.tlsClientCA`, when clients must show a certificate it signed.
    pub client_ca: Option<Arc<ReloadingClientCa>>,
}

impl GrpcTls {
    /// `None` when `grpc` sets no certificate (the API is then served in plain text, as Dex does).
    pub fn from_config(grpc: &Grpc) -> Result<Option<Self>, TlsError> {
        let (Some(cert), Some(key)) = (&grpc.tls_cert, &grpc.tls_key) else { return Ok(None) };
        let provider = provider();
        let files = PairFiles { cert: PathBuf::from(cert), key: PathBuf::from(key) };
        let certificate = Arc::new(ReloadingCertificate::load(files, provider.clone()).map_err(TlsError::GrpcPair)?);
        let versions = protocol_versions(grpc.tls_min_version.as_deref(), grpc.tls_max_version.as_deref());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(TlsError::GrpcVersions)?;
        let client_ca = match &grpc.tls_client_ca {
            Some(path) => Some(Arc::new(ReloadingClientCa::load(PathBuf::from(path), provider)?)),
            None => None,
        };
        let builder = match &client_ca {
            Some(client_ca) => builder.with_client_cert_verifier(client_ca.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        // gRPC is HTTP/2 only; clients such as grpcio insist on negotiating it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Self { config: Arc::new(config), certificate, client_ca }))
    }
}

/// The verifier of `grpc.tlsClientCA` (a PEM file of one or more CA certificates), re-read when the file
/// changes. A file that fails to load at reload is logged and the current CAs stay in service.
#[derive(Debug)]
pub struct ReloadingClientCa {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Vec<u8>, Arc<dyn ClientCertVerifier>)>,
}

impl ReloadingClientCa {
    fn load(path: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let pem = std::fs::read(&path).map_err(|err| client_ca_error(&path, err.to_string()))?;
        let verifier = verifier(&path, &pem, &provider)?;
        Ok(Self { path, provider, current: RwLock::new((pem, verifier)) })
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        // A poisoned lock still holds a complete verifier: it is only ever replaced whole.
        self.current.read().unwrap_or_else(PoisonError::into_inner).1.clone()
    }
}

impl Reloadable for ReloadingClientCa {
    fn reload_if_changed(&self) -> bool {
        let pem = match std::fs::read(&self.path) {
            Ok(pem) => pem,
            Err(err) => {
                let err = client_ca_error(&self.path, err.to_string());
                tracing::error!(error = %err, "client CA reload failed; keeping the current CAs");
                return false;
            }
        };
        if self.current.read().is_ok_and(|current| current.0 == pem) {
            return false;
        }
        let loaded = verifier(&self.path, &pem, &self.provider);
        let Ok(mut current) = self.current.write() else { return false };
        match loaded {
            Ok(verifier) => {
                *current = (pem, verifier);
                tracing::info!(file = %self.path.display(), "loaded new client CAs for the gRPC API");
                true
            }
            Err(err) => {
                // Remember the bad contents, so the same error is logged once, not at every check.
                current.0 = pem;
                tracing::error!(error = %err, "client CA reload failed; keeping the current CAs");
                false
            }
        }
    }
}

/// Every call goes to the verifier of the CAs loaded last.
impl ClientCertVerifier for ReloadingClientCa {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names are hinted to clients: they would have to be borrowed from a verifier a reload
    /// may replace. Clients send the certificate they are configured with regardless.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

/// A verifier requiring client certificates signed by the CAs in `pem`.
fn verifier(path: &Path, pem: &[u8], provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = client_roots(path, pem)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|err| client_ca_error(path, err.to_string()))
}

/// The CAs of `grpc.tlsClientCA` (a PEM file of one or more certificates).
fn client_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| client_ca_error(path, format!("not a PEM certificate ({err})")))?;
    if certificates.is_empty() {
        return Err(client_ca_error(path, "no PEM certificate in it".into()));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate).map_err(|err| client_ca_error(path, format!("not a usable CA certificate ({err})")))?;
    }
    Ok(roots)
}

fn client_ca_error(path: &Path, reason: String) -> TlsError {
    TlsError::ClientCa { path: path.display().to_string(), reason }
}

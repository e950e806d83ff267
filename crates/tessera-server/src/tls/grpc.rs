//! The gRPC listener's TLS, as Dex sets it up: the `grpc.tlsCert`/`grpc.tlsKey` pair (loaded and
//! reloaded like the web certificate), HTTP/2 only, and with `grpc.tlsClientCA` mutual TLS: a client
//! must present a certificate that CA signed, or the handshake fails.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;

use super::{PairFiles, ReloadingCertificate, TlsError, protocol_versions, provider};
use crate::config::Grpc;

/// The gRPC listener's TLS: its rustls configuration and the certificate it reloads.
pub struct GrpcTls {
    pub config: Arc<ServerConfig>,
    pub certificate: Arc<ReloadingCertificate>,
    /// Whether clients must show a certificate signed by `grpc.tlsClientCA`.
    pub mutual: bool,
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
        let builder = match &grpc.tls_client_ca {
            Some(path) => {
                let roots = client_roots(path)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|err| client_ca_error(path, err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        // gRPC is HTTP/2 only; clients such as grpcio insist on negotiating it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Self { config: Arc::new(config), certificate, mutual: grpc.tls_client_ca.is_some() }))
    }
}

/// The CAs of `grpc.tlsClientCA` (a PEM file of one or more certificates).
fn client_roots(path: &str) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|err| client_ca_error(path, err.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
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

fn client_ca_error(path: &str, reason: String) -> TlsError {
    TlsError::ClientCa { path: path.to_owned(), reason }
}

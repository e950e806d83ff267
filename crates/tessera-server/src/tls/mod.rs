//! TLS for the listeners. HTTPS on `web.https`, as Dex serves it: the PEM pair of `web.tlsCert` and
//! `web.tlsKey`, re-read when it changes, TLS 1.2 and 1.3 (`tlsMinVersion`, `tlsMaxVersion`), rustls on aws-lc-rs, and
//! HTTP/1.1 or HTTP/2 by ALPN; the gRPC listener's TLS, with mutual TLS, is in `grpc.rs`.

pub mod certificate;
mod grpc;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ServerConfig, SupportedProtocolVersion};

pub use certificate::{PairError, PairFiles, Reloadable, ReloadingCertificate, watch};
pub use grpc::GrpcTls;
pub use serve::serve_tls;

use crate::config::Web;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The protocol versions between `min` and `max` (each `1.2` or `1.3`; unset: 1.2 and the newest, as
/// Dex). The configuration check has already refused other values and `min` above `max`.
pub fn protocol_versions(min: Option<&str>, max: Option<&str>) -> Vec<&'static SupportedProtocolVersion> {
    let allows_1_2 = min.is_none_or(|min| min == "1.2");
    let allows_1_3 = max.is_none_or(|max| max == "1.3");
    let mut versions = Vec::new();
    if allows_1_3 {
        versions.push(&rustls::version::TLS13);
    }
    if allows_1_2 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("web.{key}: {0}", key = .0.key())]
    Pair(#[from] PairError),
    #[error("web.tlsMinVersion/tlsMaxVersion: {0}")]
    Versions(rustls::Error),
    #[error("grpc.{key}: {0}", key = .0.key())]
    GrpcPair(PairError),
    #[error("grpc.tlsMinVersion/tlsMaxVersion: {0}")]
    GrpcVersions(rustls::Error),
    #[error("grpc.tlsClientCA: cannot use {path}: {reason}")]
    ClientCa { path: String, reason: String },
}

/// The HTTPS listener's TLS: its rustls configuration and the certificate it reloads.
pub struct Https {
    pub config: Arc<ServerConfig>,
    pub certificate: Arc<ReloadingCertificate>,
}

impl Https {
    /// Loads the pair `web` names; `None` when HTTPS is not configured.
    pub fn from_config(web: &Web) -> Result<Option<Self>, TlsError> {
        let (Some(_), Some(cert), Some(key)) = (&web.https, &web.tls_cert, &web.tls_key) else {
            return Ok(None);
        };
        let provider = provider();
        let files = PairFiles { cert: PathBuf::from(cert), key: PathBuf::from(key) };
        let certificate = Arc::new(ReloadingCertificate::load(files, provider.clone())?);
        let versions = protocol_versions(web.tls_min_version.as_deref(), web.tls_max_version.as_deref());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(TlsError::Versions)?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Self { config: Arc::new(config), certificate }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_min_and_max() {
        let names = |min, max| {
            protocol_versions(min, max).iter().map(|v| format!("{:?}", v.version)).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(names(None, None), "TLSv1_3 TLSv1_2");
        assert_eq!(names(Some("1.3"), None), "TLSv1_3");
        assert_eq!(names(None, Some("1.2")), "TLSv1_2");
        assert_eq!(names(Some("1.2"), Some("1.3")), "TLSv1_3 TLSv1_2");
    }
}

//! HTTPS: a TLS handshake per connection (bounded in time), then the accept loop of plain HTTP
//! (`connections`) on the TLS stream.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A client that opens a connection and says nothing (or speaks plain HTTP and waits) is dropped after
/// this long, so it cannot hold a task and a socket.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over TLS until `stop`, then lets open connections finish their requests.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: Arc<ServerConfig>,
    header_read_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    crate::connections::serve_connections(listener, router, header_read_timeout, stop, move |stream, peer| {
        let acceptor = acceptor.clone();
        async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(err)) => {
                    tracing::debug!(peer = %peer, error = %err, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    None
                }
            }
        }
    })
    .await
}

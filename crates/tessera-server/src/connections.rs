//! The accept loop of every listener, plain or TLS: one task per connection serving HTTP/1.1 or HTTP/2
//! on a router, with the peer's address where the client-IP rule looks for it, a bound on how long a
//! client may take to send its request headers, and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::tasks::stopped;

/// Serves `router` on plain HTTP until `stop`, then lets open connections finish their requests.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    serve_connections(listener, router, header_read_timeout, stop, |stream, _| async move { Some(stream) }).await
}

/// Serves `router` on the connections `accept` turns each TCP stream into (`None`: dropped, e.g. a
/// failed TLS handshake), until `stop`; then lets open connections finish their requests.
///
/// A client gets `header_read_timeout` to send a request's headers (slow-loris clients cannot hold a
/// socket and a task for minutes). hyper applies it only with a timer, which axum's own `serve` does
/// not set: that is why tessera runs this loop rather than `axum::serve`.
pub async fn serve_connections<A, F, Io>(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    accept: A,
) -> std::io::Result<()>
where
    A: Fn(TcpStream, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Option<Io>> + Send + 'static,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connections = GracefulShutdown::new();
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin, as axum does.
                    tracing::error!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let (accept, router, http, watcher) = (accept.clone(), router.clone(), http.clone(), connections.watcher());
        tokio::spawn(async move {
            let Some(stream) = accept(stream, peer).await else { return };
            let service = router.map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let connection =
                http.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(err) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

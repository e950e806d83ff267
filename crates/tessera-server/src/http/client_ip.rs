//! The client's address for a request, by `web.clientRemoteIP` (tessera-core's rule): in the request's
//! log span and, as [`ClientIp`], in its extensions for the handlers that need it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::Request;
use tessera_core::client_ip::ClientIpRule;

/// The address a request is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The request's client address, when the listener recorded its peer (a router driven in-process
/// without a socket has none).
pub fn resolve<B>(rule: &ClientIpRule, request: &Request<B>) -> Option<IpAddr> {
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    let header = rule.header.as_deref().and_then(|name| request.headers().get(name)?.to_str().ok());
    Some(rule.client(peer.ip(), header))
}

//! Request IDs: every request gets one (the caller's `X-Request-Id` when it is short and safe to log,
//! a new random one otherwise). The request is served inside a span carrying it with the method, the
//! route (recorded once routing found it) and the client's address, so every log line written
//! meanwhile has them, and the response returns the ID, so an operator can find the log of any failed
//! request from what the client saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tessera_core::client_ip::ClientIpRule;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use super::client_ip::{self, ClientIp};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request ID taken from a caller.
pub const MAX_LENGTH: usize = 128;

/// The caller's ID, if it can go into a log line and a header as it is: 1 to 128 characters of
/// letters, digits and `-_.:+/=@` (UUIDs, base64 and the IDs of common proxies fit).
pub fn accepted(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= MAX_LENGTH
        && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// A new request ID: this process's random prefix and a counter (`k3x9q2mbd7-2a`), unique across
/// replicas and restarts without a random draw per request.
fn generate() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| tessera_core::id::new_id()[..10].to_owned());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('-');
    // Hex digits, most significant first, without a formatter.
    let digits = (64 - count.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        let nibble = (count >> (shift * 4)) & 0xf;
        id.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
    id
}

/// The layer that gives every request its ID and span (outermost, so every log line of the request
/// has them), and its [`ClientIp`].
#[derive(Debug, Clone, Default)]
pub struct RequestIdLayer {
    client_ip: Arc<ClientIpRule>,
}

impl RequestIdLayer {
    pub fn new(client_ip: ClientIpRule) -> Self {
        Self { client_ip: Arc::new(client_ip) }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> RequestIds<S> {
        RequestIds { inner, client_ip: self.client_ip.clone() }
    }
}

/// Written as a plain service, not with `axum::middleware::from_fn`, which clones and boxes the inner
/// service and its future on every request (~1,000 instructions on a token request).
#[derive(Debug, Clone)]
pub struct RequestIds<S> {
    inner: S,
    client_ip: Arc<ClientIpRule>,
}

impl<S, B, ResponseBody> Service<Request<B>> for RequestIds<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Tagged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .filter(|value| accepted(value))
            .map_or_else(generate, str::to_owned);
        // Only accepted characters, or base32 and hex: always a valid header value.
        let header = HeaderValue::from_str(&id).ok();
        let client = client_ip::resolve(&self.client_ip, &request);
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            route = tracing::field::Empty,
            client_remote_addr = tracing::field::Empty,
        );
        if let Some(client) = client {
            span.record("client_remote_addr", tracing::field::display(client));
            request.extensions_mut().insert(ClientIp(client));
        }
        let inner = span.in_scope(|| self.inner.call(request));
        Tagged { inner: inner.instrument(span), header, started: Instant::now() }
    }
}

pin_project! {
    /// The response future, run inside the request's span; the response gets the ID.
    pub struct Tagged<F> {
        #[pin]
        inner: Instrumented<F>,
        header: Option<HeaderValue>,
        started: Instant,
    }
}

impl<F, ResponseBody, E> Future for Tagged<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = std::task::ready!(this.inner.as_mut().poll(cx))?;
        if let Some(header) = this.header.take() {
            response.headers_mut().insert(X_REQUEST_ID, header);
        }
        // The access line, for `logger.level: debug`.
        this.inner.span().in_scope(|| {
            tracing::debug!(
                status = response.status().as_u16(),
                duration_ms = this.started.elapsed().as_secs_f64() * 1000.0,
                "request served"
            );
        });
        Poll::Ready(Ok(response))
    }
}

/// Records the route template (`/dex/token`, never the raw path) in the request's span once routing
/// matched it; applied with `route_layer`, so it runs for matched routes only.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRouteLayer;

impl<S> Layer<S> for RecordRouteLayer {
    type Service = RecordRoute<S>;

    fn layer(&self, inner: S) -> RecordRoute<S> {
        RecordRoute { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RecordRoute<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RecordRoute<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(route) = request.extensions().get::<MatchedPath>() {
            tracing::Span::current().record("route", route.as_str());
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_taken_and_others_refused() {
        assert!(accepted("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(accepted("req:42/a+b=="));
        assert!(accepted(&"a".repeat(MAX_LENGTH)));
        assert!(!accepted(&"a".repeat(MAX_LENGTH + 1)));
        assert!(!accepted(""));
        assert!(!accepted("id with spaces"));
        assert!(!accepted("id\"},{\"forged\":1"));
        assert!(!accepted("ünïcode"));
    }

    #[test]
    fn generated_ids_are_accepted_and_distinct() {
        let (first, second) = (generate(), generate());
        assert!(accepted(&first) && accepted(&second), "{first} {second}");
        assert_ne!(first, second);
        assert_eq!(first.split('-').next(), second.split('-').next(), "one prefix per process");
        let (a, b) = (first.rsplit('-').next().unwrap(), second.rsplit('-').next().unwrap());
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        assert!(b > a, "a counter: {first} {second}");
    }
}

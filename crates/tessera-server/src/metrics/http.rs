//! Dex's HTTP metrics: `http_requests_total`, `request_duration_seconds` and `response_size_bytes`,
//! labelled `code`, `method` (lower case, as Dex's Prometheus client writes it) and `handler`: the
//! route template relative to the issuer path (`/token`, `/auth/{connector}`), never the path asked
//! for. A route layer, so it sees only requests that matched a route: the 404s of unknown paths are
//! not recorded, as in Dex, and no path a client makes up can add a series.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use tower::{Layer, Service};

use super::child;

pub(super) struct HttpMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub size: HistogramVec,
}

/// Applied with `Router::route_layer` to the public router, after the routes are nested under the
/// issuer path.
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: Arc<HttpMetrics>,
    issuer_path: Arc<str>,
}

impl HttpMetricsLayer {
    pub(super) fn new(metrics: Arc<HttpMetrics>, issuer_path: &str) -> Self {
        Self { metrics, issuer_path: issuer_path.into() }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = Instrumented<S>;

    /// Called once per route and method: each gets its own small table of series.
    fn layer(&self, inner: S) -> Instrumented<S> {
        let route = RouteSeries {
            metrics: self.metrics.clone(),
            issuer_path: self.issuer_path.clone(),
            resolved: RwLock::new(Vec::new()),
        };
        Instrumented { inner, route: Arc::new(route) }
    }
}

/// The series one route's requests went to. A route sees a handful of (method, code) pairs, so a
/// short list scanned under a read lock is cheaper than resolving three label sets per request.
struct RouteSeries {
    metrics: Arc<HttpMetrics>,
    issuer_path: Arc<str>,
    resolved: RwLock<Vec<Series>>,
}

struct Series {
    /// The full matched path (the issuer path included), to check the entry is this request's.
    matched: Box<str>,
    method: &'static str,
    status: StatusCode,
    requests: IntCounter,
    duration: Histogram,
    size: Histogram,
}

impl Series {
    fn is(&self, matched: &str, method: &'static str, status: StatusCode) -> bool {
        self.status == status && self.method == method && &*self.matched == matched
    }

    fn observe(&self, seconds: f64, bytes: u64) {
        self.requests.inc();
        self.duration.observe(seconds);
        self.size.observe(bytes as f64);
    }
}

impl RouteSeries {
    fn record(&self, matched: &str, method: &'static str, status: StatusCode, seconds: f64, bytes: u64) {
        {
            let resolved = self.resolved.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = resolved.iter().find(|series| series.is(matched, method, status)) {
                series.observe(seconds, bytes);
                return;
            }
        }
        let Some(series) = self.resolve(matched, method, status) else { return };
        series.observe(seconds, bytes);
        let mut resolved = self.resolved.write().unwrap_or_else(PoisonError::into_inner);
        if !resolved.iter().any(|known| known.is(matched, method, status)) {
            resolved.push(series);
        }
    }

    fn resolve(&self, matched: &str, method: &'static str, status: StatusCode) -> Option<Series> {
        let labels = [status.as_str(), method, handler(matched, &self.issuer_path)];
        Some(Series {
            matched: matched.into(),
            method,
            status,
            requests: child(&self.metrics.requests, &labels)?,
            duration: child(&self.metrics.duration, &labels)?,
            size: child(&self.metrics.size, &labels)?,
        })
    }
}

/// The route template as Dex names its handlers: relative to the issuer path.
fn handler<'a>(matched: &'a str, issuer_path: &str) -> &'a str {
    match matched.strip_prefix(issuer_path) {
        Some("") => "/",
        Some(relative) if relative.starts_with('/') => relative,
        _ => matched,
    }
}

/// The methods Dex's Prometheus client names; any other is `unknown`, so that made-up methods cannot
/// add series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::DELETE => "delete",
        Method::CONNECT => "connect",
        Method::OPTIONS => "options",
        Method::PATCH => "patch",
        Method::TRACE => "trace",
        _ => "unknown",
    }
}

/// Written as a plain service, like the request-ID layer, to add no boxing to every request.
#[derive(Clone)]
pub struct Instrumented<S> {
    inner: S,
    route: Arc<RouteSeries>,
}

impl<S, B, ResponseBody> Service<Request<B>> for Instrumented<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>>,
    ResponseBody: HttpBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let matched = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        let started = Instant::now();
        Recorded { inner: self.inner.call(request), route: self.route.clone(), matched, method, started }
    }
}

pin_project! {
    /// The response future; the response is recorded when it is ready.
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        route: Arc<RouteSeries>,
        matched: Option<MatchedPath>,
        method: &'static str,
        started: Instant,
    }
}

impl<F, ResponseBody, E> Future for Recorded<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
    ResponseBody: HttpBody,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(matched) = this.matched.take() {
            // The bodies tessera answers with are whole in memory: their exact size is known now.
            let hint = response.body().size_hint();
            let bytes = hint.exact().unwrap_or(hint.lower());
            let seconds = this.started.elapsed().as_secs_f64();
            this.route.record(matched.as_str(), this.method, response.status(), seconds, bytes);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_named_relative_to_the_issuer_path() {
        assert_eq!(handler("/dex/token", "/dex"), "/token");
        assert_eq!(handler("/dex/auth/{connector}", "/dex"), "/auth/{connector}");
        assert_eq!(handler("/token", ""), "/token");
        assert_eq!(handler("/dex", "/dex"), "/");
        assert_eq!(handler("/dexterity", "/dex"), "/dexterity");
    }

    #[test]
    fn methods_are_named_in_lower_case_and_made_up_ones_are_unknown() {
        assert_eq!(method_label(&Method::POST), "post");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "unknown");
    }
}

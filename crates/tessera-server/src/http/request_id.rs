//! Request IDs: every request gets one (the caller's `X-Request-Id` when it is short and safe to log,
//! a new random one otherwise). The request is served inside a span carrying it, so every log line
//! written meanwhile has it, and the response returns it, so an operator can find the log of any
//! failed request from what the client saw.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

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
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub async fn assign(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| accepted(value))
        .map_or_else(generate, str::to_owned);
    // Only accepted characters, or base32 and hex: always a valid header value.
    let header = HeaderValue::from_str(&id).ok();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Some(header) = header {
        response.headers_mut().insert(X_REQUEST_ID, header);
    }
    response
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
    }
}

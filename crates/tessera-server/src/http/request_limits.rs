//! Bounds on what one request may cost before a handler sees it: the body is read here, within
//! `body_read_timeout` (408 after), up to `max_body_bytes` (413 beyond), and a form body may have at
//! most `max_form_fields` fields (400 beyond). Handlers then read a body already in memory.
//! (The header read timeout is the connection's: see `connections`.)

use std::future::poll_fn;
use std::pin::Pin;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::error::OAuthError;

use super::error::oauth_json;
use crate::config::RequestLimits;

pub fn layer(routes: Router, limits: RequestLimits) -> Router {
    routes.layer(axum::middleware::from_fn_with_state(limits, limit_request))
}

async fn limit_request(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let json = answers_json(request.uri().path());
    let declared = content_length(request.headers());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return refuse(json, StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.");
    }
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(limits.body_read_timeout, read(body, limits.max_body_bytes)).await {
        Ok(Ok(body)) => body,
        Ok(Err(Unread::TooLarge)) => {
            return refuse(json, StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.");
        }
        Ok(Err(Unread::Broken)) => return refuse(json, StatusCode::BAD_REQUEST, "The request body could not be read."),
        Err(_) => return refuse(json, StatusCode::REQUEST_TIMEOUT, "The request body was not sent in time."),
    };
    if is_form(&parts.headers) && form_fields(&body) > limits.max_form_fields {
        return refuse(json, StatusCode::BAD_REQUEST, "The form has too many fields.");
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// The endpoints that answer errors in Dex's JSON shape; the others are pages.
fn answers_json(path: &str) -> bool {
    ["/token", "/token/introspect", "/device/code", "/userinfo"].iter().any(|endpoint| path.ends_with(endpoint))
}

fn refuse(json: bool, status: StatusCode, message: &str) -> Response {
    if json {
        oauth_json(&OAuthError::invalid_request(message).with_status(status.as_u16()))
    } else {
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// The fields `application/x-www-form-urlencoded` parsing would yield (empty pieces are skipped).
fn form_fields(body: &[u8]) -> usize {
    body.split(|byte| *byte == b'&').filter(|field| !field.is_empty()).count()
}

enum Unread {
    TooLarge,
    /// The client went away or sent a malformed chunk.
    Broken,
}

/// The body, as long as it stays within `max` bytes (a chunked body has no length to check first).
async fn read(mut body: Body, max: usize) -> Result<Bytes, Unread> {
    let mut buffer = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| Unread::Broken)?.into_data() else { continue };
        if buffer.len() + data.len() > max {
            return Err(Unread::TooLarge);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_as_the_form_parser_sees_them() {
        assert_eq!(form_fields(b""), 0);
        assert_eq!(form_fields(b"a=1&b=2"), 2);
        assert_eq!(form_fields(b"a=1&&b=2&"), 2);
        assert_eq!(form_fields(b"a"), 1);
        assert_eq!(form_fields("x=1&".repeat(10_000).as_bytes()), 10_000);
    }

    #[test]
    fn only_the_api_answers_json() {
        assert!(answers_json("/dex/token"));
        assert!(answers_json("/token/introspect"));
        assert!(!answers_json("/dex/auth/local/login"));
        assert!(!answers_json("/dex/device/auth/verify_code"));
    }
}

//! The device polling at `/token` (RFC 8628 §3.4): `authorization_pending` until the user finished,
//! `slow_down` (and 5 more seconds) when polled faster than the interval, `expired_token` at the end;
//! then the tokens, after the PKCE check when the device asked for one.

use serde_json::Value;
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::model::DeviceToken;
use tessera_core::pkce::check_verifier;
use tessera_storage::StorageError;

use super::TokenForm;
use crate::AppState;

pub const PENDING: &str = "authorization_pending";
pub const COMPLETE: &str = "complete";
/// RFC 8628's default interval, which Dex uses, and the step `slow_down` adds.
pub const POLL_INTERVAL_SECONDS: i32 = 5;

fn internal(err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %err, "device token polling failed");
    OAuthError::server_error()
}

pub async fn poll(state: &AppState, form: &TokenForm) -> Result<Value, OAuthError> {
    let device_code = form.get("device_code");
    if device_code.is_empty() {
        return Err(OAuthError::invalid_request("Required param: device_code."));
    }
    let token = match state.storage.get::<DeviceToken>(device_code).await {
        Ok(token) => token,
        Err(StorageError::NotFound) => return Err(OAuthError::invalid_request("Invalid device code.")),
        Err(err) => return Err(internal(err)),
    };
    let now = state.clock.now();
    if token.expiry < now {
        return Err(OAuthError::new(ErrorCode::ExpiredToken, "Device code has expired."));
    }
    if token.status == COMPLETE {
        let verifier = form.get("code_verifier");
        check_verifier(&token.pkce, (!verifier.is_empty()).then_some(verifier))?;
        return serde_json::from_str(&token.token).map_err(internal);
    }
    // Polled before the interval was over: slow down, and wait 5 s longer each time it happens.
    let earliest = token.last_request_time + time::Duration::seconds(i64::from(token.poll_interval_seconds));
    let too_fast = now < earliest;
    let interval = if too_fast { token.poll_interval_seconds + POLL_INTERVAL_SECONDS } else { POLL_INTERVAL_SECONDS };
    state
        .storage
        .update::<DeviceToken, _, StorageError>(device_code, |mut stored| {
            stored.poll_interval_seconds = interval;
            stored.last_request_time = now;
            Ok(stored)
        })
        .await
        .map_err(internal)?;
    if too_fast {
        Err(OAuthError::new(ErrorCode::SlowDown, ""))
    } else {
        Err(OAuthError::new(ErrorCode::AuthorizationPending, ""))
    }
}

//! The device polling at `/token` (RFC 8628 §3.4): the rule is tessera-core's (`device::poll`);
//! here the poll is recorded and answered, with the tokens after the PKCE check once the user
//! finished. A device polls with its device code alone, so there is no client authentication.

use serde_json::Value;
use tessera_core::device::{Poll, poll};
use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::model::DeviceToken;
use tessera_core::pkce::check_verifier;
use tessera_storage::{Optional, StorageError};

use super::TokenForm;
use crate::AppState;
use crate::http::error::EndpointError;

pub async fn answer(state: &AppState, form: &TokenForm) -> Result<Value, EndpointError> {
    let device_code = form.get("device_code");
    if device_code.is_empty() {
        return Err(OAuthError::invalid_request("Required param: device_code.").into());
    }
    let token = state
        .storage
        .get::<DeviceToken>(device_code)
        .await
        .optional()?
        .ok_or_else(|| OAuthError::invalid_request("Invalid device code."))?;
    let now = state.clock.now();
    let outcome = poll(&token, now);
    if let Some(interval) = outcome.next_interval() {
        state
            .storage
            .update::<DeviceToken, _, StorageError>(device_code, |mut stored| {
                stored.poll_interval_seconds = interval;
                stored.last_request_time = now;
                Ok(stored)
            })
            .await?;
    }
    let code = match outcome {
        Poll::Complete => {
            let verifier = form.get("code_verifier");
            check_verifier(&token.pkce, (!verifier.is_empty()).then_some(verifier))?;
            return Ok(serde_json::from_str(&token.token)?);
        }
        Poll::Expired => return Err(OAuthError::new(ErrorCode::ExpiredToken, "Device code has expired.").into()),
        Poll::SlowDown { .. } => ErrorCode::SlowDown,
        Poll::Pending { .. } => ErrorCode::AuthorizationPending,
    };
    Err(OAuthError::new(code, "").into())
}

//! Each step of the login flow is protected as Dex protects it: an HMAC, keyed by the auth request's
//! own random key, over the request ID and the step name. A user who edits a URL cannot skip the
//! login or the consent screen, and a link for one step does not work for another.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The user logged in: go on to consent or to the response.
    Continue,
    /// Show the consent screen.
    Approval,
    /// The user granted access: issue the response.
    Approved,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Continue => "step:continue",
            Step::Approval => "step:approval",
            Step::Approved => "step:approved",
        }
    }
}

/// The signed message: the ID's length first, so no (id, step) pair can collide with another.
fn message(auth_request_id: &str, step: Step) -> Vec<u8> {
    let mut message = Vec::with_capacity(auth_request_id.len() + 24);
    message.extend_from_slice(&(auth_request_id.len() as u64).to_be_bytes());
    message.extend_from_slice(auth_request_id.as_bytes());
    message.extend_from_slice(step.name().as_bytes());
    message
}

pub fn sign(key: &[u8], auth_request_id: &str, step: Step) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, &message(auth_request_id, step)).as_ref())
}

/// Constant-time check of a step's HMAC.
pub fn verify(key: &[u8], auth_request_id: &str, step: Step, mac: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(mac) else { return false };
    if key.is_empty() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, &message(auth_request_id, step), &tag).is_ok()
}

/// A new per-request HMAC key.
pub fn new_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::fill(&mut key[..]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_mac_verifies_only_for_its_request_and_step() {
        let key = new_key();
        let mac = sign(&key, "req1", Step::Continue);
        assert!(verify(&key, "req1", Step::Continue, &mac));
        assert!(!verify(&key, "req1", Step::Approved, &mac), "another step");
        assert!(!verify(&key, "req2", Step::Continue, &mac), "another request");
        assert!(!verify(&new_key(), "req1", Step::Continue, &mac), "another key");
        assert!(!verify(&key, "req1", Step::Continue, "not base64!"));
        assert!(!verify(&key, "req1", Step::Continue, ""));
    }
}

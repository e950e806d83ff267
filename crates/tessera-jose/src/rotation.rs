//! Dex's key rotation policy as pure functions of the stored keys and the time: rotate when there is
//! no signing key or its rotation time has come; keep the old public key for verification as long as
//! tokens it signed may live; publish the current key first.

use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::model::{Keys, VerificationKey};
use time::OffsetDateTime;

use crate::PrivateKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// Another instance rotated first; its keys stand.
    #[error("the keys were already rotated")]
    AlreadyRotated,
}

pub fn needs_rotation(keys: &Keys, now: OffsetDateTime) -> bool {
    keys.signing_key.is_none() || now >= keys.next_rotation
}

/// The keys after a rotation to `new_key` at `now`; the old public key stays valid for verification
/// for `verify_for` (the ID-token lifetime), and expired verification keys are dropped.
pub fn rotate(
    mut keys: Keys,
    new_key: &PrivateKey,
    now: OffsetDateTime,
    period: Duration,
    verify_for: Duration,
) -> Result<Keys, RotationError> {
    if !needs_rotation(&keys, now) {
        return Err(RotationError::AlreadyRotated);
    }
    keys.verification_keys.retain(|key| key.expiry > now);
    if let Some(old) = keys.signing_key_pub.take() {
        keys.verification_keys.push(VerificationKey { public_key: old, expiry: now + verify_for });
    }
    keys.signing_key = Some(new_key.to_stored());
    keys.signing_key_pub = Some(new_key.public_jwk());
    keys.next_rotation = now + period;
    Ok(keys)
}

/// The JWKS document: the current signing key first, then the keys still valid for verification.
pub fn jwks(keys: &Keys) -> Value {
    let published: Vec<&Value> =
        keys.signing_key_pub.iter().chain(keys.verification_keys.iter().map(|key| &key.public_key)).collect();
    json!({ "keys": published })
}

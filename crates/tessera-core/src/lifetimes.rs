//! How long things live, as Dex has them: the defaults of `expiry.*` and `signer.*`, and the
//! lifetimes Dex does not let an operator change. One place, so a rule and its test read the same value.

use std::time::Duration;

/// `expiry.idTokens`: ID and access tokens.
pub const ID_TOKENS: Duration = Duration::from_secs(24 * 3600);
/// `expiry.authRequests`: a login in progress.
pub const AUTH_REQUESTS: Duration = Duration::from_secs(24 * 3600);
/// `expiry.deviceRequests`: a device code waiting for its user.
pub const DEVICE_REQUESTS: Duration = Duration::from_secs(5 * 60);
/// `signer.config.keysRotationPeriod` (the local signer's `keysRotationPeriod`).
pub const KEYS_ROTATION_PERIOD: Duration = Duration::from_secs(6 * 3600);
/// An authorization code: 30 minutes, not configurable in Dex either.
pub const AUTH_CODE: Duration = Duration::from_secs(30 * 60);

/// A configured [`Duration`] as the `time` crate's, saturating (only lifetimes of billions of years
/// do not fit, and a century is as good).
pub fn as_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::days(36_500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_the_value_or_saturate() {
        assert_eq!(as_time(AUTH_CODE), time::Duration::minutes(30));
        assert_eq!(as_time(Duration::MAX), time::Duration::days(36_500));
    }
}

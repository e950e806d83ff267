//! The `sessions:` section (Dex's `DEX_SESSIONS_ENABLED` feature): browser sessions are on whenever
//! the flag is, with Dex's defaults for whatever the section leaves out.

use std::time::Duration;

use super::diagnostics::Diagnostics;
use super::model::{Sessions, SsoDefault};
use super::reader::Map;

/// `None` when the flag is off (the section is then an error, as in Dex). With the flag on and no
/// section, Dex still runs sessions with its defaults.
pub fn sessions(top: &mut Map, d: &mut Diagnostics, strict: bool, enabled: bool) -> Option<Sessions> {
    let line = top.line_of("sessions");
    if !enabled {
        if top.node("sessions").is_some() {
            d.error(line, "sessions", "requires DEX_SESSIONS_ENABLED=true (an experimental Dex feature)");
        }
        return None;
    }
    let mut sessions = Sessions::default();
    let Some(mut m) = top.map(d, "sessions") else {
        return Some(sessions);
    };
    if let Some(name) = m.string(d, "cookieName").filter(|n| !n.is_empty()) {
        sessions.cookie_name = name;
    }
    if let Some(lifetime) = m.duration(d, "absoluteLifetime") {
        sessions.absolute_lifetime = lifetime;
    }
    if let Some(idle) = m.duration(d, "validIfNotUsedFor") {
        sessions.valid_if_not_used_for = idle;
    }
    if let Some(checked) = m.bool(d, "rememberMeCheckedByDefault") {
        sessions.remember_me_checked_by_default = checked;
    }
    let key = m.string(d, "cookieEncryptionKey").unwrap_or_default();
    if !matches!(key.len(), 0 | 16 | 24 | 32) {
        d.error(
            m.line_of("cookieEncryptionKey"),
            "sessions.cookieEncryptionKey",
            format!("must be 16, 24, or 32 bytes (AES-128/192/256), got {}", key.len()),
        );
    }
    sessions.cookie_encryption_key = (!key.is_empty()).then(|| key.into_bytes());
    match m.string(d, "ssoSharedWithDefault").as_deref() {
        None | Some("" | "none") => {}
        Some("all") => sessions.sso_shared_with_default = SsoDefault::All,
        Some(other) => d.error(
            m.line_of("ssoSharedWithDefault"),
            "sessions.ssoSharedWithDefault",
            format!("must be \"none\" or \"all\", got {other:?}"),
        ),
    }
    check_lifetimes(&mut m, d, &sessions);
    m.finish(d, strict);
    Some(sessions)
}

/// Dex's three checks on the lifetimes, with its wording.
fn check_lifetimes(m: &mut Map, d: &mut Diagnostics, s: &Sessions) {
    if s.absolute_lifetime.is_zero() {
        d.error(
            m.line_of("absoluteLifetime"),
            "sessions.absoluteLifetime",
            "absoluteLifetime must be positive, got 0s",
        );
    }
    if s.valid_if_not_used_for.is_zero() {
        d.error(
            m.line_of("validIfNotUsedFor"),
            "sessions.validIfNotUsedFor",
            "validIfNotUsedFor must be positive, got 0s",
        );
    } else if s.valid_if_not_used_for > s.absolute_lifetime && !s.absolute_lifetime.is_zero() {
        d.error(
            m.line_of("validIfNotUsedFor"),
            "sessions.validIfNotUsedFor",
            format!(
                "validIfNotUsedFor ({}) must not exceed absoluteLifetime ({})",
                go(s.valid_if_not_used_for),
                go(s.absolute_lifetime)
            ),
        );
    }
}

/// A duration as Go prints it (`1h0m0s`, `30m0s`, `45s`), for messages that quote Dex's.
fn go(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go(Duration::from_secs(1800)), "30m0s");
        assert_eq!(go(Duration::from_secs(45)), "45s");
        assert_eq!(go(Duration::from_secs(24 * 3600 + 61)), "24h1m1s");
    }
}

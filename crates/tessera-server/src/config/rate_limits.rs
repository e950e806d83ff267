//! `rateLimits:` (tessera's own section): the brute-force limits, on by default with the defaults of
//! `tessera_core::limits::RateLimits`; each limit a positive count and a positive window.

use tessera_core::limits::{Limit, RateLimits};

use super::diagnostics::Diagnostics;
use super::reader::Map;

pub fn rate_limits(top: &mut Map, d: &mut Diagnostics, strict: bool) -> RateLimits {
    let mut limits = RateLimits::default();
    let Some(mut m) = top.map(d, "rateLimits") else {
        return limits;
    };
    if let Some(enabled) = m.bool(d, "enabled") {
        limits.enabled = enabled;
    }
    if let Some(mut section) = m.map(d, "passwordFailures") {
        let window = window(&mut section, d, limits.password_per_ip.window);
        limits.password_per_account_and_ip =
            limit(&mut section, d, "perAccountAndIP", limits.password_per_account_and_ip, window);
        limits.password_per_ip = limit(&mut section, d, "perIP", limits.password_per_ip, window);
        limits.password_per_account = limit(&mut section, d, "perAccount", limits.password_per_account, window);
        section.finish(d, strict);
    }
    if let Some(mut section) = m.map(d, "clientAuthFailures") {
        let window = window(&mut section, d, limits.client_auth_per_client_and_ip.window);
        limits.client_auth_per_client_and_ip =
            limit(&mut section, d, "perClientAndIP", limits.client_auth_per_client_and_ip, window);
        section.finish(d, strict);
    }
    if let Some(mut section) = m.map(d, "userCodeFailures") {
        let window = window(&mut section, d, limits.user_code_per_ip.window);
        limits.user_code_per_ip = limit(&mut section, d, "perIP", limits.user_code_per_ip, window);
        section.finish(d, strict);
    }
    m.finish(d, strict);
    limits
}

/// The section's `window`, which its limits share.
fn window(section: &mut Map, d: &mut Diagnostics, default: std::time::Duration) -> std::time::Duration {
    match section.duration(d, "window") {
        Some(window) if window.is_zero() => {
            d.error(section.line_of("window"), &section.key_path("window"), "must be positive, got 0s");
            default
        }
        Some(window) => window,
        None => default,
    }
}

fn limit(
    section: &mut Map,
    d: &mut Diagnostics,
    key: &'static str,
    default: Limit,
    window: std::time::Duration,
) -> Limit {
    let max = section.integer_in::<u32>(d, key, 1..=1_000_000).unwrap_or(default.max);
    Limit::new(max, window)
}

//! The brute-force limits (`rateLimits:`) where secrets are checked: password logins (the form and the
//! password grant share one budget), client authentication at `/token` and user codes on the device
//! page. The rules are `tessera_core::limits`; the counters live in storage, so replicas share them.
//!
//! A password attempt is charged to its counters before the password is checked and withdrawn once it
//! succeeds, so concurrent guesses cannot slip past a counter that is about to fill up; a client
//! secret or a user code is checked first and its failure recorded after (they are cheap to check, and
//! `/token` is the hot path: one read beside the client's).

use std::net::IpAddr;
use std::time::Duration;

use tessera_core::error::{ErrorCode, OAuthError};
use tessera_core::limits::{CounterKey, Limit, RateLimits, Verdict};
use tessera_storage::{Storage, StorageError};
use time::OffsetDateTime;

use super::client_ip::ClientIp;
use crate::AppState;
use crate::metrics::Metrics;

/// The client address of a request, if the listener recorded one (see `client_ip`).
pub type Ip = Option<IpAddr>;

pub fn ip_of(client_ip: Option<axum::Extension<ClientIp>>) -> Ip {
    client_ip.map(|axum::Extension(ClientIp(ip))| ip)
}

/// An attempt refused by a limit, until `retry_after` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

impl Refused {
    /// `/token`'s answer: Dex's JSON error shape, 429, `Retry-After`.
    pub fn oauth_error(self) -> OAuthError {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("Too many failed attempts. Try again in {}.", self.wait()),
        )
        .with_status(429)
        .with_retry_after(self.retry_after.as_secs())
    }

    /// How long to wait, in words for a page ("40 seconds", "15 minutes").
    pub fn wait(self) -> String {
        let seconds = self.retry_after.as_secs();
        match seconds {
            0..=1 => "1 second".to_owned(),
            2..=90 => format!("{seconds} seconds"),
            _ => format!("{} minutes", seconds.div_ceil(60)),
        }
    }

    /// The `Retry-After` header of a page answering this refusal.
    pub fn header(self) -> (axum::http::HeaderName, axum::http::HeaderValue) {
        (axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(self.retry_after.as_secs()))
    }
}

/// Why an attempt may not go ahead.
#[derive(Debug)]
pub enum Blocked {
    Refused(Refused),
    /// The counters could not be read or written: the attempt fails cleanly rather than unlimited.
    Storage(StorageError),
}

impl From<StorageError> for Blocked {
    fn from(err: StorageError) -> Self {
        Blocked::Storage(err)
    }
}

impl From<Blocked> for super::error::EndpointError {
    fn from(blocked: Blocked) -> Self {
        match blocked {
            Blocked::Refused(refused) => refused.oauth_error().into(),
            Blocked::Storage(err) => err.into(),
        }
    }
}

/// The limits, over the storage, clock and metrics of a server.
pub struct BruteForce<'a> {
    storage: &'a Storage,
    limits: &'a RateLimits,
    metrics: &'a Metrics,
    now: OffsetDateTime,
}

pub fn limits(state: &AppState) -> BruteForce<'_> {
    BruteForce {
        storage: &state.storage,
        limits: &state.config.rate_limits,
        metrics: &state.metrics,
        now: state.clock.now(),
    }
}

/// A password attempt charged to its counters; settle it with what the connector said.
#[must_use = "an attempt is settled by succeeded, failed or abandoned"]
pub struct PasswordAttempt<'a> {
    limits: Option<&'a BruteForce<'a>>,
    /// The account-and-IP counter: reset by a success.
    account_and_ip: String,
    /// The others: a success only withdraws this attempt from them.
    shared: [String; 2],
}

impl BruteForce<'_> {
    /// Charges a password attempt for `login` through `connector` from `ip` to its three counters, or
    /// refuses it (even with the right password) while any of them is full.
    pub async fn password_attempt(&self, connector: &str, login: &str, ip: Ip) -> Result<PasswordAttempt<'_>, Blocked> {
        let account_and_ip = CounterKey::PasswordAccountAndIp { connector, account: login, ip }.key();
        let per_ip = CounterKey::PasswordIp { ip }.key();
        let per_account = CounterKey::PasswordAccount { connector, account: login }.key();
        if !self.limits.enabled {
            return Ok(PasswordAttempt { limits: None, account_and_ip, shared: [per_ip, per_account] });
        }
        let l = self.limits;
        let counters = [
            ("password_per_account_and_ip", &account_and_ip, l.password_per_account_and_ip),
            ("password_per_ip", &per_ip, l.password_per_ip),
            ("password_per_account", &per_account, l.password_per_account),
        ];
        let [a, b, c] = &counters;
        let charges = tokio::join!(
            self.storage.charge_failure(a.1, a.2, self.now),
            self.storage.charge_failure(b.1, b.2, self.now),
            self.storage.charge_failure(c.1, c.2, self.now),
        );
        let charges = [charges.0, charges.1, charges.2];
        let mut verdict = Verdict::Allowed;
        let mut failure = None;
        let mut charged = Vec::new();
        for ((name, key, _), charge) in counters.iter().zip(charges) {
            match charge {
                Ok(Verdict::Allowed) => charged.push(key.as_str()),
                Ok(refused) => {
                    self.metrics.rate_limited(name);
                    verdict = verdict.and(refused);
                }
                Err(err) => failure = Some(err),
            }
        }
        if let (Verdict::Allowed, None) = (verdict, &failure) {
            return Ok(PasswordAttempt { limits: Some(self), account_and_ip, shared: [per_ip, per_account] });
        }
        // Refused attempts are no failures: take back what was charged to the other counters.
        for key in charged {
            self.withdraw(key).await;
        }
        if let Some(err) = failure {
            return Err(Blocked::Storage(err));
        }
        Err(self.refused(verdict, "password login"))
    }

    /// Before checking the secret of `client_id`: whether its client-and-IP counter allows one more.
    pub async fn client_auth_check(&self, client_id: &str, ip: Ip) -> Result<(), Blocked> {
        let limit = self.limits.client_auth_per_client_and_ip;
        self.check(
            &CounterKey::ClientAuth { client_id, ip }.key(),
            limit,
            "client_auth_per_client_and_ip",
            "client authentication",
        )
        .await
    }

    /// A wrong secret for `client_id`, an existing client.
    pub async fn client_auth_failed(&self, client_id: &str, ip: Ip) {
        let limit = self.limits.client_auth_per_client_and_ip;
        self.record(&CounterKey::ClientAuth { client_id, ip }.key(), limit).await;
    }

    /// Before looking a user code up: whether this IP may try one more.
    pub async fn user_code_check(&self, ip: Ip) -> Result<(), Blocked> {
        let limit = self.limits.user_code_per_ip;
        self.check(&CounterKey::UserCodeIp { ip }.key(), limit, "user_code_per_ip", "device user code").await
    }

    /// A user code that names no live device request.
    pub async fn user_code_failed(&self, ip: Ip) {
        self.record(&CounterKey::UserCodeIp { ip }.key(), self.limits.user_code_per_ip).await;
    }

    async fn check(&self, key: &str, limit: Limit, name: &'static str, what: &str) -> Result<(), Blocked> {
        if !self.limits.enabled {
            return Ok(());
        }
        match self.storage.failure_verdict(key, limit, self.now).await? {
            Verdict::Allowed => Ok(()),
            refused => {
                self.metrics.rate_limited(name);
                Err(self.refused(refused, what))
            }
        }
    }

    /// The caller already answers the failure; a counter that cannot be written is the operator's.
    async fn record(&self, key: &str, limit: Limit) {
        if !self.limits.enabled {
            return;
        }
        if let Err(err) = self.storage.record_failure(key, limit, self.now).await {
            tracing::error!(error = %err, "recording a failed attempt failed");
        }
    }

    async fn withdraw(&self, key: &str) {
        if let Err(err) = self.storage.withdraw_failure(key, self.now).await {
            tracing::error!(error = %err, "withdrawing a charged attempt failed");
        }
    }

    /// Logged once per refusal, in the request's span (which names the client address).
    fn refused(&self, verdict: Verdict, what: &str) -> Blocked {
        let retry_after = match verdict {
            Verdict::Refused { retry_after } => retry_after,
            Verdict::Allowed => Duration::from_secs(1),
        };
        tracing::warn!(retry_after_seconds = retry_after.as_secs(), "too many failed attempts: {what} refused");
        Blocked::Refused(Refused { retry_after })
    }
}

impl PasswordAttempt<'_> {
    /// The right password: the attempt was no failure, and this account may start afresh from this IP.
    pub async fn succeeded(self) {
        let Some(limits) = self.limits else { return };
        let (reset, (), ()) = tokio::join!(
            limits.storage.reset_failures(&self.account_and_ip),
            limits.withdraw(&self.shared[0]),
            limits.withdraw(&self.shared[1]),
        );
        if let Err(err) = reset {
            tracing::error!(error = %err, "resetting the failures of a login failed");
        }
    }

    /// A wrong password (or an unknown account): the charge stands as the failure.
    pub fn failed(self) {}

    /// The connector failed before it could judge the password: no guess was made.
    pub async fn abandoned(self) {
        let Some(limits) = self.limits else { return };
        tokio::join!(
            limits.withdraw(&self.account_and_ip),
            limits.withdraw(&self.shared[0]),
            limits.withdraw(&self.shared[1]),
        );
    }
}

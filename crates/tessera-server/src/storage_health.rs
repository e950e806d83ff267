//! Storage health, as Dex checks it: every 15 seconds a throwaway auth request is written and
//! deleted; `/healthz` reports the last result instead of touching the database per probe.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_core::id::new_id;
use tessera_core::model::{AuthRequest, Claims, Pkce};
use tessera_storage::{Storage, StorageError};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStatus {
    pub healthy: bool,
    /// Why the last check failed; the storage error stays in the log, not in responses.
    pub message: String,
    pub checked_at: OffsetDateTime,
}

#[derive(Debug)]
pub struct Health {
    /// The status, and the number of the check that recorded it.
    status: RwLock<(HealthStatus, u64)>,
    /// Checks are numbered as they start: the periodic check and a probe can overlap, and a check
    /// that started earlier must not overwrite the result of one that started later.
    started: AtomicU64,
}

impl Health {
    /// Dex starts out passing, before the first check ran.
    pub fn new(now: OffsetDateTime) -> Self {
        let passing = HealthStatus { healthy: true, message: "ok".into(), checked_at: now };
        Self { status: RwLock::new((passing, 0)), started: AtomicU64::new(0) }
    }

    pub fn status(&self) -> HealthStatus {
        self.status.read().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone()
    }

    /// Records the outcome of check number `check`, unless a later-started check already recorded its own.
    fn record(&self, check: u64, status: HealthStatus) {
        let mut current = self.status.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if check > current.1 {
            *current = (status, check);
        }
    }

    /// One check: create and delete an auth request that expires soon (GC removes a leftover).
    pub async fn check(&self, storage: &Storage, now: OffsetDateTime) -> Result<(), StorageError> {
        let check = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let result = write_and_delete_probe(storage, now).await;
        match &result {
            Ok(()) => self.record(check, HealthStatus { healthy: true, message: "ok".into(), checked_at: now }),
            Err(err) => {
                tracing::error!(error = %err, "storage health check failed");
                let failing =
                    HealthStatus { healthy: false, message: "storage is unavailable".into(), checked_at: now };
                self.record(check, failing);
            }
        }
        result
    }
}

async fn write_and_delete_probe(storage: &Storage, now: OffsetDateTime) -> Result<(), StorageError> {
    let probe = AuthRequest {
        id: new_id(),
        client_id: String::new(),
        response_types: Vec::new(),
        scopes: Vec::new(),
        redirect_uri: String::new(),
        nonce: String::new(),
        state: String::new(),
        force_approval_prompt: false,
        prompt: String::new(),
        max_age: -1,
        auth_time: None,
        expiry: now + Duration::minutes(1),
        logged_in: false,
        claims: Claims::default(),
        connector_id: String::new(),
        connector_data: Vec::new(),
        pkce: Pkce::default(),
        hmac_key: Vec::new(),
        session_id: String::new(),
        login_hint: String::new(),
    };
    storage.create(&probe).await?;
    storage.delete::<AuthRequest>(&probe.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_that_started_earlier_does_not_overwrite_a_later_one() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let health = Health::new(now);
        let (first, second) = (1, 2);
        health
            .record(second, HealthStatus { healthy: false, message: "storage is unavailable".into(), checked_at: now });
        health.record(first, HealthStatus { healthy: true, message: "ok".into(), checked_at: now });
        assert!(!health.status().healthy, "the later-started check's failure stands");
        health.record(3, HealthStatus { healthy: true, message: "ok".into(), checked_at: now });
        assert!(health.status().healthy);
    }
}

//! Storage health, as Dex checks it: every 15 seconds a throwaway auth request is written and
//! deleted; `/healthz` reports the last result instead of touching the database per probe.

use std::sync::RwLock;

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
    status: RwLock<HealthStatus>,
}

impl Health {
    /// Dex starts out passing, before the first check ran.
    pub fn new(now: OffsetDateTime) -> Self {
        Self { status: RwLock::new(HealthStatus { healthy: true, message: "ok".into(), checked_at: now }) }
    }

    pub fn status(&self) -> HealthStatus {
        self.status.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn record(&self, status: HealthStatus) {
        *self.status.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = status;
    }

    /// One check: create and delete an auth request that expires soon (GC removes a leftover).
    pub async fn check(&self, storage: &Storage, now: OffsetDateTime) -> Result<(), StorageError> {
        let result = write_and_delete_probe(storage, now).await;
        match &result {
            Ok(()) => self.record(HealthStatus { healthy: true, message: "ok".into(), checked_at: now }),
            Err(err) => {
                tracing::error!(error = %err, "storage health check failed");
                self.record(HealthStatus { healthy: false, message: "storage is unavailable".into(), checked_at: now });
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
    };
    storage.create(&probe).await?;
    storage.delete::<AuthRequest>(&probe.id).await
}

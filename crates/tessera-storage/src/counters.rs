//! The failure counters of the brute-force limits (`tessera_core::limits`), stored like every other
//! object so that replicas on one database share one budget. Each change is a compare-and-swap, so
//! concurrent attempts from any replica are all counted and none is let past a full counter.

use std::time::Duration;

use tessera_core::limits::{self, FailureCounter, Limit, Verdict};
use time::OffsetDateTime;

use crate::{Entity, Kind, MAX_UPDATE_ATTEMPTS, Optional, Storage, StorageError};

/// Collected once its newest failure has left the window.
impl Entity for FailureCounter {
    const KIND: Kind = Kind::FailureCounter;
    fn key(&self) -> String {
        self.key.clone()
    }
    fn expiry(&self) -> Option<OffsetDateTime> {
        Some(self.expiry)
    }
}

/// Why a charge did not happen.
enum Charge {
    Storage(StorageError),
    Refused(Duration),
}

impl From<StorageError> for Charge {
    fn from(err: StorageError) -> Self {
        Charge::Storage(err)
    }
}

impl Storage {
    /// Whether the counter under `key` allows one more attempt at `now` (one read; no counter, no
    /// failures).
    pub async fn failure_verdict(&self, key: &str, limit: Limit, now: OffsetDateTime) -> Result<Verdict, StorageError> {
        let counter = self.get::<FailureCounter>(key).await.optional()?;
        Ok(limits::verdict(counter.as_ref(), limit, now))
    }

    /// Charges an attempt to the counter before it is made, if the counter allows one more: the
    /// attempt counts as a failure at `now` until [`Storage::withdraw_failure`] takes it back. Check and
    /// charge are one compare-and-swap, so of many concurrent attempts no more get through than the
    /// limit allows.
    pub async fn charge_failure(&self, key: &str, limit: Limit, now: OffsetDateTime) -> Result<Verdict, StorageError> {
        let charged = self
            .upsert_counter(key, |counter| match limits::verdict(counter.as_ref(), limit, now) {
                Verdict::Allowed => Ok(limits::with_failure(key, counter, limit, now)),
                Verdict::Refused { retry_after } => Err(Charge::Refused(retry_after)),
            })
            .await;
        match charged {
            Ok(_) => Ok(Verdict::Allowed),
            Err(Charge::Refused(retry_after)) => Ok(Verdict::Refused { retry_after }),
            Err(Charge::Storage(err)) => Err(err),
        }
    }

    /// Records a failure at `now`, whatever the counter says.
    pub async fn record_failure(&self, key: &str, limit: Limit, now: OffsetDateTime) -> Result<(), StorageError> {
        let recorded = self.upsert_counter(key, |counter| Ok(limits::with_failure(key, counter, limit, now))).await;
        match recorded {
            Ok(_) => Ok(()),
            Err(Charge::Storage(err)) => Err(err),
            Err(Charge::Refused(_)) => Ok(()),
        }
    }

    /// Takes back the failure [`Storage::charge_failure`] charged at `at`: the attempt did not fail.
    pub async fn withdraw_failure(&self, key: &str, at: OffsetDateTime) -> Result<(), StorageError> {
        match self
            .update::<FailureCounter, _, StorageError>(key, |counter| Ok(limits::without_failure(counter, at)))
            .await
        {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Forgets every failure of the counter.
    pub async fn reset_failures(&self, key: &str) -> Result<(), StorageError> {
        match self.delete::<FailureCounter>(key).await {
            Ok(()) | Err(StorageError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Updates the counter under `key`, creating it if there is none (`updater` then sees `None`).
    async fn upsert_counter<F>(&self, key: &str, mut updater: F) -> Result<FailureCounter, Charge>
    where
        F: FnMut(Option<FailureCounter>) -> Result<FailureCounter, Charge> + Send,
    {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            match self.update(key, |counter| updater(Some(counter))).await {
                Err(Charge::Storage(StorageError::NotFound)) => {}
                done => return done,
            }
            let created = updater(None)?;
            match self.create(&created).await {
                Ok(()) => return Ok(created),
                // Another attempt created it first: count on top of what it wrote.
                Err(StorageError::AlreadyExists) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StorageError::Conflict { kind: Kind::FailureCounter.as_str(), attempts: MAX_UPDATE_ATTEMPTS }.into())
    }
}

//! Timing every backend round trip for whoever wants it (the server's metrics): the storage crate
//! measures and tells an [`StorageObserver`], and records nothing itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::pool::PoolStats;
use crate::{Backend, Document, Kind, StorageError, Swap};

/// What a backend call did, as a bounded name for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Get,
    List,
    Delete,
    /// A compare-and-swap (one, or two in one round trip).
    Update,
    /// Deleting expired objects of one kind.
    Gc,
    Ping,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Create,
        Operation::Get,
        Operation::List,
        Operation::Delete,
        Operation::Update,
        Operation::Gc,
        Operation::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Delete => "delete",
            Operation::Update => "update",
            Operation::Gc => "gc",
            Operation::Ping => "ping",
        }
    }

    /// Its place in [`Operation::ALL`], for tables indexed by operation.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Told how long each backend call took, failed ones included.
pub trait StorageObserver: Send + Sync + 'static {
    fn observe(&self, operation: Operation, elapsed: Duration);
}

/// A backend whose every call is timed for an observer.
pub(crate) struct Observed {
    pub inner: Arc<dyn Backend>,
    pub observer: Arc<dyn StorageObserver>,
}

impl Observed {
    fn record(&self, operation: Operation, started: Instant) {
        self.observer.observe(operation, started.elapsed());
    }
}

#[async_trait]
impl Backend for Observed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn insert(
        &self,
        kind: Kind,
        key: &str,
        data: &str,
        expiry: Option<i64>,
        link: Option<&str>,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let outcome = self.inner.insert(kind, key, data, expiry, link).await;
        self.record(Operation::Create, started);
        outcome
    }

    async fn get(&self, kind: Kind, key: &str) -> Result<Document, StorageError> {
        let started = Instant::now();
        let outcome = self.inner.get(kind, key).await;
        self.record(Operation::Get, started);
        outcome
    }

    async fn get_linked(
        &self,
        kind: Kind,
        key: &str,
        linked_kind: Kind,
    ) -> Result<(Document, Option<Document>), StorageError> {
        let started = Instant::now();
        let outcome = self.inner.get_linked(kind, key, linked_kind).await;
        self.record(Operation::Get, started);
        outcome
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Document>, StorageError> {
        let started = Instant::now();
        let outcome = self.inner.list(kind).await;
        self.record(Operation::List, started);
        outcome
    }

    async fn delete(&self, kind: Kind, key: &str) -> Result<(), StorageError> {
        let started = Instant::now();
        let outcome = self.inner.delete(kind, key).await;
        self.record(Operation::Delete, started);
        outcome
    }

    async fn compare_and_swap(&self, swap: &Swap<'_>) -> Result<bool, StorageError> {
        let started = Instant::now();
        let outcome = self.inner.compare_and_swap(swap).await;
        self.record(Operation::Update, started);
        outcome
    }

    async fn compare_and_swap_then(&self, first: &Swap<'_>, second: &Swap<'_>) -> Result<(bool, bool), StorageError> {
        let started = Instant::now();
        let outcome = self.inner.compare_and_swap_then(first, second).await;
        self.record(Operation::Update, started);
        outcome
    }

    async fn delete_expired(&self, kind: Kind, now: i64) -> Result<u64, StorageError> {
        let started = Instant::now();
        let outcome = self.inner.delete_expired(kind, now).await;
        self.record(Operation::Gc, started);
        outcome
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let started = Instant::now();
        let outcome = self.inner.ping().await;
        self.record(Operation::Ping, started);
        outcome
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        self.inner.pool_stats()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::Storage;
    use crate::memory::MemoryBackend;
    use tessera_core::model::Client;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Operation>>);

    impl StorageObserver for Seen {
        fn observe(&self, operation: Operation, _elapsed: Duration) {
            self.0.lock().unwrap().push(operation);
        }
    }

    #[tokio::test]
    async fn every_backend_call_is_observed_once_under_its_operation() {
        let seen = Arc::new(Seen::default());
        let storage = Storage::new(Arc::new(MemoryBackend::new())).observed(seen.clone());
        let client = Client { id: "app".into(), ..Client::default() };
        storage.create(&client).await.unwrap();
        storage.get::<Client>("app").await.unwrap();
        storage.list::<Client>().await.unwrap();
        storage.delete::<Client>("app").await.unwrap();
        assert!(storage.get::<Client>("app").await.is_err(), "a failed call is observed too");
        storage.ping().await.unwrap();
        use Operation::*;
        assert_eq!(*seen.0.lock().unwrap(), [Create, Get, List, Delete, Get, Ping]);
    }

    #[test]
    fn operations_index_their_table() {
        for (i, operation) in Operation::ALL.iter().enumerate() {
            assert_eq!(operation.index(), i);
        }
    }
}

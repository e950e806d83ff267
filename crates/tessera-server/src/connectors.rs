//! The connectors this server logs users in with: opened at start-up from storage (the configured
//! ones and any stored ones), and brought in line with storage again when the API changes one or a
//! login page is shown, so that a connector created, updated or deleted on any replica takes effect
//! without a restart (Dex reads its connectors from storage in the same places).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tessera_connectors::{OpenedConnector, open};
use tessera_core::model::Connector;
use tessera_storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum ConnectorsError {
    #[error("listing connectors: {0}")]
    Storage(#[from] StorageError),
    #[error("connector {id:?} failed to open: {message} (DEX_CONTINUE_ON_CONNECTOR_FAILURE is false)")]
    Failed { id: String, message: String },
    #[error("no connector could be opened: configure at least one connector or enablePasswordDB")]
    None,
}

/// One opened connector and the stored record it was opened from (`None`: built in code).
#[derive(Clone)]
struct Entry {
    opened: Arc<OpenedConnector>,
    source: Option<Connector>,
}

/// The connectors in service at one moment, in the order they were configured.
#[derive(Clone, Default)]
struct Set {
    entries: Vec<Entry>,
    index: BTreeMap<String, usize>,
    /// Stored records that failed to open, tried again only once they change: an upstream that is down
    /// must not make every login page wait for its discovery.
    failed: BTreeMap<String, Connector>,
}

impl Set {
    fn push(&mut self, entry: Entry) {
        self.index.insert(entry.opened.id.clone(), self.entries.len());
        self.entries.push(entry);
    }

    fn get(&self, id: &str) -> Option<&Entry> {
        self.index.get(id).and_then(|i| self.entries.get(*i))
    }
}

#[derive(Default)]
pub struct Connectors {
    /// Readers take a snapshot; a refresh swaps in a new one.
    current: RwLock<Arc<Set>>,
    /// One refresh at a time, so that a changed connector is opened once.
    refreshing: tokio::sync::Mutex<()>,
}

impl Connectors {
    /// Opens every connector; one that fails is logged and skipped when `continue_on_failure` (Dex's
    /// default) and at least one other opens.
    /// `embedded` are connectors built in code by a program that embeds tessera (they come after the
    /// configured ones; an ID already taken is an error).
    pub async fn open(
        storage: &Storage,
        continue_on_failure: bool,
        embedded: Vec<OpenedConnector>,
    ) -> Result<Self, ConnectorsError> {
        let mut set = Set::default();
        for connector in storage.list::<Connector>().await? {
            match open(&connector, storage).await {
                Ok(opened) => set.push(Entry { opened: Arc::new(opened), source: Some(connector) }),
                Err(err) if continue_on_failure => {
                    tracing::error!(connector = %connector.id, kind = %connector.kind, error = %err, "skipping a connector that failed to open");
                    set.failed.insert(connector.id.clone(), connector);
                }
                Err(err) => return Err(ConnectorsError::Failed { id: connector.id, message: err.to_string() }),
            }
        }
        for connector in embedded {
            if set.get(&connector.id).is_some() {
                return Err(ConnectorsError::Failed {
                    id: connector.id,
                    message: "the ID is already configured".into(),
                });
            }
            set.push(Entry { opened: Arc::new(connector), source: None });
        }
        if set.entries.is_empty() {
            return Err(ConnectorsError::None);
        }
        Ok(Self { current: RwLock::new(Arc::new(set)), refreshing: tokio::sync::Mutex::new(()) })
    }

    fn snapshot(&self) -> Arc<Set> {
        self.current.read().map(|set| set.clone()).unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<Arc<OpenedConnector>> {
        self.snapshot().get(id).map(|entry| entry.opened.clone())
    }

    pub fn all(&self) -> Vec<Arc<OpenedConnector>> {
        self.snapshot().entries.iter().map(|entry| entry.opened.clone()).collect()
    }

    /// Brings the connectors in line with storage: opens the new ones, reopens those whose record
    /// changed and closes the deleted ones; the others stay as they are (no upstream discovery again).
    /// One that fails to open is logged and left out, never served with its previous settings.
    pub async fn refresh(&self, storage: &Storage) -> Result<(), StorageError> {
        // The common case, nothing changed, takes no lock: login pages do not queue behind each other.
        if in_line(&self.snapshot(), &storage.list::<Connector>().await?) {
            return Ok(());
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Read again under the lock, so that a refresh that waited cannot put back an older list.
        let stored = storage.list::<Connector>().await?;
        let before = self.snapshot();
        if in_line(&before, &stored) {
            return Ok(());
        }
        let mut next = Set::default();
        for connector in stored {
            if let Some(entry) = before.get(&connector.id).filter(|e| e.source.as_ref() == Some(&connector)) {
                next.push(entry.clone());
                continue;
            }
            if before.failed.get(&connector.id) == Some(&connector) {
                next.failed.insert(connector.id.clone(), connector);
                continue;
            }
            if before.get(&connector.id).is_some_and(|e| e.source.is_none()) {
                tracing::error!(connector = %connector.id, "a stored connector has the ID of a connector built in code; ignoring it");
                next.failed.insert(connector.id.clone(), connector);
                continue;
            }
            match open(&connector, storage).await {
                Ok(opened) => {
                    tracing::info!(connector = %connector.id, kind = %connector.kind, "opened a connector from storage");
                    next.push(Entry { opened: Arc::new(opened), source: Some(connector) });
                }
                Err(err) => {
                    tracing::error!(connector = %connector.id, kind = %connector.kind, error = %err, "a stored connector failed to open; it is not served");
                    next.failed.insert(connector.id.clone(), connector);
                }
            }
        }
        for entry in embedded(&before) {
            next.push(entry.clone());
        }
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(next);
        }
        Ok(())
    }
}

/// Whether `set` already reflects `stored`: the same records, opened or known to fail.
fn in_line(set: &Set, stored: &[Connector]) -> bool {
    let known = |c: &Connector| {
        set.get(&c.id).is_some_and(|e| e.source.as_ref() == Some(c)) || set.failed.get(&c.id) == Some(c)
    };
    stored.len() + embedded(set).count() == set.entries.len() + set.failed.len() && stored.iter().all(known)
}

fn embedded(set: &Set) -> impl Iterator<Item = &Entry> {
    set.entries.iter().filter(|entry| entry.source.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock(id: &str, name: &str) -> Connector {
        Connector { id: id.into(), kind: "mockCallback".into(), name: name.into(), ..Connector::default() }
    }

    #[tokio::test]
    async fn refresh_opens_new_reopens_changed_and_drops_deleted_connectors_only() {
        let storage = Storage::new(Arc::new(tessera_storage::memory::MemoryBackend::new()));
        storage.create(&mock("kept", "Kept")).await.unwrap();
        let connectors = Connectors::open(&storage, true, Vec::new()).await.unwrap();
        let kept = connectors.get("kept").unwrap();

        storage.create(&mock("added", "Added")).await.unwrap();
        connectors.refresh(&storage).await.unwrap();
        assert_eq!(connectors.get("added").unwrap().name, "Added");
        assert!(Arc::ptr_eq(&kept, &connectors.get("kept").unwrap()), "an unchanged connector is not reopened");

        storage
            .update::<Connector, _, StorageError>("kept", |c| Ok(Connector { name: "Renamed".into(), ..c }))
            .await
            .unwrap();
        storage.delete::<Connector>("added").await.unwrap();
        let broken = Connector { id: "broken".into(), kind: "nosuch".into(), ..Connector::default() };
        storage.create(&broken).await.unwrap();
        connectors.refresh(&storage).await.unwrap();
        assert_eq!(connectors.get("kept").unwrap().name, "Renamed", "a changed record is reopened");
        assert!(connectors.get("added").is_none() && connectors.get("broken").is_none());
        let ids: Vec<String> = connectors.all().iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, ["kept"]);
        assert!(
            in_line(&connectors.snapshot(), &storage.list::<Connector>().await.unwrap()),
            "the failure is remembered"
        );
    }
}

//! The connectors this server logs users in with, opened once at start-up from storage (the
//! configured ones and any stored ones).

use std::collections::BTreeMap;

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

#[derive(Default)]
pub struct Connectors {
    /// In the order they were configured.
    opened: Vec<OpenedConnector>,
    index: BTreeMap<String, usize>,
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
        let mut connectors = Connectors::default();
        for connector in storage.list::<Connector>().await? {
            match open(&connector, storage).await {
                Ok(opened) => connectors.push(opened),
                Err(err) if continue_on_failure => {
                    tracing::error!(connector = %connector.id, kind = %connector.kind, error = %err, "skipping a connector that failed to open");
                }
                Err(err) => return Err(ConnectorsError::Failed { id: connector.id, message: err.to_string() }),
            }
        }
        for connector in embedded {
            if connectors.get(&connector.id).is_some() {
                return Err(ConnectorsError::Failed {
                    id: connector.id,
                    message: "the ID is already configured".into(),
                });
            }
            connectors.push(connector);
        }
        if connectors.opened.is_empty() {
            return Err(ConnectorsError::None);
        }
        Ok(connectors)
    }

    fn push(&mut self, connector: OpenedConnector) {
        self.index.insert(connector.id.clone(), self.opened.len());
        self.opened.push(connector);
    }

    pub fn get(&self, id: &str) -> Option<&OpenedConnector> {
        self.index.get(id).and_then(|i| self.opened.get(*i))
    }

    pub fn all(&self) -> &[OpenedConnector] {
        &self.opened
    }
}

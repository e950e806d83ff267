//! The `memory` backend: a map behind a mutex. State is lost on restart.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{Backend, Document, Kind, StorageError, Swap};

#[derive(Debug, Default)]
pub struct MemoryBackend {
    documents: Mutex<HashMap<(Kind, String), Document>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn documents(&self) -> MutexGuard<'_, HashMap<(Kind, String), Document>> {
        // A panic while holding the lock cannot leave a half-written document (every write is one
        // map operation), so a poisoned lock is safe to keep using.
        self.documents.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn insert(
        &self,
        kind: Kind,
        key: &str,
        data: &str,
        expiry: Option<i64>,
        link: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut documents = self.documents();
        let slot = documents.entry((kind, key.to_owned()));
        match slot {
            std::collections::hash_map::Entry::Occupied(_) => Err(StorageError::AlreadyExists),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(Document { data: data.to_owned(), version: 1, expiry, link: link.map(str::to_owned) });
                Ok(())
            }
        }
    }

    async fn get(&self, kind: Kind, key: &str) -> Result<Document, StorageError> {
        self.documents().get(&(kind, key.to_owned())).cloned().ok_or(StorageError::NotFound)
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Document>, StorageError> {
        let documents = self.documents();
        let mut found: Vec<(&String, &Document)> =
            documents.iter().filter(|((k, _), _)| *k == kind).map(|((_, key), doc)| (key, doc)).collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        Ok(found.into_iter().map(|(_, doc)| doc.clone()).collect())
    }

    async fn delete(&self, kind: Kind, key: &str) -> Result<(), StorageError> {
        self.documents().remove(&(kind, key.to_owned())).map(|_| ()).ok_or(StorageError::NotFound)
    }

    async fn compare_and_swap(&self, swap: &Swap<'_>) -> Result<bool, StorageError> {
        let mut documents = self.documents();
        match documents.get_mut(&(swap.kind, swap.key.to_owned())) {
            Some(doc) if doc.version == swap.version => {
                *doc = Document {
                    data: swap.data.to_owned(),
                    version: swap.version + 1,
                    expiry: swap.expiry,
                    link: swap.link.map(str::to_owned),
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_expired(&self, kind: Kind, now: i64) -> Result<u64, StorageError> {
        let mut documents = self.documents();
        let before = documents.len();
        documents.retain(|(k, _), doc| *k != kind || doc.expiry.is_none_or(|expiry| expiry >= now));
        Ok((before - documents.len()) as u64)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

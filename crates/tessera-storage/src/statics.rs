//! The read-only overlay of objects defined in the configuration file (static clients, passwords and
//! connectors): found like stored objects, but never written, deleted or shadowed. They are kept as
//! the typed values themselves, so a lookup (every token request looks its client up) is a map
//! search and a clone, with no decoding.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};

use crate::storage::encode;
use crate::{Entity, Kind, StorageError};

/// One configured object and its position in the configuration.
struct Entry {
    position: usize,
    value: Box<dyn Any + Send + Sync>,
}

#[derive(Default)]
pub struct StaticObjects {
    objects: HashMap<Kind, BTreeMap<String, Entry>>,
    count: usize,
}

impl std::fmt::Debug for StaticObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticObjects").field("count", &self.count).finish_non_exhaustive()
    }
}

impl StaticObjects {
    /// Adds a configured object; [`StorageError::AlreadyExists`] if its key was configured already.
    pub fn add<E: Entity>(&mut self, value: &E) -> Result<(), StorageError> {
        let key = value.key();
        if self.contains(E::KIND, &key) {
            return Err(StorageError::AlreadyExists);
        }
        // A value that could not be stored must not be served from the configuration either.
        encode(value)?;
        let entry = Entry { position: self.count, value: Box::new(value.clone()) };
        self.objects.entry(E::KIND).or_default().insert(key, entry);
        self.count += 1;
        Ok(())
    }

    pub fn contains(&self, kind: Kind, key: &str) -> bool {
        self.objects.get(&kind).is_some_and(|of_kind| of_kind.contains_key(key))
    }

    pub(crate) fn get<E: Entity>(&self, key: &str) -> Option<E> {
        self.objects.get(&E::KIND)?.get(key)?.value.downcast_ref::<E>().cloned()
    }

    pub(crate) fn list<E: Entity>(&self) -> Vec<E> {
        let Some(of_kind) = self.objects.get(&E::KIND) else { return Vec::new() };
        let mut found: Vec<&Entry> = of_kind.values().collect();
        found.sort_by_key(|entry| entry.position);
        found.into_iter().filter_map(|entry| entry.value.downcast_ref::<E>().cloned()).collect()
    }
}

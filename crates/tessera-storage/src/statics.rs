//! The read-only overlay of objects defined in the configuration file (static clients, passwords and
//! connectors): found like stored objects, but never written, deleted or shadowed.

use std::collections::BTreeMap;

use crate::storage::{decode, encode};
use crate::{Entity, Kind, StorageError};

#[derive(Debug, Default)]
pub struct StaticObjects {
    /// (kind, key) to the object's JSON, in the order the configuration lists them.
    objects: BTreeMap<(Kind, String), (usize, String)>,
}

impl StaticObjects {
    /// Adds a configured object; [`StorageError::AlreadyExists`] if its key was configured already.
    pub fn add<E: Entity>(&mut self, value: &E) -> Result<(), StorageError> {
        let key = value.key();
        if self.contains(E::KIND, &key) {
            return Err(StorageError::AlreadyExists);
        }
        let position = self.objects.len();
        self.objects.insert((E::KIND, key), (position, encode(value)?));
        Ok(())
    }

    pub fn contains(&self, kind: Kind, key: &str) -> bool {
        self.objects.contains_key(&(kind, key.to_owned()))
    }

    pub(crate) fn get<E: Entity>(&self, key: &str) -> Result<Option<E>, StorageError> {
        self.objects.get(&(E::KIND, key.to_owned())).map(|(_, data)| decode(data)).transpose()
    }

    pub(crate) fn list<E: Entity>(&self) -> Result<Vec<E>, StorageError> {
        let mut found: Vec<&(usize, String)> =
            self.objects.iter().filter(|((kind, _), _)| *kind == E::KIND).map(|(_, entry)| entry).collect();
        found.sort_by_key(|(position, _)| *position);
        found.into_iter().map(|(_, data)| decode(data)).collect()
    }
}

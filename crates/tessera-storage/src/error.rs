//! The errors every storage operation can return.

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Dex's `ErrNotFound`.
    #[error("not found")]
    NotFound,
    /// Dex's `ErrAlreadyExists`.
    #[error("already exists")]
    AlreadyExists,
    /// An update lost the compare-and-swap race too many times in a row.
    #[error("update conflict: the {kind} changed concurrently {attempts} times in a row")]
    Conflict { kind: &'static str, attempts: u32 },
    /// A write to an object that the configuration file defines.
    #[error("{kind} {id:?} is defined in the configuration file and is read-only")]
    ReadOnly { kind: &'static str, id: String },
    /// An updater tried to change the key of the object it was updating.
    #[error("an update may not change the key of a {kind}")]
    KeyChanged { kind: &'static str },
    /// A stored document that no longer decodes, or a value that does not encode.
    #[error("stored {kind} could not be (de)serialized: {source}")]
    Codec {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The database failed or could not be reached.
    #[error("{backend} storage error: {message}")]
    Backend { backend: &'static str, message: String },
}

impl StorageError {
    pub(crate) fn backend(backend: &'static str, err: impl std::fmt::Display) -> Self {
        StorageError::Backend { backend, message: err.to_string() }
    }
}

/// [`StorageError::NotFound`] as `None`, for the many reads where a missing object is an answer
/// rather than a failure: `storage.get::<Client>(id).await.optional()?`.
pub trait Optional<T> {
    fn optional(self) -> Result<Option<T>, StorageError>;
}

impl<T> Optional<T> for Result<T, StorageError> {
    fn optional(self) -> Result<Option<T>, StorageError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(StorageError::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_not_found_becomes_none() {
        assert!(matches!(Ok::<_, StorageError>(1).optional(), Ok(Some(1))));
        assert!(matches!(Err::<i32, _>(StorageError::NotFound).optional(), Ok(None)));
        assert!(matches!(Err::<i32, _>(StorageError::AlreadyExists).optional(), Err(StorageError::AlreadyExists)));
    }
}

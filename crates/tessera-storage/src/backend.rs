//! The one trait a storage backend implements: a versioned document store keyed by (kind, key).

use async_trait::async_trait;

use crate::StorageError;
use crate::pool::PoolStats;

/// The kinds of object tessera stores; each is a separate key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Client,
    AuthRequest,
    AuthCode,
    RefreshToken,
    Password,
    OfflineSessions,
    Connector,
    Keys,
    DeviceRequest,
    DeviceToken,
    AuthSession,
    UserIdentity,
    BackchannelLogout,
    FailureCounter,
}

impl Kind {
    /// The name stored in the `kind` column; never change one, or stored data is lost.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::AuthRequest => "auth_request",
            Kind::AuthCode => "auth_code",
            Kind::RefreshToken => "refresh_token",
            Kind::Password => "password",
            Kind::OfflineSessions => "offline_sessions",
            Kind::Connector => "connector",
            Kind::Keys => "keys",
            Kind::DeviceRequest => "device_request",
            Kind::DeviceToken => "device_token",
            Kind::AuthSession => "auth_session",
            Kind::UserIdentity => "user_identity",
            Kind::BackchannelLogout => "backchannel_logout",
            Kind::FailureCounter => "failure_counter",
        }
    }
}

/// A stored document: the entity as JSON, its version for compare-and-swap, its expiry (Unix
/// nanoseconds) for the kinds that garbage collection removes, and the key of the document it links
/// to (a refresh token's offline session), for [`Backend::get_linked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub data: String,
    pub version: i64,
    pub expiry: Option<i64>,
    pub link: Option<String>,
}

/// One compare-and-swap: the document to write at `key` (with its link) if it is still at `version`.
#[derive(Debug, Clone, Copy)]
pub struct Swap<'a> {
    pub kind: Kind,
    pub key: &'a str,
    pub version: i64,
    pub data: &'a str,
    pub expiry: Option<i64>,
    pub link: Option<&'a str>,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors: `memory`, `sqlite3`, `postgres`.
    fn name(&self) -> &'static str;

    /// Stores a new document at version 1; [`StorageError::AlreadyExists`] if the key is taken.
    async fn insert(
        &self,
        kind: Kind,
        key: &str,
        data: &str,
        expiry: Option<i64>,
        link: Option<&str>,
    ) -> Result<(), StorageError>;

    /// [`StorageError::NotFound`] if there is no such key.
    async fn get(&self, kind: Kind, key: &str) -> Result<Document, StorageError>;

    /// The document at `key` and, if it has a link, the document of `linked_kind` under that key
    /// (`None` if there is none): what two gets do, which is this default, but a backend with round
    /// trips does it in one.
    async fn get_linked(
        &self,
        kind: Kind,
        key: &str,
        linked_kind: Kind,
    ) -> Result<(Document, Option<Document>), StorageError> {
        let document = self.get(kind, key).await?;
        let linked = match &document.link {
            Some(link) => match self.get(linked_kind, link).await {
                Ok(linked) => Some(linked),
                Err(StorageError::NotFound) => None,
                Err(err) => return Err(err),
            },
            None => None,
        };
        Ok((document, linked))
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Document>, StorageError>;

    /// Removes the key atomically: of two concurrent deletes exactly one succeeds, the other gets
    /// [`StorageError::NotFound`]. This is what makes authorization codes single-use.
    async fn delete(&self, kind: Kind, key: &str) -> Result<(), StorageError>;

    /// Replaces the document only if it is still at `swap.version`, bumping the version. `Ok(false)` if
    /// it changed or disappeared in between.
    async fn compare_and_swap(&self, swap: &Swap<'_>) -> Result<bool, StorageError>;

    /// [`Backend::compare_and_swap`] of `first`, then of `second` only if `first` was written: what
    /// two calls do, which is this default, but a backend with round trips does it in one. The two
    /// must name different documents. Returns whether each was written.
    async fn compare_and_swap_then(&self, first: &Swap<'_>, second: &Swap<'_>) -> Result<(bool, bool), StorageError> {
        one_after_the_other(self, first, second).await
    }

    /// Deletes the documents of `kind` whose expiry is strictly before `now` (Unix nanoseconds).
    async fn delete_expired(&self, kind: Kind, now: i64) -> Result<u64, StorageError>;

    /// A cheap round trip that proves the backend answers.
    async fn ping(&self) -> Result<(), StorageError>;

    /// How its connection pool is used right now; `None` for a backend without one.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

/// [`Backend::compare_and_swap_then`] as two calls.
pub(crate) async fn one_after_the_other<B: Backend + ?Sized>(
    backend: &B,
    first: &Swap<'_>,
    second: &Swap<'_>,
) -> Result<(bool, bool), StorageError> {
    if !backend.compare_and_swap(first).await? {
        return Ok((false, false));
    }
    Ok((true, backend.compare_and_swap(second).await?))
}

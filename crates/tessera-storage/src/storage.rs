//! Dex's storage API, written once over any [`Backend`]: typed create/get/list/delete, the
//! compare-and-swap update loop, the read-only overlay of configured objects, and garbage collection.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::model::{
    AuthCode, AuthRequest, AuthSession, BackchannelLogout, DeviceRequest, DeviceToken, Keys, OfflineSessions, Password,
    RefreshToken, UserIdentity,
};
use time::OffsetDateTime;

use crate::entity::{KEYS_KEY, offline_sessions_key};
use crate::observe::Observed;
use crate::pool::PoolStats;
use crate::{Backend, Entity, StaticObjects, StorageError, StorageObserver, Swap};

/// How many times an update re-reads and re-runs its updater after losing a race before it gives up
/// with [`StorageError::Conflict`]. Enough for a hundred writers on one row; a writer that still loses
/// this often is in a livelock, not a race.
pub const MAX_UPDATE_ATTEMPTS: u32 = 100;

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcResult {
    pub auth_requests: u64,
    pub auth_codes: u64,
    pub device_requests: u64,
    pub device_tokens: u64,
    pub auth_sessions: u64,
    /// Back-channel logout tokens that expired undelivered.
    pub backchannel_logouts: u64,
    /// Brute-force counters whose failures have all left their window.
    pub failure_counters: u64,
}

impl GcResult {
    pub fn is_empty(&self) -> bool {
        *self == GcResult::default()
    }
}

/// The storage a server uses: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
    statics: Arc<StaticObjects>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("backend", &self.backend.name()).finish()
    }
}

/// An object as read from the backend, with its version for a later compare-and-swap.
#[derive(Debug, Clone)]
pub struct Versioned<E> {
    pub value: E,
    version: i64,
}

impl Storage {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend, statics: Arc::new(StaticObjects::default()) }
    }

    /// Overlays objects from the configuration file: readable like stored ones, never writable.
    pub fn with_statics(self, statics: StaticObjects) -> Self {
        Self { statics: Arc::new(statics), ..self }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The same storage, with every backend round trip timed for `observer` (the server's metrics).
    pub fn observed(self, observer: Arc<dyn StorageObserver>) -> Self {
        Self { backend: Arc::new(Observed { inner: self.backend, observer }), ..self }
    }

    /// How the backend's connection pool is used right now; `None` for the memory backend.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        self.backend.pool_stats()
    }

    /// [`StorageError::AlreadyExists`] if the key is taken, by a stored or a configured object.
    pub async fn create<E: Entity>(&self, value: &E) -> Result<(), StorageError> {
        let key = value.key();
        if self.statics.contains(E::KIND, &key) {
            return Err(StorageError::AlreadyExists);
        }
        let data = encode(value)?;
        let link = value.link().map(|(_, key)| key);
        self.backend.insert(E::KIND, &key, &data, expiry_nanos(value), link.as_deref()).await
    }

    /// [`StorageError::NotFound`] if there is no such object.
    pub async fn get<E: Entity>(&self, key: &str) -> Result<E, StorageError> {
        let key = E::normalize_key(key);
        if let Some(value) = self.statics.get::<E>(&key) {
            return Ok(value);
        }
        decode::<E>(&self.backend.get(E::KIND, &key).await?.data)
    }

    /// Configured objects first, then stored ones (a stored object never shadows a configured one).
    pub async fn list<E: Entity>(&self) -> Result<Vec<E>, StorageError> {
        let mut values = self.statics.list::<E>();
        for doc in self.backend.list(E::KIND).await? {
            let value: E = decode(&doc.data)?;
            if !self.statics.contains(E::KIND, &value.key()) {
                values.push(value);
            }
        }
        Ok(values)
    }

    /// Atomic: of concurrent deletes of one key, exactly one succeeds.
    pub async fn delete<E: Entity>(&self, key: &str) -> Result<(), StorageError> {
        let key = E::normalize_key(key);
        self.ensure_writable::<E>(&key)?;
        self.backend.delete(E::KIND, &key).await
    }

    /// Compare-and-swap update: reads the object, runs `updater` on it and writes the result only if
    /// nobody wrote in between; otherwise it reads again and re-runs `updater`, so `updater` may run
    /// more than once and must not have side effects. An error from `updater` aborts the update and
    /// leaves the stored value as it was.
    pub async fn update<E, F, Er>(&self, key: &str, updater: F) -> Result<E, Er>
    where
        E: Entity,
        F: FnMut(E) -> Result<E, Er> + Send,
        Er: From<StorageError> + Send,
    {
        self.compare_and_swap_loop(&E::normalize_key(key), None, updater).await
    }

    /// A stored object with the version [`Storage::update_read`] needs (one round trip).
    pub async fn get_versioned<E: Entity>(&self, key: &str) -> Result<Versioned<E>, StorageError> {
        let key = E::normalize_key(key);
        self.ensure_writable::<E>(&key)?;
        let document = self.backend.get(E::KIND, &key).await?;
        Ok(Versioned { value: decode(&document.data)?, version: document.version })
    }

    /// [`Storage::get_versioned`] of an object and of the object of type `L` it links to
    /// ([`Entity::link`]), `None` if that is not stored: one statement on the SQL backends. An object
    /// stored before links existed, or one whose link names another kind, costs a second read.
    pub async fn get_versioned_linked<E: Entity, L: Entity>(
        &self,
        key: &str,
    ) -> Result<(Versioned<E>, Option<Versioned<L>>), StorageError> {
        let key = E::normalize_key(key);
        self.ensure_writable::<E>(&key)?;
        let (document, linked) = self.backend.get_linked(E::KIND, &key, L::KIND).await?;
        let read = Versioned { value: decode::<E>(&document.data)?, version: document.version };
        let linked = match read.value.link() {
            Some((kind, link)) if kind == L::KIND && document.link.as_deref() == Some(link.as_str()) => linked
                .map(|linked| {
                    Ok::<_, StorageError>(Versioned { value: decode(&linked.data)?, version: linked.version })
                })
                .transpose()?,
            Some((kind, link)) if kind == L::KIND => match self.get_versioned::<L>(&link).await {
                Ok(linked) => Some(linked),
                Err(StorageError::NotFound) => None,
                Err(err) => return Err(err),
            },
            _ => None,
        };
        Ok((read, linked))
    }

    /// [`Storage::update`] of an object the caller has just read with [`Storage::get_versioned`]: the
    /// first attempt writes against that read instead of reading again, saving a round trip when
    /// nobody wrote in between (and behaving exactly as `update` when somebody did).
    pub async fn update_read<E, F, Er>(&self, read: Versioned<E>, updater: F) -> Result<E, Er>
    where
        E: Entity,
        F: FnMut(E) -> Result<E, Er> + Send,
        Er: From<StorageError> + Send,
    {
        self.compare_and_swap_loop(&read.value.key(), Some(read), updater).await
    }

    /// Two [`Storage::update_read`]s where the second object is written only once the first is, as
    /// two calls in a row would, but in one round trip when nobody wrote either since it was read
    /// (on PostgreSQL; other backends have no round trip to save). `update_second` sees the first's
    /// new value. An error of the first aborts both; the second's comes back beside the first's new
    /// value, which is then already written.
    pub async fn update_read_then<A, B, FA, FB, Ea, Eb>(
        &self,
        first: Versioned<A>,
        mut update_first: FA,
        second: Versioned<B>,
        mut update_second: FB,
    ) -> Result<(A, Result<B, Eb>), Ea>
    where
        A: Entity,
        B: Entity,
        FA: FnMut(A) -> Result<A, Ea> + Send,
        FB: FnMut(&A, B) -> Result<B, Eb> + Send,
        Ea: From<StorageError> + Send,
        Eb: From<StorageError> + Send,
    {
        let (key_a, key_b) = (first.value.key(), second.value.key());
        self.ensure_writable::<A>(&key_a)?;
        let (version_a, version_b) = (first.version, second.version);
        let a = updated(&key_a, update_first(first.value)?)?;
        // `b` is the second's encoded value, or why there is none: `Some(error)` from its updater (given
        // back as is), `None` when it must be updated on its own after the first.
        let b = if A::KIND == B::KIND && key_a == key_b {
            // One document twice: one statement cannot write it twice, so one update after the other.
            Err(None)
        } else {
            match self
                .ensure_writable::<B>(&key_b)
                .map_err(Eb::from)
                .and_then(|()| update_second(&a.value, second.value))
            {
                Ok(b) => updated(&key_b, b).map_err(|e| Some(Eb::from(e))),
                Err(e) => Err(Some(e)),
            }
        };
        let swap_a = a.swap(&key_a, version_a);
        let written = match &b {
            Ok(b) => self.backend.compare_and_swap_then(&swap_a, &b.swap(&key_b, version_b)).await?,
            Err(_) => (self.backend.compare_and_swap(&swap_a).await?, false),
        };
        let a = if written.0 { a.value } else { self.compare_and_swap_loop(&key_a, None, update_first).await? };
        let b = match (written.1, b) {
            (true, Ok(b)) => Ok(b.value),
            (_, Err(Some(e))) => Err(e),
            _ => self.compare_and_swap_loop(&key_b, None, |value| update_second(&a, value)).await,
        };
        Ok((a, b))
    }

    async fn compare_and_swap_loop<E, F, Er>(
        &self,
        key: &str,
        mut first: Option<Versioned<E>>,
        mut updater: F,
    ) -> Result<E, Er>
    where
        E: Entity,
        F: FnMut(E) -> Result<E, Er> + Send,
        Er: From<StorageError> + Send,
    {
        self.ensure_writable::<E>(key)?;
        for attempt in 1..=MAX_UPDATE_ATTEMPTS {
            let current = match first.take() {
                Some(read) => read,
                None => {
                    let document = self.backend.get(E::KIND, key).await?;
                    Versioned { value: decode(&document.data)?, version: document.version }
                }
            };
            let new = updated(key, updater(current.value)?)?;
            if self.backend.compare_and_swap(&new.swap(key, current.version)).await? {
                return Ok(new.value);
            }
            backoff(attempt).await;
        }
        Err(StorageError::Conflict { kind: E::KIND.as_str(), attempts: MAX_UPDATE_ATTEMPTS }.into())
    }

    pub async fn get_user_identity(&self, user_id: &str, conn_id: &str) -> Result<UserIdentity, StorageError> {
        self.get::<UserIdentity>(&offline_sessions_key(user_id, conn_id)).await
    }

    /// Updates the user's identity, creating it from `create` first if there is none (two first
    /// logins at once: one creates, the other updates what it wrote).
    pub async fn upsert_user_identity<F>(
        &self,
        create: UserIdentity,
        mut updater: F,
    ) -> Result<UserIdentity, StorageError>
    where
        F: FnMut(UserIdentity) -> Result<UserIdentity, StorageError> + Send,
    {
        let key = create.key();
        loop {
            match self.update(&key, &mut updater).await {
                Err(StorageError::NotFound) => {}
                done => return done,
            }
            let created = updater(create.clone())?;
            match self.create(&created).await {
                Ok(()) => return Ok(created),
                Err(StorageError::AlreadyExists) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    pub async fn update_user_identity<F, Er>(
        &self,
        user_id: &str,
        conn_id: &str,
        updater: F,
    ) -> Result<UserIdentity, Er>
    where
        F: FnMut(UserIdentity) -> Result<UserIdentity, Er> + Send,
        Er: From<StorageError> + Send,
    {
        self.update::<UserIdentity, _, Er>(&offline_sessions_key(user_id, conn_id), updater).await
    }

    pub async fn delete_user_identity(&self, user_id: &str, conn_id: &str) -> Result<(), StorageError> {
        self.delete::<UserIdentity>(&offline_sessions_key(user_id, conn_id)).await
    }

    pub async fn get_password(&self, email: &str) -> Result<Password, StorageError> {
        self.get::<Password>(email).await
    }

    pub async fn get_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<OfflineSessions, StorageError> {
        self.get::<OfflineSessions>(&offline_sessions_key(user_id, conn_id)).await
    }

    pub async fn delete_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<(), StorageError> {
        self.delete::<OfflineSessions>(&offline_sessions_key(user_id, conn_id)).await
    }

    pub async fn update_offline_sessions<F, Er>(
        &self,
        user_id: &str,
        conn_id: &str,
        updater: F,
    ) -> Result<OfflineSessions, Er>
    where
        F: FnMut(OfflineSessions) -> Result<OfflineSessions, Er> + Send,
        Er: From<StorageError> + Send,
    {
        self.update(&offline_sessions_key(user_id, conn_id), updater).await
    }

    /// A refresh token's use and its offline session's record of that use, each written against
    /// the read the grant made ([`Storage::update_read_then`] for these two types): the session only
    /// once the token is written, in one round trip where nobody wrote either since. The session's
    /// outcome comes back beside the token's new value (`NotFound`: the session was deleted meanwhile).
    pub async fn update_refresh_and_session<Er>(
        &self,
        token: Versioned<RefreshToken>,
        use_token: impl FnMut(RefreshToken) -> Result<RefreshToken, Er> + Send,
        sessions: Versioned<OfflineSessions>,
        record_use: impl FnMut(&RefreshToken, OfflineSessions) -> Result<OfflineSessions, StorageError> + Send,
    ) -> Result<(RefreshToken, Result<OfflineSessions, StorageError>), Er>
    where
        Er: From<StorageError> + Send,
    {
        self.update_read_then(token, use_token, sessions, record_use).await
    }

    /// [`StorageError::NotFound`] until the first key rotation.
    pub async fn get_keys(&self) -> Result<Keys, StorageError> {
        self.get::<Keys>(KEYS_KEY).await
    }

    /// Updates the signing keys, creating them on the first call (the updater then sees
    /// `Keys::default()`). Concurrent first calls are safe: one creates, the others update after it.
    pub async fn update_keys<F, Er>(&self, mut updater: F) -> Result<Keys, Er>
    where
        F: FnMut(Keys) -> Result<Keys, Er> + Send,
        Er: From<StorageError> + Send,
    {
        loop {
            match self.backend.get(Keys::KIND, KEYS_KEY).await {
                Ok(_) => return self.update(KEYS_KEY, updater).await,
                Err(StorageError::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
            let created = updater(Keys::default())?;
            match self.create(&created).await {
                Ok(()) => return Ok(created),
                // Another instance created them first: update what it wrote instead.
                Err(StorageError::AlreadyExists) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Deletes expired auth requests, auth codes, device requests, device tokens, browser sessions and
    /// brute-force counters:
    /// those whose expiry is strictly before `now`. Refresh tokens, offline sessions and keys are never
    /// collected.
    pub async fn garbage_collect(&self, now: OffsetDateTime) -> Result<GcResult, StorageError> {
        let now = to_nanos(now);
        Ok(GcResult {
            auth_requests: self.backend.delete_expired(AuthRequest::KIND, now).await?,
            auth_codes: self.backend.delete_expired(AuthCode::KIND, now).await?,
            device_requests: self.backend.delete_expired(DeviceRequest::KIND, now).await?,
            device_tokens: self.backend.delete_expired(DeviceToken::KIND, now).await?,
            auth_sessions: self.backend.delete_expired(AuthSession::KIND, now).await?,
            backchannel_logouts: self.backend.delete_expired(BackchannelLogout::KIND, now).await?,
            failure_counters: self.backend.delete_expired(crate::Kind::FailureCounter, now).await?,
        })
    }

    /// One round trip to the backend, for health checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.backend.ping().await
    }

    /// [`StorageError::ReadOnly`] if the configuration file defines the object: creating one with
    /// its key is refused as loudly as changing it (a plain create answers `AlreadyExists`).
    pub fn check_writable<E: Entity>(&self, key: &str) -> Result<(), StorageError> {
        self.ensure_writable::<E>(&E::normalize_key(key))
    }

    fn ensure_writable<E: Entity>(&self, key: &str) -> Result<(), StorageError> {
        if self.statics.contains(E::KIND, key) {
            return Err(StorageError::ReadOnly { kind: E::KIND.as_str(), id: key.to_owned() });
        }
        Ok(())
    }
}

pub(crate) fn encode<E: Entity>(value: &E) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|source| StorageError::Codec { kind: E::KIND.as_str(), source })
}

pub(crate) fn decode<E: Entity>(data: &str) -> Result<E, StorageError> {
    serde_json::from_str(data).map_err(|source| StorageError::Codec { kind: E::KIND.as_str(), source })
}

/// An updater's result, encoded for its compare-and-swap.
struct Encoded<E> {
    value: E,
    data: String,
    expiry: Option<i64>,
    link: Option<String>,
}

/// Checks that an updater kept the key (a changed key would write one object over another).
fn updated<E: Entity>(key: &str, value: E) -> Result<Encoded<E>, StorageError> {
    if value.key() != key {
        return Err(StorageError::KeyChanged { kind: E::KIND.as_str() });
    }
    Ok(Encoded { data: encode(&value)?, expiry: expiry_nanos(&value), link: value.link().map(|(_, key)| key), value })
}

impl<E: Entity> Encoded<E> {
    fn swap<'a>(&'a self, key: &'a str, version: i64) -> Swap<'a> {
        Swap { kind: E::KIND, key, version, data: &self.data, expiry: self.expiry, link: self.link.as_deref() }
    }
}

fn expiry_nanos<E: Entity>(value: &E) -> Option<i64> {
    value.expiry().map(to_nanos)
}

/// Unix nanoseconds, saturating (i64 nanoseconds reach the year 2262).
fn to_nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(if at.year() < 1970 { i64::MIN } else { i64::MAX })
}

/// A short random pause after a lost race, growing with the attempt, so that many writers on one
/// object spread out instead of colliding again in lock step.
async fn backoff(attempt: u32) {
    let ceiling_micros = u64::from(attempt.min(20)) * 250;
    tokio::time::sleep(Duration::from_micros(rand::random_range(0..=ceiling_micros))).await;
}

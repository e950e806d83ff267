//! A per-enricher cache of claims (off unless configured): keyed by the user and what the enricher
//! would ask its source (the rendered query arguments, the hook's request body), so an entry never
//! serves another user; bounded in entries and time. Only successful answers are kept.
//!
//! Invalidation: the TTL; a cap from the source (an HTTP hook's `Cache-Control: max-age`, `no-store`);
//! and for Postgres a `LISTEN` on a channel where `NOTIFY channel, '<user id>'` drops that user's
//! entries at once and an empty payload drops everything. A lost `LISTEN` connection drops everything
//! (notifications may have been missed) and reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{ClaimsEnricher, EnrichError, EnrichmentContext};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl: Duration,
    pub max_entries: usize,
    /// Postgres only: the channel to LISTEN on.
    pub notify_channel: Option<String>,
}

struct Entry {
    claims: Map<String, Value>,
    expires: Instant,
}

/// The entries, shared with the invalidation task.
#[derive(Default)]
pub struct Store {
    /// user ID → (source key → entry).
    users: Mutex<HashMap<String, HashMap<String, Entry>>>,
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Entry>>> {
        // A panic while holding the lock leaves plain data behind: use it.
        self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops one user's entries; `true` if there were any.
    pub fn invalidate_user(&self, user_id: &str) -> bool {
        self.lock().remove(user_id).is_some()
    }

    pub fn invalidate_all(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An enricher that can say what it would ask, and cap how long its answer may be kept.
#[async_trait]
pub trait Cacheable: ClaimsEnricher {
    /// What the enricher would send its source for this token (with the user, the cache key).
    fn cache_key(&self, context: &EnrichmentContext) -> String;

    /// Enriches and tells the longest the answer may be kept (`None`: no cap, `Some(ZERO)`: not at all).
    async fn enrich_cacheable(
        &self,
        context: &EnrichmentContext,
        claims: &mut Map<String, Value>,
    ) -> Result<Option<Duration>, EnrichError> {
        self.enrich(context, claims).await.map(|()| None)
    }
}

/// Told about hits and misses (the server's metrics).
pub trait CacheObserver: Send + Sync {
    fn hit(&self);
    fn miss(&self);
}

pub struct Cached<E> {
    inner: E,
    ttl: Duration,
    max_entries: usize,
    store: Arc<Store>,
    observer: std::sync::OnceLock<Arc<dyn CacheObserver>>,
    /// The LISTEN task, stopped with the enricher.
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl<E> Drop for Cached<E> {
    fn drop(&mut self) {
        if let Some(task) = &self.listener {
            task.abort();
        }
    }
}

impl<E: Cacheable> Cached<E> {
    pub fn new(inner: E, settings: &CacheSettings) -> Self {
        Self {
            inner,
            ttl: settings.ttl,
            max_entries: settings.max_entries.max(1),
            store: Arc::new(Store::default()),
            observer: std::sync::OnceLock::new(),
            listener: None,
        }
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Keeps `task` (the invalidation listener) running as long as the cache.
    pub fn with_listener(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self.listener = Some(task);
        self
    }

    fn lookup(&self, user: &str, key: &str) -> Option<Map<String, Value>> {
        let now = Instant::now();
        let mut users = self.store.lock();
        let entries = users.get_mut(user)?;
        match entries.get(key) {
            Some(entry) if entry.expires > now => Some(entry.claims.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn keep(&self, user: &str, key: String, claims: Map<String, Value>, ttl: Duration) {
        let now = Instant::now();
        let mut users = self.store.lock();
        if users.values().map(HashMap::len).sum::<usize>() >= self.max_entries {
            // Full: expired entries go first; if none, everything (a simple bound, rarely reached
            // when maxEntries is sized for the active users).
            users.retain(|_, entries| {
                entries.retain(|_, e| e.expires > now);
                !entries.is_empty()
            });
            if users.values().map(HashMap::len).sum::<usize>() >= self.max_entries {
                users.clear();
            }
        }
        users.entry(user.to_owned()).or_default().insert(key, Entry { claims, expires: now + ttl });
    }
}

#[async_trait]
impl<E: Cacheable> ClaimsEnricher for Cached<E> {
    async fn enrich(&self, context: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError> {
        let user = &context.identity.user_id;
        let key = self.inner.cache_key(context);
        if let Some(cached) = self.lookup(user, &key) {
            if let Some(observer) = self.observer.get() {
                observer.hit();
            }
            claims.extend(cached);
            return Ok(());
        }
        if let Some(observer) = self.observer.get() {
            observer.miss();
        }
        let mut fresh = Map::new();
        let cap = self.inner.enrich_cacheable(context, &mut fresh).await?;
        let ttl = cap.map_or(self.ttl, |cap| cap.min(self.ttl));
        if !ttl.is_zero() {
            self.keep(user, key, fresh.clone(), ttl);
        }
        claims.extend(fresh);
        Ok(())
    }

    fn pool_stats(&self) -> Option<tessera_storage::PoolStats> {
        self.inner.pool_stats()
    }

    fn observe_cache(&self, observer: Arc<dyn CacheObserver>) {
        let _ = self.observer.set(observer);
    }
}

/// Listens on `channel` at `uri` until aborted, dropping the store's entries as notifications say.
/// The first LISTEN is made before returning, so a wrong channel or URI stops start-up.
pub async fn listen(uri: &str, channel: &str, store: Arc<Store>) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut listener = sqlx::postgres::PgListener::connect(uri).await.map_err(|e| format!("LISTEN: {e}"))?;
    listener.listen(channel).await.map_err(|e| format!("LISTEN {channel}: {e}"))?;
    let channel = channel.to_owned();
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let user = notification.payload();
                    if user.is_empty() {
                        store.invalidate_all();
                        tracing::info!(%channel, "custom claims cache: every entry dropped by NOTIFY");
                    } else if !store.invalidate_user(user) {
                        // Not an error: the user had nothing cached. The ID is not logged (it may be an email).
                        tracing::debug!(%channel, "custom claims cache: NOTIFY for a user with no entry");
                    }
                }
                // The connection was lost: notifications may have been missed. The next try_recv
                // reconnects and LISTENs again.
                Ok(None) => {
                    store.invalidate_all();
                    tracing::warn!(%channel, "custom claims cache: the LISTEN connection was lost; cache dropped, reconnecting");
                }
                Err(error) => {
                    store.invalidate_all();
                    tracing::warn!(%channel, %error, "custom claims cache: LISTEN failed; cache dropped, retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        cap: Option<Duration>,
    }

    #[async_trait]
    impl ClaimsEnricher for Counting {
        async fn enrich(&self, _: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            claims.insert("n".into(), Value::from(n));
            Ok(())
        }
    }

    #[async_trait]
    impl Cacheable for Counting {
        fn cache_key(&self, context: &EnrichmentContext) -> String {
            context.client_id.clone()
        }
        async fn enrich_cacheable(
            &self,
            context: &EnrichmentContext,
            claims: &mut Map<String, Value>,
        ) -> Result<Option<Duration>, EnrichError> {
            self.enrich(context, claims).await.map(|()| self.cap)
        }
    }

    fn user(id: &str, client: &str) -> EnrichmentContext {
        EnrichmentContext {
            identity: tessera_core::model::Claims { user_id: id.into(), ..Default::default() },
            client_id: client.into(),
            ..EnrichmentContext::default()
        }
    }

    async fn n(cache: &Cached<Counting>, context: &EnrichmentContext) -> Value {
        let mut claims = Map::new();
        cache.enrich(context, &mut claims).await.unwrap();
        claims["n"].clone()
    }

    fn settings(ttl: Duration, max_entries: usize) -> CacheSettings {
        CacheSettings { ttl, max_entries, notify_channel: None }
    }

    #[tokio::test]
    async fn hits_per_user_and_key_and_invalidation() {
        let cache =
            Cached::new(Counting { calls: AtomicUsize::new(0), cap: None }, &settings(Duration::from_secs(60), 10));
        assert_eq!(n(&cache, &user("alice", "web")).await, 0);
        assert_eq!(n(&cache, &user("alice", "web")).await, 0, "a hit");
        assert_eq!(n(&cache, &user("bob", "web")).await, 1, "never across users");
        assert_eq!(n(&cache, &user("alice", "cli")).await, 2, "another key");
        assert!(cache.store().invalidate_user("alice"));
        assert!(!cache.store().invalidate_user("nobody"), "a payload that matches nobody is harmless");
        assert_eq!(n(&cache, &user("alice", "web")).await, 3);
        assert_eq!(n(&cache, &user("bob", "web")).await, 1, "bob's entry stays");
        cache.store().invalidate_all();
        assert_eq!(n(&cache, &user("bob", "web")).await, 4);
    }

    #[tokio::test]
    async fn ttl_cap_and_bound() {
        let short =
            Cached::new(Counting { calls: AtomicUsize::new(0), cap: None }, &settings(Duration::from_millis(50), 10));
        assert_eq!(n(&short, &user("a", "web")).await, 0);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(n(&short, &user("a", "web")).await, 1, "expired");
        let uncacheable = Cached::new(
            Counting { calls: AtomicUsize::new(0), cap: Some(Duration::ZERO) },
            &settings(Duration::from_secs(60), 10),
        );
        assert_eq!(n(&uncacheable, &user("a", "web")).await, 0);
        assert_eq!(n(&uncacheable, &user("a", "web")).await, 1, "no-store is not kept");
        let small =
            Cached::new(Counting { calls: AtomicUsize::new(0), cap: None }, &settings(Duration::from_secs(60), 2));
        for id in ["a", "b", "c", "d"] {
            n(&small, &user(id, "web")).await;
        }
        assert!(small.store().len() <= 2);
    }
}

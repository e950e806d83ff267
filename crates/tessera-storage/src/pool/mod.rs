//! tessera's database connection pool, used by the SQL storage backends and the custom-claims
//! enricher.
//!
//! Why not sqlx's pool: it pings every connection it takes back (a round trip to the database after
//! every query, not configurable in sqlx 0.9) on a task it spawns for the purpose, and moves the whole
//! connection struct through that task. On a refresh, which makes five queries, that was half of the
//! round trips and a sixth of tessera's CPU. This pool hands a connection back synchronously and pings
//! only when [`check::ConnectionCheck`] says it is worth it: after the connection sat idle, while the
//! database was recently failing, or when the previous holder was dropped mid-query (a cancelled
//! request) — the ping then also drains what that query left on the wire.

mod check;

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Semaphore, TryAcquireError};

use check::{ConnectionCheck, is_connection_failure};
pub use check::{PING_AFTER_BREAKAGE_FOR, PING_WHEN_IDLE_FOR};

/// How long a connection being discarded gets to say goodbye to the database.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool's size and lifetimes.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    pub max_connections: u32,
    /// How long [`Pool::acquire`] waits for a free slot, a new connection and its ping, together.
    pub acquire_timeout: Duration,
    /// A connection idle longer than this is closed instead of reused.
    pub idle_timeout: Option<Duration>,
    /// A connection older than this is closed instead of reused (Dex's `connMaxLifetime`).
    pub max_lifetime: Option<Duration>,
}

/// How a pool is used at one moment (for metrics, read when they are scraped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub max_connections: u32,
    /// Connections held by callers, or being opened for one.
    pub in_use: u32,
    /// Open connections waiting to be used.
    pub idle: u32,
    /// Callers waiting for a connection because all `max_connections` are in use.
    pub waiting: u32,
}

/// A cheap-to-clone handle on a set of connections to one database.
pub struct Pool<C: Connection> {
    shared: Arc<Shared<C>>,
}

impl<C: Connection> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<C: Connection> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("limits", &self.shared.limits).finish_non_exhaustive()
    }
}

struct Shared<C: Connection> {
    options: C::Options,
    limits: PoolLimits,
    /// One permit per connection that may be in use; a holder returns it when it lets go.
    slots: Semaphore,
    /// Connections not in use, the most recently used last (handed out first, so that surplus ones
    /// age out at the bottom).
    idle: Mutex<Vec<Idle<C>>>,
    check: ConnectionCheck,
    /// Callers queued on `slots` (counted only when they have to queue, so a free slot costs nothing).
    waiting: AtomicU32,
}

/// A connection with what the pool needs to know about it. Boxed: sqlx's connection structs are
/// large, and they move in and out of the idle list.
struct Idle<C> {
    connection: Box<C>,
    opened: Instant,
    released: Instant,
    /// Its last holder was dropped mid-query; it must answer a ping before anyone uses it.
    suspect: bool,
}

impl<C: Connection> Pool<C> {
    /// A pool that opens connections with `options`; one is opened now, so that a database that cannot
    /// be reached fails start-up rather than the first request.
    pub async fn connect(options: C::Options, limits: PoolLimits) -> Result<Self, sqlx::Error> {
        let slots = Semaphore::new(usize::try_from(limits.max_connections.max(1)).unwrap_or(1));
        let shared = Shared {
            options,
            limits,
            slots,
            idle: Mutex::new(Vec::new()),
            check: ConnectionCheck::new(),
            waiting: AtomicU32::new(0),
        };
        let pool = Self { shared: Arc::new(shared) };
        let first = pool.acquire().await?;
        drop(first);
        Ok(pool)
    }

    /// A connection for the caller's queries: a recent idle one, or a new one. Give it back with
    /// [`Pooled::settle`].
    pub async fn acquire(&self) -> Result<Pooled<C>, sqlx::Error> {
        let acquired = tokio::time::timeout(self.shared.limits.acquire_timeout, async {
            let permit = match self.shared.slots.try_acquire() {
                Ok(permit) => permit,
                Err(TryAcquireError::Closed) => return Err(sqlx::Error::PoolClosed),
                Err(TryAcquireError::NoPermits) => {
                    let _queued = Queued::enter(&self.shared.waiting);
                    self.shared.slots.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?
                }
            };
            // `Slot` gives the permit back, whatever happens to this future from here on.
            permit.forget();
            let slot = Slot { shared: Arc::clone(&self.shared) };
            let connection = self.shared.ready_connection().await?;
            Ok(Pooled { connection: Some(connection), settled: true, slot })
        })
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        if let Err(error) = &acquired {
            self.shared.check.observe(error);
        }
        acquired
    }

    /// How the pool is used right now.
    pub fn stats(&self) -> PoolStats {
        let shared = &self.shared;
        let max_connections = shared.limits.max_connections.max(1);
        let free = u32::try_from(shared.slots.available_permits()).unwrap_or(u32::MAX);
        PoolStats {
            max_connections,
            in_use: if shared.slots.is_closed() { 0 } else { max_connections.saturating_sub(free) },
            idle: u32::try_from(shared.lock_idle().len()).unwrap_or(u32::MAX),
            waiting: shared.waiting.load(Ordering::Relaxed),
        }
    }

    /// Refuses new acquisitions and closes the idle connections; those in use close when let go.
    pub async fn close(&self) {
        self.shared.slots.close();
        let idle = std::mem::take(&mut *self.shared.lock_idle());
        for connection in idle {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.connection.close()).await;
        }
    }
}

impl<C: Connection> Shared<C> {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle<C>>> {
        // The list is consistent after every push and pop, so a panic elsewhere cannot have broken it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn ready_connection(&self) -> Result<Idle<C>, sqlx::Error> {
        loop {
            let popped = self.lock_idle().pop();
            let Some(mut idle) = popped else {
                let connection = Box::new(self.options.connect().await?);
                let now = Instant::now();
                return Ok(Idle { connection, opened: now, released: now, suspect: false });
            };
            if self.outlived(&idle) {
                close_in_background(*idle.connection);
                continue;
            }
            if idle.suspect || self.check.wants_ping(idle.released.elapsed()) {
                if let Err(error) = idle.connection.ping().await {
                    self.check.observe(&error);
                    continue;
                }
                idle.suspect = false;
            }
            return Ok(idle);
        }
    }

    fn outlived(&self, idle: &Idle<C>) -> bool {
        self.limits.max_lifetime.is_some_and(|limit| idle.opened.elapsed() >= limit)
            || self.limits.idle_timeout.is_some_and(|limit| idle.released.elapsed() >= limit)
    }

    /// Puts a connection back, and closes the least recently used one if it has idled too long (so
    /// surplus connections go away once the load that opened them has).
    fn release(&self, mut idle: Idle<C>) {
        idle.released = Instant::now();
        let aged = {
            let mut list = self.lock_idle();
            list.push(idle);
            match list.first() {
                Some(oldest) if list.len() > 1 && self.outlived(oldest) => Some(list.remove(0)),
                _ => None,
            }
        };
        if let Some(aged) = aged {
            close_in_background(*aged.connection);
        }
    }
}

fn close_in_background<C: Connection>(connection: C) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let closing = connection.close();
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
        });
    }
}

/// A caller counted as waiting for a slot until this is dropped (it got one, timed out or was cancelled).
struct Queued<'a>(&'a AtomicU32);

impl<'a> Queued<'a> {
    fn enter(waiting: &'a AtomicU32) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        Self(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place among the pool's `max_connections`, given back when dropped.
struct Slot<C: Connection> {
    shared: Arc<Shared<C>>,
}

impl<C: Connection> Drop for Slot<C> {
    fn drop(&mut self) {
        self.shared.slots.add_permits(1);
    }
}

/// A connection taken from a [`Pool`]; dereferences to the sqlx connection to run queries on.
pub struct Pooled<C: Connection> {
    /// `None` only once it is given back (in `settle` or `drop`).
    connection: Option<Idle<C>>,
    /// False while a query may be in flight: see [`Pooled::settle`].
    settled: bool,
    /// Dropped after the connection is back in the idle list, so whoever gets the slot finds it.
    slot: Slot<C>,
}

impl<C: Connection> Pooled<C> {
    /// Hands the connection back with the outcome of the queries run on it, and returns that outcome.
    /// A connection that failed is closed (and makes the pool ping the others for a while); one
    /// dropped without being settled — its request was cancelled mid-query — is pinged before reuse.
    pub fn settle<T>(mut self, outcome: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(error) = &outcome {
            self.slot.shared.check.observe(error);
            if is_connection_failure(error) {
                self.connection = None;
            }
        }
        self.settled = true;
        outcome
    }

    /// Marks a query as started; [`Pooled::settle`] marks it done.
    fn in_use(&mut self) -> &mut C {
        self.settled = false;
        match &mut self.connection {
            Some(idle) => &mut idle.connection,
            None => unreachable_connection(),
        }
    }
}

/// A `Pooled` holds its connection from `acquire` until it is dropped or settled (which consumes it).
fn unreachable_connection() -> ! {
    unreachable!("a pooled connection was used after it was given back")
}

impl<C: Connection> Deref for Pooled<C> {
    type Target = C;

    fn deref(&self) -> &C {
        match &self.connection {
            Some(idle) => &idle.connection,
            None => unreachable_connection(),
        }
    }
}

impl<C: Connection> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.in_use()
    }
}

impl<C: Connection> Drop for Pooled<C> {
    fn drop(&mut self) {
        if let Some(mut idle) = self.connection.take() {
            idle.suspect |= !self.settled;
            if self.slot.shared.slots.is_closed() {
                close_in_background(*idle.connection);
            } else {
                self.slot.shared.release(idle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    fn limits(max_connections: u32) -> PoolLimits {
        PoolLimits {
            max_connections,
            acquire_timeout: Duration::from_millis(200),
            idle_timeout: None,
            max_lifetime: None,
        }
    }

    async fn memory_pool(max_connections: u32) -> Pool<SqliteConnection> {
        let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
        Pool::connect(options, limits(max_connections)).await.unwrap()
    }

    fn idle_count(pool: &Pool<SqliteConnection>) -> usize {
        pool.shared.lock_idle().len()
    }

    #[tokio::test]
    async fn a_settled_connection_is_reused_as_it_is() {
        let pool = memory_pool(2).await;
        let mut first = pool.acquire().await.unwrap();
        let outcome = sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut *first).await;
        first.settle(outcome).unwrap();
        // Each connection to sqlite::memory: is its own database: the table proves it is the same one.
        let mut again = pool.acquire().await.unwrap();
        let outcome = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *again).await;
        again.settle(outcome).unwrap();
        assert_eq!(idle_count(&pool), 1);
    }

    #[tokio::test]
    async fn a_full_pool_makes_the_next_caller_wait_then_time_out() {
        let pool = memory_pool(1).await;
        assert_eq!(pool.stats(), PoolStats { max_connections: 1, in_use: 0, idle: 1, waiting: 0 });
        let held = pool.acquire().await.unwrap();
        assert_eq!(pool.stats(), PoolStats { max_connections: 1, in_use: 1, idle: 0, waiting: 0 });
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolTimedOut)));
        assert_eq!(pool.stats().waiting, 0, "a caller that timed out no longer waits");
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.stats().waiting, 1);
        drop(held);
        waiting.await.unwrap().unwrap();
        assert_eq!(pool.stats(), PoolStats { max_connections: 1, in_use: 0, idle: 1, waiting: 0 });
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_query_is_pinged_before_reuse() {
        let pool = memory_pool(1).await;
        let mut conn = pool.acquire().await.unwrap();
        let _ = &mut *conn; // a query started and never settled
        drop(conn);
        assert!(pool.shared.lock_idle()[0].suspect);
        let conn = pool.acquire().await.unwrap();
        assert!(!conn.connection.as_ref().unwrap().suspect, "the ping cleared it");
    }

    #[tokio::test]
    async fn a_broken_connection_is_closed_not_reused() {
        let pool = memory_pool(1).await;
        let conn = pool.acquire().await.unwrap();
        let broken: Result<(), _> = Err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        assert!(conn.settle(broken).is_err());
        assert_eq!(idle_count(&pool), 0);
        assert!(pool.shared.check.broke_recently());
        let conn = pool.acquire().await.unwrap();
        let query_error: Result<(), _> = Err(sqlx::Error::RowNotFound);
        assert!(conn.settle(query_error).is_err());
        assert_eq!(idle_count(&pool), 1, "a failed query says nothing about the connection");
    }

    #[tokio::test]
    async fn connections_past_their_lifetime_are_replaced() {
        let options: SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
        let pool = Pool::<SqliteConnection>::connect(
            options,
            PoolLimits { max_lifetime: Some(Duration::from_millis(10)), ..limits(1) },
        )
        .await
        .unwrap();
        let opened = pool.shared.lock_idle()[0].opened;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let conn = pool.acquire().await.unwrap();
        assert!(conn.connection.as_ref().unwrap().opened > opened);
    }

    #[tokio::test]
    async fn a_closed_pool_refuses_callers() {
        let pool = memory_pool(1).await;
        pool.close().await;
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
        assert_eq!(idle_count(&pool), 0);
    }
}

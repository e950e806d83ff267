//! What the SQL backends share: the table layout's statements per dialect, and one implementation
//! of [`crate::Backend`] and of the migration runner over them, expanded for each sqlx driver.

/// The statements of one SQL dialect (they differ only in placeholders and locking).
pub(crate) struct Statements {
    /// Opens the migration transaction.
    pub begin_migration: &'static str,
    /// Serializes migrations across instances, inside that transaction (Postgres' advisory lock).
    pub lock_migrations: Option<&'static str>,
    /// Releases that lock after the migrations (MySQL's named lock outlives the transaction).
    pub unlock_migrations: Option<&'static str>,
    pub record_migration: &'static str,
    pub insert: &'static str,
    pub get: &'static str,
    /// A document and the one its `link` names, in one row (the linked columns are prefixed `linked_`).
    pub get_linked: &'static str,
    pub list: &'static str,
    pub delete: &'static str,
    pub compare_and_swap: &'static str,
    /// Two compare-and-swaps in one statement, the second only if the first wrote (the columns
    /// `first` and `second` say which did); `None` where the dialect cannot, so two statements run.
    pub compare_and_swap_then: Option<&'static str>,
    pub delete_expired: &'static str,
}

pub(crate) const SQLITE: Statements = Statements {
    // BEGIN IMMEDIATE takes the write lock first, so two processes on one file migrate in turn.
    begin_migration: "BEGIN IMMEDIATE",
    lock_migrations: None,
    unlock_migrations: None,
    record_migration: "INSERT INTO tessera_migrations (version, description) VALUES (?, ?)",
    insert: "INSERT INTO tessera_objects (kind, id, version, expiry, data, link) VALUES (?, ?, 1, ?, ?, ?)
             ON CONFLICT (kind, id) DO NOTHING",
    get: "SELECT data, version, expiry, link FROM tessera_objects WHERE kind = ? AND id = ?",
    get_linked: "SELECT t.data, t.version, t.expiry, t.link,
                        l.data AS linked_data, l.version AS linked_version, l.expiry AS linked_expiry,
                        l.link AS linked_link
                 FROM tessera_objects t LEFT JOIN tessera_objects l ON l.kind = ?3 AND l.id = t.link
                 WHERE t.kind = ?1 AND t.id = ?2",
    list: "SELECT data, version, expiry, link FROM tessera_objects WHERE kind = ? ORDER BY id",
    delete: "DELETE FROM tessera_objects WHERE kind = ? AND id = ?",
    compare_and_swap: "UPDATE tessera_objects SET data = ?, expiry = ?, link = ?, version = version + 1
                       WHERE kind = ? AND id = ? AND version = ?",
    // SQLite has no data-modifying CTEs, and no round trip to save.
    compare_and_swap_then: None,
    delete_expired: "DELETE FROM tessera_objects WHERE kind = ? AND expiry < ?",
};

pub(crate) const POSTGRES: Statements = Statements {
    begin_migration: "BEGIN",
    // The lock id is "tessera" in ASCII. DDL is transactional in Postgres: instances starting together take turns on this lock, the
    // first applies the migrations and the others find nothing pending.
    lock_migrations: Some("SELECT pg_advisory_xact_lock(32762643830108769)"),
    unlock_migrations: None,
    record_migration: "INSERT INTO tessera_migrations (version, description) VALUES ($1, $2)",
    insert: "INSERT INTO tessera_objects (kind, id, version, expiry, data, link) VALUES ($1, $2, 1, $3, $4, $5)
             ON CONFLICT (kind, id) DO NOTHING",
    get: "SELECT data, version, expiry, link FROM tessera_objects WHERE kind = $1 AND id = $2",
    get_linked: "SELECT t.data, t.version, t.expiry, t.link,
                        l.data AS linked_data, l.version AS linked_version, l.expiry AS linked_expiry,
                        l.link AS linked_link
                 FROM tessera_objects t LEFT JOIN tessera_objects l ON l.kind = $3 AND l.id = t.link
                 WHERE t.kind = $1 AND t.id = $2",
    list: "SELECT data, version, expiry, link FROM tessera_objects WHERE kind = $1 ORDER BY id",
    delete: "DELETE FROM tessera_objects WHERE kind = $1 AND id = $2",
    compare_and_swap: "UPDATE tessera_objects SET data = $1, expiry = $2, link = $3, version = version + 1
                       WHERE kind = $4 AND id = $5 AND version = $6",
    // Both UPDATEs see one snapshot, and the second's EXISTS sees what the first returned, so the
    // second row is written only if the first was: what two statements in a row would do.
    compare_and_swap_then: Some(
        "WITH first AS (
             UPDATE tessera_objects SET data = $1, expiry = $2, link = $3, version = version + 1
             WHERE kind = $4 AND id = $5 AND version = $6 RETURNING 1
         ), second AS (
             UPDATE tessera_objects SET data = $7, expiry = $8, link = $9, version = version + 1
             WHERE kind = $10 AND id = $11 AND version = $12 AND EXISTS (SELECT 1 FROM first) RETURNING 1
         )
         SELECT EXISTS (SELECT 1 FROM first) AS first, EXISTS (SELECT 1 FROM second) AS second",
    ),
    delete_expired: "DELETE FROM tessera_objects WHERE kind = $1 AND expiry < $2",
};

/// Implements `migrate` and [`crate::Backend`] for a backend struct with a `pool` field (a
/// [`crate::pool::Pool`] of `$connection`), given its name, its row type and its [`Statements`]. A macro
/// rather than generics because sqlx's drivers share no trait for `rows_affected`, and the bounds would
/// hide the SQL.
macro_rules! sql_backend {
    ($backend:ty, $name:expr, $connection:ty, $row:ty, $sql:expr) => {
        fn err(e: impl std::fmt::Display) -> $crate::StorageError {
            $crate::StorageError::backend($name, e)
        }

        fn document(row: &$row) -> Result<$crate::Document, $crate::StorageError> {
            columns(row, ["data", "version", "expiry", "link"])
        }

        fn columns(
            row: &$row,
            [data, version, expiry, link]: [&str; 4],
        ) -> Result<$crate::Document, $crate::StorageError> {
            use sqlx::Row;
            Ok($crate::Document {
                data: row.try_get(data).map_err(err)?,
                version: row.try_get(version).map_err(err)?,
                expiry: row.try_get(expiry).map_err(err)?,
                link: row.try_get(link).map_err(err)?,
            })
        }

        /// Binds a compare-and-swap's parameters in the order the statements number them.
        fn bind_swap<'q>(
            query: sqlx::query::Query<
                'q,
                <$connection as sqlx::Connection>::Database,
                <<$connection as sqlx::Connection>::Database as sqlx::Database>::Arguments,
            >,
            swap: &$crate::Swap<'q>,
        ) -> sqlx::query::Query<
            'q,
            <$connection as sqlx::Connection>::Database,
            <<$connection as sqlx::Connection>::Database as sqlx::Database>::Arguments,
        > {
            query
                .bind(swap.data)
                .bind(swap.expiry)
                .bind(swap.link)
                .bind(swap.kind.as_str())
                .bind(swap.key)
                .bind(swap.version)
        }

        /// Runs one statement on a pooled connection: `$run` gets the connection and returns the query's future.
        macro_rules! on_connection {
            ($self:ident, |$conn:ident| $run:expr) => {{
                let mut pooled = $self.pool.acquire().await.map_err(err)?;
                let outcome = {
                    let $conn: &mut $connection = &mut *pooled;
                    $run.await
                };
                pooled.settle(outcome).map_err(err)
            }};
        }

        impl $backend {
            /// Applies the embedded migrations not yet recorded, all in one transaction.
            async fn migrate(&self, migrations: &[$crate::migrate::Migration]) -> Result<(), $crate::StorageError> {
                on_connection!(self, |connection| Self::apply_migrations(connection, migrations))
            }

            async fn apply_migrations(
                connection: &mut $connection,
                migrations: &[$crate::migrate::Migration],
            ) -> Result<(), sqlx::Error> {
                let applied = Self::apply_pending(&mut *connection, migrations).await;
                // Released whatever happened: a lock left on a pooled connection would stall the next start.
                if let Some(unlock) = $sql.unlock_migrations {
                    let released = sqlx::query(unlock).execute(&mut *connection).await;
                    applied?;
                    released?;
                    return Ok(());
                }
                applied
            }

            async fn apply_pending(
                connection: &mut $connection,
                migrations: &[$crate::migrate::Migration],
            ) -> Result<(), sqlx::Error> {
                use sqlx::Connection;
                let sql = &$sql;
                let mut tx = connection.begin_with(sql.begin_migration).await?;
                if let Some(lock) = sql.lock_migrations {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                sqlx::raw_sql($crate::migrate::CREATE_MIGRATIONS_TABLE).execute(&mut *tx).await?;
                let applied: Vec<i64> =
                    sqlx::query_scalar("SELECT version FROM tessera_migrations").fetch_all(&mut *tx).await?;
                for migration in $crate::migrate::pending(migrations, &applied) {
                    sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
                    sqlx::query(sql.record_migration)
                        .bind(migration.version)
                        .bind(migration.description)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::Backend for $backend {
            fn name(&self) -> &'static str {
                $name
            }

            async fn insert(
                &self,
                kind: $crate::Kind,
                key: &str,
                data: &str,
                expiry: Option<i64>,
                link: Option<&str>,
            ) -> Result<(), $crate::StorageError> {
                let inserted = on_connection!(self, |c| async {
                    let query =
                        sqlx::query($sql.insert).bind(kind.as_str()).bind(key).bind(expiry).bind(data).bind(link);
                    // A dialect without ON CONFLICT DO NOTHING (MySQL) reports a taken key as an error.
                    match query.execute(c).await {
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(0),
                        other => other.map(|done| done.rows_affected()),
                    }
                })?;
                if inserted == 0 {
                    return Err($crate::StorageError::AlreadyExists);
                }
                Ok(())
            }

            async fn get(&self, kind: $crate::Kind, key: &str) -> Result<$crate::Document, $crate::StorageError> {
                let row =
                    on_connection!(self, |c| sqlx::query($sql.get).bind(kind.as_str()).bind(key).fetch_optional(c))?;
                document(&row.ok_or($crate::StorageError::NotFound)?)
            }

            async fn get_linked(
                &self,
                kind: $crate::Kind,
                key: &str,
                linked_kind: $crate::Kind,
            ) -> Result<($crate::Document, Option<$crate::Document>), $crate::StorageError> {
                let row = on_connection!(self, |c| sqlx::query($sql.get_linked)
                    .bind(kind.as_str())
                    .bind(key)
                    .bind(linked_kind.as_str())
                    .fetch_optional(c))?;
                let row = row.ok_or($crate::StorageError::NotFound)?;
                // A LEFT JOIN that found nothing leaves every linked column NULL.
                let linked = match sqlx::Row::try_get::<Option<i64>, _>(&row, "linked_version").map_err(err)? {
                    Some(_) => Some(columns(&row, ["linked_data", "linked_version", "linked_expiry", "linked_link"])?),
                    None => None,
                };
                Ok((document(&row)?, linked))
            }

            async fn list(&self, kind: $crate::Kind) -> Result<Vec<$crate::Document>, $crate::StorageError> {
                let rows = on_connection!(self, |c| sqlx::query($sql.list).bind(kind.as_str()).fetch_all(c))?;
                rows.iter().map(document).collect()
            }

            async fn delete(&self, kind: $crate::Kind, key: &str) -> Result<(), $crate::StorageError> {
                let deleted =
                    on_connection!(self, |c| sqlx::query($sql.delete).bind(kind.as_str()).bind(key).execute(c))?;
                if deleted.rows_affected() == 0 {
                    return Err($crate::StorageError::NotFound);
                }
                Ok(())
            }

            async fn compare_and_swap(&self, swap: &$crate::Swap<'_>) -> Result<bool, $crate::StorageError> {
                let updated = on_connection!(self, |c| bind_swap(sqlx::query($sql.compare_and_swap), swap).execute(c))?;
                Ok(updated.rows_affected() == 1)
            }

            async fn compare_and_swap_then(
                &self,
                first: &$crate::Swap<'_>,
                second: &$crate::Swap<'_>,
            ) -> Result<(bool, bool), $crate::StorageError> {
                let Some(statement) = $sql.compare_and_swap_then else {
                    return $crate::backend::one_after_the_other(self, first, second).await;
                };
                let row =
                    on_connection!(self, |c| bind_swap(bind_swap(sqlx::query(statement), first), second).fetch_one(c))?;
                use sqlx::Row;
                Ok((row.try_get("first").map_err(err)?, row.try_get("second").map_err(err)?))
            }

            async fn delete_expired(&self, kind: $crate::Kind, now: i64) -> Result<u64, $crate::StorageError> {
                let deleted = on_connection!(self, |c| sqlx::query($sql.delete_expired)
                    .bind(kind.as_str())
                    .bind(now)
                    .execute(c))?;
                Ok(deleted.rows_affected())
            }

            async fn ping(&self) -> Result<(), $crate::StorageError> {
                on_connection!(self, |c| sqlx::query("SELECT 1").execute(c)).map(|_| ())
            }

            fn pool_stats(&self) -> Option<$crate::pool::PoolStats> {
                Some(self.pool.stats())
            }
        }
    };
}

pub(crate) use sql_backend;

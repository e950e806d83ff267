//! Schema migrations, embedded in the binary and applied in order at start-up, each exactly once.

/// One schema change. Never edit a released one: add a new version instead.
pub(crate) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: "objects table",
        sql: include_str!("../migrations/postgres/0001_objects.sql"),
    },
    Migration { version: 2, description: "object links", sql: include_str!("../migrations/postgres/0002_links.sql") },
];

pub(crate) const SQLITE: &[Migration] = &[
    Migration { version: 1, description: "objects table", sql: include_str!("../migrations/sqlite/0001_objects.sql") },
    Migration { version: 2, description: "object links", sql: include_str!("../migrations/sqlite/0002_links.sql") },
];

/// The table that records which migrations ran (same SQL on both dialects).
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS tessera_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL
)";

/// The migrations not yet in `applied`, in order.
pub(crate) fn pending<'a>(all: &'a [Migration], applied: &[i64]) -> impl Iterator<Item = &'a Migration> {
    all.iter().filter(move |m| !applied.contains(&m.version))
}

//! Reading a Dex's own storage, as Dex's SQL migrations and CRUD code leave it (`storage/sql` in Dex)
//! or as its etcd storage keeps it (`storage/etcd`),
//! so that tessera can take over a running Dex without anyone logging in again. Read only: nothing
//! here writes to Dex's tables, so going back to Dex stays possible.
//!
//! Each table is decoded row by row into tessera's model; a row that does not decode is skipped and
//! named in [`DexState::skipped`] rather than failing the whole read.

mod decode;
mod etcd;
mod read;
mod sessions;

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_core::model::{
    AuthCode, Client, ClientAuthState, Connector, DeviceRequest, DeviceToken, OfflineSessions, Password, RefreshToken,
    UserIdentity,
};
use time::OffsetDateTime;

pub use read::read;
pub use sessions::{LiveSessions, live_sessions};

/// Everything read from a Dex's storage.
#[derive(Debug, Clone, Default)]
pub struct DexState {
    /// What was read, for messages: `sqlite3 /var/dex/dex.db`, `postgres db:5432/dex`.
    pub source: String,
    /// The number of Dex migrations applied (Dex's `migrations` table); 0 on etcd, which has none.
    pub schema_version: i64,
    pub keys: Option<DexKeys>,
    pub clients: Vec<Client>,
    pub passwords: Vec<Password>,
    pub connectors: Vec<Connector>,
    pub refresh_tokens: Vec<RefreshToken>,
    pub offline_sessions: Vec<OfflineSessions>,
    pub auth_codes: Vec<AuthCode>,
    pub device_requests: Vec<DeviceRequest>,
    pub device_tokens: Vec<DeviceToken>,
    /// Dex's `user_identity` (kept with `DEX_SESSIONS_ENABLED`): last identity and consents per connector.
    pub user_identities: Vec<UserIdentity>,
    /// Dex's `auth_session`, as stored: without the identity tessera keeps on a session.
    pub auth_sessions: Vec<DexAuthSession>,
    /// The identities (`user_id|connector_id`) that held MFA secrets or WebAuthn credentials, which
    /// tessera has no use for: they are read past, and named in the import's report.
    pub identities_with_mfa: Vec<String>,
    /// The identities (`user_id|connector_id`) Dex holds locked (`blocked_until`, Go's zero time being
    /// none), with the lock's end: tessera has no lock, so the import reports those still locked.
    pub locked_identities: Vec<(String, OffsetDateTime)>,
    /// Rows that did not decode, each named, in the order met.
    pub skipped: Vec<Skipped>,
}

/// Dex's signing keys as it stores them: JSON Web Keys with the private parameters (go-jose's form),
/// which tessera converts to its own form when it imports them.
#[derive(Debug, Clone, PartialEq)]
pub struct DexKeys {
    pub signing_key: Option<Value>,
    pub signing_key_pub: Option<Value>,
    pub verification_keys: Vec<DexVerificationKey>,
    pub next_rotation: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DexVerificationKey {
    pub public_key: Value,
    pub expiry: OffsetDateTime,
}

/// One signed-in browser as Dex stores it (the schema keyed by `id`, Dex master's last migration).
/// Dex keeps no identity on it, nor `auth_time`: it reads both from the user's identity at each
/// single sign-on, so [`live_sessions`] joins them. Its `logout_state` is not read: a logout in
/// flight at the takeover simply starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DexAuthSession {
    pub id: String,
    pub secret: String,
    pub user_id: String,
    pub connector_id: String,
    pub client_states: BTreeMap<String, ClientAuthState>,
    pub created_at: OffsetDateTime,
    pub last_activity: OffsetDateTime,
    pub absolute_expiry: OffsetDateTime,
    pub idle_expiry: OffsetDateTime,
    pub ip_address: String,
    pub user_agent: String,
}

/// A row left out of the import, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Dex's table: `client`, `refresh_token`, …
    pub table: &'static str,
    pub id: String,
    pub reason: String,
}

/// Why Dex's storage could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum DexReadError {
    /// The database could not be reached or opened.
    #[error("cannot reach Dex's storage at {source_name}: {message}")]
    Unreachable { source_name: String, message: String },
    /// The database has no Dex tables (no `migrations` table), or the etcd namespace no Dex keys.
    #[error("no Dex state in {source_name} (no Dex tables, or no Dex keys in the etcd namespace)")]
    NoDexTables { source_name: String },
    /// Dex's schema is at a version this tessera cannot read.
    #[error(
        "Dex's schema in {source_name} is at version {found}, which tessera cannot read (it reads versions {min} to {max} on {dialect}: Dex v2.44 to master)"
    )]
    UnknownSchema { source_name: String, dialect: &'static str, found: i64, min: i64, max: i64 },
    /// A storage type whose Dex layout tessera does not read.
    #[error("reading Dex's {0} storage is not supported")]
    Unsupported(&'static str),
    /// A query failed after the database was reached.
    #[error("reading Dex's {table} table in {source_name}: {message}")]
    Query { source_name: String, table: &'static str, message: String },
}

impl DexReadError {
    /// The source could not be reached at all (the command exits 2 on it).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DexReadError::Unreachable { .. })
    }
}

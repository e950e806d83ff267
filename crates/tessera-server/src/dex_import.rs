//! Copying a Dex's state into tessera's storage (`tessera import-dex`, and `serve` on first start):
//! signing keys (converted to tessera's key form, same `kid`), clients, passwords, connectors, refresh
//! tokens and offline sessions, each under the key Dex used, so tokens Dex issued keep working; and,
//! from a Dex running with sessions, its user identities (consents) and live browser sessions, so
//! users keep what they approved and, with Dex's cookie settings, stay signed in.
//!
//! Idempotent: an object tessera already holds with the same value is counted as present and not
//! written (not even a timestamp changes); one that differs is kept as tessera has it unless the
//! caller asks to overwrite. Creation is insert-if-absent, so an import while tessera serves never
//! duplicates anything. Short-lived objects (authorization codes, device flows) are read and counted
//! but not imported: re-importing a code tessera already redeemed would make it redeemable again.

use std::collections::BTreeSet;

use tessera_core::model::{Keys, VerificationKey};
use tessera_jose::PrivateKey;
use tessera_storage::dex::{DexKeys, DexReadError, DexState, Skipped, live_sessions};
use tessera_storage::{Entity, Optional, Storage, StorageError, StorageSettings};

use time::OffsetDateTime;

use crate::config::Config;

/// What the caller allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Report only; write nothing.
    pub dry_run: bool,
    /// Replace tessera objects whose value differs from Dex's.
    pub overwrite: bool,
}

/// The counts for one kind of object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub kind: &'static str,
    pub found: usize,
    /// Written (or, on a dry run, that would be).
    pub imported: usize,
    pub already_present: usize,
    /// Held by tessera with another value, and kept as tessera has it.
    pub differs: usize,
    /// Not imported: did not decode, or cannot be used by tessera.
    pub skipped: usize,
    /// Over at the import (browser sessions): left behind, as Dex would not honour them either.
    pub expired: usize,
    /// Read and counted, never imported (short-lived objects).
    pub short_lived: bool,
}

/// What an import found and did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub source: String,
    pub schema_version: i64,
    pub dry_run: bool,
    pub kinds: Vec<KindCounts>,
    /// Each row left out, and why.
    pub skipped: Vec<Skipped>,
    /// Each object that differs and was kept: (kind, key).
    pub differing: Vec<(&'static str, String)>,
    /// The user identities (`user_id|connector_id`) whose MFA secrets or WebAuthn credentials were
    /// not imported (tessera has no second factor): the identity itself is.
    pub identities_with_mfa: Vec<String>,
    /// The user identities Dex holds locked past the import (`user_id|connector_id`, until when):
    /// tessera has no lock, so these users can sign in again.
    pub still_locked: Vec<(String, OffsetDateTime)>,
}

impl ImportReport {
    /// How many objects were (or would be) written.
    pub fn imported(&self) -> usize {
        self.kinds.iter().map(|k| k.imported).sum()
    }

    /// Rows of a kind tessera imports that were left out (the command then exits non-zero).
    pub fn left_out(&self) -> usize {
        const SHORT_LIVED: [&str; 3] = ["auth_code", "device_request", "device_token"];
        self.skipped.iter().filter(|s| !SHORT_LIVED.contains(&s.table)).count()
    }

    /// One line per kind, then one per object left out: what the command prints and `serve` logs.
    pub fn lines(&self) -> Vec<String> {
        let version =
            if self.schema_version > 0 { format!(" (schema version {})", self.schema_version) } else { String::new() };
        let mut lines = vec![format!(
            "{} Dex's state from {}{version}",
            if self.dry_run { "dry run: would import" } else { "imported" },
            self.source,
        )];
        for k in &self.kinds {
            if k.short_lived {
                lines.push(format!("  {:<17} found {:>5}  not imported (short-lived: they restart)", k.kind, k.found));
                continue;
            }
            let expired = if k.expired > 0 { format!("  expired {:>5}", k.expired) } else { String::new() };
            lines.push(format!(
                "  {:<17} found {:>5}  imported {:>5}  already present {:>5}  differs {:>5}  skipped {:>5}{expired}",
                k.kind, k.found, k.imported, k.already_present, k.differs, k.skipped
            ));
        }
        for identity in &self.identities_with_mfa {
            lines.push(format!(
                "  not imported: MFA secrets and WebAuthn credentials of user identity {identity:?} (tessera has no second factor)"
            ));
        }
        for (identity, until) in &self.still_locked {
            let until = until.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            lines.push(format!(
                "  not imported: the lock on user identity {identity:?} (until {until} in Dex): tessera does not lock accounts"
            ));
        }
        for s in &self.skipped {
            lines.push(format!("  skipped {} {:?}: {}", s.table, s.id, s.reason));
        }
        for (kind, key) in &self.differing {
            lines.push(format!("  kept tessera's {kind} {key:?}: it differs from Dex's (--overwrite replaces it)"));
        }
        lines
    }
}

/// Imports `state` into `storage`. Fails only when storage does; rows that cannot be imported are
/// counted and named in the report. Browser sessions over at `now` are left behind. The keys come
/// last: tessera's first start finds keys only once an import finished, so one interrupted half-way
/// is run again by the next start.
pub async fn import(
    storage: &Storage,
    state: DexState,
    options: ImportOptions,
    now: OffsetDateTime,
) -> Result<ImportReport, StorageError> {
    let mut report = ImportReport {
        source: state.source.clone(),
        schema_version: state.schema_version,
        dry_run: options.dry_run,
        skipped: state.skipped.clone(),
        identities_with_mfa: state.identities_with_mfa.clone(),
        still_locked: state.locked_identities.iter().filter(|(_, until)| *until > now).cloned().collect(),
        ..ImportReport::default()
    };
    let skipped_in = |table: &str| state.skipped.iter().filter(|s| s.table == table).count();

    report.kinds.push(
        import_all(storage, "clients", state.clients, skipped_in("client"), options, &mut report.differing).await?,
    );
    report.kinds.push(
        import_all(storage, "passwords", state.passwords, skipped_in("password"), options, &mut report.differing)
            .await?,
    );

    let (usable, unknown): (Vec<_>, Vec<_>) =
        state.connectors.into_iter().partition(|c| tessera_connectors::IMPLEMENTED_TYPES.contains(&c.kind.as_str()));
    for connector in &unknown {
        report.skipped.push(Skipped {
            table: "connector",
            id: connector.id.clone(),
            reason: format!("connector type {:?} is not implemented by tessera", connector.kind),
        });
    }
    // Those of a type tessera lacks count as found and skipped, like rows that did not decode.
    let connectors = import_all(
        storage,
        "connectors",
        usable,
        skipped_in("connector") + unknown.len(),
        options,
        &mut report.differing,
    )
    .await?;
    report.kinds.push(connectors);

    // A refresh token keeps the browser session Dex issued it under: its `sid`, and for a client whose
    // tokens end with the session, refused once that session is over, as Dex refuses it (an expired
    // session is over in both). Only a session Dex still held alive but tessera leaves out (no
    // identity, or a row that did not decode) would end such tokens at the swap: those start unbound.
    let live = live_sessions(state.auth_sessions, &state.user_identities, now);
    let left_out: BTreeSet<&str> = live
        .skipped
        .iter()
        .chain(state.skipped.iter().filter(|s| s.table == "auth_session"))
        .map(|s| s.id.as_str())
        .collect();
    let mut offline_sessions = state.offline_sessions;
    for reference in offline_sessions.iter_mut().flat_map(|o| o.refresh.values_mut()) {
        if left_out.contains(reference.session_id.as_str()) {
            reference.session_id.clear();
        }
    }

    // Sessions before tokens: a token is found together with its session.
    report.kinds.push(
        import_all(
            storage,
            "offline sessions",
            offline_sessions,
            skipped_in("offline_session"),
            options,
            &mut report.differing,
        )
        .await?,
    );
    report.kinds.push(
        import_all(
            storage,
            "refresh tokens",
            state.refresh_tokens,
            skipped_in("refresh_token"),
            options,
            &mut report.differing,
        )
        .await?,
    );

    // Identities before sessions: a session's claims are its identity's, and tessera's single
    // sign-on reads the identity again (as Dex does).
    report.kinds.push(
        import_all(
            storage,
            "user identities",
            state.user_identities,
            skipped_in("user_identity"),
            options,
            &mut report.differing,
        )
        .await?,
    );
    let mut sessions = import_all(
        storage,
        "browser sessions",
        live.sessions,
        skipped_in("auth_session") + live.skipped.len(),
        options,
        &mut report.differing,
    )
    .await?;
    sessions.found += live.expired;
    sessions.expired = live.expired;
    report.kinds.push(sessions);
    report.skipped.extend(live.skipped);

    let mut keys = KindCounts { kind: "keys", skipped: skipped_in("keys"), ..KindCounts::default() };
    if let Some(dex_keys) = &state.keys {
        keys.found = 1;
        match convert_keys(dex_keys) {
            Ok(converted) => import_one(storage, converted, options, &mut keys, &mut report.differing).await?,
            Err(reason) => {
                keys.skipped += 1;
                report.skipped.push(Skipped { table: "keys", id: "keys".into(), reason });
            }
        }
    }
    report.kinds.push(keys);

    for (kind, table, found) in [
        ("auth codes", "auth_code", state.auth_codes.len()),
        ("device requests", "device_request", state.device_requests.len()),
        ("device tokens", "device_token", state.device_tokens.len()),
    ] {
        report.kinds.push(KindCounts {
            kind,
            found: found + skipped_in(table),
            short_lived: true,
            ..KindCounts::default()
        });
    }
    Ok(report)
}

/// Dex's keys in tessera's form: the private key re-encoded (same `kid`), the public ones as they are.
fn convert_keys(dex: &DexKeys) -> Result<Keys, String> {
    let signing_key = match &dex.signing_key {
        Some(jwk) => Some(PrivateKey::from_jwk(jwk).map_err(|e| format!("signing key: {e}"))?.to_stored()),
        None => None,
    };
    Ok(Keys {
        signing_key,
        signing_key_pub: dex.signing_key_pub.clone(),
        verification_keys: dex
            .verification_keys
            .iter()
            .map(|key| VerificationKey { public_key: key.public_key.clone(), expiry: key.expiry })
            .collect(),
        next_rotation: dex.next_rotation,
    })
}

async fn import_all<E: Entity + PartialEq>(
    storage: &Storage,
    kind: &'static str,
    values: Vec<E>,
    decode_failures: usize,
    options: ImportOptions,
    differing: &mut Vec<(&'static str, String)>,
) -> Result<KindCounts, StorageError> {
    let mut counts =
        KindCounts { kind, found: values.len() + decode_failures, skipped: decode_failures, ..KindCounts::default() };
    for value in values {
        import_one(storage, value, options, &mut counts, differing).await?;
    }
    Ok(counts)
}

/// Creates the object if tessera has none under its key; compares it otherwise.
async fn import_one<E: Entity + PartialEq>(
    storage: &Storage,
    value: E,
    options: ImportOptions,
    counts: &mut KindCounts,
    differing: &mut Vec<(&'static str, String)>,
) -> Result<(), StorageError> {
    let key = value.key();
    loop {
        match storage.get::<E>(&key).await.optional()? {
            Some(existing) if existing == value => {
                counts.already_present += 1;
                return Ok(());
            }
            Some(_) if options.overwrite => {
                if !options.dry_run {
                    storage.update::<E, _, StorageError>(&key, |_| Ok(value.clone())).await?;
                }
                counts.imported += 1;
                return Ok(());
            }
            Some(_) => {
                counts.differs += 1;
                differing.push((counts.kind, key));
                return Ok(());
            }
            None if options.dry_run => {
                counts.imported += 1;
                return Ok(());
            }
            None => match storage.create(&value).await {
                Ok(()) => {
                    counts.imported += 1;
                    return Ok(());
                }
                // Written meanwhile (a replica serving, or importing too): compare with what it wrote.
                Err(StorageError::AlreadyExists) => continue,
                Err(err) => return Err(err),
            },
        }
    }
}

/// Why `serve` would not start after looking at Dex's tables.
#[derive(Debug, thiserror::Error)]
pub enum FirstStartError {
    #[error("{0} (set TESSERA_IMPORT_DEX=false to start without importing Dex's state)")]
    Read(#[from] DexReadError),
    #[error("importing Dex's state: {0}")]
    Storage(#[from] StorageError),
}

/// `serve`'s automatic import: on a storage with no signing keys yet (tessera's first start) whose
/// database also holds Dex's tables, imports Dex's state before anything is served. Replicas starting
/// together may each run it: every write is insert-if-absent, so each object is written once, and
/// each replica's signer runs only after its own import, so none makes new keys over Dex's.
pub async fn import_on_first_start(
    config: &Config,
    storage: &Storage,
    now: OffsetDateTime,
) -> Result<Option<ImportReport>, FirstStartError> {
    if !config.flags.import_dex || matches!(config.storage, StorageSettings::Memory) {
        return Ok(None);
    }
    if storage.get_keys().await.optional()?.is_some() {
        return Ok(None);
    }
    let state = match tessera_storage::dex::read(&config.storage).await {
        Ok(state) => state,
        // No Dex here, or a storage whose Dex layout tessera does not read: nothing to import.
        Err(DexReadError::NoDexTables { .. } | DexReadError::Unsupported(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let report = import(storage, state, ImportOptions::default(), now).await?;
    for line in report.lines() {
        tracing::info!("{line}");
    }
    if report.left_out() > 0 {
        tracing::warn!(left_out = report.left_out(), "some of Dex's objects were not imported (listed above)");
    }
    Ok(Some(report))
}

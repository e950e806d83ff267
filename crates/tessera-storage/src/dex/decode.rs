//! Dex's column encodings: JSON in byte columns (`encoder` in Dex's `crud.go`), Go's timestamps as each
//! driver writes them, and the offline session's map of refresh-token references.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::model::RefreshTokenRef;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A JSON column: Dex marshals a nil slice as `null`, and old rows may hold nothing at all.
pub(crate) fn json_or_default<T: DeserializeOwned + Default>(bytes: Option<&[u8]>) -> Result<T, String> {
    match bytes {
        None | Some(b"") | Some(b"null") => Ok(T::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}")),
    }
}

/// A timestamp as text: RFC 3339 from the PostgreSQL and MySQL queries (which format it so), or what
/// the Go SQLite driver wrote (`2006-01-02 15:04:05.999999999-07:00`, a migration's `… UTC` default, or
/// no zone at all, which Dex means as UTC).
pub(crate) fn timestamp(text: &str) -> Result<OffsetDateTime, String> {
    let mut normalized = text.trim().replacen(' ', "T", 1);
    if let Some(utc) = normalized.strip_suffix(" UTC") {
        normalized = format!("{utc}Z");
    }
    let time_part = normalized.split_once('T').map_or("", |(_, time)| time);
    if !(time_part.ends_with('Z') || time_part.contains('+') || time_part.contains('-')) {
        normalized.push('Z');
    }
    OffsetDateTime::parse(&normalized, &Rfc3339).map_err(|e| format!("invalid timestamp {text:?}: {e}"))
}

/// Dex's `RefreshTokenRef` as `encoding/json` writes it (Go's field names).
#[derive(Deserialize)]
struct DexRefreshRef {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ClientID")]
    client_id: String,
    #[serde(rename = "CreatedAt", with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(rename = "LastUsed", with = "time::serde::rfc3339")]
    last_used: OffsetDateTime,
}

/// The `refresh` column of `offline_session`: client ID to that client's current token.
pub(crate) fn offline_refresh(bytes: Option<&[u8]>) -> Result<BTreeMap<String, RefreshTokenRef>, String> {
    let refs: BTreeMap<String, Option<DexRefreshRef>> = json_or_default(bytes)?;
    Ok(refs
        .into_iter()
        .filter_map(|(client, found)| {
            let found = found?;
            let reference = RefreshTokenRef {
                id: found.id,
                client_id: found.client_id,
                created_at: found.created_at,
                last_used: found.last_used,
                // Dex's browser sessions are not imported: a token bound to one would be refused at
                // its first refresh here, so it starts unbound and keeps working after the swap.
                session_id: String::new(),
            };
            Some((client, reference))
        })
        .collect())
}

/// Dex's verification keys (`[{"publicKey": JWK, "expiry": time}]`).
#[derive(Deserialize)]
pub(crate) struct DexVerificationKeyJson {
    #[serde(rename = "publicKey")]
    pub public_key: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_as_each_driver_writes_them() {
        let at = datetime!(2026-03-04 05:06:07.123456789 UTC);
        assert_eq!(timestamp("2026-03-04 05:06:07.123456789+00:00").unwrap(), at);
        assert_eq!(timestamp("2026-03-04T05:06:07.123456789Z").unwrap(), at);
        assert_eq!(timestamp("2026-03-04 07:06:07.123456789+02:00").unwrap(), at);
        assert_eq!(timestamp("2026-03-04 05:06:07").unwrap(), datetime!(2026-03-04 05:06:07 UTC));
        assert_eq!(timestamp("0001-01-01 00:00:00 UTC").unwrap(), datetime!(0001-01-01 00:00:00 UTC));
        assert!(timestamp("yesterday").is_err());
    }

    #[test]
    fn json_columns_tolerate_null_and_nothing() {
        assert_eq!(json_or_default::<Vec<String>>(Some(b"null")).unwrap(), Vec::<String>::new());
        assert_eq!(json_or_default::<Vec<String>>(None).unwrap(), Vec::<String>::new());
        assert_eq!(json_or_default::<Vec<String>>(Some(br#"["a"]"#)).unwrap(), vec!["a".to_owned()]);
        assert!(json_or_default::<Vec<String>>(Some(b"{oops")).is_err());
    }

    #[test]
    fn offline_refresh_uses_go_field_names() {
        let column = br#"{"app":{"ID":"tok","ClientID":"app","CreatedAt":"2026-01-02T03:04:05.5Z","LastUsed":"2026-01-02T03:04:06Z","SessionID":""}}"#;
        let refs = offline_refresh(Some(column)).unwrap();
        assert_eq!(refs["app"].id, "tok");
        assert_eq!(refs["app"].created_at, datetime!(2026-01-02 03:04:05.5 UTC));
    }
}

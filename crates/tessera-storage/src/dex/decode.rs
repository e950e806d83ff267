//! Dex's column encodings: JSON in byte columns (`encoder` in Dex's `crud.go`), Go's timestamps as each
//! driver writes them, and the offline session's map of refresh-token references.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::model::{ClientAuthState, RefreshTokenRef};
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
    /// Dex master's: the browser session the token was issued under, or empty.
    #[serde(rename = "SessionID", default)]
    session_id: String,
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
                // As Dex has it; the import unbinds it only from a session it leaves out.
                session_id: found.session_id,
            };
            Some((client, reference))
        })
        .collect())
}

/// Dex's `ClientAuthState` as `encoding/json` writes it (Go's field names, in SQL and etcd alike).
#[derive(Deserialize)]
pub(crate) struct DexClientState {
    #[serde(rename = "AuthenticatedAt", with = "time::serde::rfc3339")]
    authenticated_at: OffsetDateTime,
    #[serde(rename = "LastActivity", with = "time::serde::rfc3339")]
    last_activity: OffsetDateTime,
    #[serde(rename = "LastTokenIssuedAt", default, with = "time::serde::rfc3339::option")]
    last_token_issued_at: Option<OffsetDateTime>,
    #[serde(rename = "ViaSSO", default)]
    via_sso: bool,
}

/// A session's client states: Dex's map of pointers, where a nil entry means no state and Go's zero
/// time (`0001-01-01`) a token never issued.
pub(crate) fn client_states(states: BTreeMap<String, Option<DexClientState>>) -> BTreeMap<String, ClientAuthState> {
    states
        .into_iter()
        .filter_map(|(client, state)| {
            let state = state?;
            let issued = state.last_token_issued_at.and_then(set);
            Some((
                client,
                ClientAuthState {
                    authenticated_at: state.authenticated_at,
                    last_activity: state.last_activity,
                    via_sso: state.via_sso,
                    last_token_issued_at: issued,
                },
            ))
        })
        .collect()
}

/// A time Go wrote, unless it is Go's zero time (`0001-01-01`), which Dex uses for "never".
pub(crate) fn set(at: OffsetDateTime) -> Option<OffsetDateTime> {
    (at.year() > 1).then_some(at)
}

/// A user's consents: client ID to approved scopes, a nil slice written as `null`.
pub(crate) fn consents(consents: BTreeMap<String, Option<Vec<String>>>) -> BTreeMap<String, Vec<String>> {
    consents.into_iter().map(|(client, scopes)| (client, scopes.unwrap_or_default())).collect()
}

/// Whether an MFA secrets or WebAuthn credentials value holds anything (`null`, `{}` and nothing do not).
pub(crate) fn holds_something(bytes: Option<&[u8]>) -> bool {
    match bytes.map(serde_json::from_slice::<serde_json::Value>) {
        None | Some(Ok(serde_json::Value::Null)) => false,
        Some(Ok(serde_json::Value::Object(map))) => !map.is_empty(),
        Some(Ok(_)) => true,
        // Unreadable but not empty: something was there, so it is reported rather than passed over.
        Some(Err(_)) => bytes.is_some_and(|b| !b.is_empty()),
    }
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
    fn client_states_use_go_field_names_and_zero_times() {
        let column = br#"{"app":{"AuthenticatedAt":"2026-01-02T03:04:05Z","LastActivity":"2026-01-02T03:05:00Z","LastTokenIssuedAt":"0001-01-01T00:00:00Z","ViaSSO":false},"peer":{"AuthenticatedAt":"2026-01-02T03:04:05Z","LastActivity":"2026-01-02T03:06:00Z","LastTokenIssuedAt":"2026-01-02T03:06:00.5Z","ViaSSO":true},"gone":null}"#;
        let states = client_states(json_or_default(Some(column)).unwrap());
        assert_eq!(states.len(), 2);
        assert_eq!(states["app"].last_token_issued_at, None);
        assert_eq!(states["app"].last_activity, datetime!(2026-01-02 03:05 UTC));
        assert!(states["peer"].via_sso);
        assert_eq!(states["peer"].last_token_issued_at, Some(datetime!(2026-01-02 03:06:00.5 UTC)));
    }

    #[test]
    fn mfa_values_count_only_when_they_hold_something() {
        assert!(!holds_something(None));
        assert!(!holds_something(Some(b"null")));
        assert!(!holds_something(Some(b"{}")));
        assert!(holds_something(Some(br#"{"totp":{"secret":"x"}}"#)));
    }

    #[test]
    fn offline_refresh_uses_go_field_names() {
        let column = br#"{"app":{"ID":"tok","ClientID":"app","CreatedAt":"2026-01-02T03:04:05.5Z","LastUsed":"2026-01-02T03:04:06Z","SessionID":""}}"#;
        let refs = offline_refresh(Some(column)).unwrap();
        assert_eq!(refs["app"].id, "tok");
        assert_eq!(refs["app"].created_at, datetime!(2026-01-02 03:04:05.5 UTC));
        assert_eq!(refs["app"].session_id, "");
    }
}

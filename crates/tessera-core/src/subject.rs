//! Dex's opaque encodings: the `sub` claim is base64url (no padding) of the protobuf message
//! `{1: user_id, 2: connector_id}`, and a refresh token is the same shape `{1: id, 2: secret}`.
//! Encoding them byte for byte as Dex does keeps every existing user's subject.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Two proto3 string fields (numbers 1 and 2); empty strings are omitted, as proto3 does.
fn encode_pair(first: &str, second: &str) -> String {
    let mut bytes = Vec::with_capacity(first.len() + second.len() + 8);
    for (tag, value) in [(0x0a_u8, first), (0x12_u8, second)] {
        if value.is_empty() {
            continue;
        }
        bytes.push(tag);
        let mut length = value.len();
        while length >= 0x80 {
            bytes.push((length as u8 & 0x7f) | 0x80);
            length >>= 7;
        }
        bytes.push(length as u8);
        bytes.extend_from_slice(value.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_pair(encoded: &str) -> Option<(String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let (mut first, mut second) = (String::new(), String::new());
    let mut rest = bytes.as_slice();
    while let Some((&tag, tail)) = rest.split_first() {
        let (mut length, mut shift, mut tail) = (0usize, 0u32, tail);
        loop {
            let (&byte, next) = tail.split_first()?;
            tail = next;
            length |= usize::from(byte & 0x7f).checked_shl(shift)?;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
            if shift > 28 {
                return None;
            }
        }
        if tail.len() < length {
            return None;
        }
        let value = String::from_utf8(tail[..length].to_vec()).ok()?;
        match tag {
            0x0a => first = value,
            0x12 => second = value,
            _ => return None,
        }
        rest = &tail[length..];
    }
    Some((first, second))
}

/// The `sub` claim Dex issues for a user of a connector.
pub fn encode_subject(user_id: &str, connector_id: &str) -> String {
    encode_pair(user_id, connector_id)
}

/// (user ID, connector ID) from a `sub`, if it is one of ours.
pub fn decode_subject(subject: &str) -> Option<(String, String)> {
    decode_pair(subject)
}

/// A refresh token as handed to clients: its storage ID and its current secret.
pub fn encode_refresh_token(id: &str, secret: &str) -> String {
    encode_pair(id, secret)
}

/// (ID, secret) from a refresh token. Like Dex, a value that does not decode is taken as a legacy
/// bare ID with no secret.
pub fn decode_refresh_token(token: &str) -> (String, String) {
    decode_pair(token).filter(|(id, _)| !id.is_empty()).unwrap_or_else(|| (token.to_owned(), String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_subjects_dex_issued() {
        // A subject from Dex's documentation (user 2342849 of the github connector).
        assert_eq!(encode_subject("2342849", "github"), "CgcyMzQyODQ5EgZnaXRodWI");
        assert_eq!(decode_subject("CgcyMzQyODQ5EgZnaXRodWI"), Some(("2342849".into(), "github".into())));
        // Computed independently: base64url(b"\x0a\x0a1234567890\x12\x05local") in Python.
        assert_eq!(encode_subject("1234567890", "local"), "CgoxMjM0NTY3ODkwEgVsb2NhbA");
        // The custom-claims fork's documentation shows "Cg0xMjM0NTY3ODkwEgVsb2NhbA", which declares a
        // 13-byte user ID but carries 10: hand-written, not issued by Dex, and not decodable.
        assert_eq!(decode_subject("Cg0xMjM0NTY3ODkwEgVsb2NhbA"), None);
    }

    #[test]
    fn long_and_empty_values_round_trip() {
        let long = "x".repeat(300); // a two-byte length
        let sub = encode_subject(&long, "ldap");
        assert_eq!(decode_subject(&sub), Some((long, "ldap".into())));
        assert_eq!(encode_subject("", "mock"), "EgRtb2Nr", "proto3 omits empty fields");
        assert_eq!(decode_subject("EgRtb2Nr"), Some((String::new(), "mock".into())));
    }

    #[test]
    fn garbage_is_not_a_subject() {
        assert_eq!(decode_subject("!!!"), None);
        assert_eq!(decode_subject(&URL_SAFE_NO_PAD.encode([0x0a, 0x05, b'a'])), None, "truncated");
        assert_eq!(decode_subject(&URL_SAFE_NO_PAD.encode([0x1a, 0x01, b'a'])), None, "unknown field");
    }

    #[test]
    fn refresh_tokens_round_trip_and_accept_legacy_ids() {
        let token = encode_refresh_token("abcdefghijklmnopqrstuvwxy", "secret");
        assert_eq!(decode_refresh_token(&token), ("abcdefghijklmnopqrstuvwxy".into(), "secret".into()));
        assert_eq!(decode_refresh_token("legacy-id!"), ("legacy-id!".into(), String::new()));
    }
}

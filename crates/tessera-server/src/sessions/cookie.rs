//! The session cookie's value, in Dex master's format so a browser signed in at Dex stays signed in
//! after tessera takes over its storage (`tessera import-dex`): the protobuf message `SessionCookie`
//! (`session_id` = 1, `secret` = 2) in unpadded base64url, and, when `sessions.cookieEncryptionKey` is
//! set, that text sealed with AES-GCM (a random 12-byte nonce, then the ciphertext and tag, again in
//! unpadded base64url). The secret is the session's stored one: storage confirms it, in constant time.
//! No identity ever travels in the cookie.

use aws_lc_rs::aead::{AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use prost::Message;
use subtle::ConstantTimeEq;

/// Seals and opens cookie values; the optional AEAD key comes from the configuration.
pub struct CookieCodec {
    seal: Option<LessSafeKey>,
}

/// Dex's `SessionCookie` (server/internal/types.proto), field for field.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionCookie {
    #[prost(string, tag = "1")]
    session_id: String,
    #[prost(string, tag = "2")]
    secret: String,
}

/// What a cookie claims before storage confirms it: the session it names and the secret it carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Presented {
    /// Constant-time: whether the cookie carries this session's secret.
    pub fn proves(&self, secret: &str) -> bool {
        bool::from(self.secret.as_bytes().ct_eq(secret.as_bytes()))
    }
}

impl CookieCodec {
    /// `None` if the key is not 16, 24 or 32 bytes (the configuration refuses those first).
    pub fn new(key: Option<&[u8]>) -> Option<Self> {
        let seal = match key {
            None => None,
            Some(key) => {
                let algorithm = match key.len() {
                    16 => &AES_128_GCM,
                    24 => &AES_192_GCM,
                    32 => &AES_256_GCM,
                    _ => return None,
                };
                Some(LessSafeKey::new(UnboundKey::new(algorithm, key).ok()?))
            }
        };
        Some(Self { seal })
    }

    /// The value naming session `id` and carrying its `secret`.
    pub fn encode(&self, id: &str, secret: &str) -> Option<String> {
        let message = SessionCookie { session_id: id.to_owned(), secret: secret.to_owned() };
        let plain = B64.encode(message.encode_to_vec());
        let Some(key) = &self.seal else {
            return Some(plain);
        };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut in_out = plain.into_bytes();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::empty(), &mut in_out).ok()?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        Some(B64.encode(sealed))
    }

    /// What a cookie value claims; `None` for anything that is not such a value (wrong form, or a seal
    /// that does not open with this key).
    pub fn decode(&self, value: &str) -> Option<Presented> {
        let plain = match &self.seal {
            None => value.to_owned(),
            Some(key) => {
                let sealed = B64.decode(value).ok()?;
                if sealed.len() < NONCE_LEN {
                    return None;
                }
                let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let mut in_out = ciphertext.to_vec();
                let opened = key.open_in_place(nonce, Aad::empty(), &mut in_out).ok()?;
                String::from_utf8(opened.to_vec()).ok()?
            }
        };
        let message = SessionCookie::decode(B64.decode(plain).ok()?.as_slice()).ok()?;
        // IDs are tessera's (and Dex's) random base32: anything else is not a cookie either made.
        let id = message.session_id;
        if id.is_empty() || message.secret.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(Presented { id, secret: message.secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_cookie_names_its_session_and_proves_only_its_secret() {
        let codec = CookieCodec::new(None).unwrap();
        let value = codec.encode("abc123", "secret").unwrap();
        let presented = codec.decode(&value).unwrap();
        assert_eq!(presented.id, "abc123");
        assert!(presented.proves("secret"));
        assert!(!presented.proves("other") && !presented.proves("secre") && !presented.proves(""));
        assert_eq!(codec.decode("not base64!"), None);
        assert_eq!(codec.decode(""), None);
        let path = B64.encode(SessionCookie { session_id: "../x".into(), secret: "s".into() }.encode_to_vec());
        assert_eq!(codec.decode(&path), None, "an ID no session can have");
        let no_secret = B64.encode(SessionCookie { session_id: "abc".into(), secret: String::new() }.encode_to_vec());
        assert_eq!(codec.decode(&no_secret), None);
    }

    /// The bytes Dex writes: field 1 and field 2, length-delimited, in unpadded base64url — so a
    /// value Dex set reads here, and one set here reads at Dex.
    #[test]
    fn the_value_is_dexs_protobuf_in_base64url() {
        let codec = CookieCodec::new(None).unwrap();
        let value = codec.encode("abc", "xy").unwrap();
        assert_eq!(B64.decode(&value).unwrap(), [0x0a, 3, b'a', b'b', b'c', 0x12, 2, b'x', b'y']);
        let from_dex = B64.encode([0x0a, 3, b'a', b'b', b'c', 0x12, 2, b'x', b'y']);
        assert!(codec.decode(&from_dex).unwrap().proves("xy"));
    }

    #[test]
    fn a_sealed_cookie_hides_the_session_and_refuses_any_change() {
        for key in [&KEY[..16], &KEY[..24], KEY] {
            let codec = CookieCodec::new(Some(key)).unwrap();
            let value = codec.encode("abc123", "secret").unwrap();
            let plain = CookieCodec::new(None).unwrap().encode("abc123", "secret").unwrap();
            assert!(!value.contains(&plain));
            let presented = codec.decode(&value).unwrap();
            assert!(presented.id == "abc123" && presented.proves("secret"));
            let mut bytes = B64.decode(&value).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            assert_eq!(codec.decode(&B64.encode(bytes)), None, "a flipped bit");
            assert_eq!(codec.decode(&plain), None, "an unsealed value");
            let other = CookieCodec::new(Some(&[7u8; 32])).unwrap();
            assert_eq!(other.decode(&value), None, "sealed with another key");
        }
        assert!(CookieCodec::new(Some(b"short")).is_none());
    }

    /// A value sealed as Dex seals it (AES-GCM over the base64url text, nonce first, no associated
    /// data) opens here.
    #[test]
    fn a_value_sealed_by_dex_opens() {
        let key = &KEY[..16];
        let inner = B64.encode(SessionCookie { session_id: "dexsession".into(), secret: "s3".into() }.encode_to_vec());
        let nonce = [9u8; NONCE_LEN];
        let mut in_out = inner.into_bytes();
        let dex = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).unwrap());
        dex.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut in_out).unwrap();
        let value = B64.encode([nonce.as_slice(), &in_out].concat());
        let presented = CookieCodec::new(Some(key)).unwrap().decode(&value).unwrap();
        assert!(presented.id == "dexsession" && presented.proves("s3"));
    }
}

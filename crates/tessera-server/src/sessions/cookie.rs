//! The session cookie's value: the session ID and a MAC keyed by that session's stored secret, sealed
//! with AES-GCM when `sessions.cookieEncryptionKey` is set. No identity ever travels in it.

use aws_lc_rs::aead::{AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// Seals and opens cookie values; the optional AEAD key comes from the configuration.
pub struct CookieCodec {
    seal: Option<LessSafeKey>,
    /// Binds a sealed value to this cookie name, so one cookie cannot be replayed as another.
    name: String,
}

/// What a cookie claims before storage confirms it: the session it names and the MAC to check
/// against that session's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub id: String,
    mac: Vec<u8>,
}

impl Presented {
    /// Constant-time: whether the MAC was made with this session's secret.
    pub fn proves(&self, secret: &str) -> bool {
        hmac::verify(&mac_key(secret), self.id.as_bytes(), &self.mac).is_ok()
    }
}

fn mac_key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

impl CookieCodec {
    /// `None` if the key is not 16, 24 or 32 bytes (the configuration refuses those first).
    pub fn new(name: &str, key: Option<&[u8]>) -> Option<Self> {
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
        Some(Self { seal, name: name.to_owned() })
    }

    /// The value for session `id`, authenticated with its `secret`.
    pub fn encode(&self, id: &str, secret: &str) -> Option<String> {
        let tag = hmac::sign(&mac_key(secret), id.as_bytes());
        let plain = format!("{id}.{}", B64.encode(tag.as_ref()));
        let Some(key) = &self.seal else {
            return Some(plain);
        };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut in_out = plain.into_bytes();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        key.seal_in_place_append_tag(nonce, Aad::from(self.name.as_bytes()), &mut in_out).ok()?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        Some(B64.encode(sealed))
    }

    /// What a cookie value claims; `None` for anything this server did not produce (wrong form, or a
    /// seal that does not open).
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
                let opened = key.open_in_place(nonce, Aad::from(self.name.as_bytes()), &mut in_out).ok()?;
                String::from_utf8(opened.to_vec()).ok()?
            }
        };
        let (id, mac) = plain.split_once('.')?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(Presented { id: id.to_owned(), mac: B64.decode(mac).ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_cookie_names_its_session_and_proves_only_its_secret() {
        let codec = CookieCodec::new("dex_session", None).unwrap();
        let value = codec.encode("abc123", "secret").unwrap();
        assert!(value.starts_with("abc123."), "readable, but not forgeable: {value}");
        let presented = codec.decode(&value).unwrap();
        assert_eq!(presented.id, "abc123");
        assert!(presented.proves("secret"));
        assert!(!presented.proves("other"));
        let forged = value.replacen("abc123", "abc124", 1);
        assert!(!codec.decode(&forged).unwrap().proves("secret"), "another ID with the same MAC");
        assert_eq!(codec.decode("no-dot"), None);
        assert_eq!(codec.decode("../x.AAAA"), None);
    }

    #[test]
    fn a_sealed_cookie_hides_the_id_and_refuses_any_change() {
        for key in [&KEY[..16], &KEY[..24], KEY] {
            let codec = CookieCodec::new("dex_session", Some(key)).unwrap();
            let value = codec.encode("abc123", "secret").unwrap();
            assert!(!value.contains("abc123"));
            let presented = codec.decode(&value).unwrap();
            assert!(presented.id == "abc123" && presented.proves("secret"));
            let mut bytes = B64.decode(&value).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            assert_eq!(codec.decode(&B64.encode(bytes)), None, "a flipped bit");
            assert_eq!(codec.decode("abc123.AAAA"), None, "an unsealed value");
            let renamed = CookieCodec::new("other", Some(key)).unwrap();
            assert_eq!(renamed.decode(&value), None, "sealed for another cookie name");
        }
        assert!(CookieCodec::new("dex_session", Some(b"short")).is_none());
    }
}

//! Dex-compatible identifiers: 25 characters of lowercase base32 that always start with a letter.

/// The base32 alphabet Dex encodes IDs with (RFC 4648 letters, lowercased).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new random ID, as Dex's `storage.NewID()` makes them: 16 random bytes; the first picks a leading
/// letter (so an ID never starts with a digit), the other 15 are base32-encoded without padding.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    encode_id(&bytes)
}

fn encode_id(bytes: &[u8; 16]) -> String {
    let mut out = Vec::with_capacity(25);
    out.push(b'a' + bytes[0] % 26);
    push_base32(&mut out, &bytes[1..]);
    ascii_string(out)
}

/// A device code (RFC 8628), as long as Dex's: a leading letter and 31 random bytes in base32.
pub fn new_device_code() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let mut out = Vec::with_capacity(51);
    out.push(b'a' + bytes[0] % 26);
    push_base32(&mut out, &bytes[1..]);
    ascii_string(out)
}

/// The letters of Dex's user codes: no vowels (no words) and no look-alike characters.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A user code to type on another device: `XXXX-XXXX` from [`USER_CODE_ALPHABET`].
pub fn new_user_code() -> String {
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        // 256 is not a multiple of 20: draw again above 240 so every letter is equally likely.
        let letter = loop {
            let mut byte = [0u8; 1];
            rand::fill(&mut byte);
            if byte[0] < 240 {
                break USER_CODE_ALPHABET[usize::from(byte[0] % 20)];
            }
        };
        code.push(char::from(letter));
    }
    code
}

/// Lowercase RFC 4648 base32 without padding.
pub fn base32_no_pad(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len().div_ceil(5) * 8);
    push_base32(&mut out, input);
    ascii_string(out)
}

/// Appends `input` in base32 as bytes (IDs are made per token: one allocation, no char encoding).
fn push_base32(out: &mut Vec<u8>, input: &[u8]) {
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in input {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize]);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize]);
    }
}

/// The alphabets are ASCII, so the conversion cannot fail.
fn ascii_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_dex_shape() {
        for _ in 0..200 {
            let id = new_id();
            assert_eq!(id.len(), 25, "{id}");
            assert!(id.as_bytes()[0].is_ascii_lowercase(), "{id}");
            assert!(id.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        }
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn device_and_user_codes_have_dex_shapes() {
        let device = new_device_code();
        assert_eq!(device.len(), 51, "{device}");
        for _ in 0..200 {
            let user = new_user_code();
            assert_eq!(user.len(), 9);
            assert_eq!(&user[4..5], "-");
            assert!(user.bytes().filter(|b| *b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)), "{user}");
        }
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 §10, lowercased and unpadded.
        assert_eq!(base32_no_pad(b""), "");
        assert_eq!(base32_no_pad(b"f"), "my");
        assert_eq!(base32_no_pad(b"fo"), "mzxq");
        assert_eq!(base32_no_pad(b"foo"), "mzxw6");
        assert_eq!(base32_no_pad(b"foob"), "mzxw6yq");
        assert_eq!(base32_no_pad(b"fooba"), "mzxw6ytb");
        assert_eq!(base32_no_pad(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn first_byte_picks_the_leading_letter() {
        let mut bytes = [0u8; 16];
        bytes[0] = 27; // 27 % 26 = 1 => 'b'
        let id = encode_id(&bytes);
        assert!(id.starts_with('b'));
        assert_eq!(&id[1..], "aaaaaaaaaaaaaaaaaaaaaaaa");
    }
}

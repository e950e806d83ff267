//! tessera-jose: signing keys, compact JWS signing and verification, JWKS, and Dex's key rotation
//! policy. Keys are parsed once ([`PrivateKey`], [`PublicKey`]) and reused for every token; the
//! cryptography is aws-lc-rs.

mod error;
mod hash;
mod jwk;
mod jws;
mod key;
mod rotation;

pub use error::JoseError;
pub use hash::left_half_hash;
pub use jws::{PublicKey, verify};
pub use key::{Algorithm, PrivateKey};
pub use rotation::{RotationError, jwks, needs_rotation, rotate};

//! What can go wrong with keys and tokens.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("key generation or signing failed")]
    Crypto,
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("no key matches the token")]
    UnknownKey,
    #[error("invalid signature")]
    BadSignature,
}

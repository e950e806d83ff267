//! Claims no enricher may set: the ones that say who issued the token, to whom, for whom and when
//! (a forged `sub` or `iss` would let anyone impersonate anyone), and Dex's identity claims unless the
//! operator allows one by name.

/// Protocol claims (never overridable) and Dex's identity claims (reserved unless allowed), from the
/// one registry of claim names.
pub use tessera_core::claim_names::{IDENTITY, PROTOCOL};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservedError {
    #[error("claim {0:?} is reserved and can never be set by custom claims")]
    Protocol(String),
    #[error("claim {0:?} is one of Dex's identity claims: list it in allowOverride to let custom claims replace it")]
    Identity(String),
}

/// The policy for one enricher: protocol claims never, identity claims only when allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    allowed: Vec<String>,
}

impl Guard {
    /// `allowed` may name identity claims only; a protocol claim in it is an error.
    pub fn new(allowed: Vec<String>) -> Result<Self, ReservedError> {
        if let Some(protocol) = allowed.iter().find(|name| PROTOCOL.contains(&name.as_str())) {
            return Err(ReservedError::Protocol(protocol.clone()));
        }
        Ok(Self { allowed })
    }

    pub fn check(&self, name: &str) -> Result<(), ReservedError> {
        if PROTOCOL.contains(&name) {
            return Err(ReservedError::Protocol(name.to_owned()));
        }
        if IDENTITY.contains(&name) && !self.allowed.iter().any(|a| a == name) {
            return Err(ReservedError::Identity(name.to_owned()));
        }
        Ok(())
    }

    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_claims_are_never_allowed() {
        let guard = Guard::new(vec!["email".into()]).unwrap();
        for name in PROTOCOL {
            assert_eq!(guard.check(name), Err(ReservedError::Protocol(name.into())));
        }
        assert_eq!(Guard::new(vec!["sub".into()]), Err(ReservedError::Protocol("sub".into())));
    }

    #[test]
    fn identity_claims_only_when_allowed_by_name() {
        let guard = Guard::new(vec!["email".into()]).unwrap();
        assert_eq!(guard.check("email"), Ok(()));
        assert_eq!(guard.check("groups"), Err(ReservedError::Identity("groups".into())));
        assert_eq!(guard.check("org"), Ok(()));
        assert_eq!(Guard::default().check("email"), Err(ReservedError::Identity("email".into())));
    }
}

//! The registry of claim names: which claims tessera issues, which are protocol claims no custom
//! claim may forge, which identity claims each scope releases, and what discovery advertises. The
//! token payload, the reserved-claim guard, introspection and discovery all read these lists.

use crate::scope::{self, EMAIL, FEDERATED_ID, GROUPS, PROFILE};

pub const ISS: &str = "iss";
pub const SUB: &str = "sub";
pub const AUD: &str = "aud";
pub const EXP: &str = "exp";
pub const IAT: &str = "iat";
pub const NBF: &str = "nbf";
pub const JTI: &str = "jti";
pub const AUTH_TIME: &str = "auth_time";
pub const NONCE: &str = "nonce";
pub const AT_HASH: &str = "at_hash";
pub const C_HASH: &str = "c_hash";
pub const AZP: &str = "azp";
/// The browser session a token was issued under.
pub const SID: &str = "sid";

pub const EMAIL_CLAIM: &str = "email";
pub const EMAIL_VERIFIED: &str = "email_verified";
pub const GROUPS_CLAIM: &str = "groups";
pub const NAME: &str = "name";
pub const PREFERRED_USERNAME: &str = "preferred_username";
pub const FEDERATED_CLAIMS: &str = "federated_claims";

/// Claims that say who issued a token, to whom, for whom and when, and the ones the specifications
/// reserve for sessions and proof of possession: no custom claim may ever set them (a forged `sub` or
/// `iss` would let anyone impersonate anyone).
pub const PROTOCOL: [&str; 16] =
    [ISS, SUB, AUD, EXP, IAT, NBF, JTI, AUTH_TIME, NONCE, AT_HASH, C_HASH, AZP, SID, "acr", "amr", "cnf"];

/// Dex's identity claims, released by scopes; custom claims replace one only where the operator
/// allows it by name.
pub const IDENTITY: [&str; 6] = [EMAIL_CLAIM, EMAIL_VERIFIED, GROUPS_CLAIM, NAME, PREFERRED_USERNAME, FEDERATED_CLAIMS];

/// Every claim tessera itself puts in tokens, in Dex's order; any other claim is a custom claim.
pub const ISSUED: [&str; 18] = [
    ISS,
    SUB,
    AUD,
    EXP,
    IAT,
    AZP,
    NONCE,
    AT_HASH,
    C_HASH,
    EMAIL_CLAIM,
    EMAIL_VERIFIED,
    GROUPS_CLAIM,
    NAME,
    PREFERRED_USERNAME,
    FEDERATED_CLAIMS,
    AUTH_TIME,
    SID,
    JTI,
];

/// `claims_supported` in discovery, as Dex advertises it.
pub const ADVERTISED: [&str; 13] = [
    ISS,
    SUB,
    AUD,
    IAT,
    EXP,
    EMAIL_CLAIM,
    EMAIL_VERIFIED,
    "locale",
    NAME,
    PREFERRED_USERNAME,
    AT_HASH,
    GROUPS_CLAIM,
    FEDERATED_CLAIMS,
];

/// Which identity claims a token for these scopes carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// `email` and `email_verified`.
    pub email: bool,
    /// `name` and `preferred_username`.
    pub profile: bool,
    pub groups: bool,
    pub federated_claims: bool,
}

impl Released {
    /// The one rule of which scope releases which claims, read by minting and introspection.
    pub fn by(scopes: &[String]) -> Self {
        Self {
            email: scope::has(scopes, EMAIL),
            profile: scope::has(scopes, PROFILE),
            groups: scope::has(scopes, GROUPS),
            federated_claims: scope::has(scopes, FEDERATED_ID),
        }
    }

    /// The identity claims released, by name.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.email {
            names.extend([EMAIL_CLAIM, EMAIL_VERIFIED]);
        }
        if self.groups {
            names.push(GROUPS_CLAIM);
        }
        if self.profile {
            names.extend([NAME, PREFERRED_USERNAME]);
        }
        if self.federated_claims {
            names.push(FEDERATED_CLAIMS);
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_releases_its_claims() {
        let released = Released::by(&scope::parse("openid email profile"));
        assert_eq!(released.names(), vec!["email", "email_verified", "name", "preferred_username"]);
        assert_eq!(Released::by(&scope::parse("openid")).names(), Vec::<&str>::new());
        let all = Released::by(&scope::parse("groups federated:id"));
        assert_eq!(all.names(), vec!["groups", "federated_claims"]);
    }

    #[test]
    fn the_lists_agree() {
        for name in IDENTITY {
            assert!(ISSUED.contains(&name) && !PROTOCOL.contains(&name), "{name}");
        }
        for name in ISSUED.iter().filter(|n| !IDENTITY.contains(n)) {
            assert!(PROTOCOL.contains(name), "{name} is issued, so it must not be forgeable");
        }
        for name in ADVERTISED.iter().filter(|n| **n != "locale") {
            assert!(ISSUED.contains(name), "{name}");
        }
    }
}

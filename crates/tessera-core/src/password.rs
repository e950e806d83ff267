//! Rules about bcrypt password hashes that hold before any password is checked.

/// The bcrypt costs Dex accepts: below 10 is too weak, above 16 too slow to serve logins.
pub const MIN_BCRYPT_COST: u32 = 10;
pub const MAX_BCRYPT_COST: u32 = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("not a bcrypt hash (expected $2a$, $2b$ or $2y$ followed by a cost and 53 characters)")]
    NotBcrypt,
    #[error("bcrypt cost {0} is below the minimum of {MIN_BCRYPT_COST}")]
    CostTooLow(u32),
    #[error("bcrypt cost {0} is above the maximum of {MAX_BCRYPT_COST}")]
    CostTooHigh(u32),
}

/// The cost of a modular-crypt bcrypt hash (`$2b$10$…`), if the text is one.
pub fn bcrypt_cost(hash: &str) -> Result<u32, HashError> {
    let rest =
        ["$2a$", "$2b$", "$2y$"].iter().find_map(|prefix| hash.strip_prefix(prefix)).ok_or(HashError::NotBcrypt)?;
    let (cost, tail) = rest.split_once('$').ok_or(HashError::NotBcrypt)?;
    let valid_tail = tail.len() == 53 && tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if cost.len() != 2 || !valid_tail {
        return Err(HashError::NotBcrypt);
    }
    cost.parse().map_err(|_| HashError::NotBcrypt)
}

/// Checks that a hash is bcrypt with a cost Dex allows.
pub fn check_bcrypt_hash(hash: &str) -> Result<(), HashError> {
    match bcrypt_cost(hash)? {
        cost if cost < MIN_BCRYPT_COST => Err(HashError::CostTooLow(cost)),
        cost if cost > MAX_BCRYPT_COST => Err(HashError::CostTooHigh(cost)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Dex's documented example hash of "password", cost 10.
    const DEX_EXAMPLE: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

    #[test]
    fn accepts_dex_example_hash() {
        assert_eq!(bcrypt_cost(DEX_EXAMPLE), Ok(10));
        assert_eq!(check_bcrypt_hash(DEX_EXAMPLE), Ok(()));
    }

    #[test]
    fn rejects_weak_strong_and_malformed_hashes() {
        let weak = DEX_EXAMPLE.replacen("$10$", "$04$", 1);
        assert_eq!(check_bcrypt_hash(&weak), Err(HashError::CostTooLow(4)));
        let slow = DEX_EXAMPLE.replacen("$10$", "$17$", 1);
        assert_eq!(check_bcrypt_hash(&slow), Err(HashError::CostTooHigh(17)));
        assert_eq!(check_bcrypt_hash("password"), Err(HashError::NotBcrypt));
        assert_eq!(check_bcrypt_hash("$2a$10$short"), Err(HashError::NotBcrypt));
        assert_eq!(check_bcrypt_hash(&DEX_EXAMPLE.replacen("$2a$", "$1$", 1)), Err(HashError::NotBcrypt));
    }
}

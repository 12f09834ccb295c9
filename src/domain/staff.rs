//! Staff API tokens: who is calling `/api/v1`, and whether they may change anything.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

const MAX_NAME_LEN: usize = 64;
/// What every staff token starts with, so that one pasted in the wrong place is recognisable
/// (and secret scanners can find it).
const PREFIX: &str = "canvass_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a token name (letters, digits, spaces and . _ -, at most {MAX_NAME_LEN} characters; not an address)"
)]
pub struct StaffNameError(String);

/// The name a token is known by: in `staff token list`, and in the audit log of every write
/// made with it. Never an address (no `@`), so that what a token without an owner did cannot
/// be read in the audit log as done by a person, who is named there by their address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct StaffName(String);

impl StaffName {
    pub fn parse(input: &str) -> Result<Self, StaffNameError> {
        let name = input.trim();
        let valid = (1..=MAX_NAME_LEN).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(StaffNameError(name.chars().take(72).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StaffName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bearer token as issued: shown once, never stored.
pub struct StaffSecret(String);

impl StaffSecret {
    /// 32 random bytes, URL-safe.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> StaffTokenHash {
        StaffTokenHash::of(&self.0)
    }
}

/// Hides the secret from logs and panics.
impl fmt::Debug for StaffSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaffSecret(***)")
    }
}

/// What is stored of a token: the SHA-256 of it, in hex. The token has 256 random bits, so a
/// fast hash is enough: there is nothing to guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffTokenHash(String);

impl StaffTokenHash {
    /// The hash of whatever a caller presented.
    pub fn of(presented: &str) -> Self {
        let digest = Sha256::digest(presented.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(
            StaffName::parse(" Press Office ").unwrap().as_str(),
            "Press Office"
        );
        for bad in [
            "",
            "a\nb",
            "semi;colon",
            "amira@example.org",
            &"x".repeat(65),
        ] {
            assert!(StaffName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_random_prefixed_and_hidden() {
        let (a, b) = (StaffSecret::generate(), StaffSecret::generate());
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX));
        assert_eq!(a.expose().len(), PREFIX.len() + 43);
        assert_eq!(a.hash(), StaffTokenHash::of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "StaffSecret(***)");
    }
}

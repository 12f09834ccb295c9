//! Parliamentary constituencies, identified by their ONS code.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ONS constituency code (a letter E, S, W or N and eight digits)")]
pub struct ConstituencyCodeError(String);

/// An ONS/GSS Westminster constituency code such as `E14001285`: the country letter (England,
/// Scotland, Wales, Northern Ireland) and eight digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstituencyCode(String);

impl ConstituencyCode {
    pub fn parse(input: &str) -> Result<Self, ConstituencyCodeError> {
        let code = input.trim().to_ascii_uppercase();
        let valid = code.len() == 9
            && matches!(code.as_bytes()[0], b'E' | b'S' | b'W' | b'N')
            && code.as_bytes()[1..].iter().all(u8::is_ascii_digit);
        if valid {
            Ok(Self(code))
        } else {
            Err(ConstituencyCodeError(
                input.trim().chars().take(16).collect(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConstituencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_codes_of_all_four_nations() {
        for code in [
            "E14000001",
            "S14000021",
            "W07000041",
            "N06000001",
            " e14001285 ",
        ] {
            let parsed = ConstituencyCode::parse(code).unwrap();
            assert_eq!(parsed.as_str(), code.trim().to_ascii_uppercase());
        }
    }

    #[test]
    fn refuses_other_codes() {
        // L99999999 and M99999999 are the ONSPD pseudo-codes for the Channel Islands and the
        // Isle of Man, which have no Westminster constituency.
        for bad in [
            "",
            "E1400000",
            "E140000011",
            "X14000001",
            "L99999999",
            "E1400000A",
            "E14 00001",
        ] {
            assert!(ConstituencyCode::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}

//! UK postcodes and the prefixes campaign audiences are drawn by.
//!
//! A postcode is an outward code (area letters and district, `SG13`) and an inward code (sector
//! digit and unit letters, `8EQ`). Input is accepted in any case and spacing and kept in the
//! canonical form `SG13 8EQ`, so that every comparison past this module is a plain string one.

use std::fmt;

/// Letters never used in the unit part of an inward code.
const UNUSED_UNIT_LETTERS: &[u8] = b"CIKMOV";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostcodeError {
    #[error("postcode is empty")]
    Empty,
    #[error("'{0}' is not a UK postcode")]
    Invalid(String),
    #[error("'{0}' is not a postcode area, district or sector")]
    InvalidPrefix(String),
}

/// A UK postcode in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Postcode {
    /// `OUTWARD INWARD`, upper case, one space.
    canonical: String,
}

impl Postcode {
    pub fn parse(input: &str) -> Result<Self, PostcodeError> {
        let compact = compact_upper(input);
        if compact.is_empty() {
            return Err(PostcodeError::Empty);
        }
        let invalid = || PostcodeError::Invalid(shorten(input));
        if !compact.is_ascii() || compact.len() < 5 || compact.len() > 7 {
            return Err(invalid());
        }
        let (outward, inward) = compact.split_at(compact.len() - 3);
        if !(is_outward(outward) && is_inward(inward) || compact == "GIR0AA") {
            return Err(invalid());
        }
        Ok(Self {
            canonical: format!("{outward} {inward}"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The outward code, e.g. `SG13`.
    pub fn district(&self) -> &str {
        self.canonical
            .split_once(' ')
            .map_or("", |(outward, _)| outward)
    }

    /// The leading letters, e.g. `SG`.
    pub fn area(&self) -> &str {
        let district = self.district();
        let letters = district.bytes().take_while(u8::is_ascii_alphabetic).count();
        &district[..letters]
    }

    /// The outward code and the sector digit, e.g. `SG13 8`.
    pub fn sector(&self) -> &str {
        &self.canonical[..self.canonical.len() - 2]
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// An area (`SG`), district (`SG13`) or sector (`SG13 8`) that selects postcodes by whole parts:
/// `SG1` selects `SG1 2AA` but never `SG13 8EQ`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PostcodePrefix {
    Area(String),
    District(String),
    Sector(String),
}

impl PostcodePrefix {
    pub fn parse(input: &str) -> Result<Self, PostcodeError> {
        let upper = input.trim().to_ascii_uppercase();
        let invalid = || PostcodeError::InvalidPrefix(shorten(input));
        let mut parts = upper.split_whitespace();
        let (outward, sector) = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => return Err(PostcodeError::Empty),
            (Some(outward), sector, None) => (outward, sector),
            _ => return Err(invalid()),
        };
        match sector {
            Some(digit) if is_outward(outward) && digit.len() == 1 && is_digits(digit) => {
                Ok(Self::Sector(format!("{outward} {digit}")))
            }
            Some(_) => Err(invalid()),
            None if is_outward(outward) => Ok(Self::District(outward.to_owned())),
            None if (1..=2).contains(&outward.len()) && is_letters(outward) => {
                Ok(Self::Area(outward.to_owned()))
            }
            None => Err(invalid()),
        }
    }

    pub fn matches(&self, postcode: &Postcode) -> bool {
        match self {
            Self::Area(area) => postcode.area() == area,
            Self::District(district) => postcode.district() == district,
            Self::Sector(sector) => postcode.sector() == sector,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Area(s) | Self::District(s) | Self::Sector(s) => s,
        }
    }
}

impl fmt::Display for PostcodePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn compact_upper(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Echoes at most a short piece of bad input back in an error message.
fn shorten(input: &str) -> String {
    input.trim().chars().take(16).collect()
}

fn is_letters(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// The outward code shapes: A9, A99, AA9, AA99, A9A, AA9A.
fn is_outward(s: &str) -> bool {
    let b = s.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if !(1..=2).contains(&letters) {
        return false;
    }
    match &b[letters..] {
        [d] => d.is_ascii_digit(),
        [d, e] => d.is_ascii_digit() && (e.is_ascii_digit() || e.is_ascii_uppercase()),
        _ => false,
    }
}

/// The inward code: a sector digit and two unit letters.
fn is_inward(s: &str) -> bool {
    matches!(s.as_bytes(), [d, x, y]
        if d.is_ascii_digit()
            && [x, y].iter().all(|c| c.is_ascii_uppercase() && !UNUSED_UNIT_LETTERS.contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pc(s: &str) -> Postcode {
        Postcode::parse(s).unwrap()
    }

    #[test]
    fn normalises_case_and_spacing() {
        for input in [
            "sg138eq",
            " SG13  8EQ ",
            "SG13 8EQ",
            "sG1 38eq",
            "\tsg13\t8eq\n",
        ] {
            assert_eq!(pc(input).as_str(), "SG13 8EQ", "{input:?}");
        }
    }

    #[test]
    fn splits_into_area_district_and_sector() {
        let p = pc("SG13 8EQ");
        assert_eq!(
            (p.area(), p.district(), p.sector()),
            ("SG", "SG13", "SG13 8")
        );
        let p = pc("w1a1aa");
        assert_eq!((p.area(), p.district(), p.sector()), ("W", "W1A", "W1A 1"));
        let p = pc("EC1A 1BB");
        assert_eq!(
            (p.area(), p.district(), p.sector()),
            ("EC", "EC1A", "EC1A 1")
        );
    }

    #[test]
    fn accepts_every_outward_shape_and_the_special_cases() {
        for good in [
            "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "W1A 1HQ", "EC1A 1BB", "GIR 0AA",
        ] {
            assert_eq!(pc(good).as_str(), good);
        }
    }

    #[test]
    fn refuses_hostile_and_malformed_input() {
        for bad in [
            "SG13",
            "SG13 8E",
            "SG13 8EQQ",
            "1G13 8EQ",
            "SGX13 8EQ",
            "SG13 EEQ",
            "SG13 8CQ",
            "SG1$ 8EQ",
            "SG13 8ÉQ",
            "'; DROP TABLE contacts; --",
            "SG13\u{0}8EQ",
            "ＳＧ13 8EQ",
        ] {
            assert!(Postcode::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(Postcode::parse("  ").unwrap_err(), PostcodeError::Empty);
    }

    #[test]
    fn prefix_matches_whole_parts_only() {
        let sg1 = PostcodePrefix::parse("SG1").unwrap();
        assert_eq!(sg1, PostcodePrefix::District("SG1".into()));
        assert!(sg1.matches(&pc("SG1 2AA")));
        assert!(!sg1.matches(&pc("SG13 8EQ")));
        assert!(!sg1.matches(&pc("SG14 1AA")));

        let sg = PostcodePrefix::parse("sg").unwrap();
        assert!(sg.matches(&pc("SG13 8EQ")));
        assert!(!PostcodePrefix::parse("S").unwrap().matches(&pc("SG13 8EQ")));
        assert!(PostcodePrefix::parse("S").unwrap().matches(&pc("S1 2AB")));

        let sector = PostcodePrefix::parse(" sg13  8 ").unwrap();
        assert_eq!(sector.as_str(), "SG13 8");
        assert!(sector.matches(&pc("SG13 8EQ")));
        assert!(!sector.matches(&pc("SG13 9AA")));
        assert!(!sector.matches(&pc("SG1 8AA")));
    }

    #[test]
    fn prefix_refuses_what_is_not_an_area_district_or_sector() {
        for bad in [
            "",
            "SGX",
            "SG13 8E",
            "SG13 88",
            "SG 1",
            "1",
            "SG13 8 EQ",
            "S%",
        ] {
            assert!(PostcodePrefix::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    fn outward() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-PR-UWYZ][0-9]",
            "[A-PR-UWYZ][0-9][0-9]",
            "[A-PR-UWYZ][A-HK-Y][0-9]",
            "[A-PR-UWYZ][A-HK-Y][0-9][0-9]",
            "[A-PR-UWYZ][0-9][A-HJKPSTUW]",
            "[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]",
        ]
    }

    proptest! {
        #[test]
        fn any_valid_postcode_round_trips_in_any_case_and_spacing(
            outward in outward(),
            inward in "[0-9][ABD-HJLNP-UW-Z]{2}",
            spaces in " {0,3}",
            lower in any::<bool>(),
        ) {
            let canonical = format!("{outward} {inward}");
            let typed = format!("{outward}{spaces}{inward}");
            let typed = if lower { typed.to_lowercase() } else { typed };
            let parsed = Postcode::parse(&typed).unwrap();
            prop_assert_eq!(parsed.as_str(), canonical.as_str());
            prop_assert_eq!(Postcode::parse(parsed.as_str()).unwrap(), parsed.clone());
            for prefix in [parsed.area(), parsed.district(), parsed.sector()] {
                prop_assert!(PostcodePrefix::parse(prefix).unwrap().matches(&parsed));
            }
        }

        #[test]
        fn never_panics_on_arbitrary_input(input in any::<String>()) {
            let _ = Postcode::parse(&input);
            let _ = PostcodePrefix::parse(&input);
        }
    }
}

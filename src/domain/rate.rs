//! A sending rate, as an operator gives it.

use std::fmt;
use std::str::FromStr;

/// Messages per second, above 0; fractions allowed (`0.5`: one every two seconds).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    /// The most any installation would want: far beyond any relay's quota.
    const HIGHEST: f64 = 100_000.0;

    pub fn per_second(self) -> f64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rate: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a number of messages a second"))?;
        rate.try_into()
    }
}

impl TryFrom<f64> for Rate {
    type Error = String;

    fn try_from(rate: f64) -> Result<Self, Self::Error> {
        if rate.is_finite() && rate > 0.0 && rate <= Self::HIGHEST {
            Ok(Self(rate))
        } else {
            Err(format!(
                "must be above 0 and at most {} messages a second",
                Self::HIGHEST
            ))
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_fractions_and_refuse_nonsense() {
        assert_eq!("0.5".parse::<Rate>().unwrap().per_second(), 0.5);
        assert_eq!(" 20 ".parse::<Rate>().unwrap().per_second(), 20.0);
        for bad in ["0", "-1", "NaN", "inf", "fast", "1e9"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}

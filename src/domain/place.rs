//! Where a postcode lies, and how far people are from an event's venue.
//!
//! The ONS Postcode Directory gives each postcode's latitude and longitude (WGS84). Distances
//! within the few tens of miles an invitation reaches are measured on a flat map scaled at the
//! venue's latitude (the equirectangular approximation): within 0.1% of the great-circle
//! distance across Great Britain at 25 miles, and the same arithmetic SQL can do without
//! trigonometry, so that the database and the message agree on who is within a mile.

use std::fmt;

use super::Postcode;

/// Miles in a degree of latitude (the Earth's mean radius, 3,958.8 miles, over a radian).
pub const MILES_PER_DEGREE_NORTH: f64 = 69.093;

/// The distances an invitation may reach, in whole miles.
pub const WITHIN_MILES: std::ops::RangeInclusive<u32> = 1..=100;

/// A point on the map, in degrees (WGS84), within the British Isles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

impl Coordinates {
    /// The ONS Postcode Directory's `lat` and `long`: `None` where it gives none (`99.999999`,
    /// or blank) or a place outside the British Isles and their islands, which no postcode is.
    pub fn from_directory(latitude: &str, longitude: &str) -> Result<Option<Self>, String> {
        let (latitude, longitude) = (latitude.trim(), longitude.trim());
        if latitude.is_empty() || longitude.is_empty() {
            return Ok(None);
        }
        let degrees = |value: &str, what: &str| {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("its {what} '{value}' is not a number of degrees"))
        };
        let (latitude, longitude) = (degrees(latitude, "lat")?, degrees(longitude, "long")?);
        // ONSPD marks a postcode without a grid reference with 99.999999 and 0.000000.
        if latitude >= 99.0 {
            return Ok(None);
        }
        if !(49.0..=61.5).contains(&latitude) || !(-14.0..=3.0).contains(&longitude) {
            return Err(format!(
                "its lat and long ({latitude}, {longitude}) are not in the British Isles"
            ));
        }
        Ok(Some(Self {
            latitude,
            longitude,
        }))
    }

    /// Miles in a degree of longitude here.
    pub fn miles_per_degree_east(&self) -> f64 {
        MILES_PER_DEGREE_NORTH * self.latitude.to_radians().cos()
    }

    /// How far `other` is from here, in miles, on the map scaled here (as the database
    /// measures it: [`Coordinates::miles_per_degree_east`] of the venue).
    pub fn miles_to(&self, other: &Coordinates) -> f64 {
        let north = (other.latitude - self.latitude) * MILES_PER_DEGREE_NORTH;
        let east = (other.longitude - self.longitude) * self.miles_per_degree_east();
        (north * north + east * east).sqrt()
    }
}

/// "Within N miles of the venue": an event mailing's distance rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Near {
    /// Whole miles, within [`WITHIN_MILES`].
    pub miles: u32,
    /// The event's postcode, the centre.
    pub venue: Postcode,
}

impl Near {
    pub fn parse(miles: u32, venue: Option<&Postcode>) -> Result<Self, String> {
        if !WITHIN_MILES.contains(&miles) {
            return Err(format!(
                "{miles} miles is not a distance an invitation reaches: give {} to {}",
                WITHIN_MILES.start(),
                WITHIN_MILES.end()
            ));
        }
        let venue = venue.ok_or_else(|| {
            "a distance is measured from the venue: give the event's postcode too".to_owned()
        })?;
        Ok(Self {
            miles,
            venue: venue.clone(),
        })
    }
}

impl fmt::Display for Near {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.miles == 1 { "mile" } else { "miles" };
        write!(f, "within {} {unit} of {}", self.miles, self.venue.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_s_unknown_places_are_none_and_nonsense_is_refused() {
        assert_eq!(
            Coordinates::from_directory("99.999999", "0.000000"),
            Ok(None)
        );
        assert_eq!(Coordinates::from_directory("", ""), Ok(None));
        let hertford = Coordinates::from_directory("51.795", "-0.078")
            .unwrap()
            .unwrap();
        assert_eq!(hertford.latitude, 51.795);
        assert!(Coordinates::from_directory("north", "-0.078").is_err());
        assert!(Coordinates::from_directory("40.7", "-74.0").is_err());
        assert!(Coordinates::from_directory("NaN", "0").is_err());
    }

    #[test]
    fn a_distance_on_the_scaled_map_is_the_great_circle_s_within_a_thousandth() {
        // Hertford to Stevenage (about 10 miles), and to central London (about 20).
        let hertford = Coordinates {
            latitude: 51.7959,
            longitude: -0.0781,
        };
        for (latitude, longitude) in [(51.9017, -0.2019), (51.5074, -0.1278), (51.79, -0.08)] {
            let there = Coordinates {
                latitude,
                longitude,
            };
            let (a, b) = (hertford.latitude.to_radians(), latitude.to_radians());
            let dlat = b - a;
            let dlon = (longitude - hertford.longitude).to_radians();
            let h = (dlat / 2.0).sin().powi(2) + a.cos() * b.cos() * (dlon / 2.0).sin().powi(2);
            let great_circle = 2.0 * 3958.8 * h.sqrt().asin();
            let flat = hertford.miles_to(&there);
            assert!(
                (flat - great_circle).abs() <= great_circle * 0.001 + 1e-9,
                "{flat} against {great_circle}"
            );
        }
    }

    #[test]
    fn a_distance_rule_needs_the_venue_and_a_sensible_radius() {
        let venue = Postcode::parse("SG13 8EQ").unwrap();
        assert_eq!(
            Near::parse(5, Some(&venue)).unwrap().to_string(),
            "within 5 miles of SG13 8EQ"
        );
        assert_eq!(
            Near::parse(1, Some(&venue)).unwrap().to_string(),
            "within 1 mile of SG13 8EQ"
        );
        assert!(Near::parse(0, Some(&venue)).is_err());
        assert!(Near::parse(101, Some(&venue)).is_err());
        assert!(Near::parse(5, None).unwrap_err().contains("postcode"));
    }
}

//! The age rule: children under 14 are mailed only with a guardian's consent.
//!
//! UK GDPR (Article 8, with the Data Protection Act 2018 s.9) sets 13 as the age from which a
//! child can consent to online services; canvass takes the stricter line of 14 and over. A person
//! whose date of birth is unknown said nothing to suggest otherwise, and counts as an adult.

use chrono::{Datelike, NaiveDate};

/// The age from which a person's own consent suffices.
pub const AGE_OF_CONSENT: i32 = 14;

/// Whether a person may be mailed on `on`, given what is known of their age.
pub fn old_enough_to_mail(
    date_of_birth: Option<NaiveDate>,
    guardian_consent: bool,
    on: NaiveDate,
) -> bool {
    match date_of_birth {
        None => true,
        Some(born) => guardian_consent || on >= birthday(born, AGE_OF_CONSENT),
    }
}

/// The latest date of birth of a person old enough to be mailed on `on` on their own consent:
/// the age rule as a bound that a database can compare dates of birth with.
pub fn latest_birth_date_to_mail(on: NaiveDate) -> NaiveDate {
    let year = on.year() - AGE_OF_CONSENT;
    // On 29 February, those born on 28 February that year came of age today.
    NaiveDate::from_ymd_opt(year, on.month(), on.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
        .unwrap_or(NaiveDate::MIN)
}

/// The day a person born on `born` turns `years` old. Someone born on 29 February comes of age on
/// 1 March in a common year, as in English law.
fn birthday(born: NaiveDate, years: i32) -> NaiveDate {
    let year = born.year() + years;
    NaiveDate::from_ymd_opt(year, born.month(), born.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
        .unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The bound a database compares with says the same as the rule, for any two dates.
        #[test]
        fn the_birth_date_bound_agrees_with_the_rule(born in 0i32..40_000, on in 0i32..40_000) {
            let day = |n: i32| NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(i64::from(n) - 20_000);
            let (born, on) = (day(born), day(on));
            prop_assert_eq!(
                born <= latest_birth_date_to_mail(on),
                old_enough_to_mail(Some(born), false, on),
                "born {} on {}", born, on
            );
        }
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn unknown_age_counts_as_adult() {
        assert!(old_enough_to_mail(None, false, date("2026-11-23")));
    }

    #[test]
    fn becomes_mailable_on_the_fourteenth_birthday() {
        let born = Some(date("2012-11-23"));
        assert!(!old_enough_to_mail(born, false, date("2026-11-22")));
        assert!(old_enough_to_mail(born, false, date("2026-11-23")));
    }

    #[test]
    fn guardian_consent_allows_a_younger_child() {
        let born = Some(date("2016-01-01"));
        assert!(!old_enough_to_mail(born, false, date("2026-11-23")));
        assert!(old_enough_to_mail(born, true, date("2026-11-23")));
    }

    #[test]
    fn a_leap_day_birthday_comes_of_age_on_the_first_of_march() {
        let born = Some(date("2012-02-29"));
        assert!(!old_enough_to_mail(born, false, date("2026-02-28")));
        assert!(old_enough_to_mail(born, false, date("2026-03-01")));
    }
}

//! When a campaign is to be queued: RFC 3339, or a date and time as staff say it, read as UK
//! time, so that "19:30" in July means 19:30 BST.

use chrono::{DateTime, LocalResult, NaiveDateTime, Utc};
use chrono_tz::Europe::London;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("'{0}' is neither RFC 3339 (2026-12-05T19:30:00Z) nor YYYY-MM-DD HH:MM (UK time)")]
    Unreadable(String),
    #[error("{0} does not exist in the UK: the clocks go forward over it")]
    InTheGap(String),
    #[error("{0} is in the past")]
    InThePast(String),
}

/// Parses `input` as a time after `now`. A UK time the clocks pass twice (the autumn hour) is
/// taken the first time.
pub fn parse_schedule(input: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
    let input = input.trim();
    let at = match DateTime::parse_from_rfc3339(input) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let local = NaiveDateTime::parse_from_str(input, "%Y-%m-%d %H:%M")
                .map_err(|_| ScheduleError::Unreadable(input.to_owned()))?;
            match local.and_local_timezone(London) {
                LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
                LocalResult::None => return Err(ScheduleError::InTheGap(input.to_owned())),
            }
        }
    };
    if at > now {
        Ok(at)
    } else {
        Err(ScheduleError::InThePast(input.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn uk_times_follow_the_clocks_and_the_past_is_refused() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let at = |s: &str| parse_schedule(s, now);
        assert_eq!(
            at("2026-07-01 19:30").unwrap(),
            Utc.with_ymd_and_hms(2026, 7, 1, 18, 30, 0).unwrap(),
            "BST"
        );
        assert_eq!(
            at("2026-12-05 19:30").unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 5, 19, 30, 0).unwrap(),
            "GMT"
        );
        assert_eq!(
            at("2026-12-05T19:30:00+01:00").unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 5, 18, 30, 0).unwrap()
        );
        assert!(matches!(
            at("2026-03-29 01:30"),
            Err(ScheduleError::InTheGap(_))
        ));
        assert_eq!(
            at("2026-10-25 01:30").unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(),
            "the first 01:30"
        );
        assert!(matches!(
            at("2025-12-31 23:00"),
            Err(ScheduleError::InThePast(_))
        ));
        assert!(matches!(at("tomorrow"), Err(ScheduleError::Unreadable(_))));
    }
}

//! The calendar as UK law counts it: dates in UK local time, calendar months, and working days
//! (neither a weekend nor a bank holiday of the part of the UK the party works in).
//!
//! Bank holidays are computed from their rules (Easter by the Gregorian computus, the Mondays
//! of May and August, the substitute days when a fixed holiday falls on a weekend) with the
//! one-off days proclaimed since 2020 written out, so that no yearly download is needed. A
//! future one-off day (a coronation, a jubilee) is not known until proclaimed: the clocks that
//! use this calendar would then give a day less, never a day more.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc, Weekday};
use chrono_tz::Europe::London;

/// A day as people in the UK name it: `3 Nov 2026`.
pub fn uk_date(at: DateTime<Utc>) -> String {
    at.with_timezone(&London).format("%-d %b %Y").to_string()
}

/// A time as people in the UK read it: `5 Dec 2026 19:30 GMT` (or BST in summer).
pub fn uk_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&London)
        .format("%-d %b %Y %H:%M %Z")
        .to_string()
}

/// A date alone as people in the UK write it: `3 Nov 2026`.
pub fn day_name(date: NaiveDate) -> String {
    date.format("%-d %b %Y").to_string()
}

/// The date in the UK at `at`.
pub fn uk_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&London).date_naive()
}

/// The same day of the month `months` later, or that month's last day when it is shorter
/// (31 January → 28 or 29 February): the ICO's reading of "one month".
pub fn months_after(date: NaiveDate, months: u32) -> NaiveDate {
    // `checked_add_months` clamps to the month's end, as the ICO counts.
    date.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// `days` calendar days after `date`.
pub fn days_after(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}

/// Which part of the UK's bank holidays apply: `CANVASS_BANK_HOLIDAYS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BankHolidays {
    #[default]
    EnglandAndWales,
    Scotland,
    NorthernIreland,
}

impl BankHolidays {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnglandAndWales => "england-and-wales",
            Self::Scotland => "scotland",
            Self::NorthernIreland => "northern-ireland",
        }
    }

    /// Whether `date` is neither a Saturday, a Sunday nor a bank holiday.
    pub fn is_working_day(self, date: NaiveDate) -> bool {
        !is_weekend(date) && !self.holidays(date.year()).contains(&date)
    }

    /// `date` itself when it is a working day, else the next one.
    pub fn working_day_from(self, date: NaiveDate) -> NaiveDate {
        let mut day = date;
        while !self.is_working_day(day) {
            day = day.succ_opt().unwrap_or(NaiveDate::MAX);
        }
        day
    }

    /// The bank holidays of `year`, substitute days included.
    pub fn holidays(self, year: i32) -> BTreeSet<NaiveDate> {
        let day = |month, day| NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN);
        let easter = easter_sunday(year);
        // Fixed dates: when one falls on a weekend, the next weekday that is not a holiday
        // already is one instead (Christmas on a Saturday: Monday 27th, Boxing Day Tuesday 28th).
        let mut fixed = vec![day(1, 1)];
        let mut moving = vec![
            easter
                .checked_sub_days(Days::new(2))
                .unwrap_or(NaiveDate::MIN),
            self.early_may(year),
            self.spring(year),
        ];
        match self {
            Self::Scotland => {
                fixed.extend([day(1, 2), day(11, 30)]);
                moving.push(nth_weekday(year, 8, Weekday::Mon, 1));
            }
            Self::EnglandAndWales | Self::NorthernIreland => {
                moving.push(
                    easter
                        .checked_add_days(Days::new(1))
                        .unwrap_or(NaiveDate::MAX),
                );
                moving.push(last_weekday(year, 8, Weekday::Mon));
            }
        }
        if self == Self::NorthernIreland {
            fixed.extend([day(3, 17), day(7, 12)]);
        }
        fixed.extend([day(12, 25), day(12, 26)]);
        moving.extend(ONE_OFF.iter().filter_map(|&(y, m, d)| {
            (y == year)
                .then(|| NaiveDate::from_ymd_opt(y, m, d))
                .flatten()
        }));
        let mut holidays: BTreeSet<NaiveDate> = moving
            .into_iter()
            .chain(fixed.iter().copied().filter(|d| !is_weekend(*d)))
            .collect();
        fixed.sort_unstable();
        for weekend_day in fixed.into_iter().filter(|d| is_weekend(*d)) {
            let mut substitute = weekend_day;
            while is_weekend(substitute) || holidays.contains(&substitute) {
                substitute = substitute.succ_opt().unwrap_or(NaiveDate::MAX);
            }
            holidays.insert(substitute);
        }
        holidays
    }

    /// The early May bank holiday: the first Monday of May, moved in 2020 to VE Day.
    fn early_may(self, year: i32) -> NaiveDate {
        match year {
            2020 => NaiveDate::from_ymd_opt(2020, 5, 8).unwrap_or(NaiveDate::MIN),
            _ => nth_weekday(year, 5, Weekday::Mon, 1),
        }
    }

    /// The spring bank holiday: the last Monday of May, moved in 2022 for the Platinum Jubilee.
    fn spring(self, year: i32) -> NaiveDate {
        match year {
            2022 => NaiveDate::from_ymd_opt(2022, 6, 2).unwrap_or(NaiveDate::MIN),
            _ => last_weekday(year, 5, Weekday::Mon),
        }
    }
}

/// Bank holidays proclaimed for one year only, across the UK: the Platinum Jubilee, the State
/// Funeral of Queen Elizabeth II, the Coronation of King Charles III.
const ONE_OFF: &[(i32, u32, u32)] = &[(2022, 6, 3), (2022, 9, 19), (2023, 5, 8)];

impl FromStr for BankHolidays {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "england-and-wales" | "england" | "wales" => Ok(Self::EnglandAndWales),
            "scotland" => Ok(Self::Scotland),
            "northern-ireland" => Ok(Self::NorthernIreland),
            other => Err(format!(
                "'{other}' is not england-and-wales, scotland or northern-ireland"
            )),
        }
    }
}

impl fmt::Display for BankHolidays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The `n`th `weekday` of `month` (n from 1).
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).unwrap_or(NaiveDate::MIN)
}

/// The last `weekday` of `month`.
fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let next_month = match month {
        12 => NaiveDate::from_ymd_opt(year + 1, 1, 1),
        _ => NaiveDate::from_ymd_opt(year, month + 1, 1),
    }
    .unwrap_or(NaiveDate::MAX);
    let mut day = next_month.pred_opt().unwrap_or(NaiveDate::MIN);
    while day.weekday() != weekday {
        day = day.pred_opt().unwrap_or(NaiveDate::MIN);
    }
    day
}

/// Easter Sunday of `year` in the Gregorian calendar (the anonymous Gregorian algorithm).
fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn listed(holidays: BankHolidays, year: i32) -> Vec<String> {
        holidays
            .holidays(year)
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn easter_falls_where_the_almanacs_put_it() {
        for (year, sunday) in [
            (2024, "2024-03-31"),
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2038, "2038-04-25"),
        ] {
            assert_eq!(easter_sunday(year), date(sunday), "{year}");
        }
    }

    /// The lists published on gov.uk/bank-holidays.
    #[test]
    fn england_and_wales_match_the_published_lists() {
        let cases: &[(i32, &[&str])] = &[
            (
                2022,
                &[
                    "2022-01-03",
                    "2022-04-15",
                    "2022-04-18",
                    "2022-05-02",
                    "2022-06-02",
                    "2022-06-03",
                    "2022-08-29",
                    "2022-09-19",
                    "2022-12-26",
                    "2022-12-27",
                ],
            ),
            (
                2023,
                &[
                    "2023-01-02",
                    "2023-04-07",
                    "2023-04-10",
                    "2023-05-01",
                    "2023-05-08",
                    "2023-05-29",
                    "2023-08-28",
                    "2023-12-25",
                    "2023-12-26",
                ],
            ),
            (
                2026,
                &[
                    "2026-01-01",
                    "2026-04-03",
                    "2026-04-06",
                    "2026-05-04",
                    "2026-05-25",
                    "2026-08-31",
                    "2026-12-25",
                    "2026-12-28",
                ],
            ),
            (
                2027,
                &[
                    "2027-01-01",
                    "2027-03-26",
                    "2027-03-29",
                    "2027-05-03",
                    "2027-05-31",
                    "2027-08-30",
                    "2027-12-27",
                    "2027-12-28",
                ],
            ),
        ];
        for (year, expected) in cases {
            assert_eq!(
                listed(BankHolidays::EnglandAndWales, *year),
                *expected,
                "{year}"
            );
        }
    }

    #[test]
    fn scotland_and_northern_ireland_have_their_own_days() {
        assert_eq!(
            listed(BankHolidays::Scotland, 2026),
            [
                "2026-01-01",
                "2026-01-02",
                "2026-04-03",
                "2026-05-04",
                "2026-05-25",
                "2026-08-03",
                "2026-11-30",
                "2026-12-25",
                "2026-12-28",
            ]
        );
        // 2022: New Year's Day a Saturday and 2 January a Sunday: Monday 3rd and Tuesday 4th.
        let scotland = BankHolidays::Scotland.holidays(2022);
        assert!(scotland.contains(&date("2022-01-03")) && scotland.contains(&date("2022-01-04")));
        assert_eq!(
            listed(BankHolidays::NorthernIreland, 2026),
            [
                "2026-01-01",
                "2026-03-17",
                "2026-04-03",
                "2026-04-06",
                "2026-05-04",
                "2026-05-25",
                "2026-07-13",
                "2026-08-31",
                "2026-12-25",
                "2026-12-28",
            ]
        );
    }

    #[test]
    fn a_working_day_is_neither_a_weekend_nor_a_holiday() {
        let ew = BankHolidays::EnglandAndWales;
        assert_eq!(ew.working_day_from(date("2026-12-24")), date("2026-12-24"));
        assert_eq!(ew.working_day_from(date("2026-12-25")), date("2026-12-29"));
        assert_eq!(ew.working_day_from(date("2026-04-03")), date("2026-04-07"));
        assert_eq!(
            BankHolidays::Scotland.working_day_from(date("2026-04-06")),
            date("2026-04-06"),
            "Easter Monday is no holiday in Scotland"
        );
    }

    #[test]
    fn a_month_later_is_the_same_day_or_the_month_end() {
        assert_eq!(months_after(date("2026-09-03"), 1), date("2026-10-03"));
        assert_eq!(months_after(date("2027-01-31"), 1), date("2027-02-28"));
        assert_eq!(months_after(date("2028-01-31"), 1), date("2028-02-29"));
        assert_eq!(months_after(date("2026-11-30"), 3), date("2027-02-28"));
    }

    #[test]
    fn bank_holiday_settings_read_as_written() {
        assert_eq!("Scotland".parse(), Ok(BankHolidays::Scotland));
        assert_eq!(
            "northern-ireland"
                .parse::<BankHolidays>()
                .unwrap()
                .to_string(),
            "northern-ireland"
        );
        assert!("wales-and-england".parse::<BankHolidays>().is_err());
    }
}

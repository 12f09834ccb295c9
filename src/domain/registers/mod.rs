//! The registers a data protection officer keeps: rights requests, with the legal clock that
//! says when each answer is due, and complaints, with the 30 days to acknowledge them.
//!
//! The clocks (UK GDPR Article 12(3) as the ICO reads it, with the Data (Use and Access) Act
//! 2025):
//! - A request is answered within one month of its receipt, the day of receipt counting as day
//!   one: received on 3 September, due on 3 October; on 31 January, due on the last day of
//!   February. A due date on a weekend or a bank holiday moves to the next working day.
//! - While the controller waits for the person's identity or for clarification, the clock stops
//!   (since 5 February 2026): the days paused are added.
//! - The time may be extended by two months for a complex request or many of them, if the
//!   person is told within the first month.
//! - A data protection complaint is acknowledged within 30 days, counted from the day after it
//!   was received (since 19 June 2026).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use super::calendar::{BankHolidays, days_after, months_after};

/// The days a complaint's acknowledgement may take, counted from the day after receipt.
pub const ACKNOWLEDGE_WITHIN_DAYS: u64 = 30;

/// The months added by an extension.
const EXTENSION_MONTHS: u32 = 2;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim().to_ascii_lowercase();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!(
                            "'{}' is not a {}: one of {}",
                            s.chars().take(40).collect::<String>(),
                            $what,
                            names.join(", ")
                        )
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// The right a person exercises (UK GDPR Articles 15 to 21).
    Right, "right" {
        Access => "access",
        Rectification => "rectification",
        Erasure => "erasure",
        Restriction => "restriction",
        Portability => "portability",
        Objection => "objection",
    }
);

named_enum!(
    /// How a request or a complaint reached the party.
    Channel, "channel" {
        Phone => "phone",
        Email => "email",
        Letter => "letter",
        Web => "web",
        InPerson => "in-person",
    }
);

impl Right {
    /// What staff read: "Access (a copy of their data)".
    pub fn label(self) -> &'static str {
        match self {
            Self::Access => "Access: a copy of their data",
            Self::Rectification => "Rectification: correct their data",
            Self::Erasure => "Erasure: delete their data",
            Self::Restriction => "Restriction: keep but do not use",
            Self::Portability => "Portability: their data to take elsewhere",
            Self::Objection => "Objection: stop using their data",
        }
    }
}

/// Which register a reference belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    Requests,
    Complaints,
}

impl Register {
    fn prefix(self) -> &'static str {
        match self {
            Self::Requests => "REQ",
            Self::Complaints => "CMP",
        }
    }
}

/// A register's reference: `REQ-2026-0001`, `CMP-2026-0001`; numbered from 1 each year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reference {
    pub register: Register,
    pub year: i32,
    pub number: u32,
}

impl Reference {
    pub fn parse(text: &str, register: Register) -> Result<Self, String> {
        let wrong = || {
            format!(
                "'{}' is not a reference like {}-2026-0001",
                text.trim().chars().take(40).collect::<String>(),
                register.prefix()
            )
        };
        let upper = text.trim().to_ascii_uppercase();
        let mut parts = upper.splitn(3, '-');
        let (prefix, year, number) = (parts.next(), parts.next(), parts.next());
        if prefix != Some(register.prefix()) {
            return Err(wrong());
        }
        let year: i32 = year
            .filter(|y| y.len() == 4)
            .and_then(|y| y.parse().ok())
            .ok_or_else(wrong)?;
        let number: u32 = number
            .filter(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(wrong)?;
        Ok(Self {
            register,
            year,
            number,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{:04}",
            self.register.prefix(),
            self.year,
            self.number
        )
    }
}

/// A time the clock stood still: from `from` until `until` (`None`: still waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// The clock runs.
    Open,
    /// The clock runs, with two months more.
    Extended,
    /// Waiting for the person's identity or clarification: the clock stands still.
    Paused,
    /// Answered.
    Closed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Extended => "extended",
            Self::Paused => "paused",
            Self::Closed => "closed",
        }
    }
}

/// A rights request's clock: what it was started by and what stopped or lengthened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestClock {
    pub received: NaiveDate,
    /// When the person was told of an extension.
    pub extended_on: Option<NaiveDate>,
    pub pauses: Vec<Pause>,
    pub closed_on: Option<NaiveDate>,
}

/// Why a change to a request's clock is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("the request is closed")]
    Closed,
    #[error("the request is paused already, since {0}")]
    PausedAlready(NaiveDate),
    #[error("the request is not paused")]
    NotPaused,
    #[error("{0} is before {1}")]
    TooEarly(NaiveDate, NaiveDate),
    #[error("{0} is in the future")]
    InTheFuture(NaiveDate),
    #[error("the request was extended already, on {0}")]
    ExtendedAlready(NaiveDate),
    #[error(
        "an extension must be told to the person within the first month, which ended on {0}; \
         it is too late to extend"
    )]
    FirstMonthOver(NaiveDate),
}

impl RequestClock {
    pub fn new(received: NaiveDate) -> Self {
        Self {
            received,
            extended_on: None,
            pauses: Vec::new(),
            closed_on: None,
        }
    }

    pub fn status(&self) -> RequestStatus {
        if self.closed_on.is_some() {
            RequestStatus::Closed
        } else if self.open_pause().is_some() {
            RequestStatus::Paused
        } else if self.extended_on.is_some() {
            RequestStatus::Extended
        } else {
            RequestStatus::Open
        }
    }

    /// When the answer is due, as of `today`: a month (three when extended) after receipt, plus
    /// the days paused (a pause still open counts until today), moved to a working day.
    pub fn due(&self, today: NaiveDate, holidays: BankHolidays) -> NaiveDate {
        let months = match self.extended_on {
            Some(_) => 1 + EXTENSION_MONTHS,
            None => 1,
        };
        self.due_after(months, today, holidays)
    }

    /// The end of the first month (the due date had it not been extended): an extension must
    /// be told by then.
    pub fn first_month_ends(&self, today: NaiveDate, holidays: BankHolidays) -> NaiveDate {
        self.due_after(1, today, holidays)
    }

    /// Days from `today` until the due date (negative: overdue); while paused, it stands still.
    pub fn days_left(&self, today: NaiveDate, holidays: BankHolidays) -> i64 {
        let until = self.closed_on.unwrap_or(today);
        (self.due(until, holidays) - until).num_days()
    }

    /// The days the clock has stood still, as of `today` (a pause still open counts until
    /// then).
    pub fn paused_days(&self, today: NaiveDate) -> i64 {
        let until = self.closed_on.unwrap_or(today);
        self.pauses
            .iter()
            .map(|p| (p.until.unwrap_or(until) - p.from).num_days().max(0))
            .sum()
    }

    fn due_after(&self, months: u32, today: NaiveDate, holidays: BankHolidays) -> NaiveDate {
        let paused = self.paused_days(today).max(0) as u64;
        holidays.working_day_from(days_after(months_after(self.received, months), paused))
    }

    fn open_pause(&self) -> Option<&Pause> {
        self.pauses.iter().find(|p| p.until.is_none())
    }

    fn check_date(&self, on: NaiveDate, today: NaiveDate) -> Result<(), ClockError> {
        if self.closed_on.is_some() {
            return Err(ClockError::Closed);
        }
        if on < self.received {
            return Err(ClockError::TooEarly(on, self.received));
        }
        if on > today {
            return Err(ClockError::InTheFuture(on));
        }
        Ok(())
    }

    /// Stops the clock from `from`: the party waits for the person.
    pub fn pause(&mut self, from: NaiveDate, today: NaiveDate) -> Result<(), ClockError> {
        self.check_date(from, today)?;
        if let Some(open) = self.open_pause() {
            return Err(ClockError::PausedAlready(open.from));
        }
        if let Some(last) = self.pauses.iter().filter_map(|p| p.until).max()
            && from < last
        {
            return Err(ClockError::TooEarly(from, last));
        }
        self.pauses.push(Pause { from, until: None });
        Ok(())
    }

    /// Starts the clock again on `on`: what was waited for came.
    pub fn resume(&mut self, on: NaiveDate, today: NaiveDate) -> Result<(), ClockError> {
        self.check_date(on, today)?;
        let open = self
            .pauses
            .iter_mut()
            .find(|p| p.until.is_none())
            .ok_or(ClockError::NotPaused)?;
        if on < open.from {
            return Err(ClockError::TooEarly(on, open.from));
        }
        open.until = Some(on);
        Ok(())
    }

    /// Adds two months, the person having been told on `notified`: refused once the first month
    /// is over.
    pub fn extend(
        &mut self,
        notified: NaiveDate,
        today: NaiveDate,
        holidays: BankHolidays,
    ) -> Result<(), ClockError> {
        self.check_date(notified, today)?;
        if let Some(on) = self.extended_on {
            return Err(ClockError::ExtendedAlready(on));
        }
        let first_month = self.first_month_ends(notified, holidays);
        if notified > first_month {
            return Err(ClockError::FirstMonthOver(first_month));
        }
        self.extended_on = Some(notified);
        Ok(())
    }

    /// Closes the request on `on` (a pause still open ends then).
    pub fn close(&mut self, on: NaiveDate, today: NaiveDate) -> Result<(), ClockError> {
        self.check_date(on, today)?;
        if let Some(open) = self.pauses.iter_mut().find(|p| p.until.is_none()) {
            open.until = Some(on.max(open.from));
        }
        self.closed_on = Some(on);
        Ok(())
    }
}

/// Days left as people say them: `3 days left`, `due today`, `2 days overdue`.
pub fn days_left(left: i64) -> String {
    match left {
        0 => "due today".into(),
        1 => "1 day left".into(),
        -1 => "1 day overdue".into(),
        n if n < 0 => format!("{} days overdue", -n),
        n => format!("{n} days left"),
    }
}

/// When a complaint received on `received` must have been acknowledged.
pub fn acknowledge_by(received: NaiveDate) -> NaiveDate {
    days_after(received, ACKNOWLEDGE_WITHIN_DAYS)
}

/// Where a complaint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComplaintStatus {
    /// Not yet acknowledged.
    Received,
    Acknowledged,
    Closed,
}

impl ComplaintStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Acknowledged => "acknowledged",
            Self::Closed => "closed",
        }
    }
}

#[cfg(test)]
mod tests;

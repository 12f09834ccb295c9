//! The registers' clocks and references, day by day.

use super::*;

const EW: BankHolidays = BankHolidays::EnglandAndWales;

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Received → due, with nothing paused or extended: the ICO's examples and the corners.
#[test]
fn an_answer_is_due_a_calendar_month_later_on_a_working_day() {
    let cases = [
        (
            "2026-09-03",
            "2026-10-05",
            "3 Oct 2026 is a Saturday: Monday 5th",
        ),
        ("2026-09-01", "2026-10-01", "the corresponding day"),
        (
            "2027-01-31",
            "2027-03-01",
            "28 Feb 2027 is a Sunday: Monday 1 March",
        ),
        (
            "2028-01-31",
            "2028-02-29",
            "a leap year: 29 February, a Tuesday",
        ),
        ("2026-03-31", "2026-04-30", "April is shorter: its last day"),
        (
            "2026-11-25",
            "2026-12-29",
            "25 Dec, then the weekend, then Boxing Day's substitute",
        ),
        (
            "2026-03-03",
            "2026-04-07",
            "3 April is Good Friday, then Easter Monday",
        ),
        (
            "2026-07-31",
            "2026-09-01",
            "31 August is the summer bank holiday",
        ),
        ("2026-12-04", "2027-01-04", "a Monday in the new year"),
    ];
    for (received, due, why) in cases {
        let clock = RequestClock::new(date(received));
        assert_eq!(
            clock.due(date(received), EW),
            date(due),
            "{received}: {why}"
        );
    }
}

#[test]
fn the_bank_holidays_of_the_setting_count() {
    let clock = RequestClock::new(date("2026-07-06"));
    // 6 August is a Thursday in every part of the UK.
    assert_eq!(clock.due(date("2026-07-06"), EW), date("2026-08-06"));
    let clock = RequestClock::new(date("2026-07-03"));
    assert_eq!(
        clock.due(date("2026-07-03"), BankHolidays::Scotland),
        date("2026-08-04"),
        "3 August is Scotland's summer bank holiday"
    );
    assert_eq!(clock.due(date("2026-07-03"), EW), date("2026-08-03"));
    let clock = RequestClock::new(date("2026-06-12"));
    assert_eq!(
        clock.due(date("2026-06-12"), BankHolidays::NorthernIreland),
        date("2026-07-14"),
        "12 July is a Sunday, the Boyne's holiday the Monday after"
    );
}

#[test]
fn days_paused_are_added_and_a_pause_still_open_stops_the_clock() {
    let mut clock = RequestClock::new(date("2026-09-01"));
    clock.pause(date("2026-09-05"), date("2026-09-05")).unwrap();
    assert_eq!(clock.status(), RequestStatus::Paused);
    // Paused: the days left stand still as the calendar moves.
    let left = clock.days_left(date("2026-09-05"), EW);
    assert_eq!(left, 26);
    assert_eq!(clock.days_left(date("2026-09-20"), EW), 26);
    clock
        .resume(date("2026-09-12"), date("2026-09-20"))
        .unwrap();
    assert_eq!(clock.status(), RequestStatus::Open);
    // 1 October plus 7 days paused: Thursday 8 October.
    assert_eq!(clock.due(date("2026-09-20"), EW), date("2026-10-08"));
    assert_eq!(clock.days_left(date("2026-09-20"), EW), 18);
    // A second pause adds its days too.
    clock.pause(date("2026-09-21"), date("2026-09-21")).unwrap();
    clock
        .resume(date("2026-09-23"), date("2026-09-23"))
        .unwrap();
    assert_eq!(clock.due(date("2026-09-23"), EW), date("2026-10-12"));
}

#[test]
fn pauses_must_make_sense() {
    let mut clock = RequestClock::new(date("2026-09-10"));
    let today = date("2026-09-20");
    assert_eq!(
        clock.pause(date("2026-09-09"), today),
        Err(ClockError::TooEarly(date("2026-09-09"), date("2026-09-10")))
    );
    assert_eq!(
        clock.pause(date("2026-09-21"), today),
        Err(ClockError::InTheFuture(date("2026-09-21")))
    );
    assert_eq!(clock.resume(today, today), Err(ClockError::NotPaused));
    clock.pause(date("2026-09-12"), today).unwrap();
    assert_eq!(
        clock.pause(date("2026-09-13"), today),
        Err(ClockError::PausedAlready(date("2026-09-12")))
    );
    assert_eq!(
        clock.resume(date("2026-09-11"), today),
        Err(ClockError::TooEarly(date("2026-09-11"), date("2026-09-12")))
    );
    clock.resume(date("2026-09-14"), today).unwrap();
    assert!(
        clock.pause(date("2026-09-13"), today).is_err(),
        "pauses do not overlap"
    );
}

#[test]
fn an_extension_adds_two_months_and_is_refused_after_the_first() {
    let mut clock = RequestClock::new(date("2026-09-03"));
    let first_month = clock.first_month_ends(date("2026-09-03"), EW);
    assert_eq!(first_month, date("2026-10-05"));
    let mut late = clock.clone();
    assert_eq!(
        late.extend(date("2026-10-06"), date("2026-10-06"), EW),
        Err(ClockError::FirstMonthOver(first_month))
    );
    clock
        .extend(date("2026-10-05"), date("2026-10-06"), EW)
        .unwrap();
    assert_eq!(clock.status(), RequestStatus::Extended);
    // 3 December 2026, a Thursday.
    assert_eq!(clock.due(date("2026-10-06"), EW), date("2026-12-03"));
    assert_eq!(
        clock.extend(date("2026-10-06"), date("2026-10-06"), EW),
        Err(ClockError::ExtendedAlready(date("2026-10-05")))
    );
    // A pause within the first month lengthens it for the extension too.
    let mut paused = RequestClock::new(date("2026-09-03"));
    paused
        .pause(date("2026-09-04"), date("2026-09-04"))
        .unwrap();
    paused
        .resume(date("2026-09-14"), date("2026-10-07"))
        .unwrap();
    assert!(
        paused
            .extend(date("2026-10-07"), date("2026-10-07"), EW)
            .is_ok()
    );
}

#[test]
fn a_closed_request_keeps_its_days_and_takes_no_more_changes() {
    let mut clock = RequestClock::new(date("2026-09-01"));
    clock.pause(date("2026-09-02"), date("2026-09-02")).unwrap();
    clock.close(date("2026-09-10"), date("2026-09-10")).unwrap();
    assert_eq!(clock.status(), RequestStatus::Closed);
    assert_eq!(clock.pauses[0].until, Some(date("2026-09-10")));
    let due = clock.due(date("2027-01-01"), EW);
    assert_eq!(due, date("2026-10-09"), "1 Oct plus the 8 days paused");
    assert_eq!(
        clock.pause(date("2026-09-11"), date("2026-09-11")),
        Err(ClockError::Closed)
    );
}

#[test]
fn a_complaint_is_acknowledged_within_thirty_days_from_the_day_after() {
    assert_eq!(acknowledge_by(date("2026-06-19")), date("2026-07-19"));
    assert_eq!(acknowledge_by(date("2026-12-31")), date("2027-01-30"));
    assert_eq!(acknowledge_by(date("2028-02-01")), date("2028-03-02"));
}

#[test]
fn references_read_and_print_alike() {
    let reference = Reference::parse(" req-2026-0007 ", Register::Requests).unwrap();
    assert_eq!(reference.to_string(), "REQ-2026-0007");
    assert_eq!(
        Reference::parse("CMP-2026-12345", Register::Complaints)
            .unwrap()
            .to_string(),
        "CMP-2026-12345"
    );
    for bad in [
        "REQ-2026-0000",
        "CMP-2026-0001",
        "REQ-26-0001",
        "REQ-2026-",
        "REQ-2026-1x",
    ] {
        assert!(Reference::parse(bad, Register::Requests).is_err(), "{bad}");
    }
    assert_eq!("In-Person".parse(), Ok(Channel::InPerson));
    assert!("fax".parse::<Channel>().unwrap_err().contains("in-person"));
    assert_eq!("erasure".parse(), Ok(Right::Erasure));
}

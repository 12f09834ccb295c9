//! The registers a data protection officer keeps: rights requests, each with the legal clock
//! that says when its answer is due, and complaints, each with the 30 days to acknowledge it.
//! Admins keep them; every change is audited.

use chrono::NaiveDate;
use serde::Serialize;

use super::{Actor, App, AppError, Conflict, Result, must_be_admin};
use crate::domain::{
    AuditAction, Channel, ClockError, Email, Reference, Register, RequestStatus, Right,
    parse_message_id, uk_day,
};
use crate::store::{NewRequest, RightsRequest, now};

pub use crate::store::MessageProof;

mod complaints;

pub use complaints::{
    ComplaintLine, PUBLIC_ACKNOWLEDGEMENTS_PER_HOUR, PUBLIC_COMPLAINTS_PER_HOUR, acknowledge,
    close_complaint, complain, complaint, complaints, log_complaint,
};

/// The earliest date a register takes: UK GDPR's first day.
const EARLIEST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2018, 5, 25).expect("a real date");

/// The longest summary, outcome or reason kept.
const MAX_TEXT_CHARS: usize = 4_000;

/// A request as staff read it, with its clock worked out for today.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLine {
    pub reference: String,
    pub right: Right,
    pub received: NaiveDate,
    pub due: NaiveDate,
    pub status: RequestStatus,
    /// Days until the due date; negative when overdue; standing still while paused.
    pub days_left: i64,
    pub channel: Channel,
    /// The public id of the contact it is about, while one is held.
    pub contact: Option<String>,
    pub extended_on: Option<NaiveDate>,
    pub extension_reason: Option<String>,
    pub closed_on: Option<NaiveDate>,
    pub outcome: Option<String>,
    /// Days the clock stood still.
    pub paused_days: i64,
}

/// What is due within some days, or overdue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Due {
    pub requests: Vec<RequestLine>,
    pub complaints: Vec<ComplaintLine>,
}

impl Due {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.complaints.is_empty()
    }
}

/// Today in the UK, as the clocks count.
pub fn today() -> NaiveDate {
    uk_day(now())
}

/// Opens a request received on `received` (YYYY-MM-DD) from the person at `email`; its
/// reference.
pub async fn open_request(
    app: &App,
    actor: &Actor,
    right: &str,
    email: &str,
    received: &str,
    channel: &str,
) -> Result<Reference> {
    must_be_admin(actor)?;
    let right: Right = right.parse().map_err(|e| AppError::invalid("right", e))?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    let received = past_date("received", received)?;
    let channel = channel_of(channel)?;
    let request = NewRequest {
        right,
        email: &email,
        received,
        channel,
    };
    Ok(app.store.open_request(&request, actor).await?)
}

/// The request `reference` names, as staff read it.
pub async fn request(app: &App, actor: &Actor, reference: &str) -> Result<RequestLine> {
    must_be_admin(actor)?;
    let request = find_request(app, reference).await?;
    Ok(request_line(app, &request, today()))
}

/// The requests, open ones only unless `all`, oldest first.
pub async fn requests(app: &App, actor: &Actor, all: bool) -> Result<Vec<RequestLine>> {
    must_be_admin(actor)?;
    let today = today();
    Ok(app
        .store
        .rights_requests(all)
        .await?
        .iter()
        .map(|request| request_line(app, request, today))
        .collect())
}

/// Stops a request's clock from `from`: waiting for the person's identity or clarification.
pub async fn pause(app: &App, actor: &Actor, reference: &str, from: &str) -> Result<RequestLine> {
    must_be_admin(actor)?;
    let from = past_date("from", from)?;
    let mut request = find_request(app, reference).await?;
    request
        .clock
        .pause(from, today())
        .map_err(|e| clock_refused("from", e))?;
    let changed = app
        .store
        .pause_request(&request.reference, from, actor)
        .await?;
    settled(app, &request, changed).await
}

/// Starts a request's clock again on `on`.
pub async fn resume(app: &App, actor: &Actor, reference: &str, on: &str) -> Result<RequestLine> {
    must_be_admin(actor)?;
    let on = past_date("on", on)?;
    let mut request = find_request(app, reference).await?;
    request
        .clock
        .resume(on, today())
        .map_err(|e| clock_refused("on", e))?;
    let changed = app
        .store
        .resume_request(&request.reference, on, actor)
        .await?;
    settled(app, &request, changed).await
}

/// Extends a request by two months, the person having been told on `notified`, for `reason`.
pub async fn extend(
    app: &App,
    actor: &Actor,
    reference: &str,
    reason: &str,
    notified: &str,
) -> Result<RequestLine> {
    must_be_admin(actor)?;
    let reason = text("reason", reason, "why the request needs longer")?;
    let notified = past_date("notified", notified)?;
    let mut request = find_request(app, reference).await?;
    request
        .clock
        .extend(notified, today(), app.data_protection.bank_holidays)
        .map_err(|e| clock_refused("notified", e))?;
    let changed = app
        .store
        .extend_request(&request.reference, notified, reason, actor)
        .await?;
    settled(app, &request, changed).await
}

/// Closes a request today with its outcome.
pub async fn close(
    app: &App,
    actor: &Actor,
    reference: &str,
    outcome: &str,
) -> Result<RequestLine> {
    must_be_admin(actor)?;
    let outcome = text("outcome", outcome, "what was done")?;
    let mut request = find_request(app, reference).await?;
    let today = today();
    request
        .clock
        .close(today, today)
        .map_err(|e| clock_refused("reference", e))?;
    let changed = app
        .store
        .close_request(&request.reference, today, outcome, actor)
        .await?;
    settled(app, &request, changed).await
}

/// What is done for a request, with `--request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Export,
    Erase,
    Restrict,
    /// From everything.
    Unsubscribe,
    /// From some topics.
    Withdraw,
}

impl Act {
    /// The audit log's name for it, which the request's entry records.
    fn action(self) -> AuditAction {
        match self {
            Self::Export => AuditAction::ContactExported,
            Self::Erase => AuditAction::ContactErased,
            Self::Restrict => AuditAction::ContactRestricted,
            Self::Unsubscribe => AuditAction::ContactUnsubscribed,
            Self::Withdraw => AuditAction::ConsentWithdrawn,
        }
    }

    /// The rights this act answers: the request is closed by it.
    fn answers(self, right: Right) -> bool {
        matches!(
            (self, right),
            (Self::Export, Right::Access | Right::Portability)
                | (Self::Erase, Right::Erasure)
                | (Self::Restrict, Right::Restriction)
                | (Self::Unsubscribe, Right::Objection)
        )
    }

    fn outcome(self) -> &'static str {
        match self {
            Self::Export => "their data exported",
            Self::Erase => "erased",
            Self::Restrict => "restricted",
            Self::Unsubscribe => "unsubscribed from everything",
            Self::Withdraw => "withdrawn from some topics",
        }
    }
}

/// The open request `reference` names, checked to be about the person at `email`, before an
/// act is done for it.
pub async fn request_for(
    app: &App,
    actor: &Actor,
    reference: &str,
    email: &Email,
) -> Result<RightsRequest> {
    must_be_admin(actor)?;
    let request = find_request(app, reference).await?;
    if request.subject_hash != email.hash() {
        return Err(AppError::invalid(
            "request",
            format!("{} is about someone else", request.reference),
        ));
    }
    if request.clock.closed_on.is_some() {
        return Err(AppError::conflict(
            Conflict::Refused,
            format!("{} is closed", request.reference),
        ));
    }
    Ok(request)
}

/// Records that `act` was done for `request`, closing it when the act answers its right.
/// Whether it was closed.
pub async fn acted(app: &App, actor: &Actor, request: &RightsRequest, act: Act) -> Result<bool> {
    app.store
        .note_request_act(&request.reference, act.action().as_str(), actor)
        .await?;
    if !act.answers(request.right) {
        return Ok(false);
    }
    Ok(app
        .store
        .close_request(&request.reference, today(), act.outcome(), actor)
        .await?)
}

/// The requests due within `within_days` days or overdue, and the complaints whose
/// acknowledgement is.
pub async fn due(app: &App, actor: &Actor, within_days: u32) -> Result<Due> {
    let horizon = i64::from(within_days);
    let requests = requests(app, actor, false)
        .await?
        .into_iter()
        .filter(|r| r.days_left <= horizon)
        .collect();
    let complaints = complaints(app, actor, false)
        .await?
        .into_iter()
        .filter(|c| c.days_left.is_some_and(|left| left <= horizon))
        .collect();
    Ok(Due {
        requests,
        complaints,
    })
}

/// What the records say of the message with that Message-ID: the consent that allowed it and
/// the approval of what it said.
pub async fn proof(app: &App, actor: &Actor, message_id: &str) -> Result<MessageProof> {
    must_be_admin(actor)?;
    let message_id =
        parse_message_id(message_id).map_err(|e| AppError::invalid("message_id", e))?;
    app.store
        .message_proof(&message_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("canvass sent no message {message_id}")))
}

fn request_line(app: &App, request: &RightsRequest, today: NaiveDate) -> RequestLine {
    let clock = &request.clock;
    RequestLine {
        reference: request.reference.to_string(),
        right: request.right,
        received: clock.received,
        due: clock.due(today, app.data_protection.bank_holidays),
        status: clock.status(),
        days_left: clock.days_left(today, app.data_protection.bank_holidays),
        channel: request.channel,
        contact: request.subject.clone(),
        extended_on: clock.extended_on,
        extension_reason: request.extension_reason.clone(),
        closed_on: clock.closed_on,
        outcome: request.outcome.clone(),
        paused_days: clock.paused_days(today),
    }
}

async fn find_request(app: &App, reference: &str) -> Result<RightsRequest> {
    let reference = Reference::parse(reference, Register::Requests)
        .map_err(|e| AppError::invalid("reference", e))?;
    app.store
        .rights_request(&reference)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no request {reference}")))
}

/// The request after a change the domain allowed: the store's guard refused it only when
/// someone else changed the request in the meantime.
async fn settled(app: &App, request: &RightsRequest, changed: bool) -> Result<RequestLine> {
    let now = app
        .store
        .rights_request(&request.reference)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no request {}", request.reference)))?;
    if changed {
        Ok(request_line(app, &now, today()))
    } else {
        Err(AppError::conflict(
            Conflict::Refused,
            format!(
                "{} changed meanwhile: it is {} now; look again",
                request.reference,
                now.clock.status().as_str()
            ),
        ))
    }
}

fn clock_refused(field: &'static str, error: ClockError) -> AppError {
    match error {
        ClockError::TooEarly(..) | ClockError::InTheFuture(_) => AppError::invalid(field, error),
        _ => AppError::conflict(Conflict::Refused, error.to_string()),
    }
}

/// A date (YYYY-MM-DD) no later than today in the UK.
fn past_date(field: &'static str, text: &str) -> Result<NaiveDate> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        AppError::invalid(
            field,
            format!(
                "'{}' is not a date: YYYY-MM-DD",
                text.trim().chars().take(40).collect::<String>()
            ),
        )
    })?;
    if date > today() {
        return Err(AppError::invalid(field, format!("{date} is in the future")));
    }
    if date < EARLIEST_DATE {
        return Err(AppError::invalid(
            field,
            format!("{date} is before the registers' time (UK GDPR began on 25 May 2018)"),
        ));
    }
    Ok(date)
}

fn channel_of(text: &str) -> Result<Channel> {
    text.parse().map_err(|e| AppError::invalid("channel", e))
}

/// Free text kept in a register: not blank, and bounded.
fn text<'t>(field: &'static str, text: &'t str, what: &str) -> Result<&'t str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AppError::invalid(field, format!("say {what}")));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(AppError::invalid(
            field,
            format!("at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text)
}

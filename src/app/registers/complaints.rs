//! The complaints register: a complaint logged by staff or made on the public page (acknowledged
//! by email with its reference), acknowledged within 30 days and closed with its outcome.

use super::{channel_of, past_date, text, today};
use chrono::NaiveDate;
use serde::Serialize;

use crate::app::{Actor, App, AppError, Conflict, Result, must_be_admin};
use crate::domain::{
    Channel, ComplaintStatus, Email, ICO_COMPLAINTS, Reference, Register, SuppressionReason,
    acknowledge_by, parse_message_id,
};
use crate::store::{Complaint, NewComplaint, now};

/// A complaint as staff read it.
#[derive(Debug, Clone, Serialize)]
pub struct ComplaintLine {
    pub reference: String,
    pub received: NaiveDate,
    pub acknowledge_by: NaiveDate,
    pub status: ComplaintStatus,
    /// Days until the acknowledgement is due (negative: overdue); `None` once acknowledged.
    pub days_left: Option<i64>,
    pub channel: Channel,
    pub summary: String,
    pub email: Option<String>,
    pub message_id: Option<String>,
    pub acknowledged_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub outcome: Option<String>,
}

/// Logs a complaint received on `received`; its reference.
pub async fn log_complaint(
    app: &App,
    actor: &Actor,
    received: &str,
    channel: &str,
    summary: &str,
    email: Option<&str>,
    message_id: Option<&str>,
) -> Result<Reference> {
    must_be_admin(actor)?;
    let received = past_date("received", received)?;
    let channel = channel_of(channel)?;
    let summary = text("summary", summary, "what the complaint is about")?;
    let email = email
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(Email::parse)
        .transpose()
        .map_err(|e| AppError::invalid("email", e))?;
    let message_id = message_id_given(message_id)?;
    let complaint = NewComplaint {
        received,
        channel,
        summary,
        email: email.as_ref(),
        keep_address: true,
        message_id: message_id.as_deref(),
    };
    app.store
        .log_complaint(&complaint, None, actor)
        .await?
        .ok_or_else(|| AppError::from(crate::store::StoreError::Unavailable))
}

/// Complaints one address may make through the public page in an hour, as sign-ups.
pub const PUBLIC_COMPLAINTS_PER_HOUR: u64 = 3;

/// Acknowledgements the public page sends in an hour, all addresses together: past it,
/// complaints are logged for staff to acknowledge, so that the form cannot be made a mailer.
pub const PUBLIC_ACKNOWLEDGEMENTS_PER_HOUR: u64 = 100;

/// A complaint made on the public page: logged as received today by the web, and acknowledged
/// by email at once, recorded as acknowledged when the email went (it does not repeat what was
/// written, so that the form cannot send anyone words of a stranger's choosing). Its reference;
/// `None` when the address has made its share this hour (nothing is logged or sent, and the
/// page says the same as ever).
pub async fn complain(
    app: &App,
    email: &str,
    summary: &str,
    message_id: Option<&str>,
) -> Result<Option<Reference>> {
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    let summary = text("summary", summary, "what your complaint is about")?;
    let message_id = message_id_given(message_id)?;
    let hour_ago = now() - chrono::Duration::hours(1);
    let hash = email.hash();
    // An address suppressed for good gets no email from the form: bounced, complained of spam,
    // or erased (whose address is not kept again either, only its hash).
    let suppressed = app.store.suppression(&hash).await?.map(|s| s.reason);
    let today = today();
    let complaint = NewComplaint {
        received: today,
        channel: Channel::Web,
        summary,
        email: Some(&email),
        keep_address: suppressed != Some(SuppressionReason::Erased),
        message_id: message_id.as_deref(),
    };
    let logged = app
        .store
        .log_complaint(
            &complaint,
            Some(PUBLIC_COMPLAINTS_PER_HOUR),
            &Actor::Contact,
        )
        .await?;
    let Some(reference) = logged else {
        tracing::info!("complaint limit reached for an address; nothing logged");
        return Ok(None);
    };
    let acknowledged_lately = app.store.complaints_since(None, hour_ago).await?;
    let why_not = match (&app.mailer, suppressed) {
        (None, _) => Some("no mail transport is set"),
        (
            _,
            Some(
                SuppressionReason::Bounced
                | SuppressionReason::Complaint
                | SuppressionReason::Erased,
            ),
        ) => Some("the address is suppressed"),
        _ if acknowledged_lately > PUBLIC_ACKNOWLEDGEMENTS_PER_HOUR => {
            Some("the form's acknowledgements this hour are spent")
        }
        _ => None,
    };
    let Some(mailer) = app.mailer.as_ref().filter(|_| why_not.is_none()) else {
        // Logged all the same: the register shows it unacknowledged, its clock running.
        tracing::warn!(%reference, "a complaint was logged and not acknowledged: {}", why_not.unwrap_or_default());
        return Ok(Some(reference));
    };
    let organisation = &app.publisher.organisation;
    let text = format!(
        "We have received your complaint, reference {reference}, about how {organisation} uses \
         personal data. We will look into it and answer you.\n\nIf you are not satisfied with \
         our answer, you can complain to the Information Commissioner's Office: \
         {ICO_COMPLAINTS}\n"
    );
    let html = format!(
        "<p>We have received your complaint, reference <strong>{reference}</strong>, about how \
         {organisation} uses personal data. We will look into it and answer you.</p>\
         <p>If you are not satisfied with our answer, you can complain to the Information \
         Commissioner's Office: {ico}</p>",
        organisation = handlebars::html_escape(organisation),
        ico = handlebars::html_escape(ICO_COMPLAINTS),
    );
    let subject = format!("Your complaint {reference} to {organisation}");
    let sent = match mailer.letterhead.notice(&email, &subject, text, html) {
        Ok((_, message)) => {
            let name = format!("complaint-{reference}.eml");
            mailer.send_one(&email, &message, &name).await.is_ok()
        }
        Err(_) => false,
    };
    if sent {
        app.store
            .acknowledge_complaint(&reference, today, &Actor::Contact)
            .await?;
    } else {
        // Logged all the same. (The relay's answer may quote the address: not logged.)
        tracing::warn!(%reference, "a complaint's acknowledgement was not sent");
    }
    Ok(Some(reference))
}

/// Records the acknowledgement of a complaint, sent on `on`.
pub async fn acknowledge(
    app: &App,
    actor: &Actor,
    reference: &str,
    on: &str,
) -> Result<ComplaintLine> {
    must_be_admin(actor)?;
    let on = past_date("on", on)?;
    let complaint = find_complaint(app, reference).await?;
    if let Some(acknowledged) = complaint.acknowledged_on {
        return Err(AppError::conflict(
            Conflict::Refused,
            format!("{} was acknowledged on {acknowledged}", complaint.reference),
        ));
    }
    check_complaint_date(&complaint, on)?;
    let changed = app
        .store
        .acknowledge_complaint(&complaint.reference, on, actor)
        .await?;
    complaint_settled(app, &complaint, changed).await
}

/// Closes a complaint today with its outcome.
pub async fn close_complaint(
    app: &App,
    actor: &Actor,
    reference: &str,
    outcome: &str,
) -> Result<ComplaintLine> {
    must_be_admin(actor)?;
    let outcome = text("outcome", outcome, "how it was resolved")?;
    let complaint = find_complaint(app, reference).await?;
    let today = today();
    check_complaint_date(&complaint, today)?;
    let changed = app
        .store
        .close_complaint(&complaint.reference, today, outcome, actor)
        .await?;
    complaint_settled(app, &complaint, changed).await
}

/// The complaint `reference` names, as staff read it.
pub async fn complaint(app: &App, actor: &Actor, reference: &str) -> Result<ComplaintLine> {
    must_be_admin(actor)?;
    Ok(complaint_line(
        find_complaint(app, reference).await?,
        today(),
    ))
}

/// The complaints, open ones only unless `all`, oldest first.
pub async fn complaints(app: &App, actor: &Actor, all: bool) -> Result<Vec<ComplaintLine>> {
    must_be_admin(actor)?;
    let today = today();
    Ok(app
        .store
        .complaints(all)
        .await?
        .into_iter()
        .map(|c| complaint_line(c, today))
        .collect())
}

pub(super) fn complaint_line(complaint: Complaint, today: NaiveDate) -> ComplaintLine {
    let acknowledge_by = acknowledge_by(complaint.received);
    ComplaintLine {
        reference: complaint.reference.to_string(),
        received: complaint.received,
        acknowledge_by,
        status: complaint.status(),
        days_left: complaint
            .acknowledged_on
            .is_none()
            .then(|| (acknowledge_by - today).num_days()),
        channel: complaint.channel,
        summary: complaint.summary,
        email: complaint.email,
        message_id: complaint.message_id,
        acknowledged_on: complaint.acknowledged_on,
        closed_on: complaint.closed_on,
        outcome: complaint.outcome,
    }
}

pub(super) async fn find_complaint(app: &App, reference: &str) -> Result<Complaint> {
    let reference = Reference::parse(reference, Register::Complaints)
        .map_err(|e| AppError::invalid("reference", e))?;
    app.store
        .complaint(&reference)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no complaint {reference}")))
}

pub(super) async fn complaint_settled(
    app: &App,
    complaint: &Complaint,
    changed: bool,
) -> Result<ComplaintLine> {
    let now = find_complaint(app, &complaint.reference.to_string()).await?;
    if changed {
        Ok(complaint_line(now, today()))
    } else {
        Err(AppError::conflict(
            Conflict::Refused,
            format!(
                "{} changed meanwhile: it is {} now; look again",
                complaint.reference,
                now.status().as_str()
            ),
        ))
    }
}

pub(super) fn check_complaint_date(complaint: &Complaint, on: NaiveDate) -> Result<()> {
    if complaint.closed_on.is_some() {
        return Err(AppError::conflict(
            Conflict::Refused,
            format!("{} is closed", complaint.reference),
        ));
    }
    if on < complaint.received {
        return Err(AppError::invalid(
            "on",
            format!(
                "{on} is before the complaint was received, {}",
                complaint.received
            ),
        ));
    }
    Ok(())
}

/// The Message-ID of the email complained of, when one is given.
pub(super) fn message_id_given(text: Option<&str>) -> Result<Option<String>> {
    text.map(str::trim)
        .filter(|id| !id.is_empty())
        .map(parse_message_id)
        .transpose()
        .map_err(|e| AppError::invalid("message_id", e))
}

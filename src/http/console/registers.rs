//! The data protection officer's pages (admins): the rights requests and complaints registers,
//! each entry's clock and what can be done to it, and "why did they get this?" by Message-ID.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::session::{Posted, SessionForm, Signed};
use super::{Layout, Problem, Refusal, Section, Template, named, render, see_other};
use crate::app::registers::MessageProof;
use crate::app::registers::{self, ComplaintLine, RequestLine};
use crate::app::{self, AppError};
use crate::domain::{Channel, Right, day_name, days_left, uk_time};
use crate::http::AppState;

/// A list page's query: everything, or only what is open; what was just done.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// A detail page's query: what was just done to it.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// A request as a row of the register.
#[derive(Serialize)]
struct RequestRow {
    reference: String,
    right: &'static str,
    received: String,
    due: String,
    status: &'static str,
    left: String,
    overdue: bool,
    contact: Option<String>,
    extended: Option<String>,
    extension_reason: Option<String>,
    closed: Option<String>,
    outcome: Option<String>,
    paused_days: i64,
    channel: &'static str,
}

impl From<RequestLine> for RequestRow {
    fn from(line: RequestLine) -> Self {
        let open = line.closed_on.is_none();
        Self {
            right: line.right.label(),
            received: day_name(line.received),
            due: day_name(line.due),
            status: line.status.as_str(),
            left: if open {
                days_left(line.days_left)
            } else {
                String::new()
            },
            overdue: open && line.days_left < 0,
            contact: line.contact,
            extended: line.extended_on.map(day_name),
            extension_reason: line.extension_reason,
            closed: line.closed_on.map(day_name),
            outcome: line.outcome,
            paused_days: line.paused_days,
            channel: line.channel.as_str(),
            reference: line.reference,
        }
    }
}

#[derive(Serialize)]
struct ComplaintRow {
    reference: String,
    received: String,
    acknowledge_by: String,
    status: &'static str,
    left: String,
    overdue: bool,
    channel: &'static str,
    summary: String,
    email: Option<String>,
    message_id: Option<String>,
    /// The Message-ID as the proof page's query takes it.
    message_id_query: Option<String>,
    acknowledged: Option<String>,
    closed: Option<String>,
    outcome: Option<String>,
}

impl From<ComplaintLine> for ComplaintRow {
    fn from(line: ComplaintLine) -> Self {
        Self {
            received: day_name(line.received),
            acknowledge_by: day_name(line.acknowledge_by),
            status: line.status.as_str(),
            left: line.days_left.map(days_left).unwrap_or_default(),
            overdue: line.days_left.is_some_and(|left| left < 0),
            channel: line.channel.as_str(),
            summary: line.summary,
            email: line.email,
            message_id_query: line
                .message_id
                .as_deref()
                .map(|id| url::form_urlencoded::byte_serialize(id.as_bytes()).collect()),
            message_id: line.message_id,
            acknowledged: line.acknowledged_on.map(day_name),
            closed: line.closed_on.map(day_name),
            outcome: line.outcome,
            reference: line.reference,
        }
    }
}

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

fn rights() -> Vec<Choice> {
    Right::ALL
        .iter()
        .map(|r| Choice {
            value: r.as_str(),
            label: r.label(),
        })
        .collect()
}

fn channels() -> Vec<Choice> {
    Channel::ALL
        .iter()
        .map(|c| Choice {
            value: c.as_str(),
            label: c.as_str(),
        })
        .collect()
}

#[derive(Serialize)]
struct ListData<T: Serialize> {
    rows: Vec<T>,
    all: bool,
    rights: Vec<Choice>,
    channels: Vec<Choice>,
    today: String,
    error: Option<String>,
}

pub async fn requests(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ListQuery>,
) -> Response {
    requests_page(&state, &signed, query.all, StatusCode::OK, None).await
}

async fn requests_page(
    state: &AppState,
    signed: &Signed,
    all: bool,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    match registers::requests(&state.app, &signed.actor(), all).await {
        Ok(lines) => render(
            state,
            status,
            Template::Requests,
            Layout::new("Rights requests", Section::Requests, Some(signed)),
            ListData {
                rows: lines.into_iter().map(RequestRow::from).collect(),
                all,
                rights: rights(),
                channels: channels(),
                today: registers::today().to_string(),
                error,
            },
        ),
        Err(error) => Problem::from(error).page(state, Some(signed)),
    }
}

/// Opens a request, then shows it.
pub async fn open_request(
    State(state): State<AppState>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    match registers::open_request(
        &state.app,
        &signed.actor(),
        posted.one("right"),
        posted.one("email"),
        posted.one("received"),
        posted.one("channel"),
    )
    .await
    {
        Ok(reference) => see_other(&format!("/admin/requests/{reference}?done=opened")),
        Err(error) => match Refusal::of_form(error) {
            Refusal::OnForm { status, message } => {
                requests_page(&state, &signed, false, status, Some(message)).await
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
    }
}

#[derive(Serialize)]
struct RequestData {
    request: RequestRow,
    open: bool,
    paused: bool,
    notice: Option<&'static str>,
    error: Option<String>,
    today: String,
}

pub async fn request(
    State(state): State<AppState>,
    signed: Signed,
    Path(reference): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let notice = query.done.as_deref().and_then(done_notice);
    request_page(&state, &signed, &reference, StatusCode::OK, notice, None).await
}

async fn request_page(
    state: &AppState,
    signed: &Signed,
    reference: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    match registers::request(&state.app, &signed.actor(), reference).await {
        Ok(line) => {
            let open = line.closed_on.is_none();
            let paused = line.status == crate::domain::RequestStatus::Paused;
            let title = line.reference.clone();
            render(
                state,
                status,
                Template::Request,
                Layout::new(&title, Section::Requests, Some(signed)),
                RequestData {
                    request: line.into(),
                    open,
                    paused,
                    notice,
                    error,
                    today: registers::today().to_string(),
                },
            )
        }
        Err(error) => Problem::from(error).page(state, Some(signed)),
    }
}

/// A button on a request's page.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RequestButton {
    Pause,
    Resume,
    Extend,
    Close,
}

/// A button on a complaint's page.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ComplaintButton {
    Acknowledge,
    Close,
}

/// Pauses, resumes, extends or closes a request.
pub async fn act_on_request(
    State(state): State<AppState>,
    Path((reference, action)): Path<(String, String)>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let Some(button) = named::<RequestButton>(&action) else {
        return Problem::not_found("no such action").page(&state, Some(&signed));
    };
    let (app, actor) = (&state.app, &signed.actor());
    let done = match button {
        RequestButton::Pause => registers::pause(app, actor, &reference, posted.one("from")).await,
        RequestButton::Resume => registers::resume(app, actor, &reference, posted.one("on")).await,
        RequestButton::Extend => {
            registers::extend(
                app,
                actor,
                &reference,
                posted.one("reason"),
                posted.one("notified"),
            )
            .await
        }
        RequestButton::Close => {
            registers::close(app, actor, &reference, posted.one("outcome")).await
        }
    };
    match done {
        Ok(line) => see_other(&format!("/admin/requests/{}?done={action}", line.reference)),
        Err(error) => match Refusal::of_form(error) {
            Refusal::OnForm { status, message } => {
                request_page(&state, &signed, &reference, status, None, Some(message)).await
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
    }
}

pub async fn complaints(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ListQuery>,
) -> Response {
    complaints_page(&state, &signed, query.all, StatusCode::OK, None).await
}

async fn complaints_page(
    state: &AppState,
    signed: &Signed,
    all: bool,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    match registers::complaints(&state.app, &signed.actor(), all).await {
        Ok(lines) => render(
            state,
            status,
            Template::Complaints,
            Layout::new("Complaints", Section::Complaints, Some(signed)),
            ListData {
                rows: lines.into_iter().map(ComplaintRow::from).collect(),
                all,
                rights: Vec::new(),
                channels: channels(),
                today: registers::today().to_string(),
                error,
            },
        ),
        Err(error) => Problem::from(error).page(state, Some(signed)),
    }
}

/// Logs a complaint, then shows it.
pub async fn log_complaint(
    State(state): State<AppState>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let optional = |name| Some(posted.one(name)).filter(|v| !v.trim().is_empty());
    match registers::log_complaint(
        &state.app,
        &signed.actor(),
        posted.one("received"),
        posted.one("channel"),
        posted.one("summary"),
        optional("email"),
        optional("message_id"),
    )
    .await
    {
        Ok(reference) => see_other(&format!("/admin/complaints/{reference}?done=logged")),
        Err(error) => match Refusal::of_form(error) {
            Refusal::OnForm { status, message } => {
                complaints_page(&state, &signed, false, status, Some(message)).await
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
    }
}

#[derive(Serialize)]
struct ComplaintData {
    complaint: ComplaintRow,
    open: bool,
    acknowledged: bool,
    notice: Option<&'static str>,
    error: Option<String>,
    today: String,
}

pub async fn complaint(
    State(state): State<AppState>,
    signed: Signed,
    Path(reference): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let notice = query.done.as_deref().and_then(done_notice);
    complaint_page(&state, &signed, &reference, StatusCode::OK, notice, None).await
}

async fn complaint_page(
    state: &AppState,
    signed: &Signed,
    reference: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    match registers::complaint(&state.app, &signed.actor(), reference).await {
        Ok(line) => {
            let title = line.reference.clone();
            render(
                state,
                status,
                Template::Complaint,
                Layout::new(&title, Section::Complaints, Some(signed)),
                ComplaintData {
                    open: line.closed_on.is_none(),
                    acknowledged: line.acknowledged_on.is_some(),
                    complaint: line.into(),
                    notice,
                    error,
                    today: registers::today().to_string(),
                },
            )
        }
        // A reference that does not parse names no complaint.
        Err(AppError::Invalid { .. }) => {
            Problem::not_found("There is no such complaint.").page(state, Some(signed))
        }
        Err(error) => Problem::from(error).page(state, Some(signed)),
    }
}

/// Acknowledges or closes a complaint.
pub async fn act_on_complaint(
    State(state): State<AppState>,
    Path((reference, action)): Path<(String, String)>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let Some(button) = named::<ComplaintButton>(&action) else {
        return Problem::not_found("no such action").page(&state, Some(&signed));
    };
    let (app, actor) = (&state.app, &signed.actor());
    let done = match button {
        ComplaintButton::Acknowledge => {
            registers::acknowledge(app, actor, &reference, posted.one("on")).await
        }
        ComplaintButton::Close => {
            registers::close_complaint(app, actor, &reference, posted.one("outcome")).await
        }
    };
    match done {
        Ok(line) => see_other(&format!(
            "/admin/complaints/{}?done={action}",
            line.reference
        )),
        Err(error) => match Refusal::of_form(error) {
            Refusal::OnForm { status, message } => {
                complaint_page(&state, &signed, &reference, status, None, Some(message)).await
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
    }
}

/// The proof page's query.
#[derive(Debug, Default, Deserialize)]
pub struct ProofQuery {
    message_id: Option<String>,
}

#[derive(Serialize)]
struct ProofData {
    message_id: String,
    proof: Option<ProofView>,
    error: Option<String>,
}

/// A proof as staff read it: times in UK time.
#[derive(Serialize)]
struct ProofView {
    #[serde(flatten)]
    proof: MessageProof,
    sent: Option<String>,
    approved: Option<String>,
    consent_given: Option<String>,
    consent_recorded: Option<String>,
    allowed: bool,
    /// Entries recorded after it was sent though dated before, as staff read them.
    later: Vec<String>,
    /// The change since, as staff read it.
    since: Option<String>,
}

/// "Why did they get this?": a Message-ID's consent and approval.
pub async fn proof(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ProofQuery>,
) -> Response {
    let message_id = query.message_id.unwrap_or_default();
    let (proof, error, status) = match message_id.trim() {
        "" => (None, None, StatusCode::OK),
        id => match app::registers::proof(&state.app, &signed.actor(), id).await {
            Ok(proof) => {
                let recipient = proof.recipient.as_ref();
                let consent = recipient.and_then(|r| r.consent.as_ref());
                let entry = |e: &crate::domain::ConsentEntry| {
                    let change = if e.granted { "given" } else { "withdrawn" };
                    format!("{change} {} ({})", uk_time(e.at), e.source)
                };
                let view = ProofView {
                    later: recipient
                        .map(|r| r.recorded_later.iter().map(entry).collect())
                        .unwrap_or_default(),
                    since: recipient.and_then(|r| r.now.as_ref()).map(entry),
                    sent: proof.sent_at.map(uk_time),
                    approved: proof.campaign.approved_at.map(uk_time),
                    consent_given: consent.map(|c| uk_time(c.at)),
                    consent_recorded: consent.map(|c| uk_time(c.recorded_at)),
                    allowed: consent.is_some_and(|c| c.granted),
                    proof,
                };
                (Some(view), None, StatusCode::OK)
            }
            // No such message is an answer here, not a missing page.
            Err(AppError::NotFound(message)) => (None, Some(message), StatusCode::NOT_FOUND),
            Err(error) => match Refusal::of_form(error) {
                Refusal::OnForm { status, message } => (None, Some(message), status),
                Refusal::Page(problem) => return problem.page(&state, Some(&signed)),
            },
        },
    };
    render(
        &state,
        status,
        Template::Proof,
        Layout::new("Why did they get this?", Section::Complaints, Some(&signed)),
        ProofData {
            message_id,
            proof,
            error,
        },
    )
}

/// What was just done, said from a fixed set (never the query's own words).
fn done_notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "opened" => "Opened: the clock runs from the day it was received.",
        "logged" => "Logged. Acknowledge it within 30 days.",
        "pause" => "Paused: the clock stands still until you resume it.",
        "resume" => "Resumed: the clock runs again, the days paused added.",
        "extend" => "Extended by two months. Keep the message that told them.",
        "close" => "Closed.",
        "acknowledge" => "Acknowledged.",
        _ => return None,
    })
}

/// The dashboard's list of what is due within a week or overdue (admins).
#[derive(Serialize)]
pub(super) struct DueSoon {
    requests: Vec<RequestRow>,
    complaints: Vec<ComplaintRow>,
}

pub(super) async fn due_soon(state: &AppState, signed: &Signed) -> Option<DueSoon> {
    if !signed.session.member.role.manages_staff() {
        return None;
    }
    let due = match registers::due(&state.app, &signed.actor(), 7).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!("the dashboard's registers: {error}");
            return None;
        }
    };
    Some(DueSoon {
        requests: due.requests.into_iter().map(RequestRow::from).collect(),
        complaints: due.complaints.into_iter().map(ComplaintRow::from).collect(),
    })
    .filter(|due| !(due.requests.is_empty() && due.complaints.is_empty()))
}

//! One campaign's page (its audience, its message at phone and desktop width, its approval and
//! its report), the confirmation before a button, and what the buttons do: test, submit,
//! approve, schedule, queue, pause, resume, cancel, retry, copy.

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::super::flash::Flash;
use super::super::session::{Posted, SessionForm, Signed};
use super::super::{Layout, Problem, Refusal, Section, Template, named, render, see_other};
use crate::app::campaigns::{Action, ActionOutcome, CopyFor};
use crate::app::{self, AppError};
use crate::domain::{CampaignState, DraftStage, ReportCounts, counted, listed, uk_time};
use crate::http::AppState;

#[derive(Serialize)]
pub(super) struct AudienceLine {
    pub(super) name: String,
    pub(super) people: u64,
}

#[derive(Serialize)]
pub(super) struct ReportLine {
    name: String,
    #[serde(flatten)]
    counts: ReportCounts,
}

#[derive(Serialize)]
pub(super) struct CampaignData {
    id: i64,
    name: String,
    topic: String,
    subject: String,
    state: &'static str,
    draft: bool,
    paused_reason: Option<String>,
    scheduled: Option<String>,
    version: i64,
    made_by: String,
    needs_approval: bool,
    approved_by: Option<String>,
    submitted: bool,
    audience: Vec<AudienceLine>,
    audience_total: u64,
    /// Who it is for, in words.
    described: String,
    /// Whether its message renders (else why not).
    preview_ok: bool,
    preview_error: Option<String>,
    report: Option<Vec<ReportLine>>,
    total: Option<ReportCounts>,
    /// Some were sent it: a copy may go to the rest.
    sent_some: bool,
    /// What the signed-in person may do here.
    may_edit: bool,
    may_approve: bool,
    may_queue: bool,
    may_pause: bool,
    may_resume: bool,
    may_cancel: bool,
    may_retry: bool,
    writes: bool,
    me: String,
}

/// One campaign: where it stands, who it reaches, its message, its report.
pub(in crate::http::console) async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
) -> Response {
    match campaign_data(&state, &signed, id).await {
        Ok(data) => {
            let title = data.name.clone();
            render(
                &state,
                StatusCode::OK,
                Template::Campaign,
                Layout::new(&title, Section::Campaigns, Some(&signed)),
                data,
            )
        }
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

pub(super) async fn campaign_data(
    state: &AppState,
    signed: &Signed,
    id: i64,
) -> Result<CampaignData, Problem> {
    let actor = signed.actor();
    let app = &state.app;
    let status = app::campaigns::status(app, &actor, id).await?;
    let campaign = status.campaign;
    let draft = campaign.state == CampaignState::Draft;
    let audience = if draft {
        app::campaigns::audience(app, &actor, id).await?
    } else {
        Vec::new()
    };
    let preview_error = match app::campaigns::message(app, &actor, id).await {
        Ok(_) => None,
        Err(AppError::Invalid { message, .. }) => Some(message),
        Err(error) => return Err(error.into()),
    };
    let (report, total) = if draft {
        (None, None)
    } else {
        let report = app::campaigns::report(app, &actor, id).await?;
        let lines = report
            .by_constituency
            .into_iter()
            .map(|c| ReportLine {
                name: c
                    .name
                    .or(c.code)
                    .unwrap_or_else(|| "No constituency".into()),
                counts: c.counts,
            })
            .collect();
        (Some(lines), Some(report.total))
    };
    let described =
        app::campaigns::described(app, &campaign.spec.audience, &campaign.limit).await?;
    let me = actor.to_string();
    let member = &signed.session.member;
    let writes = member.role.writes();
    let approval = &campaign.approval;
    let state_is = |states: &[CampaignState]| states.contains(&campaign.state);
    Ok(CampaignData {
        id,
        name: campaign.spec.name.clone(),
        topic: campaign.topic_name.clone(),
        subject: campaign.spec.subject.clone(),
        state: if draft {
            DraftStage::of(
                approval.needed,
                approval.submitted_at.is_some(),
                approval.approved_by.is_some(),
            )
            .words()
        } else {
            campaign.state.as_str()
        },
        draft,
        paused_reason: campaign.paused_reason.clone(),
        scheduled: campaign.scheduled_at.map(uk_time),
        version: approval.version,
        made_by: approval.created_by.trim_start_matches("staff:").to_owned(),
        needs_approval: approval.needed,
        approved_by: approval
            .approved_by
            .as_ref()
            .map(|by| by.trim_start_matches("staff:").to_owned()),
        submitted: approval.submitted_at.is_some(),
        audience_total: audience.iter().map(|(_, _, n)| n).sum(),
        described,
        audience: audience
            .into_iter()
            .map(|(code, name, people)| AudienceLine {
                name: name.or(code).unwrap_or_else(|| "No constituency".into()),
                people,
            })
            .collect(),
        preview_ok: preview_error.is_none(),
        preview_error,
        report,
        sent_some: total.as_ref().is_some_and(|t| t.sent > 0),
        total,
        may_edit: writes && draft,
        may_approve: writes
            && draft
            && approval.needed
            && approval.approved_by.is_none()
            && !approval.written_by(&me),
        may_queue: writes && draft && approval.cleared(),
        may_pause: writes && state_is(&[CampaignState::Queued]),
        may_resume: writes && state_is(&[CampaignState::Paused]),
        may_cancel: writes
            && state_is(&[
                CampaignState::Draft,
                CampaignState::Queued,
                CampaignState::Paused,
            ]),
        may_retry: writes && state_is(&[CampaignState::Queued, CampaignState::Done]),
        writes,
        me: member.name.clone(),
    })
}

#[derive(Serialize)]
pub(super) struct ConfirmData {
    id: i64,
    action: &'static str,
    question: String,
    consequences: Vec<String>,
    button: &'static str,
    /// The button's look: `danger` for what cannot be undone.
    style: &'static str,
}

/// The page that asks before a button that cannot be taken back (sending to everyone,
/// cancelling): what it will do and to how many, with the button, and the way back. The
/// button's own URL, so that it works without JavaScript.
pub(in crate::http::console) async fn confirm(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let page = format!("/admin/campaigns/{id}");
    let Ok(button) = action.parse::<Button>() else {
        return see_other(&page);
    };
    match confirm_data(&state, &signed, id, button).await {
        Ok(Asked::Confirm(data)) => {
            let title = data.question.clone();
            render(
                &state,
                StatusCode::OK,
                Template::CampaignConfirm,
                Layout::new(&title, Section::Campaigns, Some(&signed)),
                data,
            )
        }
        Ok(Asked::Refused(why)) => Flash::Refusal(why).redirect(&state, &signed, &page),
        Ok(Asked::Past) => see_other(&page),
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

/// What asking before a button finds.
pub(super) enum Asked {
    Confirm(ConfirmData),
    /// The button would be refused, for this reason.
    Refused(String),
    /// The campaign is past it (or it asks nothing): its page says where it stands.
    Past,
}

/// What the confirmation of `button` says.
pub(super) async fn confirm_data(
    state: &AppState,
    signed: &Signed,
    id: i64,
    button: Button,
) -> Result<Asked, Problem> {
    let (app, actor) = (&state.app, &signed.actor());
    let status = app::campaigns::status(app, actor, id).await?;
    if !signed.session.member.role.writes() {
        return Ok(Asked::Refused(
            "You may read campaigns but not send or cancel them; ask an organiser or admin.".into(),
        ));
    }
    let campaign = &status.campaign;
    let name = &campaign.spec.name;
    let d = &status.deliveries;
    Ok(match (button, campaign.state) {
        (QUEUE, CampaignState::Draft) if !campaign.approval.cleared() => Asked::Refused(format!(
            "It cannot be sent yet: version {} waits for a second person's approval.",
            campaign.approval.version
        )),
        (QUEUE, CampaignState::Draft) => {
            let people: u64 = app::campaigns::audience(app, actor, id)
                .await?
                .iter()
                .map(|(_, _, n)| n)
                .sum();
            let mut consequences = vec![
                format!(
                    "Sending begins at once, to everyone who may be mailed it when it is queued: \
                     {} today.",
                    counted(people, "person", "people")
                ),
                "A message that has gone cannot be called back. You can pause the campaign \
                 while it sends."
                    .to_owned(),
            ];
            if let Some(at) = campaign.scheduled_at {
                consequences.push(format!(
                    "It was scheduled for {}: it goes now instead.",
                    uk_time(at)
                ));
            }
            Asked::Confirm(ConfirmData {
                id,
                action: "queue",
                question: format!(
                    "Send \u{201c}{name}\u{201d} now to {}?",
                    counted(people, "person", "people")
                ),
                consequences,
                button: "Yes, send it now",
                style: "",
            })
        }
        (CANCEL, CampaignState::Draft) => Asked::Confirm(ConfirmData {
            id,
            action: "cancel",
            question: format!("Cancel \u{201c}{name}\u{201d}?"),
            consequences: vec![
                "It will never be sent. It stays in the list of campaigns, and you can copy it \
                 to write another."
                    .to_owned(),
                "This cannot be undone.".to_owned(),
            ],
            button: "Yes, cancel it",
            style: "danger",
        }),
        (CANCEL, CampaignState::Queued | CampaignState::Paused) => Asked::Confirm(ConfirmData {
            id,
            action: "cancel",
            question: format!("Cancel \u{201c}{name}\u{201d}?"),
            consequences: vec![
                format!(
                    "{} not yet sent will never be sent.",
                    counted(d.queued, "message", "messages")
                ),
                format!(
                    "{} already went and cannot be called back. A copy can go to the others \
                     only.",
                    counted(d.sent, "message", "messages")
                ),
                "This cannot be undone.".to_owned(),
            ],
            button: "Yes, cancel it",
            style: "danger",
        }),
        _ => Asked::Past,
    })
}

/// A button on a campaign's page, by the name its path gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::http::console) enum Button {
    /// One of the actions the API takes too.
    Act(Action),
    Approve,
    Schedule,
    Unschedule,
    Test,
    Copy(CopyFor),
}

const QUEUE: Button = Button::Act(Action::Queue);
const CANCEL: Button = Button::Act(Action::Cancel);

impl Button {
    /// Whether it goes only from its confirmation page: sending to everyone, cancelling.
    fn confirmed_only(self) -> bool {
        matches!(self, QUEUE | CANCEL)
    }
}

impl FromStr for Button {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        Ok(match name {
            "approve" => Self::Approve,
            "schedule" => Self::Schedule,
            "unschedule" => Self::Unschedule,
            "test" => Self::Test,
            "copy" => Self::Copy(CopyFor::Everyone),
            "copy-unsent" => Self::Copy(CopyFor::NotYetSent),
            action => Self::Act(named(action).ok_or(())?),
        })
    }
}

/// What a button on a campaign's page does.
pub(in crate::http::console) async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let field = |name: &str| posted.one(name);
    let Ok(button) = action.parse::<Button>() else {
        return Problem::not_found("no such action").page(&state, Some(&signed));
    };
    if button.confirmed_only() && field("confirmed") != "yes" {
        return see_other(&format!("/admin/campaigns/{id}/{action}"));
    }
    let (app, actor) = (&state.app, &signed.actor());
    let done: Result<String, AppError> = match button {
        Button::Act(action) => app::campaigns::act(app, actor, id, action)
            .await
            .map(|done| match done {
                ActionOutcome::Queued(n) => format!(
                    "Queued for {}: sending has begun.",
                    counted(n, "person", "people")
                ),
                ActionOutcome::Changed(CampaignState::Paused) => "Paused.".into(),
                ActionOutcome::Changed(CampaignState::Cancelled) => {
                    "Cancelled: nothing more will be sent.".into()
                }
                ActionOutcome::Changed(_) => "Resumed.".into(),
                ActionOutcome::Retried(n) => format!(
                    "{} queued again.",
                    counted(n, "failed message", "failed messages")
                ),
                ActionOutcome::Submitted(submitted) => asked_for_approval(&submitted),
            }),
        Button::Approve => match field("version").parse::<i64>() {
            Ok(version) => app::campaigns::approve(app, actor, id, version)
                .await
                .map(|()| "Approved: it can now be scheduled or sent.".into()),
            Err(_) => Err(AppError::invalid(
                "version",
                "reload the page and approve again",
            )),
        },
        Button::Schedule => app::campaigns::schedule(app, actor, id, field("at"))
            .await
            .map(|at| format!("Scheduled for {}.", uk_time(at))),
        Button::Unschedule => app::campaigns::unschedule(app, actor, id)
            .await
            .map(|()| "No longer scheduled.".into()),
        Button::Test => {
            let to: Vec<String> = field("to")
                .split([',', ' '])
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            app::campaigns::test(app, actor, id, &to, None)
                .await
                .map(|n| {
                    format!(
                        "{} sent.",
                        counted(n as u64, "test message", "test messages")
                    )
                })
        }
        Button::Copy(copy_for) => match app::campaigns::copy(app, actor, id, copy_for).await {
            Ok(copy) => {
                let notice = "This is a copy, a draft: change what you need, then send it.";
                return Flash::Notice(notice.into()).redirect(
                    &state,
                    &signed,
                    &format!("/admin/campaigns/{copy}"),
                );
            }
            Err(error) => Err(error),
        },
    };
    Refusal::after_button(&state, &signed, &format!("/admin/campaigns/{id}"), done)
}

/// What asking for an approval did, in words.
pub(super) fn asked_for_approval(submitted: &app::campaigns::Submitted) -> String {
    let mut said = "Waiting for approval.".to_owned();
    if !submitted.telling.is_empty() {
        said.push_str(&format!(
            " {} {} told by email.",
            listed(&submitted.telling),
            match submitted.telling.len() {
                1 => "is being",
                _ => "are being",
            }
        ));
    }
    match (submitted.telling.is_empty(), submitted.untold) {
        (true, 0) => said.push_str(
            " Nobody else on the staff may approve it yet: an admin, or an organiser whose \
             constituencies hold everyone it reaches, must be added.",
        ),
        (_, 0) => {}
        (_, untold) => said.push_str(&format!(
            " {} cannot be emailed (no mail server is set); it waits on their dashboard.",
            counted(
                untold as u64,
                "person who may approve it",
                "people who may approve it"
            )
        )),
    }
    said
}

/// A campaign's message as its recipients' mail programs show it, for the frames of its page:
/// rendered with the values of the first person it would reach (or sample ones), links inert.
/// Served with a policy of its own: the email's inline styles apply, nothing runs, and only
/// the console may frame it.
pub(in crate::http::console) async fn message(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
) -> Response {
    match app::campaigns::message(&state.app, &signed.actor(), id).await {
        Ok(bodies) => framed_message(bodies.html),
        Err(error) => Problem::from(error).page(&state, Some(&signed)),
    }
}

/// A message's HTML to be framed in the console: the email's inline styles apply, nothing
/// runs, nothing is loaded from elsewhere (an image's server would learn who looked, and
/// when), only the console may frame it.
pub(super) fn framed_message(html: String) -> Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let mut response = axum::response::Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             frame-ancestors 'self'; sandbox",
        ),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    response
}

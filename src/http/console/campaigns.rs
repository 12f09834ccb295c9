//! The campaigns: their list; one campaign with its audience, its message at phone and desktop
//! width, its approval and its report; writing a new one or changing a draft; and what staff
//! can tell a campaign to do (test, submit, approve, schedule, queue, pause, resume, cancel,
//! retry, copy).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::flash::Flash;
use super::session::{Posted, SessionForm, Signed};
use super::{Layout, Problem, Refusal, render, see_other};
use crate::app::campaigns::{Campaign, StateChange};
use crate::app::{self, AppError};
use crate::domain::{
    CampaignChanges, CampaignDraft, CampaignState, DraftStage, ReportCounts, counted, listed,
    uk_date, uk_time,
};
use crate::http::AppState;

#[derive(Serialize)]
struct Line {
    id: i64,
    name: String,
    topic: String,
    subject: String,
    /// Where it stands, as staff read it.
    state: &'static str,
    created: String,
    scheduled: Option<String>,
    /// For a campaign past its draft: how far its deliveries have gone.
    progress: Option<String>,
}

#[derive(Serialize)]
struct ListData {
    campaigns: Vec<Line>,
    writes: bool,
}

pub async fn list(State(state): State<AppState>, signed: Signed) -> Response {
    let actor = signed.actor();
    let campaigns = match app::campaigns::list(&state.app, &actor).await {
        Ok(campaigns) => campaigns,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let mut lines = Vec::with_capacity(campaigns.len());
    for c in campaigns.into_iter().rev() {
        let progress = match c.state {
            CampaignState::Draft => None,
            _ => match app::campaigns::status(&state.app, &actor, c.id).await {
                Ok(status) => {
                    let d = status.deliveries;
                    let total = d.queued + d.sent + d.failed + d.skipped;
                    Some(format!("{} of {total} sent", d.sent))
                }
                Err(error) => return Problem::from(error).page(&state, Some(&signed)),
            },
        };
        lines.push(Line {
            id: c.id,
            name: c.name,
            topic: c.topic_name,
            subject: c.subject,
            state: c.stage.map_or(c.state.as_str(), DraftStage::words),
            created: uk_date(c.created_at),
            scheduled: c.scheduled_at.map(uk_time),
            progress,
        });
    }
    render(
        &state,
        StatusCode::OK,
        "campaigns",
        Layout::new("Campaigns", "campaigns", Some(&signed)),
        ListData {
            campaigns: lines,
            writes: signed.session.member.role.writes(),
        },
    )
}

/// A campaign's fields as the form holds them.
#[derive(Debug, Default, Serialize)]
pub struct Fields {
    name: String,
    topic: String,
    subject: String,
    /// `markdown` or `html`.
    format: String,
    body: String,
    /// Codes ticked.
    constituencies: Vec<String>,
    /// Postcode areas, districts or sectors, separated by commas or spaces between them.
    postcodes: String,
    /// Only the postcodes within the constituencies ticked, instead of everyone in either.
    within: bool,
    from: String,
    reply_to: String,
    election_material: bool,
    /// An event mailing's: its title, its day and time (UK), its venue and postcode.
    event_title: String,
    event_date: String,
    event_time: String,
    event_venue: String,
    event_postcode: String,
    /// Only the people within these miles of the venue; blank for anyone.
    within_miles: String,
}

/// The distances the composer offers, in miles.
const WITHIN_MILES_OFFERED: [u32; 5] = [1, 3, 5, 10, 25];

/// The composer's choice of distance: anyone its other rules reach, or only those within one
/// of the distances offered, or within the one `chosen` (set at the command line, say).
fn distance_choices(chosen: &str) -> Vec<Choice> {
    let mut miles: Vec<String> = WITHIN_MILES_OFFERED.iter().map(u32::to_string).collect();
    if !chosen.is_empty() && !miles.iter().any(|m| m == chosen) {
        miles.push(chosen.to_owned());
    }
    let anyone = Choice {
        value: String::new(),
        label: "Anyone the rules above reach, however far from the venue".into(),
        selected: chosen.is_empty(),
    };
    let within = miles.into_iter().map(|m| Choice {
        label: format!(
            "Only people within {m} {} of the venue",
            if m == "1" { "mile" } else { "miles" }
        ),
        selected: m == chosen,
        value: m,
    });
    std::iter::once(anyone).chain(within).collect()
}

impl Fields {
    fn from_posted(posted: &Posted) -> Self {
        let one = |name| posted.one(name).to_owned();
        Fields {
            name: one("name"),
            topic: one("topic"),
            subject: one("subject"),
            format: one("format"),
            body: one("body"),
            constituencies: posted.all("constituency"),
            postcodes: one("postcodes"),
            within: posted.one("combine") == "within",
            from: one("from"),
            reply_to: one("reply_to"),
            election_material: posted.one("election_material") == "yes",
            event_title: one("event_title"),
            event_date: one("event_date"),
            event_time: one("event_time"),
            event_venue: one("event_venue"),
            event_postcode: one("event_postcode"),
            within_miles: one("within_miles"),
        }
    }

    fn of(campaign: &Campaign) -> Self {
        let spec = &campaign.spec;
        let (format, body) = match &spec.markdown {
            Some(markdown) => ("markdown", markdown.clone()),
            None => ("html", spec.html_template.clone()),
        };
        let event = spec.event.as_ref();
        let starts = event.map(|e| e.starts_at.with_timezone(&chrono_tz::Europe::London));
        Fields {
            name: spec.name.clone(),
            topic: spec.topic.to_string(),
            subject: spec.subject.clone(),
            format: format.to_owned(),
            body,
            constituencies: spec
                .audience
                .constituencies
                .iter()
                .map(ToString::to_string)
                .collect(),
            postcodes: spec
                .audience
                .postcodes
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
            within: spec.audience.postcodes_within,
            from: spec
                .from
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            reply_to: spec
                .reply_to
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            election_material: spec.election_material,
            event_title: event.map(|e| e.title.clone()).unwrap_or_default(),
            event_date: starts
                .map(|at| at.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            event_time: starts
                .map(|at| at.format("%H:%M").to_string())
                .unwrap_or_default(),
            event_venue: event.map(|e| e.venue.clone()).unwrap_or_default(),
            event_postcode: event
                .and_then(|e| e.postcode.as_ref())
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            within_miles: spec
                .audience
                .near
                .as_ref()
                .map(|near| near.miles.to_string())
                .unwrap_or_default(),
        }
    }

    fn postcode_list(&self) -> Vec<String> {
        // "SG13 8" is one sector: split on commas, and on spaces only between whole prefixes.
        self.postcodes
            .split([',', ';', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn optional(value: &str) -> Option<String> {
        Some(value.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn draft(&self) -> CampaignDraft {
        let markdown = self.format != "html";
        CampaignDraft {
            name: self.name.clone(),
            topic: self.topic.clone(),
            subject: self.subject.clone(),
            html_template: if markdown {
                String::new()
            } else {
                self.body.clone()
            },
            text_template: None,
            markdown: markdown.then(|| self.body.clone()),
            from: Self::optional(&self.from),
            reply_to: Self::optional(&self.reply_to),
            constituencies: self.constituencies.clone(),
            postcodes: self.postcode_list(),
            // The choice matters only with both given: the radio buttons are always there.
            postcodes_within_constituencies: self.within
                && !self.constituencies.is_empty()
                && !self.postcode_list().is_empty(),
            // Anything but a number of miles is refused as none.
            // A copy's exclusions are kept by the change, not written in the form.
            excluding: Vec::new(),
            within_miles: Self::optional(&self.within_miles)
                .map(|miles| miles.parse().unwrap_or(0)),
            event_title: Self::optional(&self.event_title),
            // A UK time, as staff write it: the domain reads it so.
            event_starts_at: Self::optional(
                format!("{} {}", self.event_date.trim(), self.event_time.trim()).as_str(),
            ),
            event_venue: Self::optional(&self.event_venue),
            event_postcode: Self::optional(&self.event_postcode),
            election_material: self.election_material,
        }
    }

    fn changes(&self) -> CampaignChanges {
        let draft = self.draft();
        let markdown = draft.markdown.is_some();
        CampaignChanges {
            name: Some(draft.name),
            topic: Some(draft.topic),
            subject: Some(draft.subject),
            html_template: (!markdown).then_some(draft.html_template),
            text_template: None,
            markdown: draft.markdown,
            // Blank keeps what the campaign has.
            from: draft.from,
            reply_to: draft.reply_to,
            constituencies: Some(draft.constituencies),
            postcodes: Some(draft.postcodes),
            postcodes_within_constituencies: Some(draft.postcodes_within_constituencies),
            election_material: Some(draft.election_material),
            // Blank takes the distance rule away; the event's fields, blank, keep what it has.
            within_miles: Some(draft.within_miles.unwrap_or(0)),
            event_title: draft.event_title,
            event_starts_at: draft.event_starts_at,
            event_venue: draft.event_venue,
            event_postcode: draft.event_postcode,
        }
    }
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct FormData {
    /// `None` for a new campaign.
    id: Option<i64>,
    fields: Fields,
    topics: Vec<Choice>,
    constituencies: Vec<Choice>,
    /// "Anyone" and the distances offered (and one set elsewhere, kept).
    distances: Vec<Choice>,
    error: Option<String>,
    markdown: bool,
}

async fn form_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    id: Option<i64>,
    fields: Fields,
    error: Option<String>,
) -> Response {
    let actor = signed.actor();
    let topics = match app::topics::list(&state.app).await {
        Ok(topics) => topics,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    let constituencies = match app::contacts::constituencies(&state.app, &actor).await {
        Ok(found) => found,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    let data = FormData {
        id,
        topics: topics
            .into_iter()
            .map(|t| Choice {
                selected: t.slug.as_str() == fields.topic,
                value: t.slug.as_str().to_owned(),
                label: t.name,
            })
            .collect(),
        constituencies: constituencies
            .into_iter()
            .map(|(code, name)| Choice {
                selected: fields.constituencies.contains(&code),
                label: name.unwrap_or_else(|| code.clone()),
                value: code,
            })
            .collect(),
        distances: distance_choices(&fields.within_miles),
        markdown: fields.format != "html",
        fields,
        error,
    };
    let title = if id.is_some() {
        "Change the campaign"
    } else {
        "New campaign"
    };
    render(
        state,
        status,
        "campaign_form",
        Layout::new(title, "campaigns", Some(signed)),
        data,
    )
}

/// The form to write a new campaign.
pub async fn new(State(state): State<AppState>, signed: Signed) -> Response {
    let fields = Fields {
        format: "markdown".into(),
        ..Fields::default()
    };
    form_page(&state, &signed, StatusCode::OK, None, fields, None).await
}

pub async fn create(
    State(state): State<AppState>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let fields = Fields::from_posted(&posted);
    match app::campaigns::create(&state.app, &signed.actor(), fields.draft()).await {
        Ok(id) => see_other(&format!("/admin/campaigns/{id}")),
        Err(error) => refused_form(&state, &signed, None, fields, error).await,
    }
}

/// The form again, saying what was wrong; or the page of a refusal that is not the form's.
async fn refused_form(
    state: &AppState,
    signed: &Signed,
    id: Option<i64>,
    fields: Fields,
    error: AppError,
) -> Response {
    match Refusal::of_form(error) {
        Refusal::OnForm { status, message } => {
            form_page(state, signed, status, id, fields, Some(message)).await
        }
        Refusal::Page(problem) => problem.page(state, Some(signed)),
    }
}

/// The form to change a draft.
pub async fn edit(State(state): State<AppState>, signed: Signed, Path(id): Path<i64>) -> Response {
    match app::campaigns::status(&state.app, &signed.actor(), id).await {
        Ok(status) if status.campaign.state == CampaignState::Draft => {
            let fields = Fields::of(&status.campaign);
            form_page(&state, &signed, StatusCode::OK, Some(id), fields, None).await
        }
        Ok(_) => see_other(&format!("/admin/campaigns/{id}")),
        Err(error) => Problem::from(error).page(&state, Some(&signed)),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let fields = Fields::from_posted(&posted);
    match app::campaigns::edit(&state.app, &signed.actor(), id, fields.changes()).await {
        Ok(()) => see_other(&format!("/admin/campaigns/{id}")),
        Err(error) => refused_form(&state, &signed, Some(id), fields, error).await,
    }
}

#[derive(Serialize)]
struct AudienceLine {
    name: String,
    people: u64,
}

#[derive(Serialize)]
struct ReportLine {
    name: String,
    #[serde(flatten)]
    counts: ReportCounts,
}

#[derive(Serialize)]
struct CampaignData {
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
pub async fn show(State(state): State<AppState>, signed: Signed, Path(id): Path<i64>) -> Response {
    match campaign_data(&state, &signed, id).await {
        Ok(data) => {
            let title = data.name.clone();
            render(
                &state,
                StatusCode::OK,
                "campaign",
                Layout::new(&title, "campaigns", Some(&signed)),
                data,
            )
        }
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

async fn campaign_data(
    state: &AppState,
    signed: &Signed,
    id: i64,
) -> Result<CampaignData, Problem> {
    let actor = signed.actor();
    let app = &state.app;
    let status = app::campaigns::status(app, &actor, id).await?;
    let campaign = status.campaign;
    let draft = campaign.state == CampaignState::Draft;
    let audience = match draft {
        true => app::campaigns::audience(app, &actor, id).await?,
        false => Vec::new(),
    };
    let preview_error = match app::campaigns::message(app, &actor, id).await {
        Ok(_) => None,
        Err(AppError::Invalid { message, .. }) => Some(message),
        Err(error) => return Err(error.into()),
    };
    let (report, total) = match draft {
        true => (None, None),
        false => {
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
        }
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
        state: match draft {
            true => DraftStage::of(
                approval.needed,
                approval.submitted_at.is_some(),
                approval.approved_by.is_some(),
            )
            .words(),
            false => campaign.state.as_str(),
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
struct ConfirmData {
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
pub async fn confirm(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let page = format!("/admin/campaigns/{id}");
    match confirm_data(&state, &signed, id, &action).await {
        Ok(Asked::Confirm(data)) => {
            let title = data.question.clone();
            render(
                &state,
                StatusCode::OK,
                "campaign_confirm",
                Layout::new(&title, "campaigns", Some(&signed)),
                data,
            )
        }
        Ok(Asked::Refused(why)) => Flash::Refusal(why).redirect(&state, &signed, &page),
        Ok(Asked::Past) => see_other(&page),
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

/// What asking before a button finds.
enum Asked {
    Confirm(ConfirmData),
    /// The button would be refused, for this reason.
    Refused(String),
    /// The campaign is past it (or it asks nothing): its page says where it stands.
    Past,
}

/// What the confirmation of `action` says.
async fn confirm_data(
    state: &AppState,
    signed: &Signed,
    id: i64,
    action: &str,
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
    Ok(match (action, campaign.state) {
        ("queue", CampaignState::Draft) if !campaign.approval.cleared() => Asked::Refused(format!(
            "It cannot be sent yet: version {} waits for a second person's approval.",
            campaign.approval.version
        )),
        ("queue", CampaignState::Draft) => {
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
        ("cancel", CampaignState::Draft) => Asked::Confirm(ConfirmData {
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
        ("cancel", CampaignState::Queued | CampaignState::Paused) => Asked::Confirm(ConfirmData {
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

/// Whom a copy made by `action` is for.
fn copy_for(action: &str) -> app::campaigns::CopyFor {
    match action {
        "copy-unsent" => app::campaigns::CopyFor::NotYetSent,
        _ => app::campaigns::CopyFor::Everyone,
    }
}

/// The actions that go only from their confirmation page.
const CONFIRMED: &[&str] = &["queue", "cancel"];

/// What a button on a campaign's page does.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let field = |name: &str| posted.one(name);
    if CONFIRMED.contains(&action.as_str()) && field("confirmed") != "yes" {
        return see_other(&format!("/admin/campaigns/{id}/{action}"));
    }
    let (app, actor) = (&state.app, &signed.actor());
    let change = |change| app::campaigns::change(app, actor, id, change);
    let done: Result<String, AppError> = match action.as_str() {
        "submit" => app::campaigns::submit(app, actor, id)
            .await
            .map(|submitted| asked_for_approval(&submitted)),
        "approve" => match field("version").parse::<i64>() {
            Ok(version) => app::campaigns::approve(app, actor, id, version)
                .await
                .map(|()| "Approved: it can now be scheduled or sent.".into()),
            Err(_) => Err(AppError::invalid(
                "version",
                "reload the page and approve again",
            )),
        },
        "queue" => app::campaigns::queue(app, actor, id).await.map(|n| {
            format!(
                "Queued for {}: sending has begun.",
                counted(n, "person", "people")
            )
        }),
        "schedule" => app::campaigns::schedule(app, actor, id, field("at"))
            .await
            .map(|at| format!("Scheduled for {}.", uk_time(at))),
        "unschedule" => app::campaigns::unschedule(app, actor, id)
            .await
            .map(|()| "No longer scheduled.".into()),
        "pause" => change(StateChange::Pause).await.map(|_| "Paused.".into()),
        "resume" => change(StateChange::Resume).await.map(|_| "Resumed.".into()),
        "cancel" => change(StateChange::Cancel)
            .await
            .map(|_| "Cancelled: nothing more will be sent.".into()),
        "retry" => app::campaigns::retry(app, actor, id).await.map(|n| {
            format!(
                "{} queued again.",
                counted(n, "failed message", "failed messages")
            )
        }),
        "test" => {
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
        "copy" | "copy-unsent" => {
            match app::campaigns::copy(app, actor, id, copy_for(&action)).await {
                Ok(copy) => {
                    let notice = "This is a copy, a draft: change what you need, then send it.";
                    return Flash::Notice(notice.into()).redirect(
                        &state,
                        &signed,
                        &format!("/admin/campaigns/{copy}"),
                    );
                }
                Err(error) => Err(error),
            }
        }
        _ => Err(AppError::NotFound("no such action".into())),
    };
    let page = format!("/admin/campaigns/{id}");
    match done {
        Ok(notice) => Flash::Notice(notice).redirect(&state, &signed, &page),
        Err(error) => match Refusal::of_button(error) {
            Refusal::OnForm { message, .. } => {
                Flash::Refusal(message).redirect(&state, &signed, &page)
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
    }
}

/// What asking for an approval did, in words.
fn asked_for_approval(submitted: &app::campaigns::Submitted) -> String {
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
pub async fn message(
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
fn framed_message(html: String) -> Response {
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

/// Drafts tried in the composer, rendered, waiting for their frames to load them: kept a few
/// minutes, each for the person who wrote it.
#[derive(Default)]
pub struct Trials {
    rendered: std::sync::Mutex<std::collections::VecDeque<TrialPage>>,
}

struct TrialPage {
    key: String,
    owner: i64,
    made: std::time::Instant,
    html: String,
}

/// Trials kept at once, and how long each.
const TRIALS_KEPT: usize = 256;
const TRIAL_LIFE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Trials {
    fn keep(&self, owner: i64, html: String) -> String {
        use rand::RngCore;
        let mut key = [0u8; 16];
        rand::rng().fill_bytes(&mut key);
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut rendered = self
            .rendered
            .lock()
            .expect("no one panics holding the trials");
        rendered.retain(|t| t.made.elapsed() < TRIAL_LIFE);
        if rendered.len() >= TRIALS_KEPT {
            rendered.pop_front();
        }
        rendered.push_back(TrialPage {
            key: key.clone(),
            owner,
            made: std::time::Instant::now(),
            html,
        });
        key
    }

    fn find(&self, key: &str, owner: i64) -> Option<String> {
        let rendered = self
            .rendered
            .lock()
            .expect("no one panics holding the trials");
        rendered
            .iter()
            .find(|t| t.key == key && t.owner == owner && t.made.elapsed() < TRIAL_LIFE)
            .map(|t| t.html.clone())
    }
}

#[derive(Serialize)]
struct TrialData {
    /// Nothing written yet.
    blank: bool,
    /// Who the audience is, in words.
    described: Option<String>,
    error: Option<String>,
    audience: Vec<AudienceLine>,
    audience_total: u64,
    /// With a distance rule: how many it leaves out for want of a place on the map.
    unplaced: Option<u64>,
    key: Option<String>,
}

/// The composer's live part: who the draft as written would reach, and its message at phone
/// and desktop width. Nothing is stored but the rendering, for its frames.
pub async fn try_draft(
    State(state): State<AppState>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    use axum::response::{Html, IntoResponse};
    let fields = Fields::from_posted(&posted);
    let blank = TrialData {
        blank: true,
        described: None,
        error: None,
        audience: Vec::new(),
        audience_total: 0,
        unplaced: None,
        key: None,
    };
    let tried = match fields.body.trim().is_empty() {
        true => None,
        false => Some(app::campaigns::trial(&state.app, &signed.actor(), fields.draft()).await),
    };
    let data = match tried {
        None => blank,
        Some(Ok(trial)) => TrialData {
            blank: false,
            described: Some(trial.described),
            error: None,
            audience_total: trial.audience.iter().map(|(_, _, n)| n).sum(),
            unplaced: trial.unplaced,
            audience: trial
                .audience
                .into_iter()
                .map(|(code, name, people)| AudienceLine {
                    name: name.or(code).unwrap_or_else(|| "No constituency".into()),
                    people,
                })
                .collect(),
            key: Some(state.trials.keep(signed.session.user, trial.bodies.html)),
        },
        Some(Err(error @ AppError::Invalid { .. })) => TrialData {
            blank: false,
            described: None,
            error: Some(Refusal::words(error)),
            audience: Vec::new(),
            audience_total: 0,
            unplaced: None,
            key: None,
        },
        Some(Err(error)) => return Problem::from(error).page(&state, Some(&signed)),
    };
    match state.console.try_render("campaign_trial", &data) {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering the composer's trial");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A tried draft's message, for the composer's frames (as [`message`] serves a saved one).
pub async fn trial_message(
    State(state): State<AppState>,
    signed: Signed,
    Path(key): Path<String>,
) -> Response {
    match state.trials.find(&key, signed.session.user) {
        Some(html) => framed_message(html),
        None => Problem::not_found("That preview has expired; change the draft again.")
            .page(&state, Some(&signed)),
    }
}

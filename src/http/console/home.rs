//! The dashboard: what the signed-in person's constituencies hold, the campaigns in flight
//! with their progress (kept live by server-sent events), and who was suppressed lately.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;

use super::session::Signed;
use super::{Layout, Problem, Section, Template, render};
use crate::app;
use crate::app::Actor;
use crate::domain::SessionUse;
use crate::domain::{CampaignState, DraftStage, listed, uk_time};
use crate::http::AppState;

/// How often the dashboard's progress is sent again.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct TopicLine {
    name: String,
    slug: String,
    mailable: u64,
}

#[derive(Serialize)]
struct ConstituencyLine {
    /// `None`: the contacts the directory places nowhere.
    code: Option<String>,
    name: String,
    by_topic: Vec<u64>,
}

#[derive(Serialize)]
struct InFlight {
    id: i64,
    name: String,
    state: &'static str,
    sent: u64,
    total: u64,
    percent: u64,
    /// Why canvass itself paused it (the relay refused our login...): the dashboard's banner.
    stopped_because: Option<String>,
}

#[derive(Serialize)]
struct Suppressed {
    at: String,
    reason: String,
    id: String,
    who: String,
}

/// A draft waiting for an approval.
#[derive(Serialize)]
struct Waiting {
    id: i64,
    name: String,
    /// Who wrote it, or who may approve it.
    who: String,
    since: String,
}

#[derive(Serialize)]
struct Data {
    /// Drafts others wrote that the signed-in person may approve, oldest request first.
    waiting_for_me: Vec<Waiting>,
    /// Their own drafts waiting for someone else's approval.
    mine_waiting: Vec<Waiting>,
    contacts: u64,
    in_flight: Vec<InFlight>,
    recent: Vec<Suppressed>,
    scope: Option<String>,
    stats: Stats,
    /// For admins: the rights requests and complaints due within a week, or overdue.
    due: Option<super::registers::DueSoon>,
}

#[derive(Serialize)]
struct Stats {
    topics: Vec<TopicLine>,
    constituencies: Vec<ConstituencyLine>,
}

pub async fn page(State(state): State<AppState>, signed: Signed) -> Response {
    match data(&state, &signed).await {
        Ok(data) => render(
            &state,
            StatusCode::OK,
            Template::Home,
            Layout::new("Dashboard", Section::Home, Some(&signed)),
            data,
        ),
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

/// The drafts waiting for an approval that the signed-in person sees: those they may approve
/// (they wrote none of it, and it reaches no one outside their constituencies), and their own.
async fn approvals(
    state: &AppState,
    signed: &Signed,
) -> Result<(Vec<Waiting>, Vec<Waiting>), Problem> {
    let actor = signed.actor();
    let me = actor.to_string();
    let approves = signed.session.member.role.writes();
    let (mut theirs, mut mine) = (Vec::new(), Vec::new());
    for campaign in app::campaigns::list(&state.app, &actor).await? {
        if campaign.stage != Some(DraftStage::WaitingForApproval) {
            continue;
        }
        let line = |who: String| Waiting {
            id: campaign.id,
            name: campaign.name.clone(),
            who,
            since: campaign.submitted_at.map(uk_time).unwrap_or_default(),
        };
        let authors: Vec<&str> = campaign
            .authors
            .iter()
            .map(|author| author.trim_start_matches("staff:"))
            .collect();
        if campaign.authors.contains(&me) {
            mine.push(line(String::new()));
        } else if approves {
            theirs.push(line(listed(&authors)));
        }
    }
    Ok((theirs, mine))
}

/// The campaigns sending or paused that the actor sees, with how far each has gone.
async fn in_flight(state: &AppState, actor: &Actor) -> Result<Vec<InFlight>, Problem> {
    let mut lines = Vec::new();
    for campaign in app::campaigns::list(&state.app, actor).await? {
        if !matches!(
            campaign.state,
            CampaignState::Queued | CampaignState::Paused
        ) {
            continue;
        }
        let status = app::campaigns::status(&state.app, actor, campaign.id).await?;
        let counts = status.deliveries;
        let total = counts.queued + counts.sent + counts.failed + counts.skipped;
        let done = total - counts.queued;
        lines.push(InFlight {
            id: campaign.id,
            name: campaign.name,
            state: campaign.state.as_str(),
            sent: counts.sent,
            total,
            percent: (done * 100).checked_div(total).unwrap_or(100),
            stopped_because: match campaign.state {
                CampaignState::Paused => status.campaign.paused_reason,
                _ => None,
            },
        });
    }
    Ok(lines)
}

async fn data(state: &AppState, signed: &Signed) -> Result<Data, Problem> {
    let actor = signed.actor();
    let overview = app::contacts::overview(&state.app, &actor).await?;
    let names = app::contacts::constituency_names(&state.app).await?;
    let (waiting_for_me, mine_waiting) = approvals(state, signed).await?;
    Ok(Data {
        waiting_for_me,
        mine_waiting,
        contacts: overview.contacts,
        in_flight: in_flight(state, &actor).await?,
        recent: overview
            .recent
            .into_iter()
            .map(|s| Suppressed {
                at: uk_time(s.at),
                reason: s.reason,
                id: s.public_id.to_string(),
                who: s.name.unwrap_or(s.email),
            })
            .collect(),
        scope: names.of_scope(&signed.session.member.scope),
        stats: stats_of(app::contacts::counts(&state.app, &actor).await?),
        due: super::registers::due_soon(state, signed).await,
    })
}

fn stats_of(counts: app::contacts::MailableCounts) -> Stats {
    Stats {
        topics: counts
            .topics
            .into_iter()
            .map(|(topic, mailable)| TopicLine {
                name: topic.name,
                slug: topic.slug.as_str().to_owned(),
                mailable,
            })
            .collect(),
        constituencies: counts
            .constituencies
            .into_iter()
            .map(|c| ConstituencyLine {
                name: match (c.name, &c.code) {
                    (Some(name), _) => name,
                    (None, Some(code)) => code.clone(),
                    (None, None) => {
                        "No constituency (postcode missing or not in the directory)".to_owned()
                    }
                },
                code: c.code,
                by_topic: c.by_topic,
            })
            .collect(),
    }
}

/// The counts by topic and constituency as a page of their own (the dashboard shows them too),
/// or as the fragment alone for htmx.
pub async fn stats(
    State(state): State<AppState>,
    signed: Signed,
    headers: axum::http::HeaderMap,
) -> Response {
    let counts = match app::contacts::counts(&state.app, &signed.actor()).await {
        Ok(counts) => counts,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let stats = stats_of(counts);
    if headers.contains_key("hx-request") {
        use axum::response::{Html, IntoResponse};
        return match state.console.try_render(Template::HomeStats.name(), &stats) {
            Ok(html) => Html(html).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    render(
        &state,
        StatusCode::OK,
        Template::Stats,
        Layout::new("Counts", Section::Home, Some(&signed)),
        stats,
    )
}

#[derive(Serialize)]
struct Progress {
    in_flight: Vec<InFlight>,
}

/// The campaigns in flight, sent again every two seconds as a `progress` event (the
/// dashboard's htmx swaps it in), for as long as the page is open and the session lives.
/// `X-Accel-Buffering: no` asks a proxy in front (nginx) to pass each event on as it comes
/// rather than hold the stream in its buffer.
pub async fn events(
    State(state): State<AppState>,
    signed: Signed,
) -> (
    [(&'static str, &'static str); 1],
    Sse<impl Stream<Item = Result<Event, Infallible>>>,
) {
    let stream = futures_util::stream::unfold(
        (state, signed, tokio::time::interval(PROGRESS_EVERY)),
        |(state, signed, mut ticks)| async move {
            ticks.tick().await;
            // A session that ended (signed out, disabled, idle) ends its stream.
            match app::staff::session(&state.app, &signed.secret, SessionUse::Page).await {
                Ok(Some(_)) => {}
                _ => return None,
            }
            let lines = in_flight(&state, &signed.actor()).await.unwrap_or_default();
            let html = state
                .console
                .try_render(Template::InFlight.name(), &Progress { in_flight: lines })
                .unwrap_or_default();
            let event = Event::default().event("progress").data(html);
            Some((Ok(event), (state, signed, ticks)))
        },
    );
    (
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
}

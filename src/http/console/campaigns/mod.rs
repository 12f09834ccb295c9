//! The campaigns: their list; one campaign with its audience, its message at phone and desktop
//! width, its approval and its report; writing a new one or changing a draft; and what staff
//! can tell a campaign to do (test, submit, approve, schedule, queue, pause, resume, cancel,
//! retry, copy).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::session::Signed;
use super::{Layout, Problem, Section, Template, render};
use crate::app::{self};
use crate::domain::{CampaignState, DraftStage, uk_date, uk_time};
use crate::http::AppState;

pub(super) mod form;
pub(super) mod page;
pub(super) mod trials;

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
        Template::Campaigns,
        Layout::new("Campaigns", Section::Campaigns, Some(&signed)),
        ListData {
            campaigns: lines,
            writes: signed.session.member.role.writes(),
        },
    )
}

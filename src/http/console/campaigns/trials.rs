//! Drafts tried in the composer before they are saved: rendered once, kept a few minutes for
//! the person who wrote them, and shown in the composer's frames.

use super::form::Fields;
use super::page::{AudienceLine, framed_message};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::super::session::{Posted, SessionForm, Signed};
use super::super::{Problem, Refusal, Template};
use crate::app::{self, AppError};
use crate::http::AppState;

/// Drafts tried in the composer, rendered, waiting for their frames to load them: kept a few
/// minutes, each for the person who wrote it.
#[derive(Default)]
pub struct Trials {
    rendered: std::sync::Mutex<std::collections::VecDeque<TrialPage>>,
}

pub(super) struct TrialPage {
    key: String,
    owner: i64,
    made: std::time::Instant,
    html: String,
}

/// Trials kept at once, and how long each.
pub(super) const TRIALS_KEPT: usize = 256;
pub(super) const TRIAL_LIFE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

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
pub(super) struct TrialData {
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
pub(in crate::http::console) async fn try_draft(
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
    let tried = if fields.body.trim().is_empty() {
        None
    } else {
        Some(app::campaigns::trial(&state.app, &signed.actor(), fields.draft()).await)
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
    match state
        .console
        .try_render(Template::CampaignTrial.name(), &data)
    {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering the composer's trial");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A tried draft's message, for the composer's frames (as [`message`] serves a saved one).
pub(in crate::http::console) async fn trial_message(
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

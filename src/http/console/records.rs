//! What staff look up: the topics people consent to, whether an address is suppressed, and
//! (admins) the audit log.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::flash::Flash;
use super::session::{SessionForm, Signed};
use super::{Layout, Problem, Refusal, Section, Template, render};
use crate::app::audit::{AUDIT_PAGE, AuditQuery};
use crate::app::{self, AppError};
use crate::domain::AuditEntry;
use crate::http::AppState;

#[derive(Serialize)]
struct TopicLine {
    slug: String,
    name: String,
}

#[derive(Serialize)]
struct TopicsData {
    topics: Vec<TopicLine>,
    writes: bool,
    /// A new topic refused, as typed, and why.
    typed: Option<NewTopic>,
    error: Option<String>,
}

pub async fn topics(State(state): State<AppState>, signed: Signed) -> Response {
    topics_page(&state, &signed, StatusCode::OK, None, None).await
}

async fn topics_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    typed: Option<NewTopic>,
    error: Option<String>,
) -> Response {
    let topics = match app::topics::list(&state.app).await {
        Ok(topics) => topics,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    let data = TopicsData {
        topics: topics
            .into_iter()
            .map(|t| TopicLine {
                slug: t.slug.as_str().to_owned(),
                name: t.name,
            })
            .collect(),
        writes: signed.session.member.role.writes(),
        typed,
        error,
    };
    render(
        state,
        status,
        Template::Topics,
        Layout::new("Topics", Section::Topics, Some(signed)),
        data,
    )
}

#[derive(Deserialize, Serialize)]
pub struct NewTopic {
    slug: String,
    name: String,
}

pub async fn add_topic(
    State(state): State<AppState>,
    SessionForm(signed, form): SessionForm<NewTopic>,
) -> Response {
    match app::topics::add(&state.app, &signed.actor(), &form.slug, &form.name).await {
        Ok(topic) => {
            let notice = format!("Added the topic '{}'.", topic.name);
            Flash::Notice(notice).redirect(&state, &signed, "/admin/topics")
        }
        Err(error) => match Refusal::of_form(error) {
            Refusal::OnForm { status, message } => {
                topics_page(&state, &signed, status, Some(form), Some(message)).await
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
    }
}

#[derive(Deserialize)]
pub struct Check {
    #[serde(default)]
    email: String,
}

#[derive(Serialize)]
struct SuppressionData {
    email: String,
    checked: bool,
    suppressed: bool,
    reason: Option<&'static str>,
    since: Option<String>,
    error: Option<String>,
}

/// Is this address suppressed, why, since when.
pub async fn suppressions(
    State(state): State<AppState>,
    signed: Signed,
    Query(check): Query<Check>,
) -> Response {
    let email = check.email.trim().to_owned();
    let mut data = SuppressionData {
        checked: false,
        suppressed: false,
        reason: None,
        since: None,
        error: None,
        email: email.clone(),
    };
    let mut status = StatusCode::OK;
    if !email.is_empty() {
        match app::contacts::suppression(&state.app, &signed.actor(), &email).await {
            Ok(found) => {
                data.checked = true;
                data.suppressed = found.is_some();
                if let Some(found) = found {
                    data.reason = Some(found.reason.as_str());
                    data.since = Some(found.since.format("%-d %b %Y %H:%M UTC").to_string());
                }
            }
            // Nobody held at the address is an answer here, not a missing page.
            Err(AppError::NotFound(message)) => {
                status = StatusCode::NOT_FOUND;
                data.error = Some(message);
            }
            Err(error) => match Refusal::of_form(error) {
                Refusal::OnForm {
                    status: refused,
                    message,
                } => {
                    status = refused;
                    data.error = Some(message);
                }
                Refusal::Page(problem) => return problem.page(&state, Some(&signed)),
            },
        }
    }
    render(
        &state,
        status,
        Template::Suppressions,
        Layout::new("Suppressions", Section::Suppressions, Some(&signed)),
        data,
    )
}

#[derive(Deserialize, Serialize, Default)]
pub struct AuditFilters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    page: Option<u32>,
}

#[derive(Serialize)]
struct AuditData {
    filters: AuditFilters,
    entries: Vec<AuditEntry>,
    total: u64,
    previous: Option<String>,
    next: Option<String>,
}

/// The audit log, newest first, filtered by who and what (admins only).
pub async fn audit(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<AuditFilters>,
) -> Response {
    let page = filters.page.unwrap_or(1).clamp(1, 1_000_000);
    let blank = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let query = AuditQuery {
        actor: blank(&filters.actor),
        action: blank(&filters.action),
        page,
    };
    let (entries, total) = match app::audit::list(&state.app, &signed.actor(), &query).await {
        Ok(found) => found,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let link = |page: u32| {
        let query = [
            ("actor", filters.actor.clone()),
            ("action", filters.action.clone()),
            ("page", page.to_string()),
        ];
        format!(
            "/admin/audit?{}",
            serde_urlencoded::to_string(query).expect("strings encode")
        )
    };
    let shown = u64::from(page - 1) * u64::from(AUDIT_PAGE) + entries.len() as u64;
    let data = AuditData {
        previous: (page > 1).then(|| link(page - 1)),
        next: (shown < total).then(|| link(page + 1)),
        filters,
        entries,
        total,
    };
    render(
        &state,
        StatusCode::OK,
        Template::Audit,
        Layout::new("Audit log", Section::Audit, Some(&signed)),
        data,
    )
}

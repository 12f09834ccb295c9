//! The campaigns: their list, with state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::session::Signed;
use super::{Layout, Problem, render};
use crate::app;
use crate::http::AppState;

#[derive(Serialize)]
struct Line {
    id: i64,
    name: String,
    topic: String,
    subject: String,
    state: &'static str,
    created: String,
    scheduled: Option<String>,
}

#[derive(Serialize)]
struct Data {
    campaigns: Vec<Line>,
}

pub async fn list(State(state): State<AppState>, signed: Signed) -> Response {
    let campaigns = match app::campaigns::list(&state.app, &signed.actor()).await {
        Ok(campaigns) => campaigns,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let campaigns = campaigns
        .into_iter()
        .rev()
        .map(|c| Line {
            id: c.id,
            name: c.name,
            topic: c.topic,
            subject: c.subject,
            state: c.state.as_str(),
            created: c.created_at.format("%-d %b %Y").to_string(),
            scheduled: c
                .scheduled_at
                .map(|at| at.format("%-d %b %Y %H:%M UTC").to_string()),
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "campaigns",
        Layout::new("Campaigns", "campaigns", Some(&signed)),
        Data { campaigns },
    )
}

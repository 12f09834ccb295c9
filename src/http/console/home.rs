//! The dashboard: what the signed-in person's constituencies hold, and the campaigns in flight.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::session::Signed;
use super::{Layout, Problem, render};
use crate::app;
use crate::domain::CampaignState;
use crate::http::AppState;

#[derive(Serialize)]
struct TopicLine {
    name: String,
    slug: String,
    granted: u64,
}

#[derive(Serialize)]
struct InFlight {
    id: i64,
    name: String,
    state: &'static str,
}

#[derive(Serialize)]
struct Data {
    contacts: u64,
    topics: Vec<TopicLine>,
    in_flight: Vec<InFlight>,
    scope: Option<String>,
}

pub async fn page(State(state): State<AppState>, signed: Signed) -> Response {
    match data(&state, &signed).await {
        Ok(data) => render(
            &state,
            StatusCode::OK,
            "home",
            Layout::new("Dashboard", "home", Some(&signed)),
            data,
        ),
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

async fn data(state: &AppState, signed: &Signed) -> Result<Data, Problem> {
    let actor = signed.actor();
    let overview = app::contacts::overview(&state.app, &actor).await?;
    let in_flight = app::campaigns::list(&state.app, &signed.actor())
        .await?
        .into_iter()
        .filter(|c| matches!(c.state, CampaignState::Queued | CampaignState::Paused))
        .map(|c| InFlight {
            id: c.id,
            name: c.name,
            state: c.state.as_str(),
        })
        .collect();
    Ok(Data {
        contacts: overview.contacts,
        topics: overview
            .topics
            .into_iter()
            .map(|(topic, granted)| TopicLine {
                name: topic.name,
                slug: topic.slug.as_str().to_owned(),
                granted,
            })
            .collect(),
        in_flight,
        scope: signed.session.member.scope.as_list(),
    })
}

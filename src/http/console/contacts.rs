//! The contacts: searched and filtered in pages of 50, and one person's details.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::session::Signed;
use super::{Layout, Problem, render};
use crate::app::{self, contacts::Held};
use crate::domain::{ConstituencyCode, TopicSlug};
use crate::http::AppState;
use crate::store::{CONTACTS_PAGE, ConsentFilter, ContactQuery, ContactSearch};

/// The list's filters, as the form sends them: blank means none.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    constituency: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    consent: String,
    #[serde(default)]
    page: Option<u32>,
}

impl Filters {
    fn query(&self) -> ContactQuery {
        ContactQuery {
            search: ContactSearch::parse(&self.q),
            constituency: ConstituencyCode::parse(&self.constituency).ok(),
            topic: TopicSlug::parse(&self.topic).ok(),
            consent: match self.consent.as_str() {
                "granted" => Some(ConsentFilter::Granted),
                "withdrawn" => Some(ConsentFilter::Withdrawn),
                _ => None,
            },
            page: self.page.unwrap_or(1).clamp(1, 1_000_000),
        }
    }

    /// The query string of page `page` of the same search.
    fn link(&self, page: u32) -> String {
        let pairs = [
            ("q", self.q.as_str()),
            ("constituency", self.constituency.as_str()),
            ("topic", self.topic.as_str()),
            ("consent", self.consent.as_str()),
        ];
        let mut query: Vec<(&str, String)> = pairs
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key, value.to_owned()))
            .collect();
        query.push(("page", page.to_string()));
        format!(
            "/admin/contacts?{}",
            serde_urlencoded::to_string(query).expect("pairs of strings encode")
        )
    }
}

#[derive(Serialize)]
struct Line {
    public_id: String,
    email: String,
    name: Option<String>,
    postcode: Option<String>,
    constituency: Option<String>,
    status: &'static str,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct ListData {
    filters: Filters,
    contacts: Vec<Line>,
    total: u64,
    first: u64,
    last: u64,
    previous: Option<String>,
    next: Option<String>,
    constituencies: Vec<Choice>,
    topics: Vec<Choice>,
    consents: Vec<Choice>,
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    match list_data(&state, &signed, filters).await {
        Ok(data) => render(
            &state,
            StatusCode::OK,
            "contacts",
            Layout::new("Contacts", "contacts", Some(&signed)),
            data,
        ),
        Err(problem) => problem.page(&state, Some(&signed)),
    }
}

async fn list_data(
    state: &AppState,
    signed: &Signed,
    filters: Filters,
) -> Result<ListData, Problem> {
    let actor = signed.actor();
    let query = filters.query();
    let found = app::contacts::find(&state.app, &actor, &query).await?;
    let page = u64::from(query.page);
    let size = u64::from(CONTACTS_PAGE);
    let shown = found.contacts.len() as u64;
    let first = if shown == 0 { 0 } else { (page - 1) * size + 1 };
    let last = (page - 1) * size + shown;
    let constituencies = app::contacts::constituencies(&state.app, &actor)
        .await?
        .into_iter()
        .map(|(code, name)| Choice {
            selected: code == filters.constituency,
            label: name.unwrap_or_else(|| code.clone()),
            value: code,
        })
        .collect();
    let topics = app::topics::list(&state.app)
        .await?
        .into_iter()
        .map(|topic| Choice {
            selected: topic.slug.as_str() == filters.topic,
            value: topic.slug.as_str().to_owned(),
            label: topic.name,
        })
        .collect();
    let consents = [
        ("granted", "Consent given"),
        ("withdrawn", "Consent withdrawn"),
    ]
    .into_iter()
    .map(|(value, label)| Choice {
        selected: value == filters.consent,
        value: value.to_owned(),
        label: label.to_owned(),
    })
    .collect();
    Ok(ListData {
        previous: (page > 1).then(|| filters.link(query.page - 1)),
        next: (last < found.total).then(|| filters.link(query.page + 1)),
        contacts: found
            .contacts
            .into_iter()
            .map(|c| Line {
                public_id: c.public_id.to_string(),
                email: c.email,
                name: c.name,
                postcode: c.postcode,
                constituency: c.constituency,
                status: match (c.suppressed, c.restricted) {
                    (true, _) => "suppressed",
                    (false, true) => "restricted",
                    (false, false) => "",
                },
            })
            .collect(),
        total: found.total,
        first,
        last,
        filters,
        constituencies,
        topics,
        consents,
    })
}

/// One person: everything held, as an access request would give it.
pub async fn details(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let held = match app::contacts::export(&state.app, &signed.actor(), &id).await {
        Ok(Held::Contact(export)) => export,
        Ok(Held::Signups { .. }) => {
            return Problem::NotFound("No contact has that id.".into()).page(&state, Some(&signed));
        }
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    render(
        &state,
        StatusCode::OK,
        "contact",
        Layout::new("Contact", "contacts", Some(&signed)),
        held,
    )
}

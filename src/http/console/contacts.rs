//! The contacts: searched and filtered in pages of 50, and one person's details.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::flash::Flash;
use super::session::{Posted, SessionForm, Signed};
use super::{Layout, Problem, Refusal, Section, Template, named, render};
use crate::app::contacts::{CONTACTS_PAGE, ConsentFilter, ContactQuery, ContactSearch, Matches};
use crate::app::contacts::{Held, Withdrawn};
use crate::app::{self, AppError};
use crate::domain::{
    ConstituencyCode, ContactDraft, ContactExport, ContactRules, TopicSlug, thousands, uk_day,
};
use crate::http::AppState;

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
    /// Read leniently: anything but a page number is the first page.
    #[serde(default)]
    page: Option<String>,
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
            page: self
                .page
                .as_deref()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .unwrap_or(1)
                .clamp(1, 1_000_000),
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
    /// Whether any match.
    found: bool,
    /// How many match, in words: "25,012", or "more than 1,050" for a search matching many.
    total: String,
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
            Template::Contacts,
            Layout::new("Contacts", Section::Contacts, Some(&signed)),
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
    let last = if shown == 0 {
        0
    } else {
        (page - 1) * size + shown
    };
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
        // None past the end, where the page is empty.
        next: (shown > 0 && found.total.beyond(last)).then(|| filters.link(query.page + 1)),
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
        found: found.total.counted() > 0,
        total: match found.total {
            Matches::Exactly(n) => thousands(n),
            Matches::MoreThan(n) => format!("more than {}", thousands(n)),
        },
        first,
        last,
        filters,
        constituencies,
        topics,
        consents,
    })
}

#[derive(Serialize)]
struct DetailsData {
    id: String,
    #[serde(flatten)]
    held: Box<ContactExport>,
    topics: Vec<Choice>,
    /// Each topic's name by its slug, for the consents and their history.
    topic_names: std::collections::HashMap<String, String>,
    /// When the guardian agreed, as the form takes it back: the day, or the time when it had one.
    guardian_day: Option<String>,
    writes: bool,
}

/// One person: everything held, as an access request would give it, and what staff may do.
pub async fn details(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let (state, signed, id) = (&state, &signed, id.as_str());
    let held = match app::contacts::view(&state.app, &signed.actor(), id).await {
        Ok(Held::Contact(export)) => export,
        Ok(Held::Signups { .. }) => {
            return Problem::not_found("No contact has that id.").page(state, Some(signed));
        }
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    let topics = match app::topics::list(&state.app).await {
        Ok(topics) => topics,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    let topic_names = topics
        .iter()
        .map(|topic| (topic.slug.as_str().to_owned(), topic.name.clone()))
        .collect();
    let topics = topics
        .into_iter()
        .map(|topic| Choice {
            selected: held
                .consents
                .iter()
                .any(|c| c.granted && c.topic == topic.slug.as_str()),
            value: topic.slug.as_str().to_owned(),
            label: topic.name,
        })
        .collect();
    let guardian_day = held.guardian.as_ref().map(|g| {
        let day = uk_day(g.given_at);
        let midnight = ContactRules::day_start(day);
        if midnight == Some(g.given_at) {
            day.to_string()
        } else {
            g.given_at.to_rfc3339()
        }
    });
    let data = DetailsData {
        id: held.public_id.to_string(),
        guardian_day,
        held,
        topics,
        topic_names,
        writes: signed.session.member.role.writes(),
    };
    render(
        state,
        StatusCode::OK,
        Template::Contact,
        Layout::new("Contact", Section::Contacts, Some(signed)),
        data,
    )
}

/// A button on a person's page.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Button {
    Save,
    Withdraw,
    Restrict,
    Unrestrict,
    Erase,
}

/// What a button on a person's page does: save their details (and consents they gave), record
/// a withdrawal they asked for, restrict or unrestrict them, erase them.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let Some(button) = named::<Button>(&action) else {
        return Problem::not_found("no such action").page(&state, Some(&signed));
    };
    let (app, actor) = (&state.app, &signed.actor());
    let done: Result<String, AppError> = match button {
        Button::Save => {
            let held = match app::contacts::view(app, actor, &id).await {
                Ok(Held::Contact(held)) => held,
                Ok(Held::Signups { .. }) => {
                    return Problem::not_found("No contact has that id.")
                        .page(&state, Some(&signed));
                }
                Err(error) => return Problem::from(error).page(&state, Some(&signed)),
            };
            // Only a topic newly ticked records a consent (and needs to say how it was given);
            // unticking is no withdrawal: that has its own form.
            let ticked = posted.all("topic");
            let new_topics: Vec<&str> = ticked
                .iter()
                .map(String::as_str)
                .filter(|topic| {
                    !held
                        .consents
                        .iter()
                        .any(|c| c.granted && c.topic.as_str() == *topic)
                })
                .collect();
            let source = match (posted.one("source").trim(), new_topics.is_empty()) {
                ("", true) => "staff console",
                (source, _) => source,
            };
            let draft = ContactDraft {
                email: &held.email,
                name: posted.one("name"),
                postcode: posted.one("postcode"),
                date_of_birth: posted.one("date_of_birth"),
                guardian_consent: Some(posted.one("guardian_consent") == "yes"),
                guardian_name: posted.one("guardian_name"),
                guardian_relationship: posted.one("guardian_relationship"),
                guardian_consent_at: posted.one("guardian_consent_at"),
                guardian_method: posted.one("guardian_method"),
                topics: new_topics,
                source,
                ..ContactDraft::default()
            };
            app::contacts::save(app, actor, &draft).await.map(|saved| {
                let mut notice = "Saved.".to_owned();
                for grant in &saved.withheld {
                    notice.push_str(&format!(" They {grant}."));
                }
                notice
            })
        }
        Button::Withdraw => {
            let topics = posted.all("topic");
            let note = Some(posted.one("note")).filter(|n| !n.trim().is_empty());
            app::contacts::withdraw(app, actor, &id, &topics, posted.one("source"), note)
                .await
                .map(|withdrawn| match withdrawn {
                    Withdrawn::Topics(n) => format!("Withdrawal recorded for {n} topic(s)."),
                    _ => "Unsubscribed from everything: never mailed again.".to_owned(),
                })
        }
        Button::Restrict => app::contacts::restrict(app, actor, &id, true)
            .await
            .map(|_| "Restricted: kept, never mailed.".to_owned()),
        Button::Unrestrict => app::contacts::restrict(app, actor, &id, false)
            .await
            .map(|_| "No longer restricted.".to_owned()),
        Button::Erase => {
            if posted.one("confirm") != "yes" {
                Err(AppError::invalid(
                    "confirm",
                    "tick the box to confirm the person asked to be erased",
                ))
            } else {
                match app::contacts::erase(app, actor, &id).await {
                    Ok(_) => {
                        let notice = "Erased: nothing is held on the person but a hashed \
                             suppression entry, so that they are never imported or mailed again.";
                        return Flash::Notice(notice.into()).redirect(
                            &state,
                            &signed,
                            "/admin/contacts",
                        );
                    }
                    Err(error) => Err(error),
                }
            }
        }
    };
    Refusal::after_button(&state, &signed, &format!("/admin/contacts/{id}"), done)
}

/// Everything held on the person, as the file they are entitled to (an access request).
pub async fn download(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    match app::contacts::export(&state.app, &signed.actor(), &id).await {
        Ok(held) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"contact.json\"",
                ),
            ],
            serde_json::to_string_pretty(&held).unwrap_or_default(),
        )
            .into_response(),
        Err(error) => Problem::from(error).page(&state, Some(&signed)),
    }
}

//! Writing a new campaign or changing a draft: the composer's form, its fields as people typed
//! them, and what a refusal shows beside them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::super::session::{Posted, SessionForm, Signed};
use super::super::{Layout, Problem, Refusal, Section, Template, render, see_other};
use crate::app::campaigns::Campaign;
use crate::app::{self, AppError};
use crate::domain::{CampaignChanges, CampaignDraft, CampaignState};
use crate::http::AppState;

/// A campaign's fields as the form holds them.
#[derive(Debug, Default, Serialize)]
pub struct Fields {
    name: String,
    topic: String,
    subject: String,
    /// `markdown` or `html`.
    format: String,
    pub(super) body: String,
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
pub(super) const WITHIN_MILES_OFFERED: [u32; 5] = [1, 3, 5, 10, 25];

/// The composer's choice of distance: anyone its other rules reach, or only those within one
/// of the distances offered, or within the one `chosen` (set at the command line, say).
pub(super) fn distance_choices(chosen: &str) -> Vec<Choice> {
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
    pub(super) fn from_posted(posted: &Posted) -> Self {
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

    pub(super) fn draft(&self) -> CampaignDraft {
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
pub(super) struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
pub(super) struct FormData {
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

pub(super) async fn form_page(
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
        Template::CampaignForm,
        Layout::new(title, Section::Campaigns, Some(signed)),
        data,
    )
}

/// The form to write a new campaign.
pub(in crate::http::console) async fn new(
    State(state): State<AppState>,
    signed: Signed,
) -> Response {
    let fields = Fields {
        format: "markdown".into(),
        ..Fields::default()
    };
    form_page(&state, &signed, StatusCode::OK, None, fields, None).await
}

pub(in crate::http::console) async fn create(
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
pub(super) async fn refused_form(
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
pub(in crate::http::console) async fn edit(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<i64>,
) -> Response {
    match app::campaigns::status(&state.app, &signed.actor(), id).await {
        Ok(status) if status.campaign.state == CampaignState::Draft => {
            let fields = Fields::of(&status.campaign);
            form_page(&state, &signed, StatusCode::OK, Some(id), fields, None).await
        }
        Ok(_) => see_other(&format!("/admin/campaigns/{id}")),
        Err(error) => Problem::from(error).page(&state, Some(&signed)),
    }
}

pub(in crate::http::console) async fn update(
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

//! Campaign and event mailings, from draft to done. Here: writing one (create, edit, copy) and
//! the checks a draft passes; beside it, [`messages`] (preview, test, trial), [`lifecycle`]
//! (schedule, queue, pause, submit, approve...) and [`report`].

use chrono::Utc;

use super::{Actor, App, AppError, Conflict, Result};
use crate::domain::{
    Audience, CampaignChanges, CampaignDraft, CampaignSummary, DeliveryCounts, NewCampaign, Scope,
    first_remote_resource,
};
use crate::mail::render::{TemplateError, Templates, in_background, markdown_template};
use crate::store::{StateChangeOutcome, StoreError};

pub use crate::store::{Backlog, Campaign, StateChange};

mod lifecycle;
mod messages;
mod report;

pub use lifecycle::{
    Action, ActionOutcome, Submitted, act, approve, change, queue, retry, schedule, submit,
    unschedule,
};
pub use messages::{Preview, TEST_MESSAGES_PER_MINUTE, Trial, message, preview, test, trial};
pub use report::{PausedByWorker, backlog, paused_by_worker, report};

/// A campaign and how its deliveries stand.
#[derive(Debug, Clone)]
pub struct CampaignStatus {
    pub campaign: Campaign,
    pub deliveries: DeliveryCounts,
}

/// The campaigns the actor sees: those that reach no one outside their constituencies.
pub async fn list(app: &App, actor: &Actor) -> Result<Vec<CampaignSummary>> {
    Ok(app.store.list_campaigns(actor.scope()).await?)
}

pub async fn status(app: &App, actor: &Actor, id: i64) -> Result<CampaignStatus> {
    let campaign = find(app, actor, id).await?;
    let deliveries = app.store.delivery_counts(id).await?;
    Ok(CampaignStatus {
        campaign,
        deliveries,
    })
}

/// Creates a draft from everything staff wrote; its id. It reaches no one outside its
/// maker's constituencies, and one made by staff waits for another person's approval (unless
/// `CANVASS_REQUIRE_APPROVAL` is off).
pub async fn create(app: &App, actor: &Actor, draft: CampaignDraft) -> Result<i64> {
    super::may_write(actor)?;
    let campaign = parse(app, draft, actor.scope()).await?;
    within_scope(actor, &campaign)?;
    store_new(app, actor, &campaign, None).await
}

/// Refuses a campaign aimed at constituencies beyond the actor's: it could reach no one there,
/// and would say it is for them.
fn within_scope(actor: &Actor, campaign: &NewCampaign) -> Result<()> {
    let scope = actor.scope();
    match campaign
        .audience
        .constituencies
        .iter()
        .find(|code| !scope.covers(Some(code.as_str())))
    {
        None => Ok(()),
        Some(code) => Err(AppError::invalid(
            "constituencies",
            format!("{code} is not one of your constituencies"),
        )),
    }
}

/// Stores a new draft, or a copy of draft `source` (which keeps its authors).
async fn store_new(
    app: &App,
    actor: &Actor,
    campaign: &NewCampaign,
    source: Option<i64>,
) -> Result<i64> {
    let needs_approval = app.require_approval && matches!(actor, Actor::Staff(_));
    let (scope, store) = (actor.scope(), &app.store);
    let stored = match source {
        None => {
            store
                .create_campaign(campaign, scope, needs_approval, actor)
                .await
        }
        Some(source) => {
            store
                .create_campaign_copy(source, campaign, scope, needs_approval, actor)
                .await
        }
    };
    match stored {
        Ok(id) => Ok(id),
        Err(e) => Err(refused_by_store(e)),
    }
}

/// Changes a draft: each field given replaces what it has. A campaign past its draft is
/// refused: copy it instead.
pub async fn edit(app: &App, actor: &Actor, id: i64, changes: CampaignChanges) -> Result<()> {
    super::may_write(actor)?;
    let held = find(app, actor, id).await?;
    let campaign = parse(
        app,
        changes.over(CampaignDraft::from(&held.spec)),
        &held.limit,
    )
    .await?;
    within_scope(actor, &campaign)?;
    match app.store.update_draft(id, &campaign, actor).await {
        Ok(StateChangeOutcome::Changed(_)) => Ok(()),
        Ok(StateChangeOutcome::Refused(state)) => Err(AppError::conflict(
            Conflict::Refused,
            format!("campaign {id} is {state}; only a draft can be changed (copy it)"),
        )),
        Ok(StateChangeOutcome::NotFound) => Err(no_campaign(id)),
        Err(e) => Err(refused_by_store(e)),
    }
}

/// Whom a copy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFor {
    /// Whoever the campaign reaches, as the original did.
    Everyone,
    /// Only the people who have not had the original (nor what the original left out for
    /// having had it): after a cancel, the rest.
    NotYetSent,
}

/// A new draft from any campaign, its name ending "(copy)"; the new id.
pub async fn copy(app: &App, actor: &Actor, id: i64, copy_for: CopyFor) -> Result<i64> {
    super::may_write(actor)?;
    let mut spec = find(app, actor, id).await?.spec;
    spec.name = format!("{} (copy)", spec.name);
    if copy_for == CopyFor::NotYetSent {
        spec.audience.excluding.push(id);
    }
    // The copy reaches what its copier may reach, which may hold people in no constituency
    // whom the original could not: its templates are checked again for them.
    check_templates(&spec, actor.scope())
        .await
        .map_err(|error| written_as(&spec, error))?;
    store_new(app, actor, &spec, Some(id)).await
}

/// Who `audience` is within `limit`, in words, each constituency by its name.
pub async fn described(app: &App, audience: &Audience, limit: &Scope) -> Result<String> {
    let names = super::contacts::constituency_names(app).await?;
    let mut said = match (
        audience.is_everyone(),
        names.of_scope(limit),
        &audience.near,
    ) {
        (true, Some(places), None) => {
            format!("everyone in {places} who agreed to hear about its topic")
        }
        (true, Some(places), Some(near)) => format!("everyone in {places} {near}"),
        _ => audience.in_words(|code| names.of(code.as_str())),
    };
    if !audience.excluding.is_empty() {
        let mut had = Vec::new();
        for id in &audience.excluding {
            match app.store.campaign(*id).await? {
                Some(campaign) => had.push(format!("“{}”", campaign.spec.name)),
                None => had.push(format!("campaign {id}")),
            }
        }
        said.push_str(&format!(
            "; not those who were sent {}",
            crate::domain::listed(&had)
        ));
    }
    let mut chars = said.chars();
    Ok(match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => said,
    })
}

/// Campaign `id`, if the actor sees it: it reaches no one outside their constituencies.
async fn find(app: &App, actor: &Actor, id: i64) -> Result<Campaign> {
    app.store
        .campaign(id)
        .await?
        .filter(|campaign| actor.scope().contains(&campaign.limit))
        .ok_or_else(|| no_campaign(id))
}

/// Who a draft would reach today, by constituency: (code, name, people), largest first.
pub async fn audience(
    app: &App,
    actor: &Actor,
    id: i64,
) -> Result<Vec<(Option<String>, Option<String>, u64)>> {
    let campaign = find(app, actor, id).await?;
    let today = Utc::now().date_naive();
    Ok(app
        .store
        .audience_counts(&campaign.spec, &campaign.limit, today)
        .await?)
}

/// Parses a draft before anything is stored: its constituencies by code or name, then every
/// field, then its templates compiled and tried with sample values.
/// A draft as staff wrote it, checked: `limit`, the constituencies it may reach (its maker's,
/// or what it holds already).
async fn parse(app: &App, mut draft: CampaignDraft, limit: &Scope) -> Result<NewCampaign> {
    draft.constituencies = app
        .store
        .constituency_codes(&draft.constituencies)
        .await?
        .map_err(|e| AppError::invalid("constituencies", e))?;
    let mut campaign = draft
        .parse(Utc::now())
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    // From, and where replies go, are the party's own: a Reply-To elsewhere would carry the
    // party's name to a stranger's mailbox.
    for (field, mailbox, what) in [
        ("from", &campaign.from, "send from"),
        ("reply_to", &campaign.reply_to, "take replies at"),
    ] {
        if let Some(mailbox) = mailbox
            && !app.sender_domains.contains(&mailbox.domain())
        {
            return Err(AppError::invalid(
                field,
                format!(
                    "canvass does not {what} {}: use an address at {} (CANVASS_FROM's domain, \
                     and CANVASS_SENDER_DOMAINS)",
                    mailbox.domain(),
                    app.sender_domains.join(" or ")
                ),
            ));
        }
    }
    if let Some(markdown) = campaign.markdown.clone() {
        campaign.html_template = in_background(move || markdown_template(&markdown))
            .await
            .map_err(|error| written_as(&campaign, error))?;
    }
    // An image loaded from elsewhere tells its server who opened the message, and when: the
    // author could watch the approver and every recipient.
    if !app.remote_images
        && let Some(url) = first_remote_resource(&campaign.html_template)
    {
        let field = match campaign.markdown {
            Some(_) => "markdown",
            None => "html_template",
        };
        let url: String = url.chars().take(80).collect();
        return Err(AppError::invalid(
            field,
            format!(
                "it loads {url} from elsewhere, which would tell that server who opens the \
                 message: link to it instead (remote images need CANVASS_REMOTE_IMAGES=true)"
            ),
        ));
    }
    check_templates(&campaign, limit)
        .await
        .map_err(|error| written_as(&campaign, error))?;
    Ok(campaign)
}

/// What a campaign's templates must pass to reach its audience within `limit`. Only an
/// audience that can hold someone outside every constituency (everyone, or a postcode area,
/// where a postcode may be missing from the directory) needs a guard around a
/// constituency's name.
async fn check_templates(campaign: &NewCampaign, limit: &Scope) -> Result<(), TemplateError> {
    let everyone_placed = limit.constituencies().is_some() || campaign.audience.everyone_placed();
    Templates::check_in_background(campaign, !everyone_placed).await
}

/// A fault in a campaign's template, in its author's terms: a Markdown campaign's template is
/// made from its Markdown, which the fault is put to (the HTML made from it is not theirs).
fn written_as(campaign: &NewCampaign, error: TemplateError) -> AppError {
    match &campaign.markdown {
        Some(_) => {
            let TemplateError::Invalid { message, .. } = error;
            AppError::invalid("markdown", message)
        }
        None => template_error(error),
    }
}

fn template_error(error: TemplateError) -> AppError {
    let TemplateError::Invalid { part, .. } = &error;
    let field = match *part {
        "text" => "text_template",
        _ => "html_template",
    };
    AppError::invalid(field, error)
}

/// `--as` names someone the campaign would not reach: their details are not shown for it.
fn not_in_audience() -> AppError {
    AppError::invalid(
        "as",
        "nobody this campaign would reach today has that address (restricted, without consent \
         for its topic, outside its audience, or not held)",
    )
}

fn no_campaign(id: i64) -> AppError {
    AppError::NotFound(format!("no campaign {id}"))
}

/// A campaign the store would not write: a topic it lacks, a venue it cannot place; else the
/// store's own error.
fn refused_by_store(error: StoreError) -> AppError {
    match error {
        StoreError::UnknownTopic(topic) => no_topic(&topic),
        e @ StoreError::VenueUnplaced(_) => AppError::invalid("event_postcode", e.to_string()),
        e => e.into(),
    }
}

fn no_topic(topic: &str) -> AppError {
    AppError::invalid(
        "topic",
        format!("there is no topic '{topic}'; see `canvass topics list`"),
    )
}

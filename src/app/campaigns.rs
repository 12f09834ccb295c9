//! Campaign and event mailings, from draft to done.

use chrono::{DateTime, Utc};

use super::{Actor, App, AppError, Conflict, Result};
use crate::domain::{
    Audience, CampaignChanges, CampaignDraft, CampaignReport, CampaignState, CampaignSummary,
    DeliveryCounts, Email, NewCampaign, ReportCounts, Scope, first_remote_resource, parse_schedule,
};
use crate::mail::MessageError;
use crate::mail::render::{
    Bodies, Footer, MessageVars, TemplateError, Templates, in_background, markdown_template,
};
use crate::store::{
    ApproveOutcome, DraftOutcome, Imprint, RetryOutcome, StateChangeOutcome, StoreError,
    SubmitOutcome,
};

pub use crate::store::{Backlog, Campaign, StateChange};

/// A campaign and how its deliveries stand.
#[derive(Debug, Clone)]
pub struct CampaignStatus {
    pub campaign: Campaign,
    pub deliveries: DeliveryCounts,
}

/// What a campaign would send today.
#[derive(Debug, Clone)]
pub struct Preview {
    pub state: CampaignState,
    /// Who would receive it if it were queued now.
    pub audience_size: u64,
    pub subject: String,
    /// Rendered with the values of the contact asked for, or else of the first person it would
    /// reach, or else sample ones; its links lead to a page that says it was a test.
    pub bodies: Bodies,
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

/// The audience size today and the message rendered for `as_contact` (an address), or for
/// the first person it would reach, or with sample values.
pub async fn preview(
    app: &App,
    actor: &Actor,
    id: i64,
    as_contact: Option<&str>,
) -> Result<Preview> {
    let (campaign, subject, bodies) = rendered(app, actor, id, as_contact).await?;
    let today = Utc::now().date_naive();
    let audience_size = app
        .store
        .audience_counts(&campaign.spec, &campaign.limit, today)
        .await?
        .iter()
        .map(|(_, _, n)| n)
        .sum();
    Ok(Preview {
        state: campaign.state,
        audience_size,
        subject,
        bodies,
    })
}

/// The campaign's message as [`preview`] renders it, without counting its audience (which
/// reads every contact): for the console's frames.
pub async fn message(app: &App, actor: &Actor, id: i64) -> Result<Bodies> {
    Ok(rendered(app, actor, id, None).await?.2)
}

async fn rendered(
    app: &App,
    actor: &Actor,
    id: i64,
    as_contact: Option<&str>,
) -> Result<(Campaign, String, Bodies)> {
    let campaign = find(app, actor, id).await?;
    let as_contact = as_contact
        .map(Email::parse)
        .transpose()
        .map_err(|e| AppError::invalid("as", e))?;
    let today = Utc::now().date_naive();
    let recipient = app
        .store
        .sample_recipient(id, as_contact.as_ref(), today)
        .await?;
    if as_contact.is_some() && recipient.is_none() {
        return Err(not_in_audience());
    }
    let templates = Templates::compile_in_background(&campaign.spec)
        .await
        .map_err(template_error)?;
    let event = campaign.spec.event.as_ref();
    let vars = MessageVars::trial(recipient.as_ref(), event, &app.base_url);
    let footer = Footer {
        publisher: &app.publisher,
        topic: &campaign.topic_name,
    };
    let bodies = templates.render(&vars, &footer).map_err(template_error)?;
    let subject = campaign.spec.subject.clone();
    Ok((campaign, subject, bodies))
}

/// Schedules a draft to be queued by itself at `at`: RFC 3339, or `YYYY-MM-DD HH:MM` read
/// as UK time. The time it will be queued.
pub async fn schedule(app: &App, actor: &Actor, id: i64, at: &str) -> Result<DateTime<Utc>> {
    super::may_write(actor)?;
    let at = parse_schedule(at, Utc::now()).map_err(|e| AppError::invalid("at", e))?;
    imprinted(app, &find(app, actor, id).await?)?;
    set_schedule(app, actor, id, Some(at)).await?;
    Ok(at)
}

pub async fn unschedule(app: &App, actor: &Actor, id: i64) -> Result<()> {
    super::may_write(actor)?;
    find(app, actor, id).await?;
    set_schedule(app, actor, id, None).await
}

async fn set_schedule(app: &App, actor: &Actor, id: i64, at: Option<DateTime<Utc>>) -> Result<()> {
    let outcome = app
        .store
        .schedule_campaign(id, at, actor, imprint(app))
        .await?;
    cleared(id, outcome, "scheduled")
}

/// Snapshots a draft's audience into deliveries; how many. Staff queue only a version another
/// person approved (checked by the statement that queues it).
pub async fn queue(app: &App, actor: &Actor, id: i64) -> Result<u64> {
    super::may_write(actor)?;
    imprinted(app, &find(app, actor, id).await?)?;
    let outcome = app.store.queue_campaign(id, actor, imprint(app)).await?;
    cleared(id, outcome, "queued")
}

/// Whether the digital imprint is set.
fn imprint(app: &App) -> Imprint {
    Imprint::of(app.publisher.imprint.as_deref())
}

/// Refuses election material while no imprint is set (the statement that queues or schedules
/// it refuses it too).
fn imprinted(app: &App, campaign: &Campaign) -> Result<()> {
    match (campaign.spec.election_material, imprint(app)) {
        (true, Imprint::Missing) => Err(AppError::conflict(
            Conflict::NoImprint,
            "this is election material: it must carry the digital imprint, and CANVASS_IMPRINT \
             is not set (\"Promoted by ... on behalf of ..., both at ...\")",
        )),
        _ => Ok(()),
    }
}

/// What queueing or scheduling (`done`) draft `id` came to.
fn cleared<T>(id: i64, outcome: DraftOutcome<T>, done: &str) -> Result<T> {
    match outcome {
        DraftOutcome::Done(value) => Ok(value),
        DraftOutcome::Uncleared => Err(AppError::conflict(
            Conflict::Unapproved,
            format!(
                "campaign {id} needs another organiser's or admin's approval of this version \
                 first"
            ),
        )),
        DraftOutcome::NotDraft(state) => Err(AppError::conflict(
            Conflict::Refused,
            format!("campaign {id} is {state}; only a draft can be {done}"),
        )),
        DraftOutcome::NotFound => Err(no_campaign(id)),
    }
}

/// Pauses, resumes or cancels a campaign; its state now.
pub async fn change(
    app: &App,
    actor: &Actor,
    id: i64,
    change: StateChange,
) -> Result<CampaignState> {
    super::may_write(actor)?;
    find(app, actor, id).await?;
    match app.store.change_campaign_state(id, change, actor).await? {
        StateChangeOutcome::Changed(state) => Ok(state),
        StateChangeOutcome::Refused(state) => Err(AppError::conflict(
            Conflict::Refused,
            format!("campaign {id} is {state}; that cannot change it"),
        )),
        StateChangeOutcome::NotFound => Err(no_campaign(id)),
    }
}

/// Queues again the deliveries that failed for reasons other than the recipient's address;
/// how many.
pub async fn retry(app: &App, actor: &Actor, id: i64) -> Result<u64> {
    super::may_write(actor)?;
    find(app, actor, id).await?;
    match app.store.retry_campaign(id, actor).await? {
        RetryOutcome::Requeued(n) => Ok(n),
        RetryOutcome::Refused(state) => Err(AppError::conflict(
            Conflict::Refused,
            format!("campaign {id} is {state}; nothing to retry"),
        )),
        RetryOutcome::NotFound => Err(no_campaign(id)),
    }
}

/// What a campaign did: its deliveries by state, and the bounces, complaints and unsubscribes
/// its messages brought, in total and by constituency.
pub async fn report(app: &App, actor: &Actor, id: i64) -> Result<CampaignReport> {
    let campaign = find(app, actor, id).await?;
    let scope = actor.scope();
    let mut by_constituency = app.store.campaign_report(id).await?;
    // A campaign the actor sees reaches only their constituencies; someone who has moved away
    // since is counted where they were, and shown only to those who see there.
    by_constituency.retain(|c| scope.covers(c.code.as_deref()));
    let mut total = ReportCounts::default();
    for constituency in &by_constituency {
        total += constituency.counts;
    }
    Ok(CampaignReport {
        id,
        name: campaign.spec.name,
        state: campaign.state,
        total,
        by_constituency,
    })
}

/// The most test messages one campaign sends in a minute, whoever asks.
pub const TEST_MESSAGES_PER_MINUTE: u64 = 5;

/// Sends the campaign's message to each address in `to` (staff send only to people on the
/// staff), as a test: `[Test] ` before its subject, with the values of the contact at `as_contact` or sample ones, its links leading to
/// a page that says it was a test. It never enters the ledger, and a campaign sends at most
/// [`TEST_MESSAGES_PER_MINUTE`]. How many were sent.
pub async fn test(
    app: &App,
    actor: &Actor,
    id: i64,
    to: &[String],
    as_contact: Option<&str>,
) -> Result<usize> {
    super::may_write(actor)?;
    let mailer = app.mailer.as_ref().ok_or_else(|| {
        AppError::conflict(
            Conflict::Refused,
            "no mail transport is configured for test messages",
        )
    })?;
    let to = to
        .iter()
        .map(|address| Email::parse(address))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::invalid("to", e))?;
    if to.is_empty() || to.len() as u64 > TEST_MESSAGES_PER_MINUTE {
        return Err(AppError::invalid(
            "to",
            format!("name 1 to {TEST_MESSAGES_PER_MINUTE} addresses"),
        ));
    }
    // Staff send tests only to people on the staff: an unapproved message reaches no one else.
    if matches!(actor, Actor::Staff(_)) {
        for address in &to {
            if app.store.staff_user_id(address).await?.is_none() {
                return Err(AppError::invalid(
                    "to",
                    format!(
                        "{} is not on the staff: a test goes only to people who are",
                        address.as_str()
                    ),
                ));
            }
        }
    }
    for address in &to {
        if let Some(held) = app.store.suppression(&address.hash()).await? {
            return Err(AppError::invalid(
                "to",
                format!(
                    "{} is on the suppression list ({}): canvass sends it nothing, tests included",
                    address.as_str(),
                    held.reason.as_str()
                ),
            ));
        }
    }
    let campaign = find(app, actor, id).await?;
    let recipient = match as_contact {
        Some(address) => {
            let address = Email::parse(address).map_err(|e| AppError::invalid("as", e))?;
            let today = Utc::now().date_naive();
            let found = app
                .store
                .sample_recipient(id, Some(&address), today)
                .await?;
            Some(found.ok_or_else(not_in_audience)?)
        }
        None => None,
    };
    let templates = Templates::compile_in_background(&campaign.spec)
        .await
        .map_err(template_error)?;
    let vars = MessageVars::trial(
        recipient.as_ref(),
        campaign.spec.event.as_ref(),
        &app.base_url,
    );
    if !app
        .store
        .allow_test_messages(id, to.len() as u64, TEST_MESSAGES_PER_MINUTE, actor)
        .await?
    {
        return Err(AppError::Limited(format!(
            "a campaign sends at most {TEST_MESSAGES_PER_MINUTE} test messages a minute; try \
             again in a minute"
        )));
    }
    for address in &to {
        let (message_id, message) = mailer
            .letterhead
            .trial(&campaign, &templates, &vars, address)
            .map_err(|e| match e {
                MessageError::Template(e) => template_error(e),
                e => AppError::Unsent(e.to_string()),
            })?;
        let name = format!("test-{id}-{}.eml", message_id.trim_matches(['<', '>']));
        mailer
            .send_one(address, &message, &name)
            .await
            .map_err(|e| AppError::Unsent(e.reason().to_owned()))?;
    }
    Ok(to.len())
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

/// A campaign as it is being written, before it is saved: who it would reach today by
/// constituency, and its message rendered with sample values (its links inert).
pub struct Trial {
    pub audience: Vec<(Option<String>, Option<String>, u64)>,
    /// Who the audience is, in words.
    pub described: String,
    /// With a distance rule: how many it leaves out for want of a place on the map.
    pub unplaced: Option<u64>,
    pub subject: String,
    pub bodies: Bodies,
}

/// Tries a draft as `create` would take it, storing nothing: the composer's live count and
/// preview.
pub async fn trial(app: &App, actor: &Actor, draft: CampaignDraft) -> Result<Trial> {
    let campaign = parse(app, draft, actor.scope()).await?;
    within_scope(actor, &campaign)?;
    let today = Utc::now().date_naive();
    let audience = app
        .store
        .audience_counts(&campaign, actor.scope(), today)
        .await?;
    let unplaced = match campaign.audience.near {
        Some(_) => Some(
            app.store
                .unplaced_audience(&campaign, actor.scope(), today)
                .await?,
        ),
        None => None,
    };
    let templates = Templates::compile_in_background(&campaign)
        .await
        .map_err(template_error)?;
    let topic = app
        .store
        .list_topics()
        .await?
        .into_iter()
        .find(|t| t.slug == campaign.topic)
        .ok_or_else(|| no_topic(campaign.topic.as_str()))?;
    let vars = MessageVars::trial(None, campaign.event.as_ref(), &app.base_url);
    let footer = Footer {
        publisher: &app.publisher,
        topic: &topic.name,
    };
    let bodies = templates.render(&vars, &footer).map_err(template_error)?;
    Ok(Trial {
        described: described(app, &campaign.audience, actor.scope()).await?,
        unplaced,
        audience,
        subject: campaign.subject,
        bodies,
    })
}

/// Asks for a second person's approval of the draft as it is.
pub async fn submit(app: &App, actor: &Actor, id: i64) -> Result<Submitted> {
    super::may_write(actor)?;
    find(app, actor, id).await?;
    match app.store.submit_campaign(id, actor).await? {
        SubmitOutcome::Submitted => {}
        SubmitOutcome::Waiting(since) => {
            return Err(AppError::conflict(
                Conflict::Refused,
                format!(
                    "campaign {id} has waited for approval since {}: those who may approve it \
                     were told then",
                    crate::domain::uk_time(since)
                ),
            ));
        }
        SubmitOutcome::Approved => {
            return Err(AppError::conflict(
                Conflict::Refused,
                format!("campaign {id} is approved already: it can be scheduled or sent"),
            ));
        }
        SubmitOutcome::NotNeeded => {
            return Err(AppError::conflict(
                Conflict::Refused,
                format!("campaign {id} needs no approval: it can be scheduled or sent"),
            ));
        }
        SubmitOutcome::Refused(state) => {
            return Err(AppError::conflict(
                Conflict::Refused,
                format!("campaign {id} is {state}; only a draft waits for approval"),
            ));
        }
        SubmitOutcome::NotFound => return Err(no_campaign(id)),
    }
    let approvers = app.store.possible_approvers(id, &actor.to_string()).await?;
    Ok(tell_approvers(app, actor, id, approvers))
}

/// Whom a request for approval goes to.
#[derive(Debug, Default)]
pub struct Submitted {
    /// The names of the people being told by email: each may approve it.
    pub telling: Vec<String>,
    /// People who may approve it but cannot be told (no mail transport): the dashboard shows
    /// it to them still.
    pub untold: usize,
    /// The emails going out, for a caller that ends before they would (a command).
    sending: Option<tokio::task::JoinHandle<()>>,
}

impl Submitted {
    /// Once the emails have gone (or failed).
    pub async fn told(self) {
        if let Some(sending) = self.sending {
            let _ = sending.await;
        }
    }
}

/// Emails each person who may approve campaign `id` that it waits for them, with its page, on
/// one connection, after the request has answered (a slow relay holds up no one). The request
/// stands whatever the relay says: a failure is logged, without the relay's words, which may
/// quote the address.
fn tell_approvers(
    app: &App,
    actor: &Actor,
    id: i64,
    approvers: Vec<crate::store::AlertRecipient>,
) -> Submitted {
    use handlebars::html_escape;
    let Some(mailer) = app.mailer.clone() else {
        return Submitted {
            untold: approvers.len(),
            ..Submitted::default()
        };
    };
    let telling = approvers.iter().map(|a| a.staff_name.clone()).collect();
    let page = format!(
        "{}/admin/campaigns/{id}",
        app.base_url.trim_end_matches('/')
    );
    let author = actor.to_string();
    let author = author.trim_start_matches("staff:").to_owned();
    let sending = tokio::spawn(async move {
        let mut connection = crate::mail::Connection::new(mailer.transport.clone());
        let mut told = 0;
        for approver in &approvers {
            let campaign = &approver.campaign_name;
            let subject = format!("Waiting for your approval: \u{201c}{campaign}\u{201d}");
            let text = format!(
                "Hello {},\n\n\
                 {author} asks you to approve the campaign \u{201c}{campaign}\u{201d} before it \
                 is sent. Read it, then approve it or tell them what to change, on its page:\n\n\
                 {page}\n\n\
                 You are asked because you may approve it: you did not write it, and your \
                 constituencies hold everyone it reaches.\n",
                approver.staff_name
            );
            let html = format!(
                "<p>Hello {},</p><p>{} asks you to approve the campaign \u{201c}{}\u{201d} \
                 before it is sent. Read it, then approve it or tell them what to change, on \
                 <a href=\"{page}\">its page</a>.</p><p>You are asked because you may approve \
                 it: you did not write it, and your constituencies hold everyone it reaches.</p>",
                html_escape(&approver.staff_name),
                html_escape(&author),
                html_escape(campaign)
            );
            let Ok(to) = Email::parse(&approver.email) else {
                continue;
            };
            let message = match mailer.letterhead.notice(&to, &subject, text, html) {
                Ok((_, message)) => message,
                Err(e) => {
                    tracing::warn!(campaign = id, "writing a request for approval: {e}");
                    continue;
                }
            };
            let envelope = mailer
                .letterhead
                .envelope(&mailer.letterhead.from.email, to.address());
            let file = format!("approval-{id}-{told}.eml");
            match connection
                .send(&envelope, &message.formatted(), &file)
                .await
            {
                Ok(_) => told += 1,
                Err(failure) => tracing::warn!(
                    campaign = id,
                    "a request for approval could not go through the mail server ({}); the \
                     dashboard shows it waiting",
                    failure.kind()
                ),
            }
        }
        connection.close().await;
        tracing::info!(campaign = id, told, "asked for approval by email");
    });
    Submitted {
        telling,
        untold: 0,
        sending: Some(sending),
    }
}

/// Approves version `version` of a draft made by someone else: the version the approver saw
/// (an edit since withdraws it). The approver must be an organiser or admin whose
/// constituencies hold everyone it would reach today; it is cut to them from then on.
pub async fn approve(app: &App, actor: &Actor, id: i64, version: i64) -> Result<()> {
    super::may_write(actor)?;
    let Actor::Staff(approver) = actor else {
        return Err(AppError::Denied(
            "an approval is a member of staff's: the command line needs none".into(),
        ));
    };
    let campaign = find(app, actor, id).await?;
    let outside: Vec<String> = audience(app, actor, id)
        .await?
        .into_iter()
        .filter(|(code, _, _)| !approver.scope.covers(code.as_deref()))
        .map(|(code, name, n)| {
            format!(
                "{n} in {}",
                name.or(code).unwrap_or_else(|| "no constituency".into())
            )
        })
        .collect();
    if !outside.is_empty() {
        return Err(AppError::Denied(format!(
            "it would reach people outside your constituencies ({}); someone who covers them \
             must approve it",
            outside.join(", ")
        )));
    }
    let limit = campaign.limit.intersect(&approver.scope);
    match app
        .store
        .approve_campaign(id, version, &limit, actor)
        .await?
    {
        ApproveOutcome::Approved => Ok(()),
        ApproveOutcome::Authored => Err(AppError::Denied(
            "someone else must approve what you wrote: two people check every mass email".into(),
        )),
        ApproveOutcome::NotAPerson => Err(AppError::Denied(
            "an approval is a person's: a token without an owner cannot give one (issue the \
             token --for a person)"
                .into(),
        )),
        ApproveOutcome::Edited => Err(AppError::conflict(
            Conflict::Edited,
            format!("campaign {id} was changed since you looked at it: check it again"),
        )),
        ApproveOutcome::Refused(state) => Err(AppError::conflict(
            Conflict::Refused,
            format!("campaign {id} is {state}; only a draft is approved"),
        )),
        ApproveOutcome::NotFound => Err(no_campaign(id)),
    }
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

/// What waits to be sent: due now, waiting for a retry, and when.
pub async fn backlog(app: &App) -> Result<Backlog> {
    Ok(app.store.backlog().await?)
}

/// A campaign the worker paused, holding its messages until someone acts.
#[derive(Debug, Clone)]
pub struct PausedByWorker {
    pub id: i64,
    /// Messages it holds.
    pub held: u64,
    /// Why the worker paused it.
    pub reason: String,
}

/// The campaigns the worker paused (not those staff paused).
pub async fn paused_by_worker(app: &App) -> Result<Vec<PausedByWorker>> {
    let mut paused = Vec::new();
    for summary in app.store.list_campaigns(&Scope::Everyone).await? {
        if summary.state != CampaignState::Paused {
            continue;
        }
        let Some(campaign) = app.store.campaign(summary.id).await? else {
            continue;
        };
        if let Some(reason) = campaign.paused_reason {
            let held = app.store.delivery_counts(campaign.id).await?.queued;
            paused.push(PausedByWorker {
                id: campaign.id,
                held,
                reason,
            });
        }
    }
    Ok(paused)
}

//! A campaign's life after its draft: scheduled, queued, paused, resumed, cancelled, retried,
//! submitted for approval (the approvers told) and approved.

use super::{audience, find, no_campaign};
use chrono::{DateTime, Utc};

use super::{Actor, App, AppError, Conflict, Result};
use crate::domain::{CampaignState, Email, parse_schedule};
use crate::store::{
    ApproveOutcome, DraftOutcome, Imprint, RetryOutcome, StateChangeOutcome, SubmitOutcome,
};

use crate::store::{Campaign, StateChange};

/// Schedules a draft to be queued by itself at `at`: RFC 3339, or `YYYY-MM-DD HH:MM` read
/// as UK time. The time it will be queued.
pub async fn schedule(app: &App, actor: &Actor, id: i64, at: &str) -> Result<DateTime<Utc>> {
    super::super::may_write(actor)?;
    let at = parse_schedule(at, Utc::now()).map_err(|e| AppError::invalid("at", e))?;
    imprinted(app, &find(app, actor, id).await?)?;
    set_schedule(app, actor, id, Some(at)).await?;
    Ok(at)
}

pub async fn unschedule(app: &App, actor: &Actor, id: i64) -> Result<()> {
    super::super::may_write(actor)?;
    find(app, actor, id).await?;
    set_schedule(app, actor, id, None).await
}

pub(super) async fn set_schedule(
    app: &App,
    actor: &Actor,
    id: i64,
    at: Option<DateTime<Utc>>,
) -> Result<()> {
    let outcome = app
        .store
        .schedule_campaign(id, at, actor, imprint(app))
        .await?;
    cleared(id, outcome, "scheduled")
}

/// Snapshots a draft's audience into deliveries; how many. Staff queue only a version another
/// person approved (checked by the statement that queues it).
pub async fn queue(app: &App, actor: &Actor, id: i64) -> Result<u64> {
    super::super::may_write(actor)?;
    imprinted(app, &find(app, actor, id).await?)?;
    let outcome = app.store.queue_campaign(id, actor, imprint(app)).await?;
    cleared(id, outcome, "queued")
}

/// Whether the digital imprint is set.
pub(super) fn imprint(app: &App) -> Imprint {
    Imprint::of(app.publisher.imprint.as_deref())
}

/// Refuses election material while no imprint is set (the statement that queues or schedules
/// it refuses it too).
pub(super) fn imprinted(app: &App, campaign: &Campaign) -> Result<()> {
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
pub(super) fn cleared<T>(id: i64, outcome: DraftOutcome<T>, done: &str) -> Result<T> {
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

/// What a campaign can be told to do, alike by a button in the console and a call of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Snapshot the audience into deliveries (a draft only).
    Queue,
    /// Stop sending until resumed.
    Pause,
    Resume,
    /// Stop for good: deliveries not yet sent are skipped.
    Cancel,
    /// Queue again the deliveries that failed for reasons other than the address.
    Retry,
    /// Ask another organiser or admin to approve the draft as it is.
    Submit,
}

/// What an [`Action`] did.
#[derive(Debug)]
pub enum ActionOutcome {
    /// Queued: this many deliveries.
    Queued(u64),
    /// Paused, resumed or cancelled: the campaign's state now.
    Changed(CampaignState),
    /// This many failed deliveries queued again.
    Retried(u64),
    /// Waiting for an approval.
    Submitted(Submitted),
}

/// Does `action` to campaign `id`.
pub async fn act(app: &App, actor: &Actor, id: i64, action: Action) -> Result<ActionOutcome> {
    let change = |change| self::change(app, actor, id, change);
    Ok(match action {
        Action::Queue => ActionOutcome::Queued(queue(app, actor, id).await?),
        Action::Pause => ActionOutcome::Changed(change(StateChange::Pause).await?),
        Action::Resume => ActionOutcome::Changed(change(StateChange::Resume).await?),
        Action::Cancel => ActionOutcome::Changed(change(StateChange::Cancel).await?),
        Action::Retry => ActionOutcome::Retried(retry(app, actor, id).await?),
        Action::Submit => ActionOutcome::Submitted(submit(app, actor, id).await?),
    })
}

/// Pauses, resumes or cancels a campaign; its state now.
pub async fn change(
    app: &App,
    actor: &Actor,
    id: i64,
    change: StateChange,
) -> Result<CampaignState> {
    super::super::may_write(actor)?;
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
    super::super::may_write(actor)?;
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

/// Asks for a second person's approval of the draft as it is.
pub async fn submit(app: &App, actor: &Actor, id: i64) -> Result<Submitted> {
    super::super::may_write(actor)?;
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
pub(super) fn tell_approvers(
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
    super::super::may_write(actor)?;
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

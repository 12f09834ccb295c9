//! What a campaign says: its preview with a sample recipient, its bodies, a test message to
//! someone on the staff, and a draft tried before it is saved.

use super::{described, find, no_topic, not_in_audience, parse, template_error, within_scope};
use chrono::Utc;

use super::{Actor, App, AppError, Conflict, Result};
use crate::domain::{CampaignDraft, CampaignState, Email};
use crate::mail::MessageError;
use crate::mail::render::{Bodies, Footer, MessageVars, Templates};

use crate::store::Campaign;

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

pub(super) async fn rendered(
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
    super::super::may_write(actor)?;
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

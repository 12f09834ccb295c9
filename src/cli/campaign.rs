//! `canvass campaign ...`: create, preview, queue and steer campaigns.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::domain::{Actor, CampaignDraft, NewCampaign, parse_schedule};
use crate::render::{Footer, MessageVars, Templates};
use crate::store::{QueueOutcome, RetryOutcome, StateChange, StateChangeOutcome, Store};
use crate::token::SigningKeys;

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Create a draft campaign; prints its id
    Create(Box<CampaignArgs>),
    /// Change a draft: each flag given replaces what it has
    Edit {
        /// The campaign's id (see `campaign list`)
        id: i64,
        #[command(flatten)]
        changes: Box<CampaignArgs>,
    },
    /// Show the audience size and one rendered message
    Preview {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Snapshot the audience into deliveries; prints the number queued
    Queue {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Deliveries by state
    Status {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Stop sending until resumed
    Pause {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Carry on sending, at once (waits for a retry are cleared)
    Resume {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Stop for good: deliveries not yet sent are skipped
    Cancel {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Queue a draft by itself at a time: RFC 3339, or YYYY-MM-DD HH:MM read as UK time (the
    /// worker, alone or in `serve`, queues it then, taking the audience at that moment)
    Schedule {
        /// The campaign's id (see `campaign list`)
        id: i64,
        /// When, e.g. "2026-12-05 19:30" (UK time) or 2026-12-05T19:30:00Z
        #[arg(long)]
        at: String,
    },
    /// Make a new draft from any campaign (its copy's name ends "(copy)"); prints its id
    Copy {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Take a draft's schedule off
    Unschedule {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Queue again the deliveries that failed for reasons other than the recipient's address
    Retry {
        /// The campaign's id (see `campaign list`)
        id: i64,
    },
    /// Every campaign: id, state, topic, name, subject
    List,
}

#[derive(Args)]
pub struct CampaignArgs {
    /// What staff call it (recipients never see it); required to create
    #[arg(long)]
    name: Option<String>,
    /// The topic recipients consented to; required to create
    #[arg(long)]
    topic: Option<String>,
    /// The email's subject line; required to create
    #[arg(long)]
    subject: Option<String>,
    /// Handlebars HTML template; required to create
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Handlebars text template [default: derived from the HTML]
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Only people in this constituency, by code or unique name (repeatable; OR-ed with
    /// --postcode; given to edit, they replace the campaign's)
    #[arg(long, value_name = "CODE_OR_NAME")]
    constituency: Vec<String>,
    /// Only people under this postcode area, district or sector (repeatable; given to edit,
    /// they replace the campaign's)
    #[arg(long, value_name = "PREFIX")]
    postcode: Vec<String>,
    /// An event mailing: the event's title (with --event-starts-at and --event-venue)
    #[arg(long)]
    event_title: Option<String>,
    /// RFC 3339, e.g. 2026-12-05T19:30:00Z
    #[arg(long)]
    event_starts_at: Option<String>,
    /// Where the event is held
    #[arg(long)]
    event_venue: Option<String>,
    /// The venue's postcode
    #[arg(long)]
    event_postcode: Option<String>,
}

impl CampaignArgs {
    /// The draft these flags make over `base` (an empty one to create, the campaign's own to
    /// edit): each flag given replaces what is there. Templates are read from their files.
    fn over(self, mut base: CampaignDraft) -> anyhow::Result<CampaignDraft> {
        let given = |flag: Option<String>, held: &mut String| {
            if let Some(value) = flag {
                *held = value;
            }
        };
        given(self.name, &mut base.name);
        given(self.topic, &mut base.topic);
        given(self.subject, &mut base.subject);
        if let Some(html) = &self.html {
            base.html_template = read(html)?;
        }
        if let Some(text) = &self.text {
            base.text_template = Some(read(text)?);
        }
        if !self.constituency.is_empty() {
            base.constituencies = self.constituency;
        }
        if !self.postcode.is_empty() {
            base.postcodes = self.postcode;
        }
        base.event_title = self.event_title.or(base.event_title);
        base.event_starts_at = self.event_starts_at.or(base.event_starts_at);
        base.event_venue = self.event_venue.or(base.event_venue);
        base.event_postcode = self.event_postcode.or(base.event_postcode);
        Ok(base)
    }
}

/// Parses a draft before anything is stored, a field at fault named by its flag: its
/// constituencies by code or name, then every field, then its templates compiled and tried.
async fn parse(store: &Store, mut draft: CampaignDraft) -> anyhow::Result<NewCampaign> {
    draft.constituencies = store
        .constituency_codes(&draft.constituencies)
        .await?
        .map_err(|e| anyhow::anyhow!("--constituency: {e}"))?;
    let campaign = draft.parse(Utc::now()).map_err(|e| {
        let flag = match e.field {
            "constituencies" => "constituency".to_owned(),
            "postcodes" => "postcode".to_owned(),
            "html_template" => "html".to_owned(),
            "text_template" => "text".to_owned(),
            field => field.replace('_', "-"),
        };
        anyhow::anyhow!("--{flag}: {}", e.message)
    })?;
    Templates::compile(&campaign)?;
    Ok(campaign)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub async fn run(store: &Store, config: &Config, command: CampaignCommand) -> anyhow::Result<()> {
    match command {
        CampaignCommand::Create(args) => {
            let draft = args.over(CampaignDraft::default())?;
            for (flag, missing) in [
                ("name", draft.name.is_empty()),
                ("topic", draft.topic.is_empty()),
                ("subject", draft.subject.is_empty()),
                ("html", draft.html_template.is_empty()),
            ] {
                if missing {
                    bail!("--{flag} is required to create a campaign");
                }
            }
            let campaign = parse(store, draft).await?;
            let id = store.create_campaign(&campaign, &Actor::Operator).await?;
            println!("{id}");
        }
        CampaignCommand::Edit { id, changes } => {
            let Some(held) = store.campaign(id).await? else {
                bail!("no campaign {id}");
            };
            let campaign = parse(store, changes.over(CampaignDraft::from(&held.spec))?).await?;
            match store.update_draft(id, &campaign, &Actor::Operator).await? {
                StateChangeOutcome::Changed(_) => println!("campaign {id} is changed"),
                StateChangeOutcome::Refused(state) => {
                    bail!("campaign {id} is {state}; only a draft can be changed (copy it)")
                }
                StateChangeOutcome::NotFound => bail!("no campaign {id}"),
            }
        }
        CampaignCommand::Preview { id } => preview(store, config, id).await?,
        CampaignCommand::Queue { id } => match store.queue_campaign(id, &Actor::Operator).await? {
            QueueOutcome::Queued(n) => println!("{n}"),
            QueueOutcome::NotDraft(state) => {
                bail!("campaign {id} is {state}; only a draft can be queued")
            }
            QueueOutcome::NotFound => bail!("no campaign {id}"),
        },
        CampaignCommand::Status { id } => {
            let Some(campaign) = store.campaign(id).await? else {
                bail!("no campaign {id}");
            };
            let counts = store.delivery_counts(id).await?;
            match (&campaign.paused_reason, campaign.scheduled_at) {
                (Some(reason), _) => {
                    println!("campaign {id}: {} by the worker: {reason}", campaign.state)
                }
                (None, Some(at)) => println!(
                    "campaign {id}: {}, scheduled for {}",
                    campaign.state,
                    uk_time(at)
                ),
                (None, None) => println!("campaign {id}: {}", campaign.state),
            }
            println!("queued  {}", counts.queued);
            println!("sent    {}", counts.sent);
            println!("failed  {}", counts.failed);
            println!("skipped {}", counts.skipped);
        }
        CampaignCommand::Pause { id } => change(store, id, StateChange::Pause).await?,
        CampaignCommand::Resume { id } => change(store, id, StateChange::Resume).await?,
        CampaignCommand::Cancel { id } => change(store, id, StateChange::Cancel).await?,
        CampaignCommand::Schedule { id, at } => {
            let at = parse_schedule(&at, Utc::now()).map_err(|e| anyhow::anyhow!("--at: {e}"))?;
            schedule(store, id, Some(at)).await?;
            println!(
                "campaign {id} will be queued at {} ({})",
                uk_time(at),
                at.to_rfc3339()
            );
        }
        CampaignCommand::Copy { id } => {
            let Some(campaign) = store.campaign(id).await? else {
                bail!("no campaign {id}");
            };
            let mut spec = campaign.spec;
            spec.name = format!("{} (copy)", spec.name);
            let copy = store.create_campaign(&spec, &Actor::Operator).await?;
            println!("{copy}");
        }
        CampaignCommand::Unschedule { id } => {
            schedule(store, id, None).await?;
            println!("campaign {id} is not scheduled");
        }
        CampaignCommand::Retry { id } => match store.retry_campaign(id, &Actor::Operator).await? {
            RetryOutcome::Requeued(n) => println!("{n} queued again"),
            RetryOutcome::Refused(state) => bail!("campaign {id} is {state}; nothing to retry"),
            RetryOutcome::NotFound => bail!("no campaign {id}"),
        },
        CampaignCommand::List => {
            for c in store.list_campaigns().await? {
                let state = match c.scheduled_at {
                    Some(at) => format!("{} (scheduled for {})", c.state, uk_time(at)),
                    None => c.state.to_string(),
                };
                println!("{}\t{state}\t{}\t{}\t{}", c.id, c.topic, c.name, c.subject);
            }
        }
    }
    Ok(())
}

/// A time as staff read it: UK time, with the zone.
fn uk_time(at: chrono::DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

async fn schedule(store: &Store, id: i64, at: Option<chrono::DateTime<Utc>>) -> anyhow::Result<()> {
    match store.schedule_campaign(id, at, &Actor::Operator).await? {
        StateChangeOutcome::Changed(_) => Ok(()),
        StateChangeOutcome::Refused(state) => {
            bail!("campaign {id} is {state}; only a draft can be scheduled")
        }
        StateChangeOutcome::NotFound => bail!("no campaign {id}"),
    }
}

async fn change(store: &Store, id: i64, change: StateChange) -> anyhow::Result<()> {
    match store
        .change_campaign_state(id, change, &Actor::Operator)
        .await?
    {
        StateChangeOutcome::Changed(state) => println!("campaign {id} is {state}"),
        StateChangeOutcome::Refused(state) => {
            bail!("campaign {id} is {state}; that cannot change it")
        }
        StateChangeOutcome::NotFound => bail!("no campaign {id}"),
    }
    Ok(())
}

/// The audience size, and the message its first recipient would get (or a sample person's, when
/// nobody qualifies).
async fn preview(store: &Store, config: &Config, id: i64) -> anyhow::Result<()> {
    let Some(campaign) = store.campaign(id).await? else {
        bail!("no campaign {id}");
    };
    let today = Utc::now().date_naive();
    let size = store.audience_size(id, today).await?;
    let templates = Templates::compile(&campaign.spec)?;
    let vars = match store.first_recipient(id, today).await? {
        Some(recipient) => {
            let keys = SigningKeys::load(config.signing_keys.as_deref(), store).await?;
            let event = campaign.spec.event.as_ref();
            MessageVars::for_recipient(&recipient, event, &keys, &config.base_url)
        }
        None => MessageVars::sample(campaign.spec.event.as_ref()),
    };
    let footer = Footer {
        publisher: &config.publisher,
        topic: &campaign.topic_name,
    };
    let bodies = templates.render(&vars, &footer)?;
    println!(
        "campaign {id} ({}): {size} people would receive it today",
        campaign.state
    );
    println!("Subject: {}\n", campaign.spec.subject);
    println!("--- text/plain ---\n{}\n", bodies.text.trim_end());
    println!("--- text/html ---\n{}", bodies.html.trim_end());
    Ok(())
}

//! `canvass campaign ...`: create, preview, queue and steer campaigns.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::refused;
use crate::app::campaigns::StateChange;
use crate::app::{Actor, App, campaigns};
use crate::domain::{CampaignChanges, CampaignDraft, DraftStage};
use crate::progress::report_table;

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
    /// Show the audience size and one rendered message (its links lead to a test page)
    Preview {
        /// The campaign's id (see `campaign list`)
        id: i64,
        /// Render it with this contact's name, postcode and constituency [default: the first
        /// person it would reach]
        #[arg(long = "as", value_name = "EMAIL")]
        as_contact: Option<String>,
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
    /// Send the message to yourself as a test: "[Test] " before its subject, its links leading
    /// to a page that says so; never in the ledger, and at most 5 a minute per campaign
    Test {
        /// The campaign's id (see `campaign list`)
        id: i64,
        /// Who gets it (repeatable, up to 5)
        #[arg(long, value_name = "EMAIL", required = true)]
        to: Vec<String>,
        /// Render it with this contact's name, postcode and constituency [default: sample
        /// values]
        #[arg(long = "as", value_name = "EMAIL")]
        as_contact: Option<String>,
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
        /// Only for the people who have not had it (after a cancel, the rest): whoever it was
        /// sent to is left out, as is whoever it left out itself
        #[arg(long)]
        only_not_sent: bool,
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
    /// What a campaign did: sent, failed, skipped, bounces, complaints and unsubscribes, in
    /// total and by constituency (canvass counts no opens and no clicks)
    Report {
        /// The campaign's id (see `campaign list`)
        id: i64,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Every campaign: id, state, topic, name, subject
    List,
}

impl CampaignCommand {
    /// Whether the command sends mail of its own.
    pub fn sends_mail(&self) -> bool {
        matches!(self, Self::Test { .. })
    }
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
    /// Handlebars HTML template; this or --markdown is required to create
    #[arg(long, value_name = "FILE", conflicts_with = "markdown")]
    html: Option<PathBuf>,
    /// Markdown instead of HTML, placed in canvass's email layout (raw HTML in it is escaped;
    /// {{contact.name}} and the other values work as in a template)
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Handlebars text template [default: derived from the HTML]
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Only people in this constituency, by code or unique name (repeatable; OR-ed with
    /// --postcode unless --postcodes-within-constituencies; given to edit, they replace the
    /// campaign's)
    #[arg(long, value_name = "CODE_OR_NAME")]
    constituency: Vec<String>,
    /// Only people under this postcode area, district or sector (repeatable; given to edit,
    /// they replace the campaign's)
    #[arg(long, value_name = "PREFIX")]
    postcode: Vec<String>,
    /// With both --constituency and --postcode: only the people under the postcodes who are
    /// within the constituencies, instead of everyone in either (`false` to widen again)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    postcodes_within_constituencies: Option<bool>,
    /// An event mailing with --event-postcode: only the people within this many miles of the
    /// venue (1 to 100), besides the rules above (0 to take the distance rule away)
    #[arg(long, value_name = "MILES")]
    within_miles: Option<u32>,
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
    /// Its own From, e.g. "Hertford Events <events@example.org>", at CANVASS_FROM's domain or
    /// one of CANVASS_SENDER_DOMAINS [default: CANVASS_FROM]
    #[arg(long, value_name = "MAILBOX")]
    from: Option<String>,
    /// Its own Reply-To [default: CANVASS_REPLY_TO]
    #[arg(long, value_name = "MAILBOX")]
    reply_to: Option<String>,
    /// It promotes the party or a candidate to people who are not only members: it carries the
    /// digital imprint, and is not queued or scheduled while CANVASS_IMPRINT is empty
    /// (`--election-material false` to say it is not)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    election_material: Option<bool>,
}

impl CampaignArgs {
    /// The changes these flags make; templates are read from their files.
    fn changes(self) -> anyhow::Result<CampaignChanges> {
        let list = |values: Vec<String>| (!values.is_empty()).then_some(values);
        Ok(CampaignChanges {
            name: self.name,
            topic: self.topic,
            subject: self.subject,
            html_template: self.html.as_deref().map(read).transpose()?,
            text_template: self.text.as_deref().map(read).transpose()?,
            markdown: self.markdown.as_deref().map(read).transpose()?,
            from: self.from,
            reply_to: self.reply_to,
            election_material: self.election_material,
            constituencies: list(self.constituency),
            postcodes: list(self.postcode),
            postcodes_within_constituencies: self.postcodes_within_constituencies,
            within_miles: self.within_miles,
            event_title: self.event_title,
            event_starts_at: self.event_starts_at,
            event_venue: self.event_venue,
            event_postcode: self.event_postcode,
        })
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub async fn run(app: &App, command: CampaignCommand) -> anyhow::Result<()> {
    let me = &Actor::Operator;
    match command {
        CampaignCommand::Create(args) => {
            let draft = args.changes()?.over(CampaignDraft::default());
            let id = campaigns::create(app, me, draft).await.map_err(refused)?;
            println!("{id}");
        }
        CampaignCommand::Edit { id, changes } => {
            campaigns::edit(app, me, id, changes.changes()?)
                .await
                .map_err(refused)?;
            println!("campaign {id} is changed");
        }
        CampaignCommand::Preview { id, as_contact } => {
            let preview = campaigns::preview(app, me, id, as_contact.as_deref())
                .await
                .map_err(refused)?;
            println!(
                "campaign {id} ({}): {} people would receive it today",
                preview.state, preview.audience_size
            );
            println!("Subject: {}\n", preview.subject);
            println!("--- text/plain ---\n{}\n", preview.bodies.text.trim_end());
            println!("--- text/html ---\n{}", preview.bodies.html.trim_end());
        }
        CampaignCommand::Test { id, to, as_contact } => {
            let sent = campaigns::test(app, me, id, &to, as_contact.as_deref())
                .await
                .map_err(refused)?;
            println!("{sent} test message(s) of campaign {id} sent");
        }
        CampaignCommand::Queue { id } => {
            let queued = campaigns::queue(app, me, id).await.map_err(refused)?;
            println!("{queued}");
        }
        CampaignCommand::Status { id } => {
            let status = campaigns::status(app, me, id).await.map_err(refused)?;
            let campaign = &status.campaign;
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
            let counts = status.deliveries;
            println!("queued  {}", counts.queued);
            println!("sent    {}", counts.sent);
            println!("failed  {}", counts.failed);
            println!("skipped {}", counts.skipped);
        }
        CampaignCommand::Pause { id } => change(app, id, StateChange::Pause).await?,
        CampaignCommand::Resume { id } => change(app, id, StateChange::Resume).await?,
        CampaignCommand::Cancel { id } => change(app, id, StateChange::Cancel).await?,
        CampaignCommand::Schedule { id, at } => {
            let at = campaigns::schedule(app, me, id, &at)
                .await
                .map_err(refused)?;
            println!(
                "campaign {id} will be queued at {} ({})",
                uk_time(at),
                at.to_rfc3339()
            );
        }
        CampaignCommand::Copy { id, only_not_sent } => {
            let copy_for = if only_not_sent {
                campaigns::CopyFor::NotYetSent
            } else {
                campaigns::CopyFor::Everyone
            };
            let copy = campaigns::copy(app, me, id, copy_for)
                .await
                .map_err(refused)?;
            println!("{copy}");
        }
        CampaignCommand::Unschedule { id } => {
            campaigns::unschedule(app, me, id).await.map_err(refused)?;
            println!("campaign {id} is not scheduled");
        }
        CampaignCommand::Retry { id } => {
            let requeued = campaigns::retry(app, me, id).await.map_err(refused)?;
            println!("{requeued} queued again");
        }
        CampaignCommand::Report { id, json } => {
            let report = campaigns::report(app, me, id).await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?)
            } else {
                print!("{}", report_table(&report))
            }
        }
        CampaignCommand::List => {
            for c in campaigns::list(app, me).await.map_err(refused)? {
                let state = c.stage.map_or(c.state.as_str(), DraftStage::words);
                let state = match c.scheduled_at {
                    Some(at) => format!("{state} (scheduled for {})", uk_time(at)),
                    None => state.to_owned(),
                };
                println!(
                    "{}\t{state}\t{}\t{}\t{}",
                    c.id, c.topic_name, c.name, c.subject
                );
            }
        }
    }
    Ok(())
}

/// A time as staff read it: UK time, with the zone.
fn uk_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

async fn change(app: &App, id: i64, change: StateChange) -> anyhow::Result<()> {
    let state = campaigns::change(app, &Actor::Operator, id, change)
        .await
        .map_err(refused)?;
    println!("campaign {id} is {state}");
    Ok(())
}

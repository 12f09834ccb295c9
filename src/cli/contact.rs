//! `canvass contact`, `canvass topics`, and the imports of contacts and of the postcode
//! directory.

use super::refused;
use std::path::Path;

use clap::Subcommand;

use crate::app::App;
use crate::app::contacts::ErasureOutcome;
use crate::app::contacts::{self, Withdrawn};
use crate::app::imports::{self, CsvFile};
use crate::app::registers::{self as app_registers, Act};
use crate::app::topics;
use crate::domain::Actor;
use crate::progress::ConsoleReport;

#[derive(Subcommand)]
pub(super) enum TopicsCommand {
    /// List the topics
    List,
    /// Add a topic
    Add {
        /// Its short name in files and links: lower-case letters, digits and hyphens
        slug: String,
        /// Its name, as people read it
        name: String,
    },
}

#[derive(Subcommand)]
pub(super) enum ContactCommand {
    /// Print everything held on the person as JSON
    Export {
        /// The person's email address, or their public id
        contact: String,
        /// The rights request this answers (REQ-2026-0001): recorded with it, and closes it
        #[arg(long, value_name = "REF")]
        request: Option<String>,
    },
    /// Erase the person, keeping only a hashed suppression entry
    Erase {
        /// The person's email address, or their public id
        contact: String,
        /// The rights request this answers (REQ-2026-0001): recorded with it, and closes it
        #[arg(long, value_name = "REF")]
        request: Option<String>,
    },
    /// Keep the person's data but never mail them
    Restrict {
        /// The person's email address, or their public id
        contact: String,
        /// The rights request this answers (REQ-2026-0001): recorded with it, and closes it
        #[arg(long, value_name = "REF")]
        request: Option<String>,
    },
    /// Lift a restriction
    Unrestrict {
        /// The person's email address, or their public id
        contact: String,
    },
    /// Record a withdrawal the person made by phone, letter or email
    Unsubscribe {
        /// The person's email address, or their public id
        contact: String,
        /// A topic withdrawn from (repeatable); none: from everything, as one-click
        #[arg(long = "topic", value_name = "SLUG")]
        topics: Vec<String>,
        /// How the person said it: phone, letter, email...
        #[arg(long)]
        source: String,
        /// Anything worth keeping with it, for the audit log
        #[arg(long)]
        note: Option<String>,
        /// The rights request (an objection) this answers: recorded with it, and closes it
        #[arg(long, value_name = "REF")]
        request: Option<String>,
    },
    /// Lift a bounced or complaint suppression found wrong (never an unsubscribe or erasure)
    Unsuppress {
        /// The email address, or the person's public id
        contact: String,
        /// Why it was wrong, for the audit log
        #[arg(long)]
        note: String,
    },
}

pub(super) async fn import_postcodes(app: &App, file: &Path, force: bool) -> anyhow::Result<()> {
    let mut report = ConsoleReport::new("postcodes");
    let file = CsvFile::open(file)?;
    let summary = imports::directory(app, &Actor::Operator, file, force, &mut report).await;
    report.finish();
    println!("{}", summary.map_err(refused)?);
    Ok(())
}

pub(super) async fn import_contact_list(
    app: &App,
    file: &Path,
    source: &str,
    consented_at: Option<&str>,
) -> anyhow::Result<()> {
    let mut report = ConsoleReport::new("contacts");
    let summary = imports::contacts(
        app,
        &Actor::Operator,
        CsvFile::open(file)?,
        source,
        consented_at,
        &mut report,
    )
    .await;
    report.finish();
    println!("{}", summary.map_err(refused)?);
    Ok(())
}

pub(super) async fn topics(app: &App, command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::List => {
            for topic in topics::list(app).await.map_err(refused)? {
                println!("{}\t{}", topic.slug, topic.name);
            }
        }
        TopicsCommand::Add { slug, name } => {
            let topic = topics::add(app, &Actor::Operator, &slug, &name)
                .await
                .map_err(refused)?;
            println!("added topic {}", topic.slug);
        }
    }
    Ok(())
}

pub(super) async fn run(app: &App, command: ContactCommand) -> anyhow::Result<()> {
    let me = &Actor::Operator;
    // The request is checked before the act: an erased person's public id leads nowhere after.
    let request = match command.request() {
        Some((contact, reference, act)) => {
            let email = contacts::address(app, me, contact).await.map_err(refused)?;
            let request = app_registers::request_for(app, me, reference, &email)
                .await
                .map_err(refused)?;
            Some((request, act))
        }
        None => None,
    };
    match command {
        ContactCommand::Export { contact, .. } => {
            let held = contacts::export(app, me, &contact).await.map_err(refused)?;
            println!("{}", serde_json::to_string_pretty(&held)?);
        }
        ContactCommand::Erase { contact, .. } => {
            match contacts::erase(app, me, &contact).await.map_err(refused)? {
                ErasureOutcome::Erased => {
                    println!("erased; the address is kept only as a hash on the suppression list")
                }
                ErasureOutcome::NothingHeld => println!(
                    "nothing was held on that address; it is now on the suppression list as a hash"
                ),
            }
        }
        ContactCommand::Restrict { contact, .. } => restrict(app, &contact, true).await?,
        ContactCommand::Unrestrict { contact } => restrict(app, &contact, false).await?,
        ContactCommand::Unsubscribe {
            contact,
            topics,
            source,
            note,
            ..
        } => match contacts::withdraw(app, me, &contact, &topics, &source, note.as_deref())
            .await
            .map_err(refused)?
        {
            Withdrawn::Unsubscribed => {
                println!("unsubscribed from everything; the address is suppressed")
            }
            Withdrawn::Topics(n) => println!("withdrawn from {n} topics"),
            Withdrawn::Suppressed => println!(
                "nobody is held at that address; it is now suppressed, so no import adds it"
            ),
        },
        ContactCommand::Unsuppress { contact, note } => {
            let reason = contacts::unsuppress(app, me, &contact, &note)
                .await
                .map_err(refused)?;
            println!("lifted ({})", reason.as_str());
        }
    }
    if let Some((request, act)) = request {
        match app_registers::acted(app, me, &request, act)
            .await
            .map_err(refused)?
        {
            true => eprintln!("{}: recorded, and closed", request.reference),
            false => eprintln!("{}: recorded", request.reference),
        }
    }
    Ok(())
}

impl ContactCommand {
    /// The person, the request and the act, for a command done for a rights request.
    fn request(&self) -> Option<(&str, &str, Act)> {
        let (contact, request, act) = match self {
            Self::Export { contact, request } => (contact, request, Act::Export),
            Self::Erase { contact, request } => (contact, request, Act::Erase),
            Self::Restrict { contact, request } => (contact, request, Act::Restrict),
            Self::Unsubscribe {
                contact,
                request,
                topics,
                ..
            } => {
                if topics.is_empty() {
                    (contact, request, Act::Unsubscribe)
                } else {
                    (contact, request, Act::Withdraw)
                }
            }
            Self::Unrestrict { .. } | Self::Unsuppress { .. } => return None,
        };
        Some((contact, request.as_deref()?, act))
    }
}

pub(super) async fn restrict(app: &App, contact: &str, restricted: bool) -> anyhow::Result<()> {
    let state = if restricted {
        "restricted"
    } else {
        "unrestricted"
    };
    match contacts::restrict(app, &Actor::Operator, contact, restricted)
        .await
        .map_err(refused)?
    {
        true => println!("{state}"),
        false => println!("already {state}"),
    }
    Ok(())
}

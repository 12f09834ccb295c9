//! The `canvass` command line. Each command parses its arguments into domain types, calls the
//! library and prints the result; errors come back to `main` as one line.
//!
//! Here: the commands and their dispatch; beside it, [`contact`] (contacts, topics, imports),
//! [`campaign`], [`inbox`], [`registers`] (requests, complaints, retention, proof), [`staff`],
//! [`dkim`], and [`running`] (`worker` and `serve`).

use std::path::PathBuf;
use std::time::Duration;

mod campaign;
mod contact;
mod dkim;
mod inbox;
mod registers;
mod running;
mod staff;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::contacts;
use crate::app::{self, AppError};
use crate::config::Settings;
use crate::database;
use crate::domain::Actor;
use contact::{ContactCommand, TopicsCommand};
use dkim::DkimCommand;

#[derive(Parser)]
#[command(
    name = "canvass",
    version,
    about = "A consent-first email mailer for political campaigns"
)]
pub struct Cli {
    /// TOML file of settings; relative paths in it are taken from its folder [default:
    /// canvass.toml when present]
    #[arg(
        long,
        env = "CANVASS_CONFIG",
        global = true,
        value_name = "FILE",
        help_heading = "Settings"
    )]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whether the command runs until stopped (the service, the worker, the demo's service),
    /// rather than printing something and exiting.
    pub fn runs_until_stopped(&self) -> bool {
        matches!(
            self.command,
            Command::Serve { .. } | Command::Worker { .. } | Command::Demo { .. }
        )
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create or upgrade the database schema (and start the suppression journal, with a new
    /// database)
    Migrate {
        /// Start a new suppression journal where this database had one that is now missing
        /// (lost for good: erasures recorded only in it will not be re-applied after a restore)
        #[arg(long)]
        new_journal: bool,
    },
    /// The postcode directory
    Postcodes {
        #[command(subcommand)]
        command: PostcodesCommand,
    },
    /// Bulk contact operations
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// What people can consent to hear about
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// The constituencies of the postcode directory
    Constituencies {
        #[command(subcommand)]
        command: ConstituenciesCommand,
    },
    /// The counts the database keeps as its data changes (who may be mailed, campaign progress)
    Counts {
        #[command(subcommand)]
        command: CountsCommand,
    },
    /// Campaign and event mailings
    Campaign {
        #[command(subcommand)]
        command: campaign::CampaignCommand,
    },
    /// One person's rights: access, erasure, restriction
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// What came back by email: bounces, complaints, unsubscribe requests
    #[command(visible_alias = "bounces")]
    Inbox {
        #[command(subcommand)]
        command: InboxCommand,
    },
    /// The register of rights requests (access, erasure...), with the legal clock of each
    Requests {
        #[command(subcommand)]
        command: registers::RequestsCommand,
    },
    /// The register of data protection complaints, with the 30 days to acknowledge each
    Complaints {
        #[command(subcommand)]
        command: registers::ComplaintsCommand,
    },
    /// Why a message went to whom it went: the consent that allowed it (when, how, wording,
    /// IP) and who approved the campaign, from its Message-ID
    Proof {
        /// The Message-ID, as the email's header or a complaint quotes it
        message_id: String,
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Erase what is kept past CANVASS_RETENTION_MONTHS (`serve` does it daily)
    Retention {
        #[command(subcommand)]
        command: registers::RetentionCommand,
    },
    /// DKIM keys for the sending domains
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// The staff: people who sign in to the console, and API tokens
    Staff {
        #[command(subcommand)]
        command: staff::StaffCommand,
    },
    /// Write a consistent copy of the database to DEST while the service runs (SQLite: VACUUM
    /// INTO; PostgreSQL: pg_dump --format=custom). The suppression journal is not in it: keep it
    /// elsewhere
    Backup {
        /// A new file
        dest: PathBuf,
    },
    /// Put a backup in place of the database (stop the service and the worker first), then
    /// re-apply every erasure and suppression the journal holds that the backup lacks
    Restore {
        /// The backup: a file `canvass backup` wrote
        src: PathBuf,
    },
    /// Send queued deliveries
    Worker {
        /// Exit when nothing is left to send
        #[arg(long)]
        drain: bool,
        /// With --drain: give up once the mail server has been unusable this many seconds,
        /// leaving the rest queued
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 300,
            requires = "drain"
        )]
        give_up_after: u64,
    },
    /// Serve the public links (unsubscribe, preference centre), health and metrics
    Serve {
        /// Do not run the delivery worker in this process
        #[arg(long)]
        no_worker: bool,
    },
    /// Run the whole job on the embedded defaults with the sample data: its own database and
    /// outbox in --dir; of the settings, only --listen applies
    Demo {
        /// Folder for the demo's database and files
        #[arg(long, default_value = "canvass-demo")]
        dir: PathBuf,
        /// Stop after sending instead of serving the links until Ctrl-C
        #[arg(long)]
        no_serve: bool,
    },
}

#[derive(Subcommand)]
enum PostcodesCommand {
    /// Replace the directory from an ONSPD/NSPL CSV or postcode,constituency_code[,constituency_name]
    Import {
        /// The CSV file
        file: PathBuf,
        /// Replace it even with over 1% of rows refused, or contacts left without a
        /// constituency
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum CountsCommand {
    /// Count everything again from scratch and compare; exits 1 naming each difference
    Check,
}

#[derive(Subcommand)]
enum ConstituenciesCommand {
    /// Code, name and mailable contacts of each constituency (those whose name holds SEARCH)
    List {
        /// Part of a name, or a code
        search: Option<String>,
    },
}

#[derive(Subcommand)]
enum ContactsCommand {
    /// Import or update contacts from a CSV file
    Import {
        /// The CSV file
        file: PathBuf,
        /// Where the list came from; the consent source of rows that give none
        #[arg(long, default_value = "import")]
        source: String,
        /// When the people on the list agreed (the day it was made: YYYY-MM-DD or RFC 3339),
        /// for rows without a consent_at of their own. Without it, those rows subscribe nobody
        /// who has withdrawn since
        #[arg(long, value_name = "DATE")]
        consented_at: Option<String>,
    },
}

#[derive(Subcommand)]
enum InboxCommand {
    /// Act on the .eml files in a folder: bounces and abuse reports about canvass's own mail
    /// suppress the address; unsubscribe requests to the mailto: address unsubscribe
    Import {
        /// The folder of .eml files
        dir: PathBuf,
    },
    /// Read the bounce mailbox (CANVASS_INBOX_URL) once, as serve does every minute: each
    /// message acted on once and moved to canvass/processed or canvass/ignored
    Fetch,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        let file = Settings::from_file(self.config.as_deref())?;
        let config = self.settings.with_secrets_read()?.or(file).resolve()?;
        match self.command {
            Command::Migrate { new_journal } => {
                let migrated = database::migrate(&config, new_journal).await?;
                println!("{migrated} ({})", config.database_url);
            }
            Command::Backup { dest } => {
                let backed_up = database::back_up(&config, &dest).await?;
                println!(
                    "backed up {} to {} ({:.1} MB)",
                    config.database_url,
                    dest.display(),
                    backed_up.bytes as f64 / 1e6
                );
                if let Some(journal) = backed_up.journal {
                    println!(
                        "the suppression journal {} is not in the backup: keep it (and copies of \
                         it) apart from the backups, so that a restore can re-apply it",
                        journal.display()
                    );
                }
            }
            Command::Restore { src } => {
                let restored = database::restore(&config, &src).await?;
                println!(
                    "restored {} into {}; {}",
                    src.display(),
                    config.database_url,
                    restored.migrated
                );
                match restored.journal {
                    Some(journal) => println!(
                        "re-applied {} erasures and {} suppressions recorded after this backup \
                         (from {})",
                        restored.replayed.erasures,
                        restored.replayed.suppressions,
                        journal.display()
                    ),
                    None => println!(
                        "no suppression journal is set (CANVASS_JOURNAL): erasures and \
                         unsubscribes made after this backup are not re-applied"
                    ),
                }
            }
            Command::Postcodes {
                command: PostcodesCommand::Import { file, force },
            } => contact::import_postcodes(&database::open(&config).await?, &file, force).await?,
            Command::Contacts {
                command:
                    ContactsCommand::Import {
                        file,
                        source,
                        consented_at,
                    },
            } => {
                contact::import_contact_list(
                    &database::open(&config).await?,
                    &file,
                    &source,
                    consented_at.as_deref(),
                )
                .await?
            }
            Command::Topics { command } => {
                contact::topics(&database::open(&config).await?, command).await?
            }
            Command::Counts {
                command: CountsCommand::Check,
            } => {
                let app = database::open(&config).await?;
                let drift = contacts::recount(&app, &Actor::Operator)
                    .await
                    .map_err(refused)?;
                if !drift.is_empty() {
                    bail!(
                        "the kept counts differ from a count from scratch:\n{}",
                        drift.join("\n")
                    );
                }
                println!("the kept counts agree with a count from scratch");
            }
            Command::Constituencies {
                command: ConstituenciesCommand::List { search },
            } => {
                let app = database::open(&config).await?;
                let listed =
                    app::directory::constituencies(&app, &Actor::Operator, search.as_deref())
                        .await
                        .map_err(refused)?;
                for c in listed {
                    println!(
                        "{}\t{}\t{}",
                        c.code,
                        c.name.as_deref().unwrap_or("-"),
                        c.mailable
                    );
                }
            }
            Command::Contact { command } => {
                contact::run(&database::open(&config).await?, command).await?
            }
            Command::Campaign { command } => {
                let app = if command.sends_mail() {
                    running::mailing_app(&config).await?
                } else {
                    database::open(&config).await?
                };
                campaign::run(&app, command).await?
            }
            Command::Inbox {
                command: InboxCommand::Import { dir },
            } => {
                let app = database::open(&config).await?;
                let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
                inbox::import(&app, &keys, &dir).await?
            }
            Command::Inbox {
                command: InboxCommand::Fetch,
            } => {
                let app = database::open(&config).await?;
                let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
                let (url, tls) = running::mailbox(&config)?
                    .context("CANVASS_INBOX_URL is not set: name the bounce mailbox")?;
                inbox::fetch(&app, &keys, &url, tls).await?
            }
            Command::Staff { command } => {
                staff::run(&database::open(&config).await?, command).await?
            }
            Command::Requests { command } => {
                registers::requests(&database::open(&config).await?, command).await?
            }
            Command::Dkim {
                command:
                    DkimCommand::Keygen {
                        domain,
                        selector,
                        key,
                    },
            } => dkim::keygen(&domain, &selector, key)?,
            Command::Retention { command } => {
                registers::retention(&database::open(&config).await?, command).await?
            }
            Command::Proof { message_id, json } => {
                registers::proof(&database::open(&config).await?, &message_id, json).await?
            }
            Command::Complaints { command } => {
                registers::complaints(&database::open(&config).await?, command).await?
            }
            Command::Worker {
                drain,
                give_up_after,
            } => running::worker(&config, drain, Duration::from_secs(give_up_after)).await?,
            Command::Serve { no_worker } => running::serve(&config, !no_worker).await?,
            Command::Demo { dir, no_serve } => {
                crate::demo::run(&dir, config.listen, !no_serve).await?
            }
        }
        Ok(())
    }
}

/// A refusal as one line: a field at fault named by its flag.
pub(crate) fn refused(error: AppError) -> anyhow::Error {
    let AppError::Invalid { field, message } = &error else {
        return error.into();
    };
    let flag = match *field {
        // Given as the command's argument, not a flag.
        "email" | "contact" => return anyhow::anyhow!("{message}"),
        "constituencies" => "constituency".to_owned(),
        "postcodes" => "postcode".to_owned(),
        "topics" => "topic".to_owned(),
        "html_template" => "html".to_owned(),
        "text_template" => "text".to_owned(),
        field => field.replace('_', "-"),
    };
    anyhow::anyhow!("--{flag}: {message}")
}

//! The `canvass` command line. Each command parses its arguments into domain types, calls the
//! library and prints the result; errors come back to `main` as one line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod campaign;
mod inbox;
mod registers;
mod staff;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::contacts::ErasureOutcome;
use crate::app::contacts::{self, Withdrawn};
use crate::app::imports::{self, CsvFile};
use crate::app::registers::{self as app_registers, Act};
use crate::app::topics;
use crate::app::{self, App, AppError, Unready};
use crate::config::{Config, Settings};
use crate::database;
use crate::domain::Actor;
use crate::http::{Application, Metrics, ServiceSettings, WorkerHealth, shutdown_signal};
use crate::mail::Mailer;
use crate::mail::imap::MailboxUrl;
use crate::progress::{self, ConsoleReport};
use crate::token::SigningKeys;
use crate::worker::{
    Letterhead, Outage, Relays, RetryPolicy, Sending, Transport, Worker, WorkerSettings, load_dkim,
};

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
enum DkimCommand {
    /// Make a 2048-bit RSA key for DOMAIN (written to a new file, readable by its owner only)
    /// and print the DNS TXT record that publishes it
    Keygen {
        domain: String,
        selector: String,
        /// Where to write the key [default: dkim-DOMAIN-SELECTOR.pem]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
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

#[derive(Subcommand)]
enum TopicsCommand {
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
enum ContactCommand {
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
            } => import_postcodes(&database::open(&config).await?, &file, force).await?,
            Command::Contacts {
                command:
                    ContactsCommand::Import {
                        file,
                        source,
                        consented_at,
                    },
            } => {
                import_contact_list(
                    &database::open(&config).await?,
                    &file,
                    &source,
                    consented_at.as_deref(),
                )
                .await?
            }
            Command::Topics { command } => topics(&database::open(&config).await?, command).await?,
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
                contact(&database::open(&config).await?, command).await?
            }
            Command::Campaign { command } => {
                let app = match command.sends_mail() {
                    true => mailing_app(&config).await?,
                    false => database::open(&config).await?,
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
                let (url, tls) = mailbox(&config)?
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
            } => dkim_keygen(&domain, &selector, key)?,
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
            } => worker(&config, drain, Duration::from_secs(give_up_after)).await?,
            Command::Serve { no_worker } => serve(&config, !no_worker).await?,
            Command::Demo { dir, no_serve } => {
                crate::demo::run(&dir, config.listen, !no_serve).await?
            }
        }
        Ok(())
    }
}

/// The application, sending its own messages (test messages) where the settings say.
async fn mailing_app(config: &Config) -> anyhow::Result<App> {
    let transport = ready_for_real_mail(config)?.first().clone();
    let app = database::open(config).await?;
    let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
    let letterhead = letterhead(config, keys)?;
    Ok(app.with_mailer(Mailer {
        transport,
        letterhead,
    }))
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

/// Where mail goes, once it is ready for real mail: sending over SMTP to another machine is
/// refused with settings that would ship broken mail (a From address at `localhost`, which
/// receiving servers refuse, or links that are not public `https://` addresses, as RFC 8058
/// wants for one-click unsubscribe). Warns, once, of the footer details the law expects and
/// that are not set.
fn ready_for_real_mail(config: &Config) -> anyhow::Result<Relays> {
    let transport = relays(config)?;
    if transport.is_remote() {
        let domain = config.from.email.domain();
        if domain == "localhost" || domain.ends_with(".localhost") || !domain.contains('.') {
            bail!(
                "CANVASS_FROM is {}: receiving servers refuse mail from such an address; set \
                 CANVASS_FROM to the party's own (e.g. \"Hertford Labour <news@example.org>\") \
                 before sending through {transport}",
                config.from
            );
        }
        if !config.base_url.starts_with("https://") {
            bail!(
                "CANVASS_BASE_URL is {}: the unsubscribe and preference links in every email \
                 must be public https:// addresses before sending through {transport}",
                config.base_url
            );
        }
    }
    let smtp = matches!(transport.first(), Transport::Smtp(_));
    if smtp && config.database_url.is_postgres() && config.journal.is_none() {
        bail!(
            "CANVASS_JOURNAL is not set: sending from PostgreSQL over SMTP needs the suppression \
             journal, a file on this host outside the database's backups, so that restoring a \
             backup never brings back someone erased or unsubscribed since"
        );
    }
    if smtp {
        let missing = config.publisher.missing();
        if !missing.is_empty() {
            tracing::warn!(
                "{} not set: marketing email should carry the sender's postal address and \
                 election material the digital imprint",
                missing.join(" and ")
            );
        }
    }
    Ok(transport)
}

/// Where mail goes (one relay or several: the list in CANVASS_SMTP_URL, or `[[relay]]` tables),
/// trusting the configured CA besides the built-in roots.
fn relays(config: &Config) -> anyhow::Result<Relays> {
    let relays = match config.relays.is_empty() {
        true => Relays::parse(&config.smtp_url)?,
        false => Relays::from_settings(&config.relays)?,
    };
    Ok(match &config.smtp_ca_file {
        Some(ca) => relays.trusting(ca)?,
        None => relays,
    })
}

/// What every message of this process carries, from the settings.
fn letterhead(config: &Config, keys: SigningKeys) -> anyhow::Result<Letterhead> {
    Ok(Letterhead {
        providers: relays(config)?.providers(),
        keys,
        base_url: config.base_url.clone(),
        from: config.from.clone(),
        unsubscribe_mailto: config.unsubscribe_mailto.clone(),
        dkim: load_dkim(&config.dkim)?,
        return_path: config.return_path.clone(),
        publisher: config.publisher.clone(),
        reply_to: config.reply_to.clone(),
    })
}

fn worker_settings(
    config: &Config,
    relays: Relays,
    keys: SigningKeys,
    metrics: Arc<Metrics>,
) -> anyhow::Result<WorkerSettings> {
    Ok(WorkerSettings {
        letterhead: letterhead(config, keys)?,
        relays,
        metrics,
        sending: Sending {
            concurrency: config.send_concurrency,
            rate: config.send_rate,
            retry: RetryPolicy::default(),
            lease: config.lease,
            pause_after: config.pause_after_failures,
            outage: Outage::default(),
            domain_rates: config.domain_rates.clone(),
        },
    })
}

/// The bounce mailbox, if one is set, and the TLS it is read with.
fn mailbox(
    config: &Config,
) -> anyhow::Result<Option<(MailboxUrl, Arc<tokio_rustls::rustls::ClientConfig>)>> {
    let Some(url) = config.inbox.clone() else {
        return Ok(None);
    };
    let roots = match &config.smtp_ca_file {
        Some(path) => crate::mail::tls::read_roots(path)
            .map_err(|why| anyhow::anyhow!("CANVASS_SMTP_CA_FILE {}: {why}", path.display()))?,
        None => Vec::new(),
    };
    Ok(Some((url, crate::mail::tls::client(&roots))))
}

/// Reads the bounce mailbox every minute, for as long as the service runs.
async fn read_mailbox_every_minute(
    app: App,
    keys: SigningKeys,
    url: MailboxUrl,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
) {
    loop {
        match crate::app::inbox::fetch(&app, &keys, &url, tls.clone()).await {
            Ok(fetched) if fetched == Default::default() => {}
            Ok(fetched) => tracing::info!(
                acted = fetched.acted,
                ignored = fetched.ignored,
                read_before = fetched.read_before,
                failed = fetched.failed,
                "read the bounce mailbox"
            ),
            Err(e) => tracing::warn!("reading the bounce mailbox {url}: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// Sends queued deliveries until none are due (`--drain`) or until Ctrl-C or SIGTERM, which
/// finish the messages in flight and give back the rest. Through a database restart it waits
/// and goes on.
async fn worker(config: &Config, drain: bool, give_up_after: Duration) -> anyhow::Result<()> {
    let transport = ready_for_real_mail(config)?;
    let app = database::open(config).await?;
    database::replay(&app).await?;
    let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
    let mut settings = worker_settings(config, transport, keys, Arc::new(Metrics::new()))?;
    settings.sending.outage.drain_patience = give_up_after;
    eprintln!("canvass: sending to {}", settings.relays);
    let mut worker = Worker::of(&app, settings);
    if drain && let Some(bar) = progress::sending_bar(app::campaigns::backlog(&app).await?.due) {
        worker.show_progress(bar);
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    supervise(&mut worker, drain, None, stopping, None).await?;
    let total = worker.totals();
    println!(
        "sent {}, skipped {}, failed {}, retried {}",
        total.sent, total.skipped, total.failed, total.retried
    );
    let left = app::campaigns::backlog(&app).await?;
    if let (true, Some(next)) = (drain, left.next_retry) {
        println!(
            "{} wait to be retried, the first at {}: run the worker again then, or keep \
             `canvass serve` running",
            left.waiting,
            next.format("%H:%M:%S UTC")
        );
    }
    // A campaign the worker paused holds its messages until someone acts: say so, and fail.
    let paused = app::campaigns::paused_by_worker(&app).await?;
    for campaign in &paused {
        eprintln!(
            "canvass: campaign {} is paused, holding {} messages: {}; once that is mended, \
             `canvass campaign resume {}`",
            campaign.id, campaign.held, campaign.reason, campaign.id
        );
    }
    if drain && !paused.is_empty() {
        bail!(
            "{} campaign(s) paused by the worker hold messages back",
            paused.len()
        );
    }
    if let Err(Unready::JournalBroken(journal)) = app.readiness().await {
        bail!(
            "the suppression journal {} cannot be written: nothing more was sent, and nothing \
             is sent until it can be (an unsubscribe could not be recorded meanwhile)",
            journal.display()
        );
    }
    if let (true, Some((unusable_for, why))) = (drain, worker.server_unusable()) {
        bail!(
            "the mail server could not be used for {} s ({why}): {} messages wait; they go \
             once it answers (run the worker again, or keep `canvass serve` running)",
            unusable_for.as_secs(),
            left.due
        );
    }
    Ok(())
}

/// Serves the HTTP service, and the worker beside it unless told not to, until Ctrl-C or
/// SIGTERM; both finish what they are doing before the process exits.
async fn serve(config: &Config, with_worker: bool) -> anyhow::Result<()> {
    let transport = ready_for_real_mail(config)?;
    let app = database::open(config).await?;
    database::replay(&app).await?;
    let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
    // One set of counters: /metrics shows the worker's beside the service's.
    let metrics = Arc::new(Metrics::new());
    let worker = match with_worker {
        true => {
            let settings =
                worker_settings(config, transport.clone(), keys.clone(), metrics.clone())?;
            Some(Worker::of(&app, settings))
        }
        false => None,
    };
    let mailer = Mailer {
        transport: transport.first().clone(),
        letterhead: letterhead(config, keys.clone())?,
    };
    let service = app
        .with_mailer(mailer)
        .with_webhooks(config.webhooks.build());
    let purging = tokio::spawn(purge_hourly(service.clone()));
    let retaining = tokio::spawn(apply_retention_daily(service.clone()));
    let reading = mailbox(config)?.map(|(url, tls)| {
        tokio::spawn(read_mailbox_every_minute(
            service.clone(),
            keys.clone(),
            url,
            tls,
        ))
    });
    let health = worker.as_ref().map(|_| Arc::new(WorkerHealth::default()));
    let app = Application::build(ServiceSettings {
        app: service,
        keys,
        listen: config.listen,
        metrics,
        trusted_proxies: config.trusted_proxies.clone(),
        worker: health.clone(),
        metrics_access: config.metrics.clone(),
    })
    .await
    .with_context(|| format!("listening on {}", config.listen))?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let signalled = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signalled.send(true);
    });
    let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let worker = worker.zip(health).map(|(mut worker, health)| {
        let (stopping, stop) = (stopping.clone(), stop.clone());
        tokio::spawn(async move {
            supervise(&mut worker, false, Some(health), stopping, Some(stop)).await
        })
    });
    eprintln!("canvass: serving on http://{}", app.local_addr());
    let hooks = config.webhooks.names();
    if !hooks.is_empty() {
        eprintln!("canvass: taking provider webhooks at {}", hooks.join(", "));
    }
    app.run_until_stopped(stopped(stopping)).await?;
    if let Some(worker) = worker {
        worker.await.context("the worker panicked")??;
    }
    purging.abort();
    retaining.abort();
    if let Some(reading) = reading {
        reading.abort();
    }
    eprintln!("canvass: stopped");
    Ok(())
}

/// Runs the worker (beside the service, or on its own) until stopped, or drained. A worker
/// that stops because the database cannot be used (restarting, failing over, busy) waits 1, 2,
/// 4 ... seconds (at most 30) and starts again, for as long as it takes, `/healthz` saying so
/// meanwhile. One that stops on another error is started again a second later; after
/// [`WORKER_RESTARTS`] such failures in a row it is given up, the service stops too (`stop`),
/// and the error is returned, for the service manager to see.
async fn supervise(
    worker: &mut Worker,
    drain: bool,
    health: Option<Arc<WorkerHealth>>,
    stopping: tokio::sync::watch::Receiver<bool>,
    stop: Option<Arc<tokio::sync::watch::Sender<bool>>>,
) -> anyhow::Result<()> {
    let mut failures = 0;
    let mut outage = 0;
    loop {
        let mut until_stopped = stopping.clone();
        let until_stopped = async move {
            let _ = until_stopped.wait_for(|stop| *stop).await;
        };
        let started = std::time::Instant::now();
        let ran = match drain {
            true => worker.drain_until_stopped(until_stopped).await,
            false => worker.run_until_stopped(until_stopped).await,
        };
        let error = match ran {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        if let Some(health) = &health {
            health.set_stopped(true);
        }
        // A worker that ran a good while before failing starts a new count.
        if started.elapsed() > Duration::from_secs(60) {
            (failures, outage) = (0, 0);
        }
        let wait = if error.is_database_unavailable() {
            outage += 1;
            let wait = Duration::from_secs(1 << (outage - 1).min(5)).min(Duration::from_secs(30));
            tracing::warn!(
                "the database cannot be used ({error}); the worker starts again in {} s",
                wait.as_secs()
            );
            wait
        } else {
            failures += 1;
            if failures >= WORKER_RESTARTS {
                tracing::error!("the worker stopped: {error}; giving up after {failures} tries");
                if let Some(stop) = &stop {
                    let _ = stop.send(true);
                }
                return Err(error).context("the worker stopped and could not be restarted");
            }
            tracing::error!("the worker stopped: {error}; starting it again ({failures})");
            Duration::from_secs(1)
        };
        let mut stopping = stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|stop| *stop) => return Ok(()),
        }
        if let Some(health) = &health {
            health.set_stopped(false);
        }
    }
}

/// Failures in a row after which `serve` gives the worker up, and stops.
const WORKER_RESTARTS: u32 = 5;

/// `canvass dkim keygen`: a new key in a new file, and its DNS record on stdout (split into
/// strings of 255 characters at most, as zone files need).
fn dkim_keygen(domain: &str, selector: &str, key: Option<PathBuf>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !valid(&domain) || !domain.contains('.') {
        bail!("'{domain}' is not a domain name");
    }
    if !valid(selector) || selector.contains('.') {
        bail!("'{selector}' is not a selector: letters, digits and hyphens");
    }
    let path = key.unwrap_or_else(|| PathBuf::from(format!("dkim-{domain}-{selector}.pem")));
    let made = crate::mail::NewDkimKey::generate(&domain, selector).map_err(anyhow::Error::msg)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing the key to {}", path.display()))?;
    file.write_all(made.pem.as_bytes())?;
    file.sync_all()?;
    let strings: Vec<String> = made
        .record
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    println!("{} IN TXT {}", made.record_name, strings.join(" "));
    eprintln!(
        "canvass: the key is in {} (keep it private). Publish the TXT record above, then add \
         {domain}:{selector}:{} to CANVASS_DKIM_KEYS",
        path.display(),
        std::path::absolute(&path).unwrap_or(path.clone()).display()
    );
    Ok(())
}

/// Applies the retention period (when one is set) a minute after start and daily after.
async fn apply_retention_daily(app: App) {
    if app.data_protection.retention_months.is_none() {
        return;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    loop {
        match app::retention::apply(&app, &Actor::Retention, chrono::Utc::now()).await {
            Ok(done) if done.erased + done.ip_addresses > 0 => tracing::info!(
                erased = done.erased,
                ip_addresses = done.ip_addresses,
                "retention: erased contacts past the retention period and blanked old IP addresses"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("applying retention: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
}

/// Forgets expired sign-ups, and webhook tokens and event ids past keeping, at start and every
/// hour after, for the days nobody signs up.
async fn purge_hourly(app: App) {
    loop {
        if let Err(e) = app::signups::purge_expired(&app).await {
            tracing::warn!("purging expired sign-ups: {e}");
        }
        if let Err(e) = app::hooks::prune(&app, chrono::Utc::now()).await {
            tracing::warn!("pruning webhook tokens and events: {e}");
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

async fn import_postcodes(app: &App, file: &Path, force: bool) -> anyhow::Result<()> {
    let mut report = ConsoleReport::new("postcodes");
    let file = CsvFile::open(file)?;
    let summary = imports::directory(app, &Actor::Operator, file, force, &mut report).await;
    report.finish();
    println!("{}", summary.map_err(refused)?);
    Ok(())
}

async fn import_contact_list(
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

async fn topics(app: &App, command: TopicsCommand) -> anyhow::Result<()> {
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

async fn contact(app: &App, command: ContactCommand) -> anyhow::Result<()> {
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
            } => match topics.is_empty() {
                true => (contact, request, Act::Unsubscribe),
                false => (contact, request, Act::Withdraw),
            },
            Self::Unrestrict { .. } | Self::Unsuppress { .. } => return None,
        };
        Some((contact, request.as_deref()?, act))
    }
}

async fn restrict(app: &App, contact: &str, restricted: bool) -> anyhow::Result<()> {
    let state = match restricted {
        true => "restricted",
        false => "unrestricted",
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

//! The `canvass` command line. Each command parses its arguments into domain types, calls the
//! library and prints the result; errors come back to `main` as one line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod campaign;
mod inbox;
mod staff;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::contacts::{self, Withdrawn};
use crate::app::imports::{self, CsvFile};
use crate::app::topics;
use crate::app::{App, AppError};
use crate::config::{Config, Settings};
use crate::domain::{Actor, CampaignState};
use crate::http::{Application, Metrics, ServiceSettings, WorkerHealth, shutdown_signal};
use crate::mail::Mailer;
use crate::progress::{self, ConsoleReport};
use crate::store::{ErasureOutcome, Store};
use crate::token::SigningKeys;
use crate::worker::{
    Letterhead, RetryPolicy, Sending, Transport, Worker, WorkerSettings, load_dkim,
};

#[derive(Parser)]
#[command(
    name = "canvass",
    version,
    about = "A consent-first email mailer for political campaigns"
)]
pub struct Cli {
    /// TOML file of settings [default: canvass.toml when present]
    #[arg(long, global = true, value_name = "FILE", help_heading = "Settings")]
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
    /// Create or upgrade the database schema
    Migrate,
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
    /// The staff: people who sign in to the console, and API tokens
    Staff {
        #[command(subcommand)]
        command: staff::StaffCommand,
    },
    /// Send queued deliveries
    Worker {
        /// Exit when nothing is left to send
        #[arg(long)]
        drain: bool,
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
    },
    /// Erase the person, keeping only a hashed suppression entry
    Erase {
        /// The person's email address, or their public id
        contact: String,
    },
    /// Keep the person's data but never mail them
    Restrict {
        /// The person's email address, or their public id
        contact: String,
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
        let config = self.settings.or(file).resolve()?;
        match self.command {
            Command::Migrate => {
                let store = connect(&config).await?;
                store.migrate().await.context("migrating the database")?;
                println!("database is up to date ({})", config.database_url);
            }
            Command::Postcodes {
                command: PostcodesCommand::Import { file, force },
            } => import_postcodes(&app(&config).await?, &file, force).await?,
            Command::Contacts {
                command: ContactsCommand::Import { file, source },
            } => import_contact_list(&app(&config).await?, &file, &source).await?,
            Command::Topics { command } => topics(&app(&config).await?, command).await?,
            Command::Counts {
                command: CountsCommand::Check,
            } => {
                let drift = open(&config).await?.count_drift().await?;
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
                let store = open(&config).await?;
                for c in store.constituencies(search.as_deref()).await? {
                    println!(
                        "{}\t{}\t{}",
                        c.code,
                        c.name.as_deref().unwrap_or("-"),
                        c.mailable
                    );
                }
            }
            Command::Contact { command } => contact(&app(&config).await?, command).await?,
            Command::Campaign { command } => {
                let app = match command.sends_mail() {
                    true => mailing_app(&config).await?,
                    false => app(&config).await?,
                };
                campaign::run(&app, command).await?
            }
            Command::Inbox {
                command: InboxCommand::Import { dir },
            } => {
                let app = app(&config).await?;
                let keys = SigningKeys::load(config.signing_keys.as_deref(), &app.store).await?;
                inbox::import(&app, &keys, &dir).await?
            }
            Command::Staff { command } => staff::run(&app(&config).await?, command).await?,
            Command::Worker { drain } => worker(&config, drain).await?,
            Command::Serve { no_worker } => serve(&config, !no_worker).await?,
            Command::Demo { dir, no_serve } => {
                crate::demo::run(&dir, config.listen, !no_serve).await?
            }
        }
        Ok(())
    }
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", config.database_url))
}

/// Connects to a database whose schema is up to date.
async fn open(config: &Config) -> anyhow::Result<Store> {
    let store = connect(config).await?;
    store.check_schema().await?;
    Ok(store)
}

/// The application over a database whose schema is up to date.
async fn app(config: &Config) -> anyhow::Result<App> {
    let store = open(config).await?;
    Ok(App::new(store, config.publisher.clone(), &config.base_url)
        .with_sender_domains(config.sender_domains.clone())
        .with_approval(config.require_approval)
        .with_remote_images(config.remote_images))
}

/// The application, sending its own messages (test messages) where the settings say.
async fn mailing_app(config: &Config) -> anyhow::Result<App> {
    let transport = ready_for_real_mail(config)?;
    let app = app(config).await?;
    let keys = SigningKeys::load(config.signing_keys.as_deref(), &app.store).await?;
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
fn ready_for_real_mail(config: &Config) -> anyhow::Result<Transport> {
    let transport = transport(config)?;
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
    if matches!(transport, Transport::Smtp(_)) {
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

/// Where mail goes, trusting the configured CA besides the built-in roots.
fn transport(config: &Config) -> anyhow::Result<Transport> {
    let transport = Transport::from_url(&config.smtp_url)?;
    Ok(match &config.smtp_ca_file {
        Some(ca) => transport.trusting(ca)?,
        None => transport,
    })
}

/// What every message of this process carries, from the settings.
fn letterhead(config: &Config, keys: SigningKeys) -> anyhow::Result<Letterhead> {
    Ok(Letterhead {
        keys,
        base_url: config.base_url.clone(),
        from: config.from.clone(),
        unsubscribe_mailto: config.unsubscribe_mailto.clone(),
        dkim: load_dkim(config.dkim.as_ref())?,
        publisher: config.publisher.clone(),
        reply_to: config.reply_to.clone(),
    })
}

fn worker_settings(
    config: &Config,
    transport: Transport,
    keys: SigningKeys,
    metrics: Arc<Metrics>,
) -> anyhow::Result<WorkerSettings> {
    Ok(WorkerSettings {
        letterhead: letterhead(config, keys)?,
        transport,
        metrics,
        sending: Sending {
            concurrency: config.send_concurrency,
            rate: config.send_rate,
            retry: RetryPolicy::default(),
            lease: config.lease,
            pause_after: config.pause_after_failures,
        },
    })
}

/// Sends queued deliveries until none are due (`--drain`) or until Ctrl-C or SIGTERM, which
/// finish the messages in flight and give back the rest.
async fn worker(config: &Config, drain: bool) -> anyhow::Result<()> {
    let transport = ready_for_real_mail(config)?;
    let store = open(config).await?;
    let keys = SigningKeys::load(config.signing_keys.as_deref(), &store).await?;
    let settings = worker_settings(config, transport, keys, Arc::new(Metrics::new()))?;
    eprintln!("canvass: sending to {}", settings.transport);
    let mut worker = Worker::new(store.clone(), settings);
    let total = match drain {
        true => {
            if let Some(bar) = progress::sending_bar(store.backlog().await?.due) {
                worker.show_progress(bar);
            }
            worker.drain_until_stopped(shutdown_signal()).await?
        }
        false => worker.run_until_stopped(shutdown_signal()).await?,
    };
    println!(
        "sent {}, skipped {}, failed {}, retried {}",
        total.sent, total.skipped, total.failed, total.retried
    );
    let left = store.backlog().await?;
    if let (true, Some(next)) = (drain, left.next_retry) {
        println!(
            "{} wait to be retried, the first at {}: run the worker again then, or keep \
             `canvass serve` running",
            left.waiting,
            next.format("%H:%M:%S UTC")
        );
    }
    // A campaign the worker paused holds its messages until someone acts: say so, and fail.
    let mut paused = 0;
    let listed = store
        .list_campaigns(&crate::domain::Scope::Everyone)
        .await?;
    for summary in listed.iter().filter(|c| c.state == CampaignState::Paused) {
        let Some(campaign) = store.campaign(summary.id).await? else {
            continue;
        };
        if let Some(reason) = &campaign.paused_reason {
            let held = store.delivery_counts(campaign.id).await?.queued;
            eprintln!(
                "canvass: campaign {} is paused, holding {held} messages: {reason}; once that is \
                 mended, `canvass campaign resume {}`",
                campaign.id, campaign.id
            );
            paused += 1;
        }
    }
    if drain && paused > 0 {
        bail!("{paused} campaign(s) paused by the worker hold messages back");
    }
    Ok(())
}

/// Serves the HTTP service, and the worker beside it unless told not to, until Ctrl-C or
/// SIGTERM; both finish what they are doing before the process exits.
async fn serve(config: &Config, with_worker: bool) -> anyhow::Result<()> {
    let transport = ready_for_real_mail(config)?;
    let store = open(config).await?;
    let keys = SigningKeys::load(config.signing_keys.as_deref(), &store).await?;
    // One set of counters: /metrics shows the worker's beside the service's.
    let metrics = Arc::new(Metrics::new());
    let worker = match with_worker {
        true => {
            let settings =
                worker_settings(config, transport.clone(), keys.clone(), metrics.clone())?;
            Some(Worker::new(store.clone(), settings))
        }
        false => None,
    };
    let mailer = Mailer {
        transport,
        letterhead: letterhead(config, keys.clone())?,
    };
    let purging = tokio::spawn(purge_signups(store.clone()));
    let health = worker.as_ref().map(|_| Arc::new(WorkerHealth::default()));
    let app = Application::build(ServiceSettings {
        app: App::new(store, config.publisher.clone(), &config.base_url)
            .with_sender_domains(config.sender_domains.clone())
            .with_approval(config.require_approval)
            .with_remote_images(config.remote_images)
            .with_mailer(mailer),
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
    let worker = worker.zip(health).map(|(worker, health)| {
        tokio::spawn(supervise(worker, health, stopping.clone(), stop.clone()))
    });
    eprintln!("canvass: serving on http://{}", app.local_addr());
    app.run_until_stopped(stopped(stopping)).await?;
    if let Some(worker) = worker {
        worker.await.context("the worker panicked")??;
    }
    purging.abort();
    eprintln!("canvass: stopped");
    Ok(())
}

/// Runs the worker beside the service until stopped. A worker that stops on an error (the
/// database gone for a moment) is started again a second later, `/healthz` saying so
/// meanwhile; after [`WORKER_RESTARTS`] failures in a row the service stops too, and `serve`
/// exits with the error, for the service manager to see.
async fn supervise(
    mut worker: Worker,
    health: Arc<WorkerHealth>,
    stopping: tokio::sync::watch::Receiver<bool>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
) -> anyhow::Result<()> {
    let mut failures = 0;
    loop {
        let mut until_stopped = stopping.clone();
        let started = std::time::Instant::now();
        let ran = worker
            .run_until_stopped(async move {
                let _ = until_stopped.wait_for(|stop| *stop).await;
            })
            .await;
        let error = match ran {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        health.set_stopped(true);
        // A worker that ran a good while before failing starts a new count.
        if started.elapsed() > std::time::Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        if failures >= WORKER_RESTARTS {
            tracing::error!("the worker stopped: {error}; giving up after {failures} tries");
            let _ = stop.send(true);
            return Err(error).context("the worker stopped and could not be restarted");
        }
        tracing::error!("the worker stopped: {error}; starting it again ({failures})");
        let mut stopping = stopping.clone();
        let restart = tokio::time::sleep(std::time::Duration::from_secs(1));
        tokio::select! {
            () = restart => {}
            _ = stopping.wait_for(|stop| *stop) => return Ok(()),
        }
        health.set_stopped(false);
    }
}

/// Failures in a row after which `serve` gives the worker up, and stops.
const WORKER_RESTARTS: u32 = 5;

/// Forgets expired sign-ups at start and every hour after, for the days nobody signs up.
async fn purge_signups(store: Store) {
    loop {
        if let Err(e) = store.purge_signups().await {
            tracing::warn!("purging expired sign-ups: {e}");
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

async fn import_contact_list(app: &App, file: &Path, source: &str) -> anyhow::Result<()> {
    let mut report = ConsoleReport::new("contacts");
    let summary = imports::contacts(
        app,
        &Actor::Operator,
        CsvFile::open(file)?,
        source,
        None,
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
    match command {
        ContactCommand::Export { contact } => {
            let held = contacts::export(app, me, &contact).await.map_err(refused)?;
            println!("{}", serde_json::to_string_pretty(&held)?);
        }
        ContactCommand::Erase { contact } => {
            match contacts::erase(app, me, &contact).await.map_err(refused)? {
                ErasureOutcome::Erased => {
                    println!("erased; the address is kept only as a hash on the suppression list")
                }
                ErasureOutcome::NothingHeld => println!(
                    "nothing was held on that address; it is now on the suppression list as a hash"
                ),
            }
        }
        ContactCommand::Restrict { contact } => restrict(app, &contact, true).await?,
        ContactCommand::Unrestrict { contact } => restrict(app, &contact, false).await?,
        ContactCommand::Unsubscribe {
            contact,
            topics,
            source,
            note,
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
    Ok(())
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

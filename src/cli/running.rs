//! The long-running commands, `canvass worker` and `canvass serve`: the settings turned into
//! relays, a letterhead and the worker's settings, the worker supervised and restarted, and the
//! service's daily and hourly chores.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::app::{self, App, Unready};
use crate::config::Config;
use crate::database;
use crate::domain::Actor;
use crate::http::{Application, Metrics, ServiceSettings, WorkerHealth, shutdown_signal};
use crate::mail::Mailer;
use crate::mail::imap::MailboxUrl;
use crate::mail::token::SigningKeys;
use crate::mail::{Letterhead, Relays, Transport, load_dkim};
use crate::progress;
use crate::worker::{Outage, RetryPolicy, Sending, Worker, WorkerSettings};

/// The application, sending its own messages (test messages) where the settings say.
pub(super) async fn mailing_app(config: &Config) -> anyhow::Result<App> {
    let transport = ready_for_real_mail(config)?.first().clone();
    let app = database::open(config).await?;
    let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
    let letterhead = letterhead(config, keys)?;
    Ok(app.with_mailer(Mailer {
        transport,
        letterhead,
    }))
}

/// Where mail goes, once it is ready for real mail: sending over SMTP to another machine is
/// refused with settings that would ship broken mail (a From address at `localhost`, which
/// receiving servers refuse, or links that are not public `https://` addresses, as RFC 8058
/// wants for one-click unsubscribe). Warns, once, of the footer details the law expects and
/// that are not set.
pub(super) fn ready_for_real_mail(config: &Config) -> anyhow::Result<Relays> {
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
pub(super) fn relays(config: &Config) -> anyhow::Result<Relays> {
    let relays = if config.relays.is_empty() {
        Relays::parse(&config.smtp_url)?
    } else {
        Relays::from_settings(&config.relays)?
    };
    Ok(match &config.smtp_ca_file {
        Some(ca) => relays.trusting(ca)?,
        None => relays,
    })
}

/// What every message of this process carries, from the settings.
pub(super) fn letterhead(config: &Config, keys: SigningKeys) -> anyhow::Result<Letterhead> {
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

pub(super) fn worker_settings(
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
pub(super) fn mailbox(
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
pub(super) async fn read_mailbox_every_minute(
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
pub(super) async fn worker(
    config: &Config,
    drain: bool,
    give_up_after: Duration,
) -> anyhow::Result<()> {
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
pub(super) async fn serve(config: &Config, with_worker: bool) -> anyhow::Result<()> {
    let transport = ready_for_real_mail(config)?;
    let app = database::open(config).await?;
    database::replay(&app).await?;
    let keys = app.signing_keys(config.signing_keys.as_deref()).await?;
    // One set of counters: /metrics shows the worker's beside the service's.
    let metrics = Arc::new(Metrics::new());
    let worker = if with_worker {
        let settings = worker_settings(config, transport.clone(), keys.clone(), metrics.clone())?;
        Some(Worker::of(&app, settings))
    } else {
        None
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
pub(super) async fn supervise(
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
        let ran = if drain {
            worker.drain_until_stopped(until_stopped).await
        } else {
            worker.run_until_stopped(until_stopped).await
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
pub(super) const WORKER_RESTARTS: u32 = 5;

/// Applies the retention period (when one is set) a minute after start and daily after.
pub(super) async fn apply_retention_daily(app: App) {
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
pub(super) async fn purge_hourly(app: App) {
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

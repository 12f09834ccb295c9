//! The delivery worker. One task claims deliveries in batches under a lease and queues them;
//! `concurrency` sender tasks, each with its own connection, render, sign and send one message
//! at a time under one rate limit for the process; recorder tasks (one on SQLite) write their
//! results, many to a commit. A sender waits for its result to be committed before it takes the next
//! message, so a crash can repeat at most one accepted message per connection.
//!
//! Every message is checked again just before MAIL FROM against the change feed ([`feed`]), so
//! that a withdrawal, an erasure or a pause committed while it waited stops it within a second.
//!
//! Failures are sorted by where they happen ([`SendFailure`]): the server or the settings
//! (connecting, TLS, AUTH, MAIL FROM) → the message goes back to the queue uncharged; a 4xx to
//! the message → tried again later with exponential backoff and jitter; RCPT refused with a
//! mailbox status → failed, and the address suppressed as bounced; refused otherwise → failed,
//! nobody suppressed.
//!
//! A server that cannot be used for a while (down, restarting, a quota or throttle at MAIL
//! FROM) is waited for: each sender tries again after 1, 2, 4 ... seconds, up to
//! [`Outage::longest_wait`], and sends the moment it answers. Only what needs a person pauses
//! the campaign ([`Trouble::needs_a_person`]: our login refused, TLS that cannot be verified,
//! our sender refused, or a run of recipients refused for good), and the admins are told
//! ([`alerts`]).
//!
//! Here: the settings, the [`Worker`] and what its tasks share; beside it, each task's part:
//! [`claimer`], [`sender`], [`recorder`], [`pausing`] and [`alerts`], with [`redaction`] (what is
//! kept of a server's answer), [`feed`], [`budget`], [`relays`] and [`domains`].

mod alerts;
mod budget;
mod claimer;
mod domains;
mod feed;
mod pausing;
mod recorder;
mod redaction;
mod relays;
mod sender;

use std::collections::HashMap;
use std::future::Future;
use std::num::{NonZeroU32, NonZeroUsize};

use crate::domain::Rate;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::ProgressBar;
use rand::Rng;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use crate::mail::{Letterhead, Relays};

use self::budget::Budget;
use self::domains::Domains;
use self::feed::Feed;
use self::recorder::record;
use self::relays::Relaying;
use self::sender::send;
use crate::mail::render::Templates;
use crate::metrics::Metrics;
use crate::store::{Campaign, ClaimedDelivery, DeliveryResult, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording results: {0}")]
    Recording(Arc<StoreError>),
    #[error("campaign {0}: {1}")]
    Template(i64, crate::mail::render::TemplateError),
    #[error("campaign {0} has disappeared")]
    CampaignGone(i64),
    #[error("a sender task failed: {0}")]
    Sender(#[from] tokio::task::JoinError),
}

impl WorkerError {
    /// Whether the worker stopped because the database could not be used for a while: it is
    /// started again once the database answers.
    pub fn is_database_unavailable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_unavailable(),
            Self::Recording(error) => error.is_unavailable(),
            _ => false,
        }
    }
}

/// How often to try again, and how long to wait in between.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles after each one.
    pub first_wait: Duration,
    /// The longest wait.
    pub longest_wait: Duration,
    /// Attempts in all before a delivery is given up as failed.
    pub attempts: u32,
}

impl Default for RetryPolicy {
    /// 1, 2, 4 ... minutes up to an hour, thirty attempts: a message the server keeps putting
    /// off is given up after about a day, as mail servers give up on their own queues (failed,
    /// nobody suppressed; `campaign retry` queues it again). A server that puts off every
    /// message pauses the campaign long before.
    fn default() -> Self {
        Self {
            first_wait: Duration::from_secs(60),
            longest_wait: Duration::from_secs(3600),
            attempts: 30,
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed attempts: exponential, with "equal jitter" (half
    /// fixed, half random) so that deliveries deferred together do not all come back together.
    pub fn wait(&self, failures: u32) -> Duration {
        let doubled = self
            .first_wait
            .saturating_mul(1 << failures.saturating_sub(1).min(20));
        let wait = doubled.min(self.longest_wait);
        let half = wait / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// How the worker sends: the knobs an operator sets.
#[derive(Debug, Clone)]
pub struct Sending {
    /// Messages in flight at once, each on its own connection.
    pub concurrency: NonZeroUsize,
    /// Messages per second for every worker on the database together; `None`: as fast as
    /// the server takes them.
    pub rate: Option<Rate>,
    pub retry: RetryPolicy,
    /// How long a claim holds without renewal: a crashed worker's rows go to another after it.
    pub lease: Duration,
    /// Recipients refused for good in a row that pause the campaign being sent.
    pub pause_after: NonZeroU32,
    pub outage: Outage,
    /// Messages per second to each recipient domain named (lower case), for every worker
    /// together (`CANVASS_DOMAIN_RATES`).
    pub domain_rates: Vec<(String, Rate)>,
}

impl Default for Sending {
    fn default() -> Self {
        Self {
            concurrency: NonZeroUsize::new(8).expect("8 is not 0"),
            rate: None,
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(60),
            pause_after: NonZeroU32::new(25).expect("25 is not 0"),
            outage: Outage::default(),
            domain_rates: Vec::new(),
        }
    }
}

/// How the worker waits for a server that cannot be used for a while.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    /// The longest wait between tries: each sender waits 1, 2, 4 ... seconds up to it.
    pub longest_wait: Duration,
    /// A drain gives up once the server has been unusable this long, leaving the rest queued
    /// for the next run; a worker that runs until stopped waits for ever.
    pub drain_patience: Duration,
}

impl Default for Outage {
    fn default() -> Self {
        Self {
            longest_wait: Duration::from_secs(120),
            drain_patience: Duration::from_secs(300),
        }
    }
}

pub struct WorkerSettings {
    pub letterhead: Letterhead,
    /// Where mail goes: one relay (a `Transport` converts) or several.
    pub relays: Relays,
    /// Where the worker counts what it does.
    pub metrics: Arc<Metrics>,
    pub sending: Sending,
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Attempts deferred to be tried again later.
    pub retried: u64,
}

pub struct Worker {
    shared: Arc<Shared>,
}

/// What the worker's tasks share.
struct Shared {
    store: Store,
    settings: WorkerSettings,
    /// This process's name on its leases.
    owner: String,
    /// The installation's rate, drawn from the database; `None`: unlimited.
    budget: Option<Budget>,
    /// The relays, which may take a message now, and each relay's own rate.
    relaying: Relaying,
    /// The recipient domains slowing us down, and their caps.
    domains: Domains,
    /// Campaigns met so far, with their compiled templates.
    campaigns: Mutex<HashMap<i64, Arc<(Campaign, Templates)>>>,
    /// What changed since each message was claimed.
    feed: Feed,
    claims: Claims,
    health: ServerHealth,
    progress: Progress,
}

/// What this worker's claims hold, and until when.
#[derive(Default)]
struct Claims {
    /// Claims begun so far: each queued delivery carries the number of its claim.
    begun: AtomicU64,
    /// Campaigns this worker paused, each with the last claim begun before the pause was
    /// committed: deliveries from that claim or earlier go back unsent. A later claim can only
    /// hold the campaign's rows once someone has resumed it.
    paused: Mutex<HashMap<i64, u64>>,
    /// Until when every lease this worker holds is known to hold: the last renewal's start
    /// plus the lease (or, before one, the earliest claim's). A message is sent only well
    /// within it: past it, another worker may have the row.
    leases_hold_until: Mutex<Option<Instant>>,
    /// Claims up to this number may have lost their leases (the guarantee ran out before it was
    /// renewed): what they queued goes back unsent, whatever a later renewal says, since a
    /// later claim may hold the same rows.
    lapsed: AtomicU64,
}

/// How the server has been answering.
#[derive(Default)]
struct ServerHealth {
    /// Recipients refused for good in a row.
    failures_in_a_row: AtomicU32,
    /// Since when the server could not be used, and why: cleared by its next answer.
    unusable: Mutex<Option<(Instant, String)>>,
}

/// What the worker has done, and is doing.
#[derive(Default)]
struct Progress {
    totals: RunningTotals,
    /// Deliveries claimed and not yet recorded.
    in_flight: AtomicUsize,
    /// Rung by a sender each time it finishes a delivery.
    finished_one: Notify,
    stopping: AtomicBool,
    bar: Mutex<Option<ProgressBar>>,
}

#[derive(Default)]
struct RunningTotals {
    sent: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

impl RunningTotals {
    fn snapshot(&self) -> Totals {
        Totals {
            sent: self.sent.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

impl Totals {
    fn since(self, before: Totals) -> Totals {
        Totals {
            sent: self.sent - before.sent,
            skipped: self.skipped - before.skipped,
            failed: self.failed - before.failed,
            retried: self.retried - before.retried,
        }
    }
}

/// When a run ends by itself, besides when it is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Never: it waits for more to send.
    Stopped,
    /// Once nothing is due.
    Drained,
    /// Once one batch is claimed and settled (or nothing is due).
    OneBatch,
}

/// A claimed delivery on its way to a sender, with the number of the claim that took it.
struct Job {
    claim: u64,
    delivery: ClaimedDelivery,
    /// The feed's position when the recipient was last checked in the database.
    checked: u64,
}

/// One result on its way to the recorder, and where to say it is committed.
struct Pending {
    delivery: i64,
    result: DeliveryResult,
    committed: oneshot::Sender<Result<bool, Arc<StoreError>>>,
}

/// A message the server accepted, handed to the recorder and not yet known to be committed.
struct Unsettled {
    delivery: ClaimedDelivery,
    result: DeliveryResult,
    committed: oneshot::Receiver<Result<bool, Arc<StoreError>>>,
}

impl Worker {
    /// The worker sending for `app`'s database.
    pub fn of(app: &crate::app::App, settings: WorkerSettings) -> Self {
        Self::new(app.store.clone(), settings)
    }

    pub fn new(store: Store, settings: WorkerSettings) -> Self {
        let budget = settings
            .sending
            .rate
            .map(|rate| Budget::new(store.clone(), "all".into(), rate));
        let domains = Domains::new(&store, &settings.sending.domain_rates);
        let relaying = Relaying::new(
            &store,
            settings.relays.clone(),
            settings.sending.outage.longest_wait,
        );
        Self {
            shared: Arc::new(Shared {
                store,
                owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
                budget,
                relaying,
                domains,
                settings,
                campaigns: Mutex::default(),
                feed: Feed::new(),
                claims: Claims::default(),
                health: ServerHealth::default(),
                progress: Progress::default(),
            }),
        }
    }

    /// What every run of this worker did, together.
    pub fn totals(&self) -> Totals {
        self.shared.progress.totals.snapshot()
    }

    /// How long the server has been unusable, and the last reason, when it is: after a drain,
    /// why it gave up.
    pub fn server_unusable(&self) -> Option<(Duration, String)> {
        lock(&self.shared.health.unusable)
            .as_ref()
            .map(|(since, why)| (since.elapsed(), why.clone()))
    }

    /// Shows progress on `bar` (a terminal's) while draining.
    pub fn show_progress(&self, bar: ProgressBar) {
        *lock(&self.shared.progress.bar) = Some(bar);
    }

    /// Sends until nothing is due (deliveries waiting for a retry later stay queued); returns
    /// what it did.
    pub async fn drain(&mut self) -> Result<Totals, WorkerError> {
        self.drain_until_stopped(std::future::pending()).await
    }

    /// Drains, unless `shutdown` completes first: then it stops as `run_until_stopped` does.
    pub async fn drain_until_stopped(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Totals, WorkerError> {
        self.run(Until::Drained, shutdown).await
    }

    /// Sends until `shutdown` completes, then stops claiming, finishes the messages in flight
    /// and gives back the rest of what it claimed.
    pub async fn run_until_stopped(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Totals, WorkerError> {
        self.run(Until::Stopped, shutdown).await
    }

    /// Claims one batch (as many as a claim takes) and sends it, then stops as a drain does;
    /// returns what it did, nothing when nothing was due. What `run_until_stopped` repeats,
    /// one step at a time, for tests.
    pub async fn step(&mut self) -> Result<Totals, WorkerError> {
        self.run(Until::OneBatch, std::future::pending()).await
    }

    async fn run(
        &mut self,
        until: Until,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Totals, WorkerError> {
        let shared = &self.shared;
        let before = shared.progress.totals.snapshot();
        shared.progress.stopping.store(false, Ordering::Relaxed);
        // A run that ended on a fault may have left rows under this worker's name, which its
        // claims pass over: nothing of an earlier run is in hand now.
        shared.store.release_leases(&shared.owner).await?;
        shared.feed.read(&shared.store).await?;
        // Read until the last sender is done, however `run` ends.
        let _reader = AbortOnDrop(tokio::spawn(read_feed(shared.clone())));
        let batch = shared.batch_size();
        let (jobs, queue) = async_channel::bounded::<Job>(2 * batch);
        let (to_recorder, from_senders) = async_channel::bounded::<Pending>(2 * batch);
        // As many recorders as the database takes writers at once (one on SQLite).
        let recorders: Vec<_> = (0..shared.store.concurrent_writers())
            .map(|_| {
                tokio::spawn(record(
                    shared.store.clone(),
                    shared.owner.clone(),
                    from_senders.clone(),
                ))
            })
            .collect();
        drop(from_senders);
        let mut senders = JoinSet::new();
        for _ in 0..shared.settings.sending.concurrency.get() {
            senders.spawn(send(shared.clone(), queue.clone(), to_recorder.clone()));
        }
        drop((queue, to_recorder));

        let claimed = shared
            .claim(&jobs, batch, until, shutdown, &mut senders)
            .await;
        // Stopping (or done): senders finish the message in hand, give back the queued rest.
        shared.progress.stopping.store(true, Ordering::Relaxed);
        jobs.close();
        let mut sending = Ok(());
        while let Some(ended) = senders.join_next().await {
            if let Err(e) = ended.map_err(WorkerError::from).and_then(|sent| sent) {
                sending = sending.and(Err(e));
            }
        }
        for recorder in recorders {
            recorder.await?;
        }
        shared.store.release_leases(&shared.owner).await?;
        shared.store.finish_campaigns().await?;
        shared.settings.metrics.send_rate.set(0.0);
        claimed.and(sending)?;
        let totals = shared.progress.totals.snapshot().since(before);
        if let Some(bar) = lock(&shared.progress.bar).take() {
            bar.finish_and_clear();
        }
        tracing::info!(
            sent = totals.sent,
            failed = totals.failed,
            retried = totals.retried,
            skipped = totals.skipped,
            "worker stopped"
        );
        Ok(totals)
    }
}

/// Reads the change feed every [`feed::POLL`] until aborted, and now and then forgets changes
/// older than a day.
async fn read_feed(shared: Arc<Shared>) {
    let mut pruned = Instant::now();
    loop {
        tokio::time::sleep(feed::POLL).await;
        if let Err(e) = shared.feed.read(&shared.store).await {
            // Senders wait for a fresh reading meanwhile: nothing goes unchecked.
            tracing::warn!("reading the change feed: {e}");
        }
        if pruned.elapsed() > Duration::from_secs(600) {
            pruned = Instant::now();
            let day_ago = Utc::now() - chrono::Duration::days(1);
            if let Err(e) = shared.store.prune_changes(day_ago).await {
                tracing::warn!("pruning the change feed: {e}");
            }
        }
    }
}

/// A task stopped when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Locks a mutex, carrying on if a panicking thread poisoned it (the data are counters and
/// caches, never left half-written).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_up_to_the_longest() {
        let policy = RetryPolicy::default();
        for failures in 1..=10 {
            let full = Duration::from_secs(60 * (1 << (failures - 1))).min(policy.longest_wait);
            for _ in 0..100 {
                let wait = policy.wait(failures);
                assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
            }
        }
    }
}

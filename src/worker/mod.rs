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

mod alerts;

mod budget;

mod domains;

mod feed;

mod relays;

use std::collections::HashMap;
use std::future::Future;
use std::num::{NonZeroU32, NonZeroUsize};

pub use crate::domain::Rate;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use indicatif::ProgressBar;
use rand::Rng;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

pub use crate::mail::{
    Connection, DkimError, Letterhead, MessageError, Relays, SendFailure, Timeouts, Transport,
    TransportError, Trouble, envelope, load_dkim,
};

use self::budget::{Budget, Taken};
use self::domains::Domains;
use self::feed::Feed;
use self::relays::Relaying;
use crate::metrics::Metrics;
use crate::render::Templates;
use crate::store::{
    Campaign, ClaimedDelivery, DeliveryResult, Imprint, Recheck, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording results: {0}")]
    Recording(Arc<StoreError>),
    #[error("campaign {0}: {1}")]
    Template(i64, crate::render::TemplateError),
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
    /// Claims begun so far: each queued delivery carries the number of its claim.
    claims: AtomicU64,
    /// Campaigns this worker paused, each with the last claim begun before the pause was
    /// committed: deliveries from that claim or earlier go back unsent. A later claim can only
    /// hold the campaign's rows once someone has resumed it.
    paused: Mutex<HashMap<i64, u64>>,
    /// Recipients refused for good in a row.
    failures_in_a_row: AtomicU32,
    /// Until when every lease this worker holds is known to hold: the last renewal's start
    /// plus the lease (or, before one, the earliest claim's). A message is sent only well
    /// within it: past it, another worker may have the row.
    leases_hold_until: Mutex<Option<Instant>>,
    /// Claims up to this number may have lost their leases (the guarantee ran out before it was
    /// renewed): what they queued goes back unsent, whatever a later renewal says, since a
    /// later claim may hold the same rows.
    lapsed_claims: AtomicU64,
    /// Since when the server could not be used, and why: cleared by its next answer.
    unusable: Mutex<Option<(Instant, String)>>,
    totals: Counts,
    /// Deliveries claimed and not yet recorded.
    in_flight: AtomicUsize,
    /// Rung by a sender each time it finishes a delivery.
    finished_one: Notify,
    stopping: AtomicBool,
    bar: Mutex<Option<ProgressBar>>,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

impl Counts {
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
                claims: AtomicU64::new(0),
                paused: Mutex::default(),
                failures_in_a_row: AtomicU32::new(0),
                leases_hold_until: Mutex::default(),
                lapsed_claims: AtomicU64::new(0),
                unusable: Mutex::default(),
                totals: Counts::default(),
                in_flight: AtomicUsize::new(0),
                finished_one: Notify::new(),
                stopping: AtomicBool::new(false),
                bar: Mutex::new(None),
            }),
        }
    }

    /// What every run of this worker did, together.
    pub fn totals(&self) -> Totals {
        self.shared.totals.snapshot()
    }

    /// How long the server has been unusable, and the last reason, when it is: after a drain,
    /// why it gave up.
    pub fn server_unusable(&self) -> Option<(Duration, String)> {
        lock(&self.shared.unusable)
            .as_ref()
            .map(|(since, why)| (since.elapsed(), why.clone()))
    }

    /// Shows progress on `bar` (a terminal's) while draining.
    pub fn show_progress(&self, bar: ProgressBar) {
        *lock(&self.shared.bar) = Some(bar);
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
        self.run(true, shutdown).await
    }

    /// Sends until `shutdown` completes, then stops claiming, finishes the messages in flight
    /// and gives back the rest of what it claimed.
    pub async fn run_until_stopped(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Totals, WorkerError> {
        self.run(false, shutdown).await
    }

    async fn run(
        &mut self,
        drain: bool,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Totals, WorkerError> {
        let shared = &self.shared;
        let before = shared.totals.snapshot();
        shared.stopping.store(false, Ordering::Relaxed);
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
            .claim(&jobs, batch, drain, shutdown, &mut senders)
            .await;
        // Stopping (or done): senders finish the message in hand, give back the queued rest.
        shared.stopping.store(true, Ordering::Relaxed);
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
        let totals = shared.totals.snapshot().since(before);
        if let Some(bar) = lock(&shared.bar).take() {
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

impl Shared {
    /// Deliveries claimed at a time: enough to keep every connection busy, and under a rate
    /// limit no more than a quarter of a lease's worth.
    fn batch_size(&self) -> usize {
        let sending = &self.settings.sending;
        let wanted = (sending.concurrency.get() * 25).clamp(200, 1000);
        match sending.rate {
            Some(rate) => {
                let per_lease = rate.per_second() * sending.lease.as_secs_f64() / 4.0;
                wanted.min(per_lease as usize).max(1)
            }
            None => wanted,
        }
    }

    /// Claims batches and queues them for the senders until stopped or, when draining, until
    /// nothing is due.
    async fn claim(
        &self,
        jobs: &async_channel::Sender<Job>,
        batch: usize,
        drain: bool,
        shutdown: impl Future<Output = ()>,
        senders: &mut JoinSet<Result<(), WorkerError>>,
    ) -> Result<(), WorkerError> {
        tokio::pin!(shutdown);
        let lease = chrono::Duration::from_std(self.settings.sending.lease)
            .expect("a lease of a sane length");
        let mut renewed = Instant::now();
        let mut scheduled: Option<Instant> = None;
        // When the next scheduled campaign is due: the claimer wakes for it then.
        let mut next_due: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut rate = RateWindow::new(self.totals.sent.load(Ordering::Relaxed));
        let mut gauged: Option<Instant> = None;
        let mut journal_stopped = false;
        loop {
            if (&mut shutdown).now_or_never().is_some() {
                return Ok(());
            }
            // Scheduled campaigns whose time has come: looked for once a second (another
            // process may have scheduled one), and at the moment the next one is due.
            let due = next_due.is_some_and(|at| at <= chrono::Utc::now());
            if due || scheduled.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                scheduled = Some(Instant::now());
                let imprint = Imprint::of(self.settings.letterhead.publisher.imprint.as_deref());
                for (campaign, deliveries) in self.store.queue_due_campaigns(imprint).await? {
                    tracing::info!(campaign, deliveries, "queued a scheduled campaign");
                }
                next_due = self.store.next_scheduled().await?;
            }
            if let Some(ended) = senders.try_join_next() {
                // Senders end early only on an error: stop and report it.
                return ended?;
            }
            if renewed.elapsed() > self.settings.sending.lease / 3 {
                let started = Instant::now();
                self.store.renew_leases(&self.owner, lease).await?;
                self.lapse_if_expired(self.claims.load(Ordering::Acquire));
                *lock(&self.leases_hold_until) = Some(started + self.settings.sending.lease);
                renewed = Instant::now();
            }
            if let Some(per_second) = rate.update(self.totals.sent.load(Ordering::Relaxed)) {
                self.settings.metrics.send_rate.set(per_second);
            }
            if gauged.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
                gauged = Some(Instant::now());
                self.gauge_the_queue().await?;
            }
            let patience = self.settings.sending.outage.drain_patience;
            if drain && self.unusable_longer_than(patience) {
                return Ok(());
            }
            // No journal, no mail: an unsubscribe that cannot be recorded fails, and nobody is
            // mailed meanwhile who may be trying to leave.
            if self.store.journal_is_broken().await {
                if drain {
                    return Ok(());
                }
                if !journal_stopped {
                    tracing::error!(
                        "the suppression journal cannot be written: sending stops until it can"
                    );
                    journal_stopped = true;
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            journal_stopped = false;
            let wait = if jobs.len() < batch {
                let number = self.claims.fetch_add(1, Ordering::AcqRel) + 1;
                let checked = self.feed.position();
                let started = Instant::now();
                let claim = self
                    .store
                    .claim_deliveries(&self.owner, batch as u32, lease)
                    .await?;
                self.lapse_if_expired(number - 1);
                self.leases_hold_at_least_until(started + self.settings.sending.lease);
                self.count_skipped(claim.skipped);
                if !claim.deliveries.is_empty() {
                    self.in_flight
                        .fetch_add(claim.deliveries.len(), Ordering::AcqRel);
                    for delivery in claim.deliveries {
                        if jobs
                            .send(Job {
                                claim: number,
                                delivery,
                                checked,
                            })
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    continue;
                }
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    self.store.finish_campaigns().await?;
                    if drain && self.store.backlog().await?.due == 0 {
                        return Ok(());
                    }
                }
                // Nothing to claim: rows held by another worker, or nothing queued.
                let idle = match drain {
                    true => Duration::from_millis(200),
                    false => Duration::from_secs(1),
                };
                let until_due = next_due
                    .and_then(|at| (at - chrono::Utc::now()).to_std().ok())
                    .unwrap_or(idle);
                idle.min(until_due)
            } else {
                Duration::from_millis(100)
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = self.finished_one.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Holds back every delivery of this campaign already claimed, while the pause is being
    /// written; `false` when a pause of it is already under way.
    fn begin_pause(&self, delivery: &ClaimedDelivery) -> bool {
        let mut paused = lock(&self.paused);
        match paused.get(&delivery.campaign_id) {
            Some(&u64::MAX) => false,
            _ => {
                paused.insert(delivery.campaign_id, u64::MAX);
                true
            }
        }
    }

    /// A claim begun at some instant holds its rows until `holds`: the earliest guarantee
    /// stands.
    fn leases_hold_at_least_until(&self, holds: Instant) {
        let mut until = lock(&self.leases_hold_until);
        *until = Some(until.map_or(holds, |until| until.min(holds)));
    }

    /// When the guarantee has run out, claims up to `claim` lapse for good, and a fresh one
    /// starts with the next renewal or claim.
    fn lapse_if_expired(&self, claim: u64) {
        let mut until = lock(&self.leases_hold_until);
        if until.is_some_and(|until| Instant::now() >= until) {
            self.lapsed_claims.fetch_max(claim, Ordering::AcqRel);
            *until = None;
        }
    }

    /// Whether the leases of `job`'s claim hold long enough yet for it to be sent under them.
    fn lease_holds(&self, job: &Job) -> bool {
        let margin = self.settings.sending.lease / 4;
        job.claim > self.lapsed_claims.load(Ordering::Acquire)
            && lock(&self.leases_hold_until).is_some_and(|until| Instant::now() + margin < until)
    }

    /// Whether a claimed delivery belongs to a campaign this worker has paused since.
    fn held_back(&self, job: &Job) -> bool {
        lock(&self.paused)
            .get(&job.delivery.campaign_id)
            .is_some_and(|&last| job.claim <= last)
    }

    fn count_skipped(&self, skipped: u64) {
        if skipped > 0 {
            self.totals.skipped.fetch_add(skipped, Ordering::Relaxed);
            self.settings.metrics.skipped.inc_by(skipped);
            if let Some(bar) = &*lock(&self.bar) {
                bar.inc(skipped);
            }
        }
    }

    async fn campaign(&self, id: i64) -> Result<Arc<(Campaign, Templates)>, WorkerError> {
        if let Some(found) = lock(&self.campaigns).get(&id) {
            return Ok(found.clone());
        }
        let campaign = self
            .store
            .campaign(id)
            .await?
            .ok_or(WorkerError::CampaignGone(id))?;
        let templates = Templates::compile_in_background(&campaign.spec)
            .await
            .map_err(|e| WorkerError::Template(id, e))?;
        let entry = Arc::new((campaign, templates));
        lock(&self.campaigns).insert(id, entry.clone());
        Ok(entry)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Renders, signs and sends one message; says what became of it and, when the sending
    /// failed, how. The message is checked again just before MAIL FROM, once the connection is
    /// ready and the change feed has been read within the last half second.
    ///
    /// The sender's previous message (`unsettled`), accepted and handed to the recorder, is
    /// settled before this one can be accepted: after DATA, before the message itself. So its
    /// commit is awaited while this one is built and begun, and a crash still repeats at most
    /// one accepted message per connection.
    async fn attempt(
        &self,
        connections: &mut [Connection],
        job: &mut Job,
        unsettled: &mut Option<Unsettled>,
    ) -> Result<(DeliveryResult, Option<SendFailure>), WorkerError> {
        // A change heard of since the claim may have settled it already.
        if let Some(settled) = self.check_again(job).await? {
            return Ok((settled, None));
        }
        let delivery = &job.delivery;
        // A domain slowing us down, or at its cap, waits without costing an attempt.
        let domain = delivery.email.address().domain().to_ascii_lowercase();
        let postponed = |wait: Duration| {
            // Spread out, so that what waited together does not come back together.
            let wait = wait.mul_f64(1.0 + rand::rng().random::<f64>() / 2.0);
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            Ok((DeliveryResult::Postponed { at }, None))
        };
        if let Some(wait) = self.domains.resting(&domain) {
            return postponed(wait);
        }
        if let Some(budget) = self.domains.budget(&domain) {
            match budget
                .take_within(DOMAIN_PATIENCE, || self.stopping())
                .await?
            {
                Taken::Yes => {}
                Taken::Later(wait) => return postponed(wait),
                Taken::Stopping => return Ok((DeliveryResult::Released, None)),
            }
        }
        let campaign = match self.campaign(delivery.campaign_id).await {
            Ok(campaign) => campaign,
            // A template that cannot be used stops its campaign, not the worker.
            Err(WorkerError::Template(_, error)) => {
                self.pause(
                    delivery,
                    &format!("its template cannot be used: {error}"),
                    None,
                )
                .await?;
                return Ok((DeliveryResult::Released, None));
            }
            Err(error) => return Err(error),
        };
        let (campaign, templates) = &*campaign;
        let letterhead = &self.settings.letterhead;
        // Election material carries the imprint: a worker without one holds it (its messages
        // wait) rather than send it bare, whatever the process that queued it had.
        if campaign.spec.election_material
            && Imprint::of(letterhead.publisher.imprint.as_deref()) == Imprint::Missing
        {
            self.pause(
                delivery,
                "it is election material, and this worker has no digital imprint \
                 (CANVASS_IMPRINT) to print in it",
                None,
            )
            .await?;
            return Ok((DeliveryResult::Released, None));
        }
        let (message_id, message) = match letterhead.message(campaign, templates, delivery) {
            Ok(built) => built,
            Err(e) => {
                let reason = e.to_string();
                return Ok((
                    DeliveryResult::Failed {
                        reason: reason.clone(),
                        bounced: false,
                    },
                    Some(SendFailure::Refused(reason)),
                ));
            }
        };
        let envelope =
            letterhead.envelope(letterhead.sender_of(campaign), delivery.email.address());
        let bytes = message.formatted();
        if let Some(budget) = &self.budget
            && !budget.take(|| self.stopping()).await?
        {
            return Ok((DeliveryResult::Released, None));
        }
        // A relay that can take it; another if that one cannot, while nothing has been sent.
        let relay = loop {
            let relay = match self.relaying.pick() {
                Ok(relay) => relay,
                Err(failure) => return Ok((DeliveryResult::Released, Some(failure))),
            };
            if let Some(budget) = self.relaying.budget(relay) {
                match budget
                    .take_within(RELAY_PATIENCE, || self.stopping())
                    .await?
                {
                    Taken::Yes => {}
                    // Its rate is spent for now: another relay, or a wait.
                    Taken::Later(wait) => {
                        self.relaying.slow(relay, wait);
                        continue;
                    }
                    Taken::Stopping => return Ok((DeliveryResult::Released, None)),
                }
            }
            if !self.relaying.count(&self.store, relay).await? {
                continue;
            }
            // Whatever ends the attempt before the message goes gives its place back.
            let connection = &mut connections[relay];
            let failure = match connection.ready().await {
                Err(failure) => failure,
                Ok(()) => {
                    if !self.feed.fresh(|| self.stopping()).await {
                        self.relaying.uncount(&self.store, relay).await?;
                        return Ok((DeliveryResult::Released, None));
                    }
                    if let Some(settled) = self.check_again(job).await? {
                        self.relaying.uncount(&self.store, relay).await?;
                        return Ok((settled, None));
                    }
                    // A database that stalled may have let the lease run out: another worker
                    // (or this one's next claim) may be sending it. It goes back unsent.
                    if !self.lease_holds(job) {
                        self.relaying.uncount(&self.store, relay).await?;
                        return Ok((DeliveryResult::Released, None));
                    }
                    match connection.begin(&envelope, &bytes).await {
                        Ok(()) => break relay,
                        Err(failure) => failure,
                    }
                }
            };
            if let SendFailure::Unavailable { .. } = failure {
                self.relaying.uncount(&self.store, relay).await?;
                if self.relaying.turn_elsewhere(&failure) {
                    self.relaying.rest(relay, &failure);
                    continue;
                }
                return Ok((DeliveryResult::Released, Some(failure)));
            }
            if let SendFailure::Deferred(reason) = &failure {
                self.domains.put_off(&domain, reason);
            }
            return Ok((self.settle(&job.delivery, &failure), Some(failure)));
        };
        let delivery = &job.delivery;
        if !self.wait_committed(unsettled).await? {
            return Ok((DeliveryResult::Released, None));
        }
        let name = format!("{}-{}.eml", delivery.campaign_id, delivery.id);
        Ok(match connections[relay].finish(&bytes, &name).await {
            Ok(answer) => {
                self.relaying.answered(relay);
                self.domains.took(&domain);
                (
                    DeliveryResult::Sent {
                        message_id,
                        answer,
                        at: Utc::now(),
                    },
                    None,
                )
            }
            Err(failure) => {
                if let SendFailure::Deferred(reason) = &failure {
                    self.domains.put_off(&domain, reason);
                }
                (self.settle(delivery, &failure), Some(failure))
            }
        })
    }

    /// Waits for the sender's accepted message, if one is unsettled, to be committed, then
    /// counts it. `false` when the recorder has gone (the worker is stopping).
    async fn wait_committed(&self, unsettled: &mut Option<Unsettled>) -> Result<bool, WorkerError> {
        let Some(unsettled) = unsettled.take() else {
            return Ok(true);
        };
        self.settled(
            unsettled.delivery,
            unsettled.result,
            None,
            unsettled.committed,
        )
        .await
    }

    /// Counts a result once it is committed, and marks its delivery finished. `false` when the
    /// recorder has gone (the worker is stopping).
    async fn settled(
        &self,
        delivery: ClaimedDelivery,
        result: DeliveryResult,
        failure: Option<SendFailure>,
        committed: oneshot::Receiver<Result<bool, Arc<StoreError>>>,
    ) -> Result<bool, WorkerError> {
        match committed.await {
            Ok(Ok(true)) => self.account(&delivery, &result, failure.as_ref()).await?,
            Ok(Ok(false)) => tracing::warn!(
                delivery = delivery.id,
                "the lease ran out before the result was recorded; another worker has the row"
            ),
            Ok(Err(e)) => return Err(WorkerError::Recording(e)),
            Err(_) => return Ok(false),
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.finished_one.notify_one();
        Ok(true)
    }

    /// Checks the message again in the database when its recipient or campaign changed after
    /// it was last checked; `Some` when it is not to go after all.
    async fn check_again(&self, job: &mut Job) -> Result<Option<DeliveryResult>, WorkerError> {
        let delivery = &job.delivery;
        if !self
            .feed
            .changed_since(delivery.contact_id, delivery.campaign_id, job.checked)
        {
            return Ok(None);
        }
        let position = self.feed.position();
        Ok(
            match self
                .store
                .recheck_delivery(delivery.id, &self.owner)
                .await?
            {
                Recheck::Send => {
                    job.checked = position;
                    None
                }
                Recheck::Skip => Some(DeliveryResult::Skipped),
                Recheck::Hold => Some(DeliveryResult::Released),
            },
        )
    }

    /// What a failed send makes of the delivery.
    fn settle(&self, delivery: &ClaimedDelivery, failure: &SendFailure) -> DeliveryResult {
        let retry = &self.settings.sending.retry;
        match failure {
            // Not the message's doing: it goes as it is once the server is right.
            SendFailure::Unavailable { .. } => DeliveryResult::Released,
            SendFailure::Deferred(reason) if delivery.attempts + 1 < retry.attempts => {
                let wait = retry.wait(delivery.attempts + 1);
                DeliveryResult::Retry {
                    reason: reason.clone(),
                    at: Utc::now()
                        + chrono::Duration::from_std(wait).expect("a wait of a sane length"),
                }
            }
            SendFailure::Deferred(reason) => DeliveryResult::Failed {
                reason: format!("put off {} times: {reason}", retry.attempts),
                bounced: false,
            },
            SendFailure::Mailbox(reason) => DeliveryResult::Failed {
                reason: reason.clone(),
                bounced: true,
            },
            SendFailure::Refused(reason) => DeliveryResult::Failed {
                reason: reason.clone(),
                bounced: false,
            },
        }
    }

    /// Counts a recorded result, and pauses the campaign when sending keeps failing (or at once
    /// when the server refuses our credentials).
    async fn account(
        &self,
        delivery: &ClaimedDelivery,
        result: &DeliveryResult,
        failure: Option<&SendFailure>,
    ) -> Result<(), WorkerError> {
        let metrics = &self.settings.metrics;
        match result {
            DeliveryResult::Sent { .. } => {
                self.totals.sent.fetch_add(1, Ordering::Relaxed);
                metrics.sent.inc();
                self.failures_in_a_row.store(0, Ordering::Relaxed);
            }
            DeliveryResult::Skipped => self.count_skipped(1),
            DeliveryResult::Retry { .. } => {
                self.totals.retried.fetch_add(1, Ordering::Relaxed);
                metrics.retried.inc();
            }
            DeliveryResult::Failed { .. } => {
                self.totals.failed.fetch_add(1, Ordering::Relaxed);
                metrics.failed.inc();
            }
            DeliveryResult::Released | DeliveryResult::Postponed { .. } => {}
        }
        if matches!(
            result,
            DeliveryResult::Sent { .. }
                | DeliveryResult::Retry { .. }
                | DeliveryResult::Failed { .. }
        ) && let Some(bar) = &*lock(&self.bar)
        {
            bar.inc(1);
        }
        let Some(failure) = failure else {
            if let DeliveryResult::Sent { .. } = result {
                self.server_answered();
            }
            return Ok(());
        };
        // The server's words may quote the address or the name: logs and staff see neither.
        let reason = without_name(
            &without_addresses(failure.reason()),
            delivery.recipient.name.as_deref(),
        );
        tracing::warn!(
            delivery = delivery.id,
            campaign = delivery.campaign_id,
            "not sent: {reason}"
        );
        match failure {
            SendFailure::Unavailable { trouble, .. } if trouble.needs_a_person() => {
                let why = match trouble {
                    Trouble::Login => format!("the mail server refused our login: {reason}"),
                    Trouble::Tls => format!("TLS with the mail server failed: {reason}"),
                    Trouble::Sender => {
                        format!("the mail server refuses mail from our sender: {reason}")
                    }
                    _ => reason,
                };
                self.pause(delivery, &why, Some(*trouble)).await?;
            }
            SendFailure::Unavailable { trouble, .. } => {
                metrics.deferred(trouble.as_str()).inc();
                let mut unusable = lock(&self.unusable);
                match &mut *unusable {
                    Some((_, why)) => *why = reason,
                    None => *unusable = Some((Instant::now(), reason)),
                }
            }
            SendFailure::Deferred(_) => {
                metrics.deferred(failure.kind()).inc();
                self.server_answered();
            }
            SendFailure::Mailbox(_) | SendFailure::Refused(_) => {
                self.server_answered();
                let in_a_row = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if in_a_row >= self.settings.sending.pause_after.get() {
                    self.failures_in_a_row.store(0, Ordering::Relaxed);
                    let why = format!(
                        "the mail server refused {in_a_row} recipients in a row for good; the \
                         last: {reason}"
                    );
                    self.pause(delivery, &why, None).await?;
                }
            }
        }
        Ok(())
    }

    /// Sets the gauges of the queue: its depth, the age of its oldest delivery due, the
    /// campaigns paused.
    async fn gauge_the_queue(&self) -> Result<(), WorkerError> {
        let backlog = self.store.backlog().await?;
        let metrics = &self.settings.metrics;
        metrics
            .queue_depth
            .set(i64::try_from(backlog.due + backlog.waiting).unwrap_or(i64::MAX));
        let waited = backlog
            .oldest_due_since
            .map_or(0.0, |since| (Utc::now() - since).as_seconds_f64().max(0.0));
        metrics.oldest_due_seconds.set(waited);
        metrics
            .paused_campaigns
            .set(i64::try_from(backlog.paused_campaigns).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The server answered (took a message, or judged one): it can be used again.
    fn server_answered(&self) {
        if lock(&self.unusable).take().is_some() {
            tracing::info!("the mail server answers again");
        }
    }

    /// Whether the server has been unusable for longer than `patience`.
    fn unusable_longer_than(&self, patience: Duration) -> bool {
        lock(&self.unusable)
            .as_ref()
            .is_some_and(|(since, _)| since.elapsed() > patience)
    }

    /// Pauses the delivery's campaign, saying why, unless a pause of it is under way: what
    /// this worker holds of it goes back unsent.
    async fn pause(
        &self,
        delivery: &ClaimedDelivery,
        why: &str,
        trouble: Option<Trouble>,
    ) -> Result<(), WorkerError> {
        if !self.begin_pause(delivery) {
            return Ok(());
        }
        let paused = self
            .store
            .pause_failing_campaign(delivery.campaign_id, why)
            .await?;
        // Committed (or staff had paused or cancelled it already): from here on only a claim
        // begun after now can hold its rows, after someone resumes it.
        lock(&self.paused).insert(delivery.campaign_id, self.claims.load(Ordering::Acquire));
        if paused {
            tracing::error!(
                campaign = delivery.campaign_id,
                "campaign paused: {why}; resume it with `canvass campaign resume {}` once \
                 that is sorted",
                delivery.campaign_id
            );
            let alerting = alerts::Alerting {
                store: self.store.clone(),
                transport: self.settings.relays.first().clone(),
                letterhead: self.settings.letterhead.clone(),
            };
            let (campaign, why) = (delivery.campaign_id, why.to_owned());
            let refused_login = trouble == Some(Trouble::Login);
            tokio::spawn(async move {
                alerting
                    .campaign_paused(campaign, &why, refused_login)
                    .await
            });
        }
        Ok(())
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

/// A sender: takes one delivery at a time and sends it over its own connection. A message
/// the server accepted is committed while the next is begun ([`Shared::attempt`]); any other
/// result is committed before the next is taken. When the server cannot be used it waits
/// before trying again, longer each time.
async fn send(
    shared: Arc<Shared>,
    queue: async_channel::Receiver<Job>,
    recorder: async_channel::Sender<Pending>,
) -> Result<(), WorkerError> {
    let mut connections: Vec<Connection> = shared
        .relaying
        .relays()
        .iter()
        .map(|relay| Connection::new(relay.transport.clone()))
        .collect();
    let mut backoff = ServerBackoff::default();
    let mut unsettled: Option<Unsettled> = None;
    let sent = async {
        loop {
            // Nothing waiting to be sent: the last message is settled now, not when the next
            // comes (the claimer waits for every delivery in flight to finish).
            if queue.is_empty() && !shared.wait_committed(&mut unsettled).await? {
                break;
            }
            let Ok(mut job) = queue.recv().await else {
                break;
            };
            // A journal that cannot be written holds back what was claimed before it broke.
            let journal_broken = shared.store.journal().is_some_and(|j| j.is_broken());
            let (result, failure) = if shared.stopping() || shared.held_back(&job) || journal_broken
            {
                (DeliveryResult::Released, None)
            } else {
                shared
                    .attempt(&mut connections, &mut job, &mut unsettled)
                    .await?
            };
            // Results are counted in the order they came.
            if !shared.wait_committed(&mut unsettled).await? {
                break;
            }
            let (committed, recorded) = oneshot::channel();
            let pending = Pending {
                delivery: job.delivery.id,
                result: result.clone(),
                committed,
            };
            if recorder.send(pending).await.is_err() {
                break;
            }
            if matches!(result, DeliveryResult::Sent { .. }) {
                backoff.reset();
                unsettled = Some(Unsettled {
                    delivery: job.delivery,
                    result,
                    committed: recorded,
                });
                continue;
            }
            let unavailable = matches!(failure, Some(SendFailure::Unavailable { .. }));
            if !shared
                .settled(job.delivery, result, failure, recorded)
                .await?
            {
                break;
            }
            if unavailable {
                backoff.wait(&shared).await;
            }
        }
        shared.wait_committed(&mut unsettled).await?;
        Ok(())
    };
    let sent = sent.await;
    for connection in &mut connections {
        connection.close().await;
    }
    sent
}

/// How long a sender waits for a relay's share of its own rate before it tries another relay.
const RELAY_PATIENCE: Duration = Duration::from_millis(250);

/// How long a sender waits for a capped domain's share before it postpones the message
/// instead (and takes the next, perhaps to another domain).
const DOMAIN_PATIENCE: Duration = Duration::from_millis(250);

/// How often the worker sets the queue's gauges.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// A sender's wait after the server could not be used: 1, 2, 4 ... seconds, up to
/// [`Outage::longest_wait`].
#[derive(Default)]
struct ServerBackoff {
    failures: u32,
}

impl ServerBackoff {
    async fn wait(&mut self, shared: &Shared) {
        let longest = shared.settings.sending.outage.longest_wait;
        let wait = Duration::from_secs(1 << self.failures.min(16)).min(longest);
        self.failures += 1;
        let until = Instant::now() + wait;
        // Drawn out in short sleeps, so that a stop is heard at once.
        while Instant::now() < until && !shared.stopping() {
            tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How long a recorder tries again to write results the database cannot take for a while (a
/// restart, a failover): the messages went, and a result not written sends them again. Within
/// a service manager's time to stop.
const RECORD_PATIENCE: Duration = Duration::from_secs(60);

/// A recorder: writes every result waiting, in one transaction, then tells each sender.
async fn record(store: Store, owner: String, results: async_channel::Receiver<Pending>) {
    let mut waiting = Vec::new();
    while let Ok(first) = results.recv().await {
        waiting.push(first);
        while waiting.len() < 1024
            && let Ok(more) = results.try_recv()
        {
            waiting.push(more);
        }
        let (batch, replies): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .map(|pending| ((pending.delivery, pending.result), pending.committed))
            .unzip();
        let tried = Instant::now();
        let mut wait = Duration::from_millis(250);
        let written = loop {
            match store.record_results(&owner, &batch).await {
                // The server took these messages: written later is better than sent again.
                Err(e) if e.is_unavailable() && tried.elapsed() < RECORD_PATIENCE => {
                    if wait == Duration::from_millis(250) {
                        tracing::warn!(
                            results = batch.len(),
                            "the results cannot be written yet ({e}); trying again"
                        );
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                written => break written,
            }
        };
        match written {
            Ok(recorded) => {
                for (reply, recorded) in replies.into_iter().zip(recorded) {
                    let _ = reply.send(Ok(recorded));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Messages accepted per second, measured over windows of a few seconds.
struct RateWindow {
    since: Instant,
    sent: u64,
}

impl RateWindow {
    const LENGTH: Duration = Duration::from_secs(3);

    fn new(sent: u64) -> Self {
        Self {
            since: Instant::now(),
            sent,
        }
    }

    /// The rate over the window just closed, once it has.
    fn update(&mut self, sent: u64) -> Option<f64> {
        let elapsed = self.since.elapsed();
        if elapsed < Self::LENGTH {
            return None;
        }
        let rate = (sent - self.sent) as f64 / elapsed.as_secs_f64();
        *self = Self::new(sent);
        Some(rate)
    }
}

/// `text` with every word holding an `@` replaced: SMTP answers often quote the address.
fn without_addresses(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.contains('@') {
            true => "[address]",
            false => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with each word of `name` (in any case) replaced.
fn without_name(text: &str, name: Option<&str>) -> String {
    let mut text = text.to_owned();
    for word in name.unwrap_or_default().split_whitespace() {
        let word = word.to_lowercase();
        if word.chars().count() < 2 {
            continue;
        }
        while let Some(at) = text.to_lowercase().find(&word) {
            // Lower-casing can change a text's length: replace only where the bytes line up.
            match text.get(at..at + word.len()) {
                Some(found) if found.to_lowercase() == word => {
                    text.replace_range(at..at + word.len(), "[name]")
                }
                _ => break,
            }
        }
    }
    text
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

    #[test]
    fn names_are_taken_out_of_server_answers() {
        assert_eq!(
            without_name(
                "550 5.7.1 rejected for [address] (Amira HASSAN) policy",
                Some("Amira Hassan")
            ),
            "550 5.7.1 rejected for [address] ([name] [name]) policy"
        );
        assert_eq!(without_name("250 ok", None), "250 ok");
    }

    #[test]
    fn addresses_are_taken_out_of_server_answers() {
        assert_eq!(
            without_addresses("550 5.1.1 <amira@example.org>: Recipient address rejected"),
            "550 5.1.1 [address] Recipient address rejected"
        );
    }
}

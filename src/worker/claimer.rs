//! Claiming: each batch of due deliveries taken under a lease, queued for the senders, with the
//! queue's gauges kept, and what may no longer be sent (a lapsed lease, a paused campaign) held
//! back.

use super::{Job, Shared, Until, WorkerError, lock};
use futures_util::FutureExt;
use std::future::Future;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;

use crate::store::Imprint;

/// How often the worker sets the queue's gauges.
pub(super) const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// Messages accepted per second, measured over windows of a few seconds.
pub(super) struct RateWindow {
    since: Instant,
    sent: u64,
}

impl RateWindow {
    const LENGTH: Duration = Duration::from_secs(3);

    pub(super) fn new(sent: u64) -> Self {
        Self {
            since: Instant::now(),
            sent,
        }
    }

    /// The rate over the window just closed, once it has.
    pub(super) fn update(&mut self, sent: u64) -> Option<f64> {
        let elapsed = self.since.elapsed();
        if elapsed < Self::LENGTH {
            return None;
        }
        let rate = (sent - self.sent) as f64 / elapsed.as_secs_f64();
        *self = Self::new(sent);
        Some(rate)
    }
}

impl Shared {
    /// Deliveries claimed at a time: enough to keep every connection busy, and under a rate
    /// limit no more than a quarter of a lease's worth.
    pub(super) fn batch_size(&self) -> usize {
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

    /// Claims batches and queues them for the senders until stopped or, as `until` says, until
    /// nothing is due or one batch is settled.
    pub(super) async fn claim(
        &self,
        jobs: &async_channel::Sender<Job>,
        batch: usize,
        until: Until,
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
        let mut rate = RateWindow::new(self.progress.totals.sent.load(Ordering::Relaxed));
        let mut gauged: Option<Instant> = None;
        let mut journal_stopped = false;
        let drain = until != Until::Stopped;
        // A step claims one batch, then only waits for its messages to be settled.
        let mut claimed_one = false;
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
                self.lapse_if_expired(self.claims.begun.load(Ordering::Acquire));
                *lock(&self.claims.leases_hold_until) = Some(started + self.settings.sending.lease);
                renewed = Instant::now();
            }
            if let Some(per_second) = rate.update(self.progress.totals.sent.load(Ordering::Relaxed))
            {
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
            let wait = if claimed_one {
                if self.progress.in_flight.load(Ordering::Acquire) == 0 {
                    return Ok(());
                }
                Duration::from_millis(100)
            } else if jobs.len() < batch {
                let number = self.claims.begun.fetch_add(1, Ordering::AcqRel) + 1;
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
                    claimed_one = until == Until::OneBatch;
                    self.progress
                        .in_flight
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
                if self.progress.in_flight.load(Ordering::Acquire) == 0 {
                    self.store.finish_campaigns().await?;
                    if drain && self.store.backlog().await?.due == 0 {
                        return Ok(());
                    }
                }
                // Nothing to claim: rows held by another worker, or nothing queued.
                let idle = if drain {
                    Duration::from_millis(200)
                } else {
                    Duration::from_secs(1)
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
                () = self.progress.finished_one.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A claim begun at some instant holds its rows until `holds`: the earliest guarantee
    /// stands.
    pub(super) fn leases_hold_at_least_until(&self, holds: Instant) {
        let mut until = lock(&self.claims.leases_hold_until);
        *until = Some(until.map_or(holds, |until| until.min(holds)));
    }

    /// When the guarantee has run out, claims up to `claim` lapse for good, and a fresh one
    /// starts with the next renewal or claim.
    pub(super) fn lapse_if_expired(&self, claim: u64) {
        let mut until = lock(&self.claims.leases_hold_until);
        if until.is_some_and(|until| Instant::now() >= until) {
            self.claims.lapsed.fetch_max(claim, Ordering::AcqRel);
            *until = None;
        }
    }

    /// Whether the leases of `job`'s claim hold long enough yet for it to be sent under them.
    pub(super) fn lease_holds(&self, job: &Job) -> bool {
        let margin = self.settings.sending.lease / 4;
        job.claim > self.claims.lapsed.load(Ordering::Acquire)
            && lock(&self.claims.leases_hold_until)
                .is_some_and(|until| Instant::now() + margin < until)
    }

    /// Whether a claimed delivery belongs to a campaign this worker has paused since.
    pub(super) fn held_back(&self, job: &Job) -> bool {
        lock(&self.claims.paused)
            .get(&job.delivery.campaign_id)
            .is_some_and(|&last| job.claim <= last)
    }

    pub(super) fn count_skipped(&self, skipped: u64) {
        if skipped > 0 {
            self.progress
                .totals
                .skipped
                .fetch_add(skipped, Ordering::Relaxed);
            self.settings.metrics.skipped.inc_by(skipped);
            if let Some(bar) = &*lock(&self.progress.bar) {
                bar.inc(skipped);
            }
        }
    }

    /// Sets the gauges of the queue: its depth, the age of its oldest delivery due, the
    /// campaigns paused.
    pub(super) async fn gauge_the_queue(&self) -> Result<(), WorkerError> {
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
}

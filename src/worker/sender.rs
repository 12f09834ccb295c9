//! Sending: each sender task takes one queued delivery at a time, checks it again against the
//! change feed, waits for its relay's and its domain's turn, renders, signs and sends it, and
//! waits out a server that cannot be used.

use super::{Job, Pending, Shared, Unsettled, WorkerError, lock};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use tokio::sync::oneshot;

use crate::mail::{Connection, SendFailure};

use super::budget::Taken;
use crate::mail::render::Templates;
use crate::store::{Campaign, DeliveryResult, Imprint, Recheck};

/// A sender: takes one delivery at a time and sends it over its own connection. A message
/// the server accepted is committed while the next is begun ([`Shared::attempt`]); any other
/// result is committed before the next is taken. When the server cannot be used it waits
/// before trying again, longer each time.
pub(super) async fn send(
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
pub(super) const RELAY_PATIENCE: Duration = Duration::from_millis(250);

/// How long a sender waits for a capped domain's share before it postpones the message
/// instead (and takes the next, perhaps to another domain).
pub(super) const DOMAIN_PATIENCE: Duration = Duration::from_millis(250);

/// A sender's wait after the server could not be used: 1, 2, 4 ... seconds, up to
/// [`Outage::longest_wait`].
#[derive(Default)]
pub(super) struct ServerBackoff {
    failures: u32,
}

impl ServerBackoff {
    pub(super) async fn wait(&mut self, shared: &Shared) {
        let longest = shared.settings.sending.outage.longest_wait;
        let wait = Duration::from_secs(1 << self.failures.min(16)).min(longest);
        self.failures += 1;
        let until = Instant::now() + wait;
        // Drawn out in short sleeps, so that a stop is heard at once.
        while Instant::now() < until && !shared.stopping() {
            tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
        }
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Shared {
    pub(super) async fn campaign(
        &self,
        id: i64,
    ) -> Result<Arc<(Campaign, Templates)>, WorkerError> {
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

    pub(super) fn stopping(&self) -> bool {
        self.progress.stopping.load(Ordering::Relaxed)
    }

    /// Renders, signs and sends one message; says what became of it and, when the sending
    /// failed, how. The message is checked again just before MAIL FROM, once the connection is
    /// ready and the change feed has been read within the last half second.
    ///
    /// The sender's previous message (`unsettled`), accepted and handed to the recorder, is
    /// settled before this one can be accepted: after DATA, before the message itself. So its
    /// commit is awaited while this one is built and begun, and a crash still repeats at most
    /// one accepted message per connection.
    pub(super) async fn attempt(
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

    /// Checks the message again in the database when its recipient or campaign changed after
    /// it was last checked; `Some` when it is not to go after all.
    pub(super) async fn check_again(
        &self,
        job: &mut Job,
    ) -> Result<Option<DeliveryResult>, WorkerError> {
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

    /// The server answered (took a message, or judged one): it can be used again.
    pub(super) fn server_answered(&self) {
        if lock(&self.health.unusable).take().is_some() {
            tracing::info!("the mail server answers again");
        }
    }

    /// Whether the server has been unusable for longer than `patience`.
    pub(super) fn unusable_longer_than(&self, patience: Duration) -> bool {
        lock(&self.health.unusable)
            .as_ref()
            .is_some_and(|(since, _)| since.elapsed() > patience)
    }
}

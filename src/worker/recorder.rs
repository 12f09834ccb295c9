//! Recording: what became of each message, written by recorder tasks many to a commit; a
//! sender waits for its result to be committed before it takes the next message.

use super::redaction::{without_addresses, without_name};
use super::{Pending, Shared, Unsettled, WorkerError, lock};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::oneshot;

use crate::mail::{SendFailure, Trouble};

use crate::store::{ClaimedDelivery, DeliveryResult, Store, StoreError};

/// How long a recorder tries again to write results the database cannot take for a while (a
/// restart, a failover): the messages went, and a result not written sends them again. Within
/// a service manager's time to stop.
pub(super) const RECORD_PATIENCE: Duration = Duration::from_secs(60);

/// A recorder: writes every result waiting, in one transaction, then tells each sender.
pub(super) async fn record(store: Store, owner: String, results: async_channel::Receiver<Pending>) {
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

impl Shared {
    /// Waits for the sender's accepted message, if one is unsettled, to be committed, then
    /// counts it. `false` when the recorder has gone (the worker is stopping).
    pub(super) async fn wait_committed(
        &self,
        unsettled: &mut Option<Unsettled>,
    ) -> Result<bool, WorkerError> {
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
    pub(super) async fn settled(
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
        self.progress.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.progress.finished_one.notify_one();
        Ok(true)
    }

    /// What a failed send makes of the delivery.
    pub(super) fn settle(
        &self,
        delivery: &ClaimedDelivery,
        failure: &SendFailure,
    ) -> DeliveryResult {
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

    /// RunningTotals a recorded result, and pauses the campaign when sending keeps failing (or at once
    /// when the server refuses our credentials).
    pub(super) async fn account(
        &self,
        delivery: &ClaimedDelivery,
        result: &DeliveryResult,
        failure: Option<&SendFailure>,
    ) -> Result<(), WorkerError> {
        let metrics = &self.settings.metrics;
        match result {
            DeliveryResult::Sent { .. } => {
                self.progress.totals.sent.fetch_add(1, Ordering::Relaxed);
                metrics.sent.inc();
                self.health.failures_in_a_row.store(0, Ordering::Relaxed);
            }
            DeliveryResult::Skipped => self.count_skipped(1),
            DeliveryResult::Retry { .. } => {
                self.progress.totals.retried.fetch_add(1, Ordering::Relaxed);
                metrics.retried.inc();
            }
            DeliveryResult::Failed { .. } => {
                self.progress.totals.failed.fetch_add(1, Ordering::Relaxed);
                metrics.failed.inc();
            }
            DeliveryResult::Released | DeliveryResult::Postponed { .. } => {}
        }
        if matches!(
            result,
            DeliveryResult::Sent { .. }
                | DeliveryResult::Retry { .. }
                | DeliveryResult::Failed { .. }
        ) && let Some(bar) = &*lock(&self.progress.bar)
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
                let mut unusable = lock(&self.health.unusable);
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
                let in_a_row = self
                    .health
                    .failures_in_a_row
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if in_a_row >= self.settings.sending.pause_after.get() {
                    self.health.failures_in_a_row.store(0, Ordering::Relaxed);
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
}

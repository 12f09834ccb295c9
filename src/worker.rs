//! The delivery worker, in three levels: [`Worker::run_until_stopped`] → [`Worker::drain`] →
//! [`Worker::run_batch`], which claims a batch under a lease, sends each message and records
//! the server's answer at once, and returns what it did so that tests can drive it step by step.
//!
//! This first part sends to the `file://` outbox (one `.eml` file per message); SMTP delivery
//! with retries and backoff comes next.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration, Utc};
use futures_util::FutureExt;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::metrics::Metrics;
use crate::render::{MessageVars, Templates};
use crate::store::{Campaign, ClaimedDelivery, Store, StoreError};
use crate::token::SigningKeys;

/// Deliveries claimed at a time.
const BATCH: u32 = 200;
/// How long a claim holds: a worker killed mid-batch loses its rows to another after this.
const LEASE: Duration = Duration::minutes(2);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("campaign {0}: {1}")]
    Template(i64, crate::render::TemplateError),
    #[error("campaign {0} has disappeared")]
    CampaignGone(i64),
    #[error("building a message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("writing to the outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: only file:// outboxes can be sent to so far")]
    UnsupportedTransport(String),
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A folder: one `.eml` file per message.
    Outbox(PathBuf),
}

impl Transport {
    pub fn from_url(url: &str) -> Result<Self, WorkerError> {
        match url.strip_prefix("file://") {
            Some(dir) if !dir.is_empty() => Ok(Self::Outbox(PathBuf::from(dir))),
            _ => Err(WorkerError::UnsupportedTransport(url.to_owned())),
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub sent: u64,
    pub skipped: u64,
}

impl BatchOutcome {
    pub fn is_empty(&self) -> bool {
        self.sent == 0 && self.skipped == 0
    }
}

pub struct WorkerSettings {
    pub keys: SigningKeys,
    /// The public base of every link.
    pub base_url: String,
    pub from: Mailbox,
    pub transport: Transport,
    /// Where the worker counts what it sends and skips.
    pub metrics: Arc<Metrics>,
}

pub struct Worker {
    store: Store,
    settings: WorkerSettings,
    /// This process's name on its leases.
    owner: String,
    /// Campaigns met so far, with their compiled templates.
    campaigns: HashMap<i64, Arc<(Campaign, Templates)>>,
}

impl Worker {
    pub fn new(store: Store, settings: WorkerSettings) -> Self {
        Self {
            store,
            settings,
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            campaigns: HashMap::new(),
        }
    }

    /// Sends until nothing is left to send; returns the totals.
    pub async fn drain(&mut self) -> Result<BatchOutcome, WorkerError> {
        let mut total = BatchOutcome::default();
        loop {
            let batch = self.run_batch().await?;
            if batch.is_empty() {
                self.store.finish_campaigns().await?;
                return Ok(total);
            }
            total.sent += batch.sent;
            total.skipped += batch.skipped;
        }
    }

    /// Sends until `shutdown` completes, waiting a little whenever there is nothing to send.
    pub async fn run_until_stopped(
        &mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        tokio::pin!(shutdown);
        loop {
            let batch = self.run_batch().await?;
            if batch.is_empty() {
                self.store.finish_campaigns().await?;
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            } else if (&mut shutdown).now_or_never().is_some() {
                // Checked between batches only: what was claimed is sent and recorded first.
                return Ok(());
            }
        }
    }

    /// Claims one batch and sends it.
    pub async fn run_batch(&mut self) -> Result<BatchOutcome, WorkerError> {
        let claim = self
            .store
            .claim_deliveries(&self.owner, BATCH, LEASE)
            .await?;
        let mut outcome = BatchOutcome {
            sent: 0,
            skipped: claim.skipped,
        };
        for delivery in &claim.deliveries {
            let campaign = self.campaign(delivery.campaign_id).await?;
            let (message_id, message) = self.message(&campaign, delivery)?;
            let answer = self.send(delivery, &message).await?;
            if self
                .store
                .mark_sent(delivery.id, &self.owner, &message_id, &answer, Utc::now())
                .await?
            {
                outcome.sent += 1;
            }
        }
        self.settings.metrics.sent.inc_by(outcome.sent);
        self.settings.metrics.skipped.inc_by(outcome.skipped);
        if outcome.sent > 0 || outcome.skipped > 0 {
            tracing::info!(sent = outcome.sent, skipped = outcome.skipped, "batch sent");
        }
        Ok(outcome)
    }

    async fn campaign(&mut self, id: i64) -> Result<Arc<(Campaign, Templates)>, WorkerError> {
        if let Some(found) = self.campaigns.get(&id) {
            return Ok(found.clone());
        }
        let campaign = self
            .store
            .campaign(id)
            .await?
            .ok_or(WorkerError::CampaignGone(id))?;
        let templates =
            Templates::compile(&campaign.spec).map_err(|e| WorkerError::Template(id, e))?;
        let entry = Arc::new((campaign, templates));
        self.campaigns.insert(id, entry.clone());
        Ok(entry)
    }

    /// The message for one recipient, and its Message-ID.
    fn message(
        &self,
        campaign: &(Campaign, Templates),
        delivery: &ClaimedDelivery,
    ) -> Result<(String, Message), WorkerError> {
        let (campaign, templates) = campaign;
        let settings = &self.settings;
        let vars = MessageVars::for_recipient(
            &delivery.recipient,
            campaign.spec.event.as_ref(),
            &settings.keys,
            &settings.base_url,
        );
        let bodies = templates
            .render(&vars)
            .map_err(|e| WorkerError::Template(campaign.id, e))?;
        let domain = settings.from.email.domain();
        let message_id = format!("<{}@{domain}>", uuid::Uuid::new_v4().simple());
        let to = Mailbox::new(
            delivery.recipient.name.clone(),
            delivery.email.address().clone(),
        );
        let header = |name: &'static str, value: String| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
        };
        let message = Message::builder()
            .from(settings.from.clone())
            .to(to)
            .subject(&campaign.spec.subject)
            .date_now()
            .message_id(Some(message_id.clone()))
            .raw_header(header(
                "List-Unsubscribe",
                format!("<{}>", vars.unsubscribe_url),
            ))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(header(
                "List-Id",
                format!("<{}.{domain}>", campaign.spec.topic),
            ))
            .multipart(MultiPart::alternative_plain_html(bodies.text, bodies.html))?;
        Ok((message_id, message))
    }

    /// Hands the message over; returns the answer to record.
    async fn send(
        &self,
        delivery: &ClaimedDelivery,
        message: &Message,
    ) -> Result<String, WorkerError> {
        match &self.settings.transport {
            Transport::Outbox(dir) => {
                let name = format!("{}-{}.eml", delivery.campaign_id, delivery.id);
                let path = dir.join(&name);
                let partial = dir.join(format!(".{name}.partial"));
                let outbox = |source| WorkerError::Outbox {
                    path: path.clone(),
                    source,
                };
                tokio::fs::create_dir_all(dir).await.map_err(outbox)?;
                // Written whole, then renamed: a crash never leaves half a message.
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(outbox)?;
                tokio::fs::rename(&partial, &path).await.map_err(outbox)?;
                Ok(format!("written to {}", path.display()))
            }
        }
    }
}

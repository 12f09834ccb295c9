//! What mail providers report through their webhooks, verified the provider's own way
//! ([`crate::hooks`]) and acted on once: a permanent bounce or a complaint about one of
//! canvass's own messages, to the address it went to, suppresses that address for good (audited
//! as the provider's doing); a temporary bounce or a delivery is recorded and suppresses nobody;
//! an event about any other message changes nothing.

use std::sync::Arc;

use chrono::Utc;

use super::{App, AppError};
use crate::domain::{DeliveryStatus, SuppressionReason};
use crate::hooks::{Event, HookError, Kind, mailgun, postmark, sendgrid, ses};
use crate::store::{Effect, Heard, ProviderEvent};

/// The webhooks this installation takes, each with what verifies it; all off by default.
#[derive(Debug, Default)]
pub struct Webhooks {
    pub ses: Option<ses::Ses>,
    pub mailgun: Option<mailgun::SigningKey>,
    pub postmark: Option<postmark::BasicAuth>,
    pub sendgrid: Option<sendgrid::VerificationKey>,
}

/// Why a webhook request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// This provider's webhook is not set up here.
    #[error("this webhook is not set up")]
    Off,
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<crate::store::StoreError> for Refused {
    fn from(error: crate::store::StoreError) -> Self {
        Self::App(error.into())
    }
}

/// What one request came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub suppressed: u32,
    pub recorded: u32,
    /// About no message canvass sent to that address: nothing done.
    pub not_ours: u32,
    /// Heard before: nothing done again.
    pub repeated: u32,
}

/// `POST /hooks/ses`: an SNS message.
pub async fn ses(app: &App, body: &[u8]) -> Result<Summary, Refused> {
    let hook = app.webhooks.ses.as_ref().ok_or(Refused::Off)?;
    match hook.receive(body, Utc::now()).await? {
        ses::Received::Notification(events) => hear(app, "ses", &events, None).await,
        ses::Received::Subscribed => {
            tracing::info!("confirmed the SNS subscription of an SES topic");
            Ok(Summary::default())
        }
        ses::Received::Nothing => Ok(Summary::default()),
    }
}

/// `POST /hooks/mailgun`: one event, its one-time token spent.
pub async fn mailgun(app: &App, body: &[u8]) -> Result<Summary, Refused> {
    let key = app.webhooks.mailgun.as_ref().ok_or(Refused::Off)?;
    let verified = mailgun::read(key, body, Utc::now())?;
    match verified.event {
        Some(event) => hear(app, "mailgun", &[event], Some(&verified.token)).await,
        None => match app
            .store
            .spend_hook_nonce("mailgun", &verified.token)
            .await?
        {
            true => Ok(Summary::default()),
            false => Err(replayed()),
        },
    }
}

/// `POST /hooks/postmark`: one record, behind basic authentication.
pub async fn postmark(
    app: &App,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<Summary, Refused> {
    let auth = app.webhooks.postmark.as_ref().ok_or(Refused::Off)?;
    if !auth.admits(authorization) {
        return Err(HookError::Unverified("the user or password is wrong".into()).into());
    }
    let events: Vec<Event> = postmark::read(body)?.into_iter().collect();
    hear(app, "postmark", &events, None).await
}

/// `POST /hooks/sendgrid`: a signed batch of events.
pub async fn sendgrid(
    app: &App,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<Summary, Refused> {
    let key = app.webhooks.sendgrid.as_ref().ok_or(Refused::Off)?;
    let events = sendgrid::read(key, signature, timestamp, body, Utc::now())?;
    hear(app, "sendgrid", &events, None).await
}

fn replayed() -> Refused {
    HookError::Unverified("this request was accepted before: a replay".into()).into()
}

/// Acts on each event once.
async fn hear(
    app: &App,
    provider: &'static str,
    events: &[Event],
    nonce: Option<&str>,
) -> Result<Summary, Refused> {
    let mut summary = Summary::default();
    let name = provider_name(provider);
    for (index, event) in events.iter().enumerate() {
        let detail;
        let status = match &event.kind {
            Kind::Bounce { status, .. } => status.map(|s| s.to_string()),
            _ => None,
        };
        let effect = match &event.kind {
            Kind::Bounce {
                permanent: true,
                status,
            } => {
                let status = status.unwrap_or_else(permanent_unknown);
                detail = format!("bounce {status}, reported by {name}");
                Effect::Suppress {
                    reason: SuppressionReason::Bounced,
                    detail: &detail,
                }
            }
            Kind::Bounce {
                permanent: false, ..
            } => Effect::Note { kind: "temporary" },
            Kind::Complaint => {
                detail = format!("complaint, reported by {name}");
                Effect::Suppress {
                    reason: SuppressionReason::Complaint,
                    detail: &detail,
                }
            }
            Kind::Delivered => Effect::Note { kind: "delivered" },
        };
        let message = event.message_id.as_deref().zip(event.recipient.as_ref());
        let heard = app
            .store
            .hear_from_provider(&ProviderEvent {
                provider,
                key: &event.key,
                // One request, one token: spent with its first event.
                nonce: nonce.filter(|_| index == 0),
                message,
                status: status.as_deref(),
                effect,
            })
            .await?;
        match heard {
            Heard::Replayed => return Err(replayed()),
            Heard::AlreadyHeard => summary.repeated += 1,
            Heard::NotOurs => summary.not_ours += 1,
            Heard::Suppressed => summary.suppressed += 1,
            Heard::Recorded => summary.recorded += 1,
        }
    }
    Ok(summary)
}

/// 5.0.0: a permanent failure the provider gave no status for.
fn permanent_unknown() -> DeliveryStatus {
    "5.0.0".parse().expect("5.0.0 is a status")
}

/// How the audit log names a provider.
fn provider_name(provider: &str) -> &'static str {
    match provider {
        "ses" => "Amazon SES",
        "mailgun" => "Mailgun",
        "postmark" => "Postmark",
        _ => "SendGrid",
    }
}

impl App {
    /// The application taking these provider webhooks.
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Arc::new(webhooks);
        self
    }
}

/// Forgets webhook tokens and event ids older than they need keeping: a one-time token is
/// refused once its signature has expired (five minutes), so a day's are kept; providers retry
/// for a day or so, so a month of event ids keeps every retry from acting twice.
pub async fn prune(app: &App, now: chrono::DateTime<chrono::Utc>) -> crate::app::Result<()> {
    // Each is tried whatever became of the other.
    let nonces = app
        .store
        .prune_hook_nonces(now - chrono::Duration::days(1))
        .await;
    let events = app
        .store
        .prune_hook_events(now - chrono::Duration::days(30))
        .await;
    nonces?;
    events?;
    Ok(())
}

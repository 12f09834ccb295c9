//! What the bounce, feedback-loop and unsubscribe mailboxes received, one message at a time,
//! whatever door it came through (a folder of `.eml` files, a Maildir): delivery status
//! notifications and abuse reports about canvass's own mail suppress the address they condemn;
//! unsubscribe requests to the `mailto:` address unsubscribe the person whose signed token they
//! carry. Each message is acted on once: its digest is kept, and a message read again (a folder
//! imported twice, a copy in another mailbox) changes nothing. [`fetch`] reads the mailbox over
//! IMAP and moves each message it read out of the folder.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::feedback::FeedbackAbout;
use super::feedback::{self, Recorded};
use super::preferences::{self, UnsubscribeOutcome, UnsubscribeVia};
use super::{Actor, App, AppError, Result};
use crate::domain::SuppressionReason;
use crate::mail::feedback::{Finding, Report};
use crate::mail::imap::{Filed, Mailbox, MailboxUrl};
use crate::mail::token::{Purpose, SigningKeys};

/// What one report in a message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    Suppressed(SuppressionReason),
    Unsubscribed,
    AlreadyUnsubscribed,
    /// An unsubscribe request whose person is held no more (erased).
    NobodyHeld,
    /// A 4.x.x bounce: nobody suppressed.
    Temporary,
    /// About a message canvass did not send, or a token it did not sign: ignored.
    NotOurs,
}

/// One report in a message, and what it came to, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRead {
    pub heard: Heard,
    pub said: String,
}

/// What reading one message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRead {
    /// Read before: nothing done again.
    AlreadyRead,
    /// Not a report canvass reads (why).
    Unreadable(String),
    Read(Vec<ReportRead>),
}

/// Reads one message (its raw bytes) and acts on what it reports, once.
pub async fn read_message(app: &App, keys: &SigningKeys, bytes: &[u8]) -> Result<MessageRead> {
    let digest = format!("{:x}", Sha256::digest(bytes));
    if app.store.inbox_message_read(&digest).await? {
        return Ok(MessageRead::AlreadyRead);
    }
    let findings = match crate::mail::feedback::read(bytes) {
        Ok(findings) => findings,
        Err(e) => {
            app.store.mark_inbox_message(&digest, "unreadable").await?;
            return Ok(MessageRead::Unreadable(e.to_string()));
        }
    };
    let mut read = Vec::new();
    for finding in &findings {
        read.push(act(app, keys, finding).await?);
    }
    let outcome = if read.iter().all(|f| f.heard == Heard::NotOurs) {
        "ignored"
    } else {
        "acted"
    };
    // Marked once acted on: a crash in between acts again next time, which changes nothing
    // (a suppression or an unsubscribe twice is one), rather than lose a report.
    app.store.mark_inbox_message(&digest, outcome).await?;
    Ok(MessageRead::Read(read))
}

/// Acts on one report.
async fn act(app: &App, keys: &SigningKeys, finding: &Finding) -> Result<ReportRead> {
    let said = |heard, said: String| Ok(ReportRead { heard, said });
    let detail = match &finding.report {
        Report::Unsubscribe { token } => return unsubscribe(app, keys, token).await,
        Report::Bounce { status } => format!("bounce {status}"),
        Report::Complaint => "complaint report".to_owned(),
    };
    // Only a report about a message canvass sent, to the address it names, acts.
    let Some(id) = &finding.message_id else {
        return said(
            Heard::NotOurs,
            format!("{detail}: not ours (names no Message-ID canvass gave): ignored"),
        );
    };
    let about = FeedbackAbout::Message {
        id,
        to: finding.recipient.as_ref(),
    };
    match feedback::record(app, &Actor::Operator, &about, &finding.report).await {
        Ok(Recorded::Temporary) => said(
            Heard::Temporary,
            format!("temporary {detail}: nobody suppressed"),
        ),
        Ok(Recorded::Suppressed(reason)) => {
            said(Heard::Suppressed(reason), format!("{detail}: suppressed"))
        }
        Err(AppError::NotFound(_)) => said(
            Heard::NotOurs,
            format!("{detail}: not ours (canvass sent no message {id} to that address): ignored"),
        ),
        Err(e) => Err(e),
    }
}

/// Unsubscribes the person whose signed token the request carries, as the one-click link does.
async fn unsubscribe(app: &App, keys: &SigningKeys, token: &str) -> Result<ReportRead> {
    let said = |heard, said: &str| {
        Ok(ReportRead {
            heard,
            said: said.to_owned(),
        })
    };
    let Ok(link) = keys.verify_link(token, Purpose::Unsubscribe, Utc::now()) else {
        return said(
            Heard::NotOurs,
            "unsubscribe request: not ours (its token does not verify): ignored",
        );
    };
    match preferences::unsubscribe(app, &link, UnsubscribeVia::Email, None).await? {
        UnsubscribeOutcome::Unsubscribed => {
            said(Heard::Unsubscribed, "unsubscribe request: unsubscribed")
        }
        UnsubscribeOutcome::AlreadyUnsubscribed => said(
            Heard::AlreadyUnsubscribed,
            "unsubscribe request: already unsubscribed",
        ),
        UnsubscribeOutcome::NotFound => said(
            Heard::NobodyHeld,
            "unsubscribe request: nobody is held for it (erased?)",
        ),
    }
}

/// What reading the bounce mailbox once came to: messages acted on, ignored (not reports about
/// canvass's mail, unreadable, too large) and read before, each moved out of the folder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub acted: u32,
    pub ignored: u32,
    pub read_before: u32,
    /// Not read for a fault of canvass's (the database): left in the folder for next time.
    pub failed: u32,
}

/// Reads every message waiting in the bounce mailbox (`CANVASS_INBOX_URL`), acts on each as
/// [`read_message`] does, and moves it to `canvass/processed` (acted on, or read before) or
/// `canvass/ignored`.
pub async fn fetch(
    app: &App,
    keys: &SigningKeys,
    url: &MailboxUrl,
    tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
) -> std::result::Result<Fetched, FetchError> {
    let mut mailbox = Mailbox::open(url, tls).await?;
    let mut fetched = Fetched::default();
    let read = async {
        for uid in mailbox.waiting().await? {
            let filed = match mailbox.read(uid).await? {
                None => {
                    fetched.ignored += 1;
                    Filed::Ignored
                }
                Some(bytes) => {
                    let read = match read_message(app, keys, &bytes).await {
                        Ok(read) => read,
                        // Left where it is, to be read again next time; the others go on.
                        Err(e) => {
                            tracing::warn!(
                                uid,
                                "a message in the bounce mailbox was not read: {e}"
                            );
                            fetched.failed += 1;
                            continue;
                        }
                    };
                    match read {
                        MessageRead::AlreadyRead => {
                            fetched.read_before += 1;
                            Filed::Processed
                        }
                        MessageRead::Read(reports)
                            if reports.iter().any(|report| report.heard != Heard::NotOurs) =>
                        {
                            fetched.acted += 1;
                            Filed::Processed
                        }
                        MessageRead::Read(_) | MessageRead::Unreadable(_) => {
                            fetched.ignored += 1;
                            Filed::Ignored
                        }
                    }
                }
            };
            mailbox.file(uid, filed).await?;
        }
        Ok::<_, FetchError>(())
    }
    .await;
    mailbox.close().await;
    read.map(|()| fetched)
}

/// Why the mailbox could not be read to the end (what was read before stays done).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Mailbox(#[from] crate::mail::imap::ImapError),
    #[error(transparent)]
    App(#[from] AppError),
}

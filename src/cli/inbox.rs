//! `canvass inbox import DIR` (or `bounces import`): reads what the bounce, feedback-loop and
//! unsubscribe mailboxes received, saved in a folder (`.eml` files): suppresses the addresses
//! that delivery status notifications and abuse reports about our own mail condemn, and
//! unsubscribes the people whose signed token an unsubscribe request carries.

use std::path::Path;

use anyhow::Context;
use chrono::Utc;

use crate::app::feedback::{self, Recorded};
use crate::app::{App, AppError};
use crate::domain::{Actor, SuppressionReason};
use crate::feedback::{Finding, Report};
use crate::store::{FeedbackAbout, Store, UnsubscribeOutcome, UnsubscribeRequest};
use crate::token::{Purpose, SigningKeys};

/// The consent ledger's source for an unsubscribe request sent by email.
const UNSUBSCRIBE_EMAIL_SOURCE: &str = "unsubscribe-email";

#[derive(Default)]
struct Tally {
    bounced: u64,
    complaints: u64,
    unsubscribed: u64,
    temporary: u64,
    unmatched: u64,
    unreadable: u64,
}

pub async fn import(app: &App, keys: &SigningKeys, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("eml"))
        })
        .collect();
    files.sort();
    let mut tally = Tally::default();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match crate::feedback::read(&bytes) {
            Ok(findings) => {
                for finding in findings {
                    let said = apply(app, keys, &finding, &mut tally).await?;
                    println!("{name}: {said}");
                }
            }
            Err(e) => {
                tally.unreadable += 1;
                println!("{name}: skipped: {e}");
            }
        }
    }
    println!(
        "read {} files: {} suppressed as bounced, {} as complaints, {} unsubscribed, {} \
         temporary (nobody suppressed), {} not about a message canvass sent (ignored), {} not \
         reports",
        files.len(),
        tally.bounced,
        tally.complaints,
        tally.unsubscribed,
        tally.temporary,
        tally.unmatched,
        tally.unreadable
    );
    Ok(())
}

/// Suppresses what one finding condemns; says what it did.
async fn apply(
    app: &App,
    keys: &SigningKeys,
    finding: &Finding,
    tally: &mut Tally,
) -> anyhow::Result<String> {
    let detail = match &finding.report {
        Report::Unsubscribe { token } => {
            return unsubscribe(&app.store, keys, token, tally).await;
        }
        Report::Bounce { status } => format!("bounce {status}"),
        Report::Complaint => "complaint report".to_owned(),
    };
    // Only a report about a message canvass sent, to the address it names, acts.
    let Some(id) = &finding.message_id else {
        tally.unmatched += 1;
        return Ok(format!(
            "{detail}: not ours (names no Message-ID canvass gave): ignored"
        ));
    };
    let about = FeedbackAbout::Message {
        id,
        to: finding.recipient.as_ref(),
    };
    match feedback::record(app, &Actor::Operator, &about, &finding.report).await {
        Ok(Recorded::Temporary) => {
            tally.temporary += 1;
            Ok(format!("temporary {detail}: nobody suppressed"))
        }
        Ok(Recorded::Suppressed(SuppressionReason::Complaint)) => {
            tally.complaints += 1;
            Ok(format!("{detail}: suppressed"))
        }
        Ok(Recorded::Suppressed(_)) => {
            tally.bounced += 1;
            Ok(format!("{detail}: suppressed"))
        }
        Err(AppError::NotFound(_)) => {
            tally.unmatched += 1;
            Ok(format!(
                "{detail}: not ours (canvass sent no message {id} to that address): ignored"
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Unsubscribes the person whose signed token the request carries, as the one-click link does.
async fn unsubscribe(
    store: &Store,
    keys: &SigningKeys,
    token: &str,
    tally: &mut Tally,
) -> anyhow::Result<String> {
    let Ok(link) = keys.verify_link(token, Purpose::Unsubscribe, Utc::now()) else {
        tally.unmatched += 1;
        return Ok("unsubscribe request: not ours (its token does not verify): ignored".into());
    };
    let request = UnsubscribeRequest {
        contact: link.contact,
        source: UNSUBSCRIBE_EMAIL_SOURCE,
        ip: None,
        campaign: link.campaign,
    };
    let outcome = store.unsubscribe(std::slice::from_ref(&request)).await?;
    Ok(match outcome.first() {
        Some(UnsubscribeOutcome::Unsubscribed) => {
            tally.unsubscribed += 1;
            "unsubscribe request: unsubscribed".into()
        }
        Some(UnsubscribeOutcome::AlreadyUnsubscribed) => {
            "unsubscribe request: already unsubscribed".into()
        }
        _ => "unsubscribe request: nobody is held for it (erased?)".into(),
    })
}
